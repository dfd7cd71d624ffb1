"""deploy/: the container image's recipe, its command run outside a container, the image
itself where a container tool works, and the Kubernetes and KServe manifests validated
offline (each validator shown to fail on a planted defect)."""

from __future__ import annotations

import importlib.util
import itertools
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from rps_infer.cli import build_parser
from rps_infer.serving import launch, security

from .server_process import _DIE_WITH_PARENT, free_ports

REPO = Path(__file__).resolve().parent.parent
DEPLOY = REPO / "deploy"
CONTAINERFILE = DEPLOY / "Containerfile"
K8S_FILES = sorted((DEPLOY / "kubernetes").glob("*.yaml"))
KSERVE_FILES = sorted((DEPLOY / "kserve").glob("*.yaml"))
FRAMEWORKS = re.compile(r"torch|tensorflow", re.IGNORECASE)
FINAL_STAGES = ("gpu", "cpu")


def _load_validate():
    # deploy/ is not a package: its validator is a script people run too.
    spec = importlib.util.spec_from_file_location("deploy_validate", DEPLOY / "validate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


validate = _load_validate()


# --- The Containerfile ------------------------------------------------------------------

def test_containerfile_never_names_the_training_frameworks():
    text = CONTAINERFILE.read_text()
    assert not FRAMEWORKS.search(text), FRAMEWORKS.findall(text)
    serve = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]["serve"]
    assert not [d for d in serve if re.search(r"torch|tensorflow|keras|matplotlib", d, re.I)]


def test_containerfile_installs_the_serve_extra_and_nothing_heavier():
    for name, stage in validate.stages().items():
        for word, rest in stage:
            if word != "RUN":
                continue
            assert not re.search(r"\b(gcc|g\+\+|build-essential|clang|python3-dev)\b", rest), (name, rest)
            for step in rest.split("&&"):
                tokens = shlex.split(step)
                if "pip" not in " ".join(tokens[:2]) or "install" not in tokens:
                    continue
                assert "--no-cache-dir" in tokens, step
                for requirement in [t for t in tokens[tokens.index("install") + 1:] if not t.startswith("-")]:
                    project = re.fullmatch(r".*rps_infer.*\[([\w,]+)\]", requirement)
                    gpu_runtime = name == "gpu" and requirement.startswith("onnxruntime-gpu")
                    assert gpu_runtime or (project and project.group(1) == "serve"), (name, requirement)
    for name in FINAL_STAGES:
        assert any("[serve]" in rest for w, rest in validate.stages()[name] if w == "RUN"), name
    assert list(validate.stages())[-1] == "cpu"  # the default target


def test_containerfile_ties_the_install_layer_to_the_wheel():
    # podman/buildah reuse a cached RUN --mount=...,from=wheel layer after the wheel changed
    # (containers/buildah#4522; seen here with podman 4.3.1: the image kept an old server):
    # each final stage copies the wheel's digest, a COPY whose changed source does count, first.
    assert "sha256sum" in validate.last(validate.stages()["wheel"], "RUN")
    for name in FINAL_STAGES:
        stage = validate.stages()[name]
        install = next(i for i, (w, rest) in enumerate(stage) if w == "RUN" and "from=wheel" in rest)
        copies = [rest.split() for w, rest in stage[:install] if w == "COPY"]
        assert ["--from=wheel", "/wheel.sha256", "/opt/rps-infer/wheel.sha256"] in copies, name


def test_containerfile_slims_the_cpu_install_and_proves_the_runtime_still_runs():
    # What the server never loads goes in the install's own layer; the same layer then imports
    # the server's modules (writing their byte code) and runs an ONNX Runtime session.
    install = next(rest for w, rest in validate.stages()["cpu"] if w == "RUN" and "[serve]" in rest)
    assert "--no-compile" in install
    removed = re.search(r"rm -rf ([^&]+)", install).group(1).split()
    assert set(removed) == {"numpy/tests", "numpy/*/tests", "onnx/backend/test", "onnxruntime/capi/libonnxruntime.so*"}
    proof = install[install.index("rm -rf"):]
    assert "import rps_infer.cli.serve" in proof and "InferenceSession" in proof and ".run(" in proof


def test_containerfile_runs_as_non_root_with_a_healthcheck():
    for name in FINAL_STAGES:
        stage = validate.stages()[name]
        user = validate.last(stage, "USER")
        assert user and user.split(":")[0] not in ("root", "0"), name
        health = validate.last(stage, "HEALTHCHECK")
        assert health and "/v2/health/ready" in health and "--start-period" in health, name
        assert set(validate.last(stage, "EXPOSE").split()) == {"8000", "8001", "8002"}
        assert validate.last(stage, "VOLUME") == "/models"
    # The GPU image picks its device out loud (TensorRT -> CUDA -> CPU, each checked against the CPU).
    assert validate.image_command("gpu") == [*validate.image_command("cpu")[:-1], "--device", "auto", "--insecure"]


def flag(command: list[str], name: str) -> str:
    """The value after the last ``name`` in ``command`` (``--name=value`` too)."""
    values = [command[i + 1] for i, a in enumerate(command[:-1]) if a == name]
    values += [a.split("=", 1)[1] for a in command if a.startswith(f"{name}=")]
    assert values, f"{name} not in {command}"
    return values[-1]


def serve_options() -> set[str]:
    """Every option ``rps-infer serve`` accepts."""
    commands = next(a for a in build_parser()._actions if hasattr(a, "choices") and a.choices)
    return set(commands.choices["serve"]._option_string_actions)


def test_image_command_uses_only_serve_options_and_needs_insecure_on_every_interface():
    command = validate.image_command()
    assert command[:2] == ["rps-infer", "serve"]
    assert {a.split("=")[0] for a in command[2:] if a.startswith("--")} <= serve_options()
    assert flag(command, "--host") == "0.0.0.0"
    # The repository's policy.onnx / value.onnx serve the NeuralService: no model is named apart.
    for name in FINAL_STAGES:
        assert flag(validate.image_command(name), "--model-repository") == "/models"
        assert not {"--policy", "--value"} & {a.split("=")[0] for a in validate.image_command(name)}, name
    assert "--insecure" in json.loads(validate.last(validate.stages()["cpu"], "CMD"))
    with pytest.raises(Exception, match="--insecure"):  # why CMD carries it: plaintext on 0.0.0.0
        security.check(security.SecurityConfig(), "0.0.0.0")



def model_folder(built_zoo, folder: Path) -> Path:
    """A model repository as the image expects it: the built policy and value as policy.onnx and
    value.onnx (the NeuralService's, found by name) and the policy again as an ordinary v2 model."""
    folder.mkdir()
    for name in ("policy", "value"):
        shutil.copy(built_zoo[name].onnx_path, folder / f"{name}.onnx")
    shutil.copy(built_zoo["policy"].onnx_path, folder / "tictac.onnx")
    folder.chmod(0o755)  # the image's user (uid 10001) reads it too
    for f in folder.iterdir():
        f.chmod(0o644)
    return folder


def on_this_machine(command: list[str], ports: dict[str, int], models: Path) -> list[str]:
    """The image's command for a test: loopback, the given ports, ``models`` for /models."""
    script = Path(sys.executable).with_name("rps-infer")  # the venv's, as the image's is on its PATH
    local = [str(script)] if script.exists() else [sys.executable, "-m", "rps_infer.cli"]
    for before, arg in itertools.pairwise(command):
        if before == "--host":
            arg = "127.0.0.1"  # tests talk to loopback only; --insecure is then not needed, but harmless
        elif before in ports:
            arg = str(ports[before])
        elif arg.startswith("/models"):
            arg = str(models) + arg.removeprefix("/models")
        local.append(arg)
    return local


def check_serving(grpc_port: int, http_port: int, metrics_port: int) -> None:
    """gRPC health SERVING, v2 REST ready, metrics exported, a v2 inference, and the
    NeuralService answering from the repository's policy.onnx and value.onnx."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from rps_infer.client import NeuralClient, V2Client
    from rps_infer.game import realistic_positions

    with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING
    with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/v2/health/ready", timeout=10) as answer:
        assert answer.status == 200
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10) as answer:
        assert b"rps_infer_" in answer.read()
    positions = realistic_positions(2, seed=5)
    with V2Client(f"127.0.0.1:{grpc_port}") as client:
        out = client.infer("tictac", {"input": positions})
    assert out["output"].shape == (2, 9)
    with NeuralClient(f"127.0.0.1:{grpc_port}") as neural:
        for position, expected in zip(positions, out["output"], strict=True):
            probabilities, _ = neural.predict_policy(position)  # policy.onnx is tictac.onnx's file
            np.testing.assert_allclose(probabilities, expected, rtol=1e-5, atol=1e-6)
        assert 0.0 <= neural.predict_value(positions[0]) <= 1.0


@pytest.mark.parametrize("stage", FINAL_STAGES)
def test_image_command_serves_outside_a_container(stage, built_zoo, tmp_path):
    # The gpu stage's command too: --device auto must start on whatever this machine has.
    help_text = subprocess.run([sys.executable, "-m", "rps_infer.cli", "serve", "--help"], capture_output=True,
                               text=True, check=True).stdout
    if "--http-port" not in help_text:
        pytest.skip("rps-infer serve does not accept --http-port yet (the image's command needs it)")
    grpc_port, http_port, metrics_port = free_ports(3)
    ports = {"--port": grpc_port, "--http-port": http_port, "--metrics-port": metrics_port}
    command = on_this_machine(validate.image_command(stage), ports, model_folder(built_zoo, tmp_path / "models"))
    server = launch.ServerProcess([sys.executable, "-c", _DIE_WITH_PARENT, str(os.getpid()), *command])
    try:
        assert server.target == f"127.0.0.1:{grpc_port}"
        check_serving(grpc_port, http_port, metrics_port)
    finally:
        code = server.terminate()
    log = server.log()
    assert code == 0, log[-2000:]
    if stage == "gpu":  # one line per model names the device and why each better one was skipped
        for name in ("policy", "value", "tictac"):
            assert re.search(rf"model '{name}': device auto: onnxrt-\w+", log), log[-2000:]


# --- The image itself, where a container tool works --------------------------------------

def container_tool() -> str:
    """The tool `make image` would use, or skip saying what each tool answered."""
    probe = subprocess.run(["sh", str(DEPLOY / "build-image.sh")], env={**os.environ, "TOOL_ONLY": "1"},
                           capture_output=True, text=True, timeout=120)
    if probe.returncode != 0:
        pytest.skip(probe.stderr.strip())
    return probe.stdout.strip()


def run_command(tool: str) -> list[str]:
    """How a container runs here: ``podman --runtime runc run --ulimit ...`` where podman's
    defaults fail (deploy/build-image.sh works that out), else ``TOOL run``."""
    found = subprocess.run(["sh", str(DEPLOY / "build-image.sh")], capture_output=True, text=True, timeout=120,
                           env={**os.environ, "CONTAINER_TOOL": tool, "RUN_COMMAND": "1"})
    assert found.returncode == 0, found.stderr
    return shlex.split(found.stdout)


def base_image_or_skip(tool: str) -> str:
    """The python base the build starts from, present or pullable, or skip saying why."""
    arg = next(rest for w, rest in validate.instructions(CONTAINERFILE.read_text()) if rest.startswith("PYTHON_IMAGE="))
    base = os.environ.get("PYTHON_IMAGE") or arg.split("=", 1)[1]
    if tool == "buildah" or subprocess.run([tool, "image", "inspect", base], capture_output=True).returncode == 0:
        return base
    pull = subprocess.run([tool, "pull", base], capture_output=True, text=True, timeout=600)
    if pull.returncode != 0:
        reason = pull.stderr.strip().splitlines()[-1] if pull.stderr.strip() else f"exit {pull.returncode}"
        pytest.skip(f"{tool} works, but the base image {base} is neither here nor pullable ({reason}); "
                    "PYTHON_IMAGE=localhost/debian-python:bookworm after deploy/debian-base.sh builds from Debian")
    return base


@pytest.mark.slow
def test_image_builds_runs_and_infers(built_zoo, tmp_path):
    tool = container_tool()
    base = base_image_or_skip(tool)
    image = "localhost/rps-infer:test"
    build = subprocess.run(["sh", str(DEPLOY / "build-image.sh")], capture_output=True, text=True, timeout=1800,
                           env={**os.environ, "CONTAINER_TOOL": tool, "IMAGE": image, "PYTHON_IMAGE": base})
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    assert re.search(r"built \S+ \(cpu\) with \w+: \d+ bytes", build.stdout)
    if tool == "buildah":
        pytest.skip("buildah built the image but runs no containers; run it with podman or docker")
    grpc_port, http_port, metrics_port = free_ports(3)
    models = model_folder(built_zoo, tmp_path / "models")
    publish = [f"127.0.0.1:{p}:{c}" for p, c in ((grpc_port, 8001), (http_port, 8000), (metrics_port, 8002))]
    run = [*run_command(tool), "--rm", *[x for p in publish for x in ("-p", p)], "-v", f"{models}:/models:ro", image]
    server = launch.ServerProcess(run, timeout=300)
    try:
        check_serving(grpc_port, http_port, metrics_port)
    finally:
        code = server.terminate(60)  # the tool passes SIGTERM on to the server
    assert code == 0, server.log()[-2000:]


# A podman that fails as podman 4.3.1 did on this project's sandbox hosts: crun refuses their
# hybrid cgroups, and a root container's default rlimits exceed the hard ones (no
# CAP_SYS_RESOURCE). With FAKE_NO_RUNC=1 there is no runc either.
FAKE_PODMAN = r"""#!/bin/sh
case " $* " in
    *" info "*) case " $* " in *" --runtime runc "*) [ -z "${FAKE_NO_RUNC:-}" ]; exit ;; esac; exit 0 ;;
esac
case " $* " in
    *" --ulimit "*) ;;
    *) echo 'Error: crun: setrlimit `RLIMIT_NOFILE`: Operation not permitted: OCI permission denied' >&2; exit 126 ;;
esac
case " $* " in
    *" --runtime runc "*) echo 'Error: OCI runtime attempted to invoke a command that was not found' >&2; exit 127 ;;
    *) echo 'Error: crun: cgroups in hybrid mode not supported, drop all controllers from cgroupv2' >&2; exit 126 ;;
esac
"""


def with_fake_podman(tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    """``RUN_COMMAND=1 build-image.sh`` with FAKE_PODMAN first on the PATH."""
    (tmp_path / "podman").write_text(FAKE_PODMAN)
    (tmp_path / "podman").chmod(0o755)
    return subprocess.run(["sh", str(DEPLOY / "build-image.sh")], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}", "CONTAINER_TOOL": "podman",
                               "RUN_COMMAND": "1", **env})


def test_build_script_works_around_podmans_defaults_on_a_sandbox_host(tmp_path):
    import resource

    found = with_fake_podman(tmp_path)
    assert found.returncode == 0, found.stderr
    command = re.fullmatch(r"podman --runtime runc run --ulimit nofile=(\d+):\1 --ulimit nproc=(\d+):\2\n",
                           found.stdout)
    assert command, found.stdout
    # The hard limits, which root may set without CAP_SYS_RESOURCE; nproc at most kernel.pid_max.
    assert int(command.group(1)) == resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    pid_max = int(Path("/proc/sys/kernel/pid_max").read_text())
    assert int(command.group(2)) == min(resource.getrlimit(resource.RLIMIT_NPROC)[1], pid_max)
    said = found.stderr.splitlines()  # one line for each work-around
    assert len(said) == 2 and "rlimits" in said[0] and "--runtime runc" in said[1], said


def test_build_script_without_runc_prints_the_fix_in_one_line(tmp_path):
    found = with_fake_podman(tmp_path, FAKE_NO_RUNC="1")
    assert found.returncode == 2 and found.stdout == ""
    fix = found.stderr.splitlines()[-1]
    assert "hybrid cgroups" in fix and "apt-get install runc" in fix, found.stderr


# --- Kubernetes manifests ----------------------------------------------------------------

def planted(path: Path, old: str, new: str, tmp_path: Path) -> Path:
    """A copy of ``path`` with the first ``old`` replaced by ``new``."""
    text = path.read_text()
    assert old in text, f"{old!r} not in {path.name}"
    copy_ = tmp_path / path.name
    copy_.write_text(text.replace(old, new, 1))
    return copy_


def by_kind() -> dict[str, dict]:
    """Every Kubernetes document of deploy/kubernetes by ``Kind/name``."""
    return {f"{d['kind']}/{d['metadata']['name']}": d for p in K8S_FILES for d in validate.documents(p)}


def test_kubernetes_manifests_validate_strictly():
    assert {k.split("/")[0] for k in by_kind()} == {"Deployment", "Service", "HorizontalPodAutoscaler",
                                                    "PodDisruptionBudget", "PersistentVolumeClaim"}
    assert {p.name: validate.kubernetes_problems(p) for p in K8S_FILES} == {p.name: [] for p in K8S_FILES}


@pytest.mark.parametrize(("name", "old", "new", "found"), [
    ("deployment.yaml", "replicas: 3", "replica: 3", "'replica' was unexpected"),
    ("deployment.yaml", "containerPort: 8001", 'containerPort: "abc"', "'abc' is not of type 'integer'"),
    ("service.yaml", "appProtocol: grpc", "appProtocl: grpc", "'appProtocl' was unexpected"),
    ("hpa.yaml", "averageUtilization: 70", 'averageUtilization: "70"', "is not of type 'integer'"),
])
def test_kubernetes_validation_fails_on_a_planted_defect(name, old, new, found, tmp_path):
    problems = validate.kubernetes_problems(planted(DEPLOY / "kubernetes" / name, old, new, tmp_path))
    assert any(found in p for p in problems), problems


def test_deployment_numbers_agree_with_the_image_and_each_other():
    docs = by_kind()
    pod = docs["Deployment/rps-infer"]["spec"]["template"]
    container = pod["spec"]["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    image = validate.image_command()
    assert ports == {"grpc": int(flag(image, "--port")), "http": int(flag(image, "--http-port")),
                     "metrics": int(flag(image, "--metrics-port"))}
    assert "command" not in container and set(container["args"]) <= serve_options() | {"20"}
    # Shutdown: endpoints drop during preStop, then the drain; SIGKILL only after both.
    grace = float(flag(container["args"], "--grace"))
    sleep = float(container["lifecycle"]["preStop"]["exec"]["command"][-1])
    assert pod["spec"]["terminationGracePeriodSeconds"] > sleep + grace
    live = container["livenessProbe"]
    assert live["grpc"]["port"] == ports["grpc"] and live["periodSeconds"] * live["failureThreshold"] > grace
    assert container["startupProbe"]["grpc"]["port"] == ports["grpc"]
    assert container["readinessProbe"]["httpGet"] == {"path": "/v2/health/ready", "port": "http"}
    assert pod["metadata"]["annotations"]["prometheus.io/port"] == str(ports["metrics"])
    labels = pod["metadata"]["labels"]
    for service in ("Service/rps-infer", "Service/rps-infer-headless"):
        spec = docs[service]["spec"]
        assert spec["selector"].items() <= labels.items()
        assert {p["targetPort"] for p in spec["ports"]} <= set(ports)
    assert docs["PodDisruptionBudget/rps-infer"]["spec"]["selector"]["matchLabels"].items() <= labels.items()
    hpa = docs["HorizontalPodAutoscaler/rps-infer"]["spec"]
    assert hpa["scaleTargetRef"]["name"] == "rps-infer"
    assert hpa["minReplicas"] == docs["Deployment/rps-infer"]["spec"]["replicas"]
    claim = pod["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"]
    assert f"PersistentVolumeClaim/{claim}" in docs


KUBECTL = shutil.which("kubectl")


@pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed")
def test_kubectl_decodes_the_deployment_offline(tmp_path):
    deployment = DEPLOY / "kubernetes" / "deployment.yaml"
    assert validate.kubectl_problems(deployment) == []
    misspelt = planted(deployment, "replicas: 3", "replica: 3", tmp_path)
    assert validate.kubectl_problems(misspelt) == ["dropped .spec.replica"]
    bad_type = validate.kubectl_problems(planted(deployment, "containerPort: 8001", 'containerPort: "abc"', tmp_path))
    assert "cannot unmarshal string" in bad_type[0]


@pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed")
def test_kubectl_client_dry_run():
    # Without a cluster: kubectl's client-side dry run still asks an API server for its types.
    run = subprocess.run(["kubectl", "create", "--dry-run=client", "--validate=false", "-o", "yaml",
                          "--server", "http://127.0.0.1:9", *[a for p in K8S_FILES for a in ("-f", str(p))]],
                         capture_output=True, text=True, timeout=60, env={**os.environ, "KUBECONFIG": os.devnull})
    if run.returncode != 0 and "127.0.0.1:9" in run.stderr:
        answer = run.stderr.strip().splitlines()[-1]
        pytest.skip(f"kubectl apply/create --dry-run=client needs an API server here: {answer}")
    assert run.returncode == 0, run.stderr


# --- KServe ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def schemas():
    return validate.crd_schemas()


def test_kserve_objects_validate_against_the_crd_schemas(schemas):
    assert {p.name: validate.kserve_problems(p, schemas) for p in KSERVE_FILES} == {p.name: [] for p in KSERVE_FILES}


@pytest.mark.parametrize(("name", "old", "new", "found"), [
    ("servingruntime.yaml", "supportedModelFormats:", "supportedModelFormat:", "'supportedModelFormat' was unexpected"),
    ("inferenceservice.yaml", "storageUri:", "storageURI:", "'storageURI' was unexpected"),
    ("inferenceservice-grpc.yaml", "containerPort: 9000", 'containerPort: "abc"', "'abc' is not of type 'integer'"),
])
def test_kserve_validation_fails_on_a_planted_defect(name, old, new, found, tmp_path, schemas):
    problems = validate.kserve_problems(planted(DEPLOY / "kserve" / name, old, new, tmp_path), schemas)
    assert any(found in p for p in problems), problems


def test_kserve_runtime_listens_where_kserve_expects():
    runtime = validate.documents(DEPLOY / "kserve" / "servingruntime.yaml")[0]
    container = runtime["spec"]["containers"][0]
    command = container["command"] + container["args"]
    assert command[:2] == ["rps-infer", "serve"]
    assert {a.split("=")[0] for a in command[2:]} <= serve_options()
    assert (flag(command, "--http-port"), flag(command, "--model-repository")) == ("8080", "/mnt/models")
    assert flag(command, "--model-name") == "{{.Name}}"  # KServe substitutes the InferenceService's name
    assert runtime["spec"]["annotations"]["prometheus.kserve.io/port"] == flag(command, "--metrics-port")
    assert set(runtime["spec"]["protocolVersions"]) == {"v2", "grpc-v2"}
    for path in (DEPLOY / "kserve").glob("inferenceservice*.yaml"):
        model = validate.documents(path)[0]["spec"]["predictor"]["model"]
        assert model["runtime"] == runtime["metadata"]["name"]
        assert model["modelFormat"] | {"autoSelect": True} in runtime["spec"]["supportedModelFormats"]
        if model["protocolVersion"] == "grpc-v2":
            assert model["ports"] == [{"name": "h2c", "protocol": "TCP", "containerPort": int(flag(command, "--port"))}]


RUNTIME = DEPLOY / "kserve" / "servingruntime.yaml"


def test_kserve_runtime_probes_say_when_the_server_is_started_alive_and_ready():
    container = validate.documents(RUNTIME)[0]["spec"]["containers"][0]
    http_port = int(flag(container["args"], "--http-port"))
    paths = {name: container[name]["httpGet"] for name in ("startupProbe", "livenessProbe", "readinessProbe")}
    assert paths == {"startupProbe": {"path": "/v2/health/live", "port": http_port},
                     "livenessProbe": {"path": "/v2/health/live", "port": http_port},
                     "readinessProbe": {"path": "/v2/health/ready", "port": http_port}}
    startup, live = container["startupProbe"], container["livenessProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 300  # a large model's load and warm-up
    assert live["periodSeconds"] * live["failureThreshold"] > float(flag(container["args"], "--grace"))
    # Knative allows no lifecycle hooks; the drain is the server's own (--grace).
    assert "lifecycle" not in container
    assert validate.runtime_problems(validate.documents(RUNTIME)[0]) == []


def _without(key: str):
    return lambda container: container.pop(key)


def _without_model_name(container: dict) -> None:
    container["args"].remove(validate.MODEL_NAME_ARG)


def _probing_ready_for_live(container: dict) -> None:
    container["livenessProbe"]["httpGet"]["path"] = "/v2/health/ready"


def _liveness_within_the_drain(container: dict) -> None:
    container["livenessProbe"]["failureThreshold"] = 1


@pytest.mark.parametrize(("plant", "found"), [
    (_without("readinessProbe"), "readinessProbe should be httpGet /v2/health/ready on --http-port 8080, not None"),
    (_without("livenessProbe"), "livenessProbe should be httpGet /v2/health/live on --http-port 8080, not None"),
    (_without("startupProbe"), "startupProbe should be httpGet /v2/health/live on --http-port 8080, not None"),
    (_without_model_name, "args lack --model-name={{.Name}}"),
    (_probing_ready_for_live, "livenessProbe should be httpGet /v2/health/live"),
    (_liveness_within_the_drain, "livenessProbe gives up after 10 s, within the --grace drain"),
], ids=["no-readiness", "no-liveness", "no-startup", "no-model-name", "liveness-on-ready", "liveness-too-short"])
def test_kserve_runtime_check_fails_on_a_planted_defect(plant, found, tmp_path, schemas):
    import yaml

    runtime = validate.documents(RUNTIME)[0]
    plant(runtime["spec"]["containers"][0])
    planted_file = tmp_path / RUNTIME.name
    planted_file.write_text(yaml.safe_dump(runtime))
    problems = validate.kserve_problems(planted_file, schemas)  # what deploy/validate.py reports
    assert any(found in p for p in problems), problems


def test_deployment_probes_agree_with_the_kserve_runtimes():
    # The same server, the same reasons (servingruntime.yaml says them): the same numbers.
    runtime = validate.documents(RUNTIME)[0]["spec"]["containers"][0]
    deployment = by_kind()["Deployment/rps-infer"]["spec"]["template"]["spec"]["containers"][0]
    keys = ("periodSeconds", "timeoutSeconds", "failureThreshold")
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert {k: deployment[probe].get(k) for k in keys} == {k: runtime[probe].get(k) for k in keys}, probe
