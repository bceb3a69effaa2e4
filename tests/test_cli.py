"""The command line, run as a user runs it."""
import subprocess
import sys

import pytest


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


def test_eval_a_parameter_free_model_by_name(tmp_path):
    import json

    import numpy as np

    from fake_faces import lfw_folder
    from frbook import models
    from frbook.eval import evaluate

    lfw_folder(tmp_path / "lfw", size=40)
    out = tmp_path / "pixels.json"
    result = run("eval", "--model", "pixels", "--model-param", "input_size=16", "--target",
                 str(tmp_path / "lfw"), "--crop", "36", "--far", "0.5", "--folds", "2",
                 "--json", str(out), "--device", "cpu")
    assert result.returncode == 0, result.stderr
    record = json.loads(out.read_text())
    assert record["model"] == "pixels" and record["model_params"] == {"input_size": 16}
    assert record["checkpoint"] is None and record["crop"] == 36 and record["flip"] is True
    assert record["provenance"]["command"].startswith("python -m frbook eval --model pixels")
    # The same numbers as the library call the command stands for.
    report = evaluate(models.get("pixels", input_size=16), str(tmp_path / "lfw"), crop=36,
                      n_folds=2, fars=(0.5,), device="cpu")
    assert np.isclose(record["report"]["accuracy"], report.accuracy, rtol=0, atol=1e-12)
    assert record["report"]["fold_thresholds"] == report.kfold.fold_thresholds.tolist()


def test_eval_model_errors_are_clear(tmp_path):
    for args, words in [
        (("--model", "small_cnn", "--target", "synth"), ("parameters", "--checkpoint")),
        (("--model", "pixels", "--model-param", "oops", "--target", "synth"), ("KEY=VALUE",)),
        (("--checkpoint", "x.pt", "--model", "pixels", "--target", "synth"), ("not allowed",)),
        (("--target", "synth"), ("--checkpoint", "--model")),
    ]:
        result = run("eval", *args)
        assert result.returncode == 2, (args, result.stdout)
        assert all(w in result.stderr for w in words) and "Traceback" not in result.stderr, result.stderr


# ----------------------------------------------------------------------------------------------
# train
# ----------------------------------------------------------------------------------------------
def test_train_help_lists_config_keys_and_defaults(capsys):
    import pytest

    from frbook.__main__ import build_parser

    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--help"])
    text = capsys.readouterr().out
    for words in ("--config", "--set", "--resume", "optim.lr: 0.1", "train.precision: fp32",
                  "head.partial_fc: false", "schedule.kind: cosine [step|poly|cosine|constant]"):
        assert words in text, words


@pytest.mark.slow
def test_train_then_eval_the_best_checkpoint(tmp_path):
    import json

    tiny = ["--set", "data.identities=12", "--set", "data.val_identities=6", "--set", "data.size=16",
            "--set", "data.images_per_identity=4", "--set", "model.params={embedding_dim: 8, width: 4}",
            "--set", "train.steps=4", "--set", "train.batch_size=8", "--set", "train.device=cpu",
            "--set", "schedule.warmup_steps=0", "--set", "eval.every=2", "--set", "eval.batch_size=64"]
    out = tmp_path / "run"
    result = run("train", "--config", "configs/train_synth_cpu.yaml", *tiny, "--out", str(out), "--quiet")
    assert result.returncode == 0, result.stderr
    assert "step 4/4" in result.stdout and "best synth/accuracy" in result.stdout
    assert {"best.pt", "last.pt", "metrics.jsonl", "config.yaml", "summary.json"} <= {p.name for p in out.iterdir()}
    assert json.loads((out / "summary.json").read_text())["provenance"]["command"].startswith("python -m frbook train")
    from frbook.__main__ import main  # the eval command, in this process (saves a torch import)

    assert main(["eval", "--checkpoint", str(out / "best.pt"), "--target", "synth", "--device", "cpu",
                 "--far", "0.1"]) == 0


def test_train_config_errors_exit_2_without_a_traceback(tmp_path, capsys):
    import pytest

    from frbook.__main__ import main

    result = run("train", "--config", "configs/train_synth_cpu.yaml", "--set", "loss.params.arcface.m=4", "--check")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "loss.params.arcface" in result.stderr and "[0, pi)" in result.stderr
    with pytest.raises(SystemExit) as exit:  # a config whose data is on another machine
        main(["train", "--config", "configs/train_casia_iresnet50.yaml", "--out", str(tmp_path)])
    assert exit.value.code == 2
    error = capsys.readouterr().err
    assert "data.path" in error and "--set data.path=" in error
