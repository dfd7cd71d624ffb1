"""Argument types and groups shared by the commands: every value is checked by argparse,
before any heavy work, and a bad one is exit 2 with a line naming the option."""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path

import rps_infer.defaults as defaults


def batch_sizes(text: str) -> tuple[int, ...]:
    """``1,3,64`` -> (1, 3, 64); each at least 1."""
    try:
        sizes = tuple(int(s) for s in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"batch sizes must be >= 1, got {text!r}")
    return sizes


def _number(text: str, kind: type):
    try:
        return kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'}, "
                                         f"got {text!r}") from None


def _bounded(kind: type, low: float, strict: bool, what: str):
    """An argparse type: a finite ``kind`` above (``strict``) or at least ``low``."""

    def parse(text: str):
        value = _number(text, kind)
        if not math.isfinite(value) or value < low or (strict and value == low):
            raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}")
        return value

    return parse


count = _bounded(int, 1, False, "at least 1")  # threads, workers, processes, clients
non_negative_int = _bounded(int, 0, False, "at least 0")
seconds = _bounded(float, 0.0, True, "a positive number of seconds")
non_negative_seconds = _bounded(float, 0.0, False, "a non-negative number of seconds")
positive = _bounded(float, 0.0, True, "a positive number")
tolerance_value = _bounded(float, 0.0, False, "finite and non-negative")


def port(text: str) -> int:
    """A TCP port 1-65535, or 0: pick a free one."""
    value = _number(text, int)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be a port 1-65535 (0 picks a free one), got {text!r}")
    return value


def fixed_port(text: str) -> int:
    """A TCP port 1-65535 (where 0 could mean nothing useful)."""
    value = _number(text, int)
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be a port 1-65535, got {text!r}")
    return value


def target(text: str) -> str:
    """``HOST:PORT`` with a valid port, replicas ``HOST:PORT,HOST:PORT,...``, or a gRPC target
    with a resolver scheme (``dns:///NAME:PORT``, ``ipv4:IP:PORT,IP:PORT``, ``ipv6:...``),
    passed on to gRPC as it is."""
    from rps_infer.client import REPLICA_SCHEMES

    if text.startswith(REPLICA_SCHEMES):
        if not text.partition(":")[2].strip("/"):
            raise argparse.ArgumentTypeError(f"expected an address after the scheme, got {text!r}")
        return text
    for item in text.split(","):
        host, sep, number = item.strip().rpartition(":")
        if not sep or not host:
            raise argparse.ArgumentTypeError(f"expected HOST:PORT or HOST:PORT,HOST:PORT,..., got {text!r}")
        fixed_port(number)
    return text


def existing_path(text: str) -> Path:
    """A path that exists (file or folder; what it must hold is the command's to check)."""
    path = Path(text)
    if not path.exists():
        raise argparse.ArgumentTypeError(f"no such file or folder: {text}")
    return path


def existing_file(text: str) -> Path:
    """A readable regular file."""
    path = existing_path(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a folder, expected a file")
    if not os.access(path, os.R_OK):
        raise argparse.ArgumentTypeError(f"{text} is not readable")
    return path


def existing_folder(text: str) -> Path:
    """A folder that exists."""
    path = existing_path(text)
    if not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is not a folder")
    return path


def writable_folder(text: str) -> Path:
    """A folder that exists and is writable, or can be created (its nearest existing parent is writable)."""
    path = Path(text)
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise argparse.ArgumentTypeError(f"{probe} is a file, expected a folder")
    if not os.access(probe, os.W_OK):
        raise argparse.ArgumentTypeError(f"cannot write into {probe}")
    return path


def writable_file(text: str) -> Path:
    """A file path whose folder can be written (the file itself is written atomically later)."""
    path = Path(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a folder, expected a file name")
    writable_folder(str(path.parent))
    return path


def name_path(text: str) -> tuple[str, Path]:
    """``NAME=PATH``."""
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f"expected NAME=PATH, got {text!r}")
    return name, Path(path)


def add_tolerance(parser: argparse.ArgumentParser) -> None:
    """``--tolerance``, ``--atol``, ``--rtol``."""
    parser.add_argument("--tolerance", help="tolerance preset (fp32, tf32, fp16, bf16, int8, image-fp32, image-fp16, "
                        "image-int8, proba-linear, proba-tree; default: the one the models name, else fp32)")
    parser.add_argument("--atol", type=tolerance_value, help="override the preset's absolute tolerance (with the "
                        "float32 allowance: added to it)")
    parser.add_argument("--rtol", type=tolerance_value, help="override the preset's relative tolerance (with the "
                        "float32 allowance: added to it)")


def add_parity_batches(parser: argparse.ArgumentParser) -> None:
    """``--batch-sizes`` of a parity check."""
    default = ",".join(map(str, defaults.PARITY_BATCH_SIZES))
    parser.add_argument("--batch-sizes", type=batch_sizes, default=defaults.PARITY_BATCH_SIZES, metavar=default,
                        help=f"batch sizes parity is proven at (default {default})")


def add_threads(parser: argparse.ArgumentParser, help_text: str) -> None:
    """``--threads N`` (>= 1)."""
    parser.add_argument("--threads", type=count, default=defaults.BENCH_THREADS, help=help_text)


def _kwargs(text: str) -> dict:
    """``{"width": 16}`` (JSON) or ``width=16,mode=ave`` (values read as JSON where they parse)."""
    import json

    if text.lstrip().startswith("{"):
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise argparse.ArgumentTypeError(f"not valid JSON: {exc}") from None
        if not isinstance(value, dict):
            raise argparse.ArgumentTypeError(f"expected a JSON object, got {text!r}")
        return value
    out = {}
    for pair in filter(None, text.split(",")):
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise argparse.ArgumentTypeError(f"expected KEY=VALUE pairs or a JSON object, got {text!r}")
        try:
            out[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            out[key.strip()] = raw
    return out


def _via(parse):
    """An argparse type from a parser that raises ValueError."""

    def convert(text: str):
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return convert


def add_model_hints(parser: argparse.ArgumentParser) -> None:
    """What a model file cannot say about itself: a PyTorch class for a ``state_dict``, its
    arguments, where to import it from, input shapes."""
    from rps_infer.inputs import parse_shape

    g = parser.add_argument_group("models that do not describe themselves")
    g.add_argument("--torch-model", metavar="MODULE:CLASS",
                   help="the network class a state_dict checkpoint belongs to, e.g. mynet:Net (imported from the "
                   "current folder or --python-path)")
    g.add_argument("--torch-kwargs", type=_kwargs, action="append", default=[], metavar="JSON|K=V,...",
                   help="the class's constructor arguments: '{\"width\": 16}' or width=16,mode=ave (repeatable)")
    g.add_argument("--python-path", type=existing_folder, action="append", default=[], metavar="DIR",
                   help="also import --torch-model's module from this folder (repeatable)")
    g.add_argument("--input-shape", type=_via(parse_shape), action="append", default=[], metavar="NAME=1x6x64x64",
                   help="an input's name and shape, batch first (dynamic unless --static-batch); repeatable, in "
                   "the network's argument order; needed by TorchScript and state_dict models")
    g.add_argument("--static-batch", action="store_true", help="keep the batch dim of --input-shape fixed")


def hints_of(args: argparse.Namespace):
    """The :class:`~rps_infer.formats.ModelHints` the arguments give."""
    from rps_infer.formats import ModelHints

    kwargs = {}
    for part in args.torch_kwargs:
        kwargs.update(part)
    return ModelHints(args.torch_model, kwargs, tuple(args.python_path), dict(args.input_shape), args.static_batch)


def add_inputs(parser: argparse.ArgumentParser, outputs: bool = True) -> None:
    """``--inputs``, ``--input-range`` and (with ``outputs``) ``--save-outputs``."""
    from rps_infer.inputs import parse_range

    g = parser.add_argument_group("inputs")
    g.add_argument("--inputs", type=existing_path, metavar="FILE.npz|DIR",
                   help="your own input tensors: an .npz (name -> array) or a folder of NAME.npy; their batch is "
                   "used (default: generated from each input's spec)")
    g.add_argument("--input-range", type=_via(parse_range), action="append", default=[], metavar="NAME=LO,HI",
                   help="generated values of input NAME uniform in [LO, HI) (default: by the model, else [0, 1))")
    if outputs:
        g.add_argument("--save-outputs", type=writable_file, metavar="FILE.npz",
                       help="also write both sides' outputs (reference.NAME.bB, candidate.NAME.bB) to this file")


def inputs_of(args: argparse.Namespace, generator: str | None = None):
    """The :class:`~rps_infer.inputs.InputChoice` the arguments give."""
    from rps_infer.inputs import InputChoice, InputFile

    return InputChoice(generator, dict(args.input_range), InputFile(args.inputs) if args.inputs else None)
