"""The ``rps-infer`` command line: one module per command, shared argument types and groups
(:mod:`rps_infer.cli.args`), and here the one map from errors to exit codes.

Exit codes: 0 success; 1 a negative verdict (models disagree, a conversion refused for a
parity failure, a soak with errors); 2 unusable input or environment (bad file, unknown
option value, missing provider, a port in use); 130 on Ctrl-C, 143 on SIGTERM (``serve``
drains and exits 0), whatever a library did with the signal; 141, silently, when the reader
of stdout went away (``rps-infer models list | head -1``), as a SIGPIPE would. Errors print one line;
``--debug``, anywhere on the command line, shows the traceback and what the frameworks printed.

Each command module has ``add_parser(subparsers)`` and ``run(args) -> int``; its heavy
imports happen inside ``run``, so ``rps-infer --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from rps_infer import noise, progress, signals
from rps_infer.errors import ParityError, RpsInferError
from rps_infer.version import VERSION

EXIT_OK, EXIT_MISMATCH, EXIT_UNUSABLE, EXIT_INTERRUPTED, EXIT_PIPE_CLOSED = 0, 1, 2, 130, 141
COMMANDS = ("convert", "quantize", "verify", "info", "models", "bench", "serve", "soak", "init", "baseline", "gate",
            "demo")
# serve, soak and gate print as they go
BAR_COMMANDS = ("convert", "quantize", "verify", "models", "bench", "init", "baseline", "demo")
# First match wins; anything else is a bug: its traceback is shown.
EXIT_CODES: tuple[tuple[type[BaseException], int], ...] = (
    (ParityError, EXIT_MISMATCH),
    (RpsInferError, EXIT_UNUSABLE),
    (OSError, EXIT_UNUSABLE),
)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (also documents every command in ``--help``)."""
    parser = argparse.ArgumentParser(
        prog="rps-infer",
        description="Convert models between Go JSON, PyTorch, Keras and ONNX; prove they compute "
        "the same function; serve and benchmark them.",
    )
    parser.add_argument("--version", action="version", version=f"rps_infer {VERSION}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors (accepted anywhere)")
    parser.add_argument("--quiet", action="store_true",
                        help="no progress bar and no status lines (accepted anywhere); bars are drawn only when "
                        "stdout and stderr are terminals")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        command_module(name).add_parser(sub)
    return parser


def command_module(name: str):
    """The module implementing command ``name``."""
    return importlib.import_module(f"rps_infer.cli.{name}")


def exit_code(exc: BaseException) -> int | None:
    """The exit code for ``exc``, or None for an error that is a bug."""
    if _grpc_status(exc) is not None:  # a server refused or was unreachable: the environment, not a bug
        return EXIT_UNUSABLE
    return next((code for kind, code in EXIT_CODES if isinstance(exc, kind)), None)


def _grpc_status(exc: BaseException) -> str | None:
    """``UNAVAILABLE: details`` for a gRPC call's error, else None (grpc is imported only by
    the commands that talk to a server, so it is looked up, not imported, here)."""
    grpc = sys.modules.get("grpc")
    if grpc is None or not isinstance(exc, grpc.RpcError) or not hasattr(exc, "code"):
        return None
    return f"the server answered {exc.code().name}: {exc.details()}"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``rps-infer`` console script."""
    with signals.handling():  # from the start: a Ctrl-C while the parser imports counts too
        try:
            code = _main(argv)
        except (KeyboardInterrupt, signals.Terminated):
            code = EXIT_INTERRUPTED
        except Exception:
            # A library interrupted mid-import or mid-call may fail with anything (seen:
            # torch's exporter, "module 'torch._dynamo' has no attribute 'exc'"): the signal
            # is the cause, not a bug to show.
            if signals.received_exit_code() is None:
                raise
            code = EXIT_INTERRUPTED
    return signals.received_exit_code() or code


def _main(argv: Sequence[str] | None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    argv = list(sys.argv[1:] if argv is None else argv)
    debug, quiet = "--debug" in argv, "--quiet" in argv
    argv = [a for a in argv if a not in ("--debug", "--quiet")]
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a bad option (argparse printed why)
        return exc.code if isinstance(exc.code, int) else EXIT_UNUSABLE
    args.debug, args.argv = debug, argv  # argv: the command the reports record
    if not debug:
        noise.quiet_frameworks()
    else:  # what exporters printed (captured: never a bare traceback without --debug)
        import logging

        logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
        logging.getLogger("rps_infer.export").setLevel(logging.DEBUG)
    with progress.shown(progress.wanted(quiet) and args.command in BAR_COMMANDS, quiet=quiet):
        return _run(args, debug)


def _run(args: argparse.Namespace, debug: bool) -> int:
    """Run the command; map its errors to exit codes."""
    try:
        return command_module(args.command).run(args)
    except (KeyboardInterrupt, signals.Terminated):
        return signals.received_exit_code() or EXIT_INTERRUPTED
    except BrokenPipeError:  # the reader went away (`| head`): stop quietly, as SIGPIPE would
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nothing left to flush at exit
        return EXIT_PIPE_CLOSED
    except Exception as exc:
        code = exit_code(exc)
        if code is None or debug:
            raise
        if isinstance(exc, ParityError):
            print(exc, file=sys.stderr)  # the full report: where it diverges and why
        else:
            print(f"rps-infer {args.command}: error: {_grpc_status(exc) or exc}", file=sys.stderr)
        return code
