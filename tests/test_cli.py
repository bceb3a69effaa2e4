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


# ----------------------------------------------------------------------------------------------
# eval and data (tiny files written here; see tests/fake_faces.py)
# ----------------------------------------------------------------------------------------------
def test_help_of_the_data_and_eval_commands():
    for args, words in [(("eval", "--help"), ("--checkpoint", "--target", "--json", "flip")),
                        (("data", "pack", "--help"), ("property", "--size")),
                        (("data", "bin", "--help"), ("--lfw", "--crop", "--size", "pairs.txt"))]:
        result = run(*args)
        assert result.returncode == 0, result.stderr
        assert all(w in result.stdout for w in words), (args, result.stdout)
    result = run("--help")
    assert "data pack" in result.stdout and "eval" in result.stdout


def test_data_pack_and_bin_then_eval(tmp_path):
    import json

    import torch

    from fake_faces import image_folder, lfw_folder
    from frbook import checkpoint, models
    from frbook.data import RecFaces, read_bin

    written = image_folder(tmp_path / "faces", identities=2, per_identity=2)
    result = run("data", "pack", str(tmp_path / "faces"), str(tmp_path / "out" / "train.rec"))
    assert result.returncode == 0, result.stderr
    assert "packed 4 images of 2 identities" in result.stdout
    packed = RecFaces(tmp_path / "out")
    assert sorted(packed.raw(k) for k in range(4)) == sorted(data for data, _, _ in written.values())

    lfw_folder(tmp_path / "lfw", size=40)
    out_bin = tmp_path / "lfw.bin"
    result = run("data", "bin", "--lfw", str(tmp_path / "lfw"), str(out_bin), "--crop", "36", "--size", "32")
    assert result.returncode == 0, result.stderr
    images, issame = read_bin(out_bin)
    assert len(images) == 16 and issame.tolist() == [True, True, False, False] * 2

    params = {"embedding_dim": 8, "in_channels": 3, "input_size": 32, "width": 4}
    torch.manual_seed(0)
    ck = checkpoint.save(tmp_path / "model.pt", models.get("small_cnn", **params), "small_cnn", params)
    result = run("eval", "--checkpoint", str(ck), "--target", str(out_bin), "--json",
                 str(tmp_path / "report.json"), "--far", "0.5", "--folds", "2", "--device", "cpu")
    assert result.returncode == 0, result.stderr
    assert "lfw.bin (8 pairs), flip-sum embeddings" in result.stdout and "accuracy" in result.stdout
    record = json.loads((tmp_path / "report.json").read_text())
    assert record["report"]["num_genuine"] == 4 and 0 <= record["report"]["accuracy"] <= 1
    assert record["provenance"]["command"].startswith("python -m frbook eval")

    result = run("eval", "--checkpoint", str(ck), "--target", str(tmp_path / "nothing.txt"))
    assert result.returncode == 2 and "unknown target" in result.stderr and "Traceback" not in result.stderr
    result = run("data", "pack", str(tmp_path / "missing"), str(tmp_path / "x.rec"))
    assert result.returncode == 2 and "no such folder" in result.stderr
