"""Long work shows a bar on a terminal; logs get plain status lines; --quiet silences both."""

import os
import pty
import select
import subprocess
import sys

import pytest

from rps_infer import progress
from rps_infer.cli import main


def _on_a_terminal(argv: list[str], timeout: float = 120.0) -> tuple[int, str]:
    """Run the CLI with stdout and stderr on a pseudo-terminal; (exit code, what it drew)."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "rps_infer.cli", *argv], stdin=follower, stdout=follower,
                            stderr=follower)
    os.close(follower)
    drawn = b""
    try:
        while True:
            ready, _, _ = select.select([leader], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(leader, 65536)
                except OSError:  # the terminal closed: the process has ended
                    break
                if not chunk:
                    break
                drawn += chunk
            elif proc.poll() is not None:
                break
        return proc.wait(timeout), drawn.decode(errors="replace")
    finally:
        os.close(leader)
        if proc.poll() is None:
            proc.kill()


@pytest.mark.parametrize("quiet", [False, True])
def test_convert_draws_its_phases_on_a_terminal_unless_quiet(built_zoo, tmp_path, quiet):
    out = tmp_path / "policy.onnx"
    code, drawn = _on_a_terminal(["convert", str(built_zoo["policy"].source), "--to", "onnx", "--out", str(out),
                                  *(["--quiet"] if quiet else [])])
    assert code == 0 and out.is_file(), drawn[-2000:]
    assert "wrote" in drawn
    phases = ("writing policy.onnx", "proving policy.onnx computes what its source does", "parity at batch")
    assert all((p in drawn) != quiet for p in phases), drawn[-3000:]


def test_no_bar_without_a_terminal(built_zoo, tmp_path, capsys):
    assert main(["convert", str(built_zoo["policy"].source), "--to", "onnx", "--out", str(tmp_path / "p.onnx")]) == 0
    out, err = capsys.readouterr()
    assert "\x1b[" not in out + err and "proving" not in out + err and out.startswith("wrote")


def test_status_lines_go_to_the_log_when_there_is_no_bar_and_nowhere_when_quiet(capsys):
    with progress.shown(False):
        progress.status("[1/2] onnxrt-cpu batch 1")
        progress.step("invisible without a bar")
    with progress.shown(False, quiet=True):
        progress.status("[2/2] onnxrt-cpu batch 8")
    assert capsys.readouterr().err == "[1/2] onnxrt-cpu batch 1\n"
