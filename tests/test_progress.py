"""Long work shows a bar on a terminal; logs get plain status lines; --quiet silences both."""


import pytest

from rps_infer import progress
from rps_infer.cli import main
from tests.terminal import on_a_terminal


@pytest.mark.parametrize("quiet", [False, True])
def test_convert_draws_its_phases_on_a_terminal_unless_quiet(built_zoo, tmp_path, quiet):
    out = tmp_path / "policy.onnx"
    code, drawn = on_a_terminal(["convert", str(built_zoo["policy"].source), "--to", "onnx", "--out", str(out),
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
