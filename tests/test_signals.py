"""Ctrl-C and SIGTERM always win: exit 130 / 143 and no output file, even when a library
catches the KeyboardInterrupt and carries on (seen: 5 of 12 Ctrl-Cs during a U-Net conversion
were swallowed, the file written, exit 0)."""

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


@pytest.mark.slow
def test_ctrl_c_at_any_point_of_a_long_conversion_stops_it_and_leaves_no_file(built_zoo, tmp_path):
    """The U-Net conversion (export, then parity at three batch sizes) interrupted early, in
    the export, and in the parity proof; then SIGTERM once."""
    source = built_zoo["unet-ci"].artifacts()["pt"]
    for i, (signum, after) in enumerate([(signal.SIGINT, 1.0), (signal.SIGINT, 4.0), (signal.SIGINT, 12.0),
                                         (signal.SIGTERM, 6.0)]):
        out = tmp_path / f"run{i}"
        out.mkdir()
        proc = subprocess.Popen([sys.executable, "-m", "rps_infer.cli", "convert", str(source), "--to", "onnx",
                                 "--out", str(out / "unet.onnx")], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        time.sleep(after)
        assert proc.poll() is None, f"the conversion ended before {after} s: nothing was interrupted"
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == signals.EXIT_CODES[signum], (signum, after, err[-2000:])
        assert "Traceback" not in err
        assert list(out.iterdir()) == [], f"left {list(out.iterdir())} after the signal at {after} s"
