"""The command line's contract, as a property over generated (mostly hostile) invocations:
every command ends with exit 0, 1 or 2, prints no traceback without ``--debug``, and after
a failure leaves no new file where it could have written.

Arguments come from the parser itself (every option of every command, with values drawn
from a pool of bad numbers, strings and files, and now and then a valid choice), so a new
option is covered the day it is added. ``convert``, ``quantize``, ``verify``, ``info`` and
``models`` run in this process through ``main(argv)``; ``serve``, ``soak`` and ``bench`` run
as subprocesses with a timeout, where reaching the ready line or the first measurement
counts as accepted. ``demo`` is left out: its one option is a folder of Go files, and with a
valid one it is the full demo (a minute). The planted tests prove the property fails when a
command lets a bare ``IndexError`` out.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rps_infer.cli import COMMANDS, build_parser, main
from rps_infer.serving.server import READY_LINE

from .server_process import free_ports

REPO = Path(__file__).resolve().parent.parent
IN_PROCESS = ("convert", "quantize", "verify", "info", "models", "init", "baseline", "gate")
SUBPROCESS = ("serve", "soak", "bench")
# Markers of an accepted long-running command: serve is ready, bench measured, soak reported a window.
ACCEPTED = (READY_LINE.split("{")[0], "[1/", "req/s")
BAD_VALUES = ("0", "-1", "1", "3", "65536", "99999", "nan", "inf", "-inf", "1e309", "0.5", "", " ", "abc",
              "1,0", "x=1", "NAME=1x2", "a:b", "-", "\u00e9\u00e8", "127.0.0.1:1")
FILES = ("empty.pt", "empty.onnx", "garbage.onnx", "garbage.keras", "garbage.pt", "truncated.onnx", "folder",
         "missing.onnx", "broken.json", "other.json", "policy.json", "policy.onnx", "value.onnx", "garbage.npz")
# Plants a bare IndexError in the command named by $RPS_PLANT, then runs the CLI (subprocess examples).
_BOOT = ("import os, sys, importlib\n"
         "name = os.environ.get('RPS_PLANT')\n"
         "if name:\n"
         "    def run(args): raise IndexError('planted')\n"
         "    importlib.import_module('rps_infer.cli.' + name).run = run\n"
         "from rps_infer.cli import main\n"
         "sys.exit(main(sys.argv[1:]))\n")


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


SUBPARSERS = _subparsers()


@pytest.fixture(scope="module")
def pool(tmp_path_factory, built_zoo) -> Path:
    """The files the generated arguments point at: broken ones, and a few valid models."""
    folder = tmp_path_factory.mktemp("cli-pool")
    policy = built_zoo["policy"].onnx_path.read_bytes()
    contents = {"empty.pt": b"", "empty.onnx": b"", "garbage.onnx": b"not a model\n", "garbage.keras": b"PK?",
                "garbage.pt": b"\x80\x04junk", "truncated.onnx": policy[:200], "broken.json": b"{",
                "other.json": b'{"weights": 1}', "garbage.npz": b"PK\x03\x04junk", "policy.onnx": policy,
                "value.onnx": built_zoo["value"].onnx_path.read_bytes(),
                "policy.json": (REPO / "fixtures" / "policy.json").read_bytes()}
    for name, data in contents.items():
        (folder / name).write_bytes(data)
    (folder / "folder").mkdir()
    return folder


@st.composite
def invocations(draw, commands: tuple[str, ...]) -> list[str]:
    """``[command, *arguments]``: positionals and a few options of that command, mostly bad."""
    name = draw(st.sampled_from(commands))
    value = st.one_of(st.sampled_from(BAD_VALUES), st.sampled_from(FILES).map(lambda f: f"@{f}"),
                      st.just("out/x.onnx"))
    # serve gets the bundled models (generated options come later and win); without them it
    # would build the zoo into the checkout.
    argv = [name, "--policy", "@policy.onnx", "--value", "@value.onnx", "--port", "0"] if name == "serve" else [name]
    if name == "models":  # sub-actions; never a bare `models build` (that builds the zoo: a minute)
        action = draw(st.sampled_from(["build", "list", "nosuch"]))
        return [*argv, action, *(["nosuch-model"] if action == "build" else [])]
    options = [a for a in SUBPARSERS[name]._actions if a.option_strings and a.dest != "help"]
    chosen = draw(st.lists(st.sampled_from(options), max_size=4, unique_by=lambda a: a.dest)) if options else []
    chosen += [a for a in options if a.required and a not in chosen]
    for action in chosen:
        argv.append(action.option_strings[-1])
        if action.nargs == 0:
            continue
        choices = list(action.choices or [])
        argv.append(draw(st.sampled_from(choices) if choices and draw(st.booleans()) else value))
    for action in SUBPARSERS[name]._actions:
        # bench always gets a MODEL_FILE: without one it times the whole zoo (minutes)
        if not action.option_strings and (action.nargs is None or name == "bench" or draw(st.booleans())):
            argv.append(draw(st.sampled_from(FILES).map(lambda f: f"@{f}")))
    return argv


def _resolve(argv: list[str], pool: Path) -> list[str]:
    return [str(pool / a[1:]) if a.startswith("@") else a for a in argv]


def _files(*folders: Path) -> set[Path]:
    return {p for f in folders for p in f.rglob("*")}


def _in_process(argv: list[str]) -> tuple[int | None, str, str]:
    """(exit code or None when an exception escaped, stdout, stderr + the escaped exception)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 2
        except BaseException as exc:
            return None, out.getvalue(), f"{err.getvalue()}\nTraceback: escaped {exc!r}"
    return code, out.getvalue(), err.getvalue()


def _subprocess(argv: list[str], cwd: Path, plant: str | None = None, timeout: float = 60.0):
    """(exit code, stdout, stderr); the code is None when the command reached an ACCEPTED
    marker (then it is stopped), "timeout" when it did neither in ``timeout`` seconds."""
    env = {**os.environ, "RPS_PLANT": plant or ""}
    out_path, err_path = cwd / ".stdout", cwd / ".stderr"
    with open(out_path, "w") as out, open(err_path, "w") as err:
        proc = subprocess.Popen([sys.executable, "-c", _BOOT, *argv], cwd=cwd, env=env, stdout=out, stderr=err)
    deadline, code = time.monotonic() + timeout, "timeout"
    try:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                code = proc.returncode
                break
            if any(m in out_path.read_text() + err_path.read_text() for m in ACCEPTED):
                code = None
                break
            time.sleep(0.1)
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
    return code, out_path.read_text(), err_path.read_text()


def violations(argv: list[str], pool: Path, *, subprocess_run: bool = False, plant: str | None = None) -> list[str]:
    """What ``argv`` did against the contract (empty: nothing)."""
    work = pool.parent / f"work-{time.monotonic_ns()}"
    work.mkdir()
    before = _files(pool, work)
    previous = os.getcwd()
    os.chdir(work)
    try:
        resolved = _resolve(argv, pool)
        code, out, err = _subprocess(resolved, work, plant) if subprocess_run else _in_process(resolved)
    finally:
        os.chdir(previous)
    problems = []
    if code == "timeout":
        problems.append("neither finished nor reached a ready line or a measurement within 60 s")
    elif code is not None and code not in (0, 1, 2):
        problems.append(f"exit code {code}")
    if "Traceback" in err or "Traceback" in out:
        problems.append(f"a traceback: {err[-600:]}")
    if code not in (None, 0):
        # A precision variant's cache (MODEL.cache/, proven by its parity preset, reused by the next
        # run) is not an output of the failed command.
        new = {p for p in _files(pool, work) - before
               if p.name not in (".stdout", ".stderr") and not any(q.suffix == ".cache" for q in (p, *p.parents))}
        if new:
            problems.append(f"exit {code} but new files: {sorted(map(str, new))}")
    if code == 2 and len([line for line in err.splitlines() if "error:" in line]) != 1:
        problems.append(f"exit 2 without exactly one error line: {err[-600:]}")
    shutil.rmtree(work, ignore_errors=True)
    return problems


@settings(max_examples=45)
@given(argv=invocations(IN_PROCESS))
def test_every_command_answers_clearly_in_process(pool, argv):
    assert violations(argv, pool) == [], argv


@settings(max_examples=8)
@given(argv=invocations(SUBPROCESS))
def test_long_running_commands_answer_clearly(pool, argv):
    assert violations(argv, pool, subprocess_run=True) == [], argv


@pytest.mark.parametrize("command", IN_PROCESS)
def test_the_property_fails_on_a_planted_bare_raise(pool, monkeypatch, command):
    module = __import__(f"rps_infer.cli.{command}", fromlist=["run"])

    def run(args):
        raise IndexError("planted")

    monkeypatch.setattr(module, "run", run)
    planted = settings(max_examples=25)(given(argv=invocations((command,)))(
        lambda argv: pytest.fail(str(problems)) if (problems := violations(argv, pool)) else None))
    with pytest.raises(pytest.fail.Exception, match="a traceback"):
        planted()


@pytest.mark.parametrize("command", SUBPROCESS)
def test_a_planted_bare_raise_in_a_long_running_command_is_caught(pool, command):
    (port,) = free_ports(1)
    argv = {"serve": ["serve", "--port", "0"], "soak": ["soak", "--target", f"127.0.0.1:{port}"],
            "bench": ["bench", "@policy.onnx"]}[command]
    problems = violations(argv, pool, subprocess_run=True, plant=command)
    assert any("a traceback" in p for p in problems), problems
    assert set(COMMANDS) >= set(IN_PROCESS) | set(SUBPROCESS)
