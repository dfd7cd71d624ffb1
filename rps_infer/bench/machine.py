"""What machine this is: CPU model, cores, GPU, runtimes; and its runner class.

The runner class names the kind of machine a baseline belongs to, e.g.
``cpu-x86_64-2c-amd-epyc`` or ``gpu-nvidia-h100-80gb-hbm3``.
"""

from __future__ import annotations

import functools
import os
import platform
import re
import shutil
import subprocess
from importlib import metadata


@functools.cache
def _cpuinfo() -> dict[str, str]:
    """The first processor's fields from /proc/cpuinfo; empty where there is no such file."""
    fields: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if not line.strip():
                    break  # the first processor is enough
                key, _, value = line.partition(":")
                fields[key.strip()] = value.strip()
    except OSError:
        pass
    return fields


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (or the platform's processor string)."""
    return _cpuinfo().get("model name") or platform.processor() or "unknown-cpu"


def cpu_signature() -> str:
    """Vendor, family, model and stepping from /proc/cpuinfo (``GenuineIntel 6/207/2``): the CPU
    generation, which virtual machines hide behind generic names like ``Intel(R) Xeon(R) Processor``."""
    info = _cpuinfo()
    parts = (info.get("vendor_id"), info.get("cpu family"), info.get("model"), info.get("stepping"))
    if not all(parts):
        return "unknown"
    return f"{parts[0]} {parts[1]}/{parts[2]}/{parts[3]}"


def cpu_count() -> int:
    """Cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


@functools.cache
def gpus() -> tuple[dict[str, str], ...]:
    """NVIDIA GPUs from nvidia-smi (name, driver, memory); empty where there are none."""
    if shutil.which("nvidia-smi") is None:
        return ()
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return ()
    rows = [line.split(", ") for line in out.strip().splitlines() if line.strip()]
    return tuple({"name": r[0], "driver": r[1], "memory": r[2]} for r in rows if len(r) == 3)


def slug(text: str) -> str:
    """Lower-case words joined by '-': ``AMD EPYC 7B13`` -> ``amd-epyc-7b13``."""
    text = re.sub(r"\((r|tm)\)|cpu|processor|@", " ", text.lower())
    return re.sub(r"[^a-z0-9.]+", "-", text).strip("-") or "unknown"


def runner_class() -> str:
    """``gpu-<first GPU>`` where a GPU exists, else ``cpu-<arch>-<cores>c-<cpu model>``."""
    found = gpus()
    if found:
        return f"gpu-{slug(found[0]['name'].replace('NVIDIA', ''))}"
    return f"cpu-{platform.machine()}-{cpu_count()}c-{slug(cpu_model())}"


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def package_versions() -> dict[str, str | None]:
    """Versions of the runtimes that produce the numbers (without importing them)."""
    names = ("rps_infer", "numpy", "onnxruntime", "onnxruntime-gpu", "torch", "tensorflow",
             "tensorflow-cpu", "keras", "onnx")
    return {n: v for n in names if (v := _version(n)) is not None}


def machine_info() -> dict[str, object]:
    """Everything a reader needs to know which machine produced a number."""
    info: dict[str, object] = {
        "runner_class": runner_class(),
        "cpu_model": cpu_model(),
        "cpu_signature": cpu_signature(),
        "cores": cpu_count(),
        "arch": platform.machine(),
        "python": platform.python_version(),
        "gpus": list(gpus()),
        "versions": package_versions(),
    }
    try:
        import onnxruntime as ort

        info["onnxruntime_providers"] = ort.get_available_providers()
    except ImportError:
        pass
    return info


def machine_line(report: dict) -> str:
    """``AMD EPYC, 2 cores, x86_64, no GPU; onnxruntime 1.31.1, torch 2.13.0+cpu, ...``."""
    m = report["machine"]
    gpus = ", ".join(g["name"] for g in m.get("gpus", [])) or "no GPU"
    versions = ", ".join(f"{k} {v}" for k, v in m.get("versions", {}).items() if k != "rps_infer")
    return f"{m['cpu_model']}, {m['cores']} cores, {m['arch']}, {gpus}; {versions}"
