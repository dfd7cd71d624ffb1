"""The lipsync U-Net: a seeded PyTorch model (``model.pt``) exported to ONNX."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field

from rps_infer.families.base import Family, Progress
from rps_infer.schemas import Strict

VALIDATION_BATCHES = (1, 3, 8)  # 64 U-Net frames take seconds in eager PyTorch


class UNetKeys(Strict):
    """A seeded U-Net instead of a source file: width multiplier, image size, audio size, seed."""

    width: Annotated[float, Field(gt=0)]
    size: Annotated[int, Field(gt=0)]
    audio: Annotated[int, Field(gt=0)]
    seed: int


def artifacts(entry) -> dict[str, Path]:
    """``onnx`` (the serving artifact) and ``pt`` (the seeded PyTorch model)."""
    return {"onnx": entry.onnx_path, "pt": entry.artifact_dir / "model.pt"}


def build(entry, progress: Progress = None) -> dict:
    """A seeded lipsync U-Net as ``model.pt``, exported to ONNX with parity proven."""
    from rps_infer.convert import convert
    from rps_infer.formats import torchfile
    from rps_infer.nets import unet
    from rps_infer.util import atomic_write

    p = entry.params
    config = unet.UNetConfig(width=p.width, size=p.size, audio=p.audio)
    paths = artifacts(entry)
    if progress:
        progress(f"{entry.name}: seeded U-Net (width {config.width}, {config.size} px) -> {paths['pt']}")
    model = unet.seeded(config, p.seed)
    atomic_write(paths["pt"], lambda tmp: torchfile.write_unet(model, tmp))
    if progress:
        progress(f"{entry.name}: {paths['pt'].name} -> {paths['onnx']}")
    return {"onnx": convert(paths["pt"], "onnx", paths["onnx"], batch_sizes=VALIDATION_BATCHES,
                            tol=entry.tolerance).report}


FAMILY = Family(
    name="unet", params=UNetKeys, references={"torch-fp32": lambda entry: "pyt-cpu"}, artifacts=artifacts,
    build=build, definition=lambda entry: Path(__file__).resolve().parent.parent / "nets" / "unet.py",
    demo="rps_infer.demo:image_section",
)
