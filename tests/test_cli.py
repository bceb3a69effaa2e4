"""The command line, run as a user runs it."""
import subprocess
import sys


def run(*args):
    return subprocess.run([sys.executable, "-m", "frbook", *args], capture_output=True, text=True, timeout=120)


def test_help_lists_the_commands():
    result = run("--help")
    assert result.returncode == 0
    assert "preview" in result.stdout and "list" in result.stdout


def test_list_names_losses_and_backbones():
    result = run("list")
    assert result.returncode == 0
    assert "normface" in result.stdout and "iresnet50" in result.stdout


def test_preview_writes_a_png(tmp_path):
    out = tmp_path / "grid.png"
    result = run("preview", "--out", str(out), "--identities", "2", "--images", "3", "--size", "32")
    assert result.returncode == 0, result.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bad_difficulty_is_a_clear_error_not_a_traceback(tmp_path):
    result = run("preview", "--out", str(tmp_path / "x.png"), "--difficulty", "2")
    assert result.returncode == 2
    assert "difficulty" in result.stderr and "Traceback" not in result.stderr
