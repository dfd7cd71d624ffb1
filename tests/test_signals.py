"""Ctrl-C and SIGTERM always win: exit 130 / 143 and no output file, even when a library
catches the KeyboardInterrupt and carries on (seen: 5 of 12 Ctrl-Cs during a U-Net conversion
were swallowed, the file written, exit 0)."""

import concurrent.futures
import contextlib
import signal
import subprocess
import sys
import time

import pytest

import rps_infer.cli.info as info_command
from rps_infer import signals
from rps_infer.cli import main
from rps_infer.util import atomic_write
from tests.terminal import on_a_terminal


def _swallowing_writer(path):
    with contextlib.suppress(KeyboardInterrupt):  # a library that catches Ctrl-C and goes on
        signal.raise_signal(signal.SIGINT)
    path.write_text("written after the Ctrl-C")


def test_a_swallowed_ctrl_c_still_leaves_no_file(tmp_path):
    with signals.handling(), pytest.raises(KeyboardInterrupt):
        atomic_write(tmp_path / "out.onnx", _swallowing_writer)
    assert list(tmp_path.iterdir()) == []


def test_the_exit_code_says_what_arrived_even_if_the_command_returned_0(monkeypatch):
    def swallowing_run(args):
        with contextlib.suppress(signals.Terminated):
            signal.raise_signal(signal.SIGTERM)
        return 0

    monkeypatch.setattr(info_command, "run", swallowing_run)
    assert main(["info", __file__]) == 143
    assert signal.getsignal(signal.SIGTERM) is not signals._on_signal  # handlers restored


def test_without_a_signal_nothing_changes(tmp_path):
    with signals.handling():
        atomic_write(tmp_path / "out.txt", lambda p: p.write_text("x"))
    assert (tmp_path / "out.txt").read_text() == "x" and signals.received_exit_code() is None


@pytest.mark.parametrize("exit_call", ["signals.exit_process(130)", "sys.exit(130)"])
def test_python_m_exits_130_after_a_caught_ctrl_c_in_string_code(tmp_path, exit_call):
    """A Ctrl-C that lands in code run from a string (a dataclass being built, torch's code
    generators) makes ``python -m`` die by SIGINT (-2) after the command returned 130, even
    though it was caught. ``sys.exit`` is the planted defect: it shows the trap is real here."""
    (tmp_path / "scratch_entry.py").write_text(
        "import sys\nfrom rps_infer import signals\n"
        "try:\n    exec('raise KeyboardInterrupt')\nexcept KeyboardInterrupt:\n    pass\n"
        f"{exit_call}\n"
    )
    code = subprocess.run([sys.executable, "-m", "scratch_entry"], cwd=tmp_path, timeout=60).returncode
    assert code == (130 if exit_call.startswith("signals.") else -signal.SIGINT)


def _signal_in_phase(argv: list[str], phase: str, delay: float, signum: int, timeout: float = 120.0):
    """Run the CLI on a pseudo-terminal, whose progress bar names the phase it is in, and send
    ``signum`` ``delay`` seconds after ``phase`` is drawn; (exit code, what it drew before the
    signal, all it drew)."""
    state: dict = {"send_at": None, "before": None}

    def watch(drawn: bytes, proc) -> None:
        if state["send_at"] is None and phase.encode() in drawn:
            state["send_at"] = time.monotonic() + delay
        if state["before"] is None and state["send_at"] is not None and time.monotonic() >= state["send_at"]:
            state["before"] = drawn.decode(errors="replace")
            assert proc.poll() is None, f"the command ended {delay} s into {phase!r}: nothing was interrupted"
            proc.send_signal(signum)

    code, drawn = on_a_terminal(argv, watch, timeout)
    return code, state["before"], drawn


# (signal, the phase its bar shows, seconds into it, the phase that must not have begun yet)
PHASES = [(signal.SIGINT, "starting", 0.3, "writing"),  # imports, opening the model
          (signal.SIGINT, "writing unet.onnx", 1.0, "proving"),  # PyTorch's exporter
          (signal.SIGINT, "parity at batch", 1.0, "parity proven"),  # the proof (the file is on disk)
          (signal.SIGTERM, "writing unet.onnx", 2.0, "proving")]


@pytest.mark.slow
def test_ctrl_c_at_any_point_of_a_long_conversion_stops_it_and_leaves_no_file(built_zoo, tmp_path):
    """The U-Net conversion (export, then parity at three batch sizes) interrupted early, in
    the export, and in the parity proof; then SIGTERM once. Each signal is sent in the phase
    the progress bar shows (a terminal's Ctrl-C), so neither a busy machine nor running the
    four conversions side by side (the short ones while the third exports) moves it into another."""
    source = built_zoo["unet-ci"].artifacts()["pt"]

    def interrupted(i: int):
        signum, phase, after, _ = PHASES[i]
        (tmp_path / f"run{i}").mkdir()
        argv = ["convert", str(source), "--to", "onnx", "--out", str(tmp_path / f"run{i}" / "unet.onnx")]
        return _signal_in_phase(argv, phase, after, signum)

    with concurrent.futures.ThreadPoolExecutor(len(PHASES)) as pool:
        runs = list(pool.map(interrupted, range(len(PHASES))))
    for i, ((signum, phase, after, not_yet), (code, before, drawn)) in enumerate(zip(PHASES, runs, strict=True)):
        assert before is not None, f"never reached {phase!r}: {drawn[-2000:]}"
        assert not_yet not in before, f"past {phase!r} already when signalled {after} s into it"
        assert code == signals.EXIT_CODES[signum], (signum, phase, drawn[-2000:])
        assert "Traceback" not in drawn
        left = list((tmp_path / f"run{i}").iterdir())
        assert left == [], f"left {left} after the signal {after} s into {phase!r}"
