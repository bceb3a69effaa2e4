"""The trainer at scale, on a CPU: configs are checked, checkpoints resume exactly, precision and
memory-format options are wired, and its checkpoints are ordinary model checkpoints."""
import json

import pytest
import torch

from frbook import checkpoint
from frbook.train.config import ConfigError, compatible, describe, load_config
from frbook.train.schedules import LRMultiplier
from frbook.train.trainer import train


def tiny(**sections) -> dict:
    """A config that trains in about a second: 12 SynthFaces identities at 16x16, a narrow CNN."""
    raw = {
        "data": {"identities": 12, "val_identities": 6, "images_per_identity": 4, "size": 16},
        "model": {"name": "small_cnn", "params": {"embedding_dim": 8, "width": 4}},
        "loss": {"name": "cosface", "params": {"s": 16, "m": 0.2}},
        "train": {"steps": 6, "batch_size": 8, "log_every": 2, "device": "cpu"},
        "schedule": {"warmup_steps": 0},
        "eval": {"every": 3, "targets": ["synth"], "batch_size": 64},
        "checkpoint": {"every": 0, "keep_best": "synth/accuracy"},
    }
    for section, values in sections.items():
        raw.setdefault(section, {}).update(values)
    return load_config(raw=raw)


def weights(path) -> dict:
    record = torch.load(path, weights_only=True)
    return {"backbone": record["state_dict"], "head": record["training"]["head"],
            "loss": record["training"]["loss"], "optimizer": record["training"]["optimizer"]["state"]}


def assert_identical(a: dict, b: dict, where=""):
    assert a.keys() == b.keys(), where
    for key in a:
        if isinstance(a[key], dict):
            assert_identical(a[key], b[key], f"{where}.{key}")
        else:
            assert torch.equal(a[key], b[key]), f"{where}.{key} differs"


# -- configs -----------------------------------------------------------------------------------
def test_shipped_configs_validate():
    from frbook.provenance import REPO

    for name in ["train_synth_cpu", "train_lfw_cpu", "train_casia_iresnet50", "train_ms1mv2_iresnet100"]:
        config = load_config(REPO / "configs" / f"{name}.yaml")
        assert config["name"] == name
    casia = load_config(REPO / "configs" / "train_casia_iresnet50.yaml")
    assert casia["schedule"]["milestones"] == [20000, 28000] and casia["train"]["steps"] == 32000
    assert casia["train"]["batch_size"] == 512 and casia["optim"]["lr"] == 0.1
    ms1m = load_config(REPO / "configs" / "train_ms1mv2_iresnet100.yaml")
    assert ms1m["schedule"]["milestones"] == [100000, 160000] and ms1m["train"]["steps"] == 180000
    lfw = load_config(REPO / "configs" / "train_lfw_cpu.yaml", overrides=["loss.name=cosface"])
    assert lfw["loss"]["name"] == "cosface"


@pytest.mark.parametrize("override, words", [
    ("optim.lrr=0.1", ["optim.lrr", "lr"]),                       # unknown key, known ones listed
    ("train.batch_size=big", ["train.batch_size", "int"]),         # wrong type
    ("train.precision=fp8", ["train.precision", "bf16"]),          # not a choice
    ("loss.params.cosface.m=2.5", ["loss.params.cosface", "m must be"]),  # out of the loss's range
    ("loss.name=arcfase", ["arcfase", "arcface"]),                 # unknown loss, known listed
    ("head.sample_rate=0.5", ["partial_fc"]),
    ("train.steps=null", ["train.steps", "train.epochs"]),
])
def test_bad_configs_name_the_key_and_the_fix(override, words):
    raw = {"train": {"steps": 5}, "loss": {"name": "cosface", "params": {"cosface": {"s": 30, "m": 0.35}}}}
    with pytest.raises(ConfigError) as error:
        load_config(raw=raw, overrides=[override])
    assert all(w in str(error.value) for w in words), str(error.value)


def test_missing_data_path_fails_when_training_starts(tmp_path):
    config = tiny(data={"kind": "folder", "path": str(tmp_path / "nowhere")}, eval={"targets": []},
                  checkpoint={"keep_best": "none"})
    with pytest.raises(ConfigError, match="data.path.*does not exist.*--set data.path"):
        train(config, out_dir=tmp_path / "run", progress=False)


def test_help_lists_every_key_with_its_default():
    text = describe()
    assert "optim.lr: 0.1" in text and "train.precision: fp32 [fp32|bf16|fp16]" in text
    assert "head.sample_rate: 1.0" in text and "checkpoint.keep_best: auto" in text


def test_schedules():
    step = LRMultiplier("step", 100, warmup_steps=4, milestones=[50, 80], gamma=0.1)
    assert [step(i) for i in (0, 3)] == [0.25, 1.0]
    assert step(49) == 1.0 and step(50) == pytest.approx(0.1) and step(80) == pytest.approx(0.01)
    poly = LRMultiplier("poly", 10, power=2)
    assert poly(0) == 1.0 and poly(5) == pytest.approx(0.25) and poly(10) == 0.0
    cosine = LRMultiplier("cosine", 10, warmup_steps=2)
    assert cosine(2) == 1.0 and cosine(6) == pytest.approx(0.5) and cosine(10) == pytest.approx(0.0)


# -- runs --------------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("changes", [
    # AdaCos's scale buffer, dropout (the torch generator), flips, SGD momentum, evaluation midway
    {"loss": {"name": "adacos", "params": {}}, "model": {"params": {"embedding_dim": 8, "width": 4, "dropout": 0.3}},
     "data": {"flip": True}, "schedule": {"warmup_steps": 2}},
    # SphereFace's iteration, AdamW, a step schedule, a learned-scale-free bf16 run
    {"loss": {"name": "sphereface", "params": {"s": 16, "m": 2}}, "optim": {"name": "adamw", "lr": 0.01},
     "schedule": {"kind": "step", "milestones": [4], "warmup_steps": 0}, "train": {"precision": "bf16"}},
], ids=["adacos-dropout", "sphereface-adamw-bf16"])
def test_resume_continues_exactly(tmp_path, changes):
    config = tiny(**changes)
    whole = train(config, out_dir=tmp_path / "whole", progress=False)
    assert whole["finished"] and whole["step"] == 6

    part = train(config, out_dir=tmp_path / "parts", progress=False, stop_at=2)
    assert not part["finished"] and part["step"] == 2
    rest = train(config, out_dir=tmp_path / "parts", progress=False, resume="auto")
    assert rest["finished"] and rest["step"] == 6

    assert_identical(weights(tmp_path / "whole" / "last.pt"), weights(tmp_path / "parts" / "last.pt"))
    assert whole["metrics"] == rest["metrics"]
    lines = [json.loads(line) for line in (tmp_path / "parts" / "metrics.jsonl").read_text().splitlines()]
    whole_lines = [json.loads(line) for line in (tmp_path / "whole" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines] == [r["step"] for r in whole_lines]  # no step logged twice
    assert [r.get("loss") for r in lines] == [r.get("loss") for r in whole_lines]


def test_resume_refuses_a_changed_config(tmp_path):
    config = tiny(train={"steps": 2}, eval={"targets": []}, checkpoint={"keep_best": "none"})
    train(config, out_dir=tmp_path, progress=False)
    other = tiny(train={"steps": 4}, eval={"targets": []}, checkpoint={"keep_best": "none"},
                 optim={"lr": 0.05})
    with pytest.raises(ConfigError, match=r"optim.lr: 0.1 -> 0.05"):
        train(other, out_dir=tmp_path, resume=tmp_path / "last.pt", progress=False)
    assert compatible(config, tiny(train={"steps": 2, "log_every": 1}, eval={"targets": []},
                                   checkpoint={"keep_best": "none"})) == []


def test_checkpoints_are_model_checkpoints_and_best_is_kept(tmp_path):
    config = tiny()
    summary = train(config, out_dir=tmp_path, progress=False)
    model = checkpoint.load(tmp_path / "best.pt")  # the ordinary reader rebuilds the backbone
    assert model.embedding_dim == 8 and model.input_size == (16, 16)
    assert summary["best"]["metric"] == "synth/accuracy" and summary["best"]["step"] in (3, 6)
    best = torch.load(tmp_path / "best.pt", weights_only=True)
    assert best["extra"]["step"] == summary["best"]["step"]
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    logged = [r for r in records if "loss" in r]
    assert [r["step"] for r in logged] == [2, 4, 6]
    assert all(r["images_per_second"] > 0 and r["lr"] >= 0 for r in logged)
    assert [r["step"] for r in records if "synth/accuracy" in r] == [3, 6]


def test_partial_fc_in_one_process_matches_the_plain_head(tmp_path):
    """With one process the sharded classifier is the whole classifier (same initial centres:
    the same draws from the seeded generator), so training follows the same path, up to float32
    rounding (the two heads sum their gradients in another order: relative differences up to 2e-4
    measured, in a batch-norm running variance near 34)."""
    common = dict(eval={"targets": []}, checkpoint={"keep_best": "none"}, train={"steps": 3},
                  loss={"name": "arcface", "params": {"s": 16, "m": 0.3}})
    plain = train(tiny(**common), out_dir=tmp_path / "plain", progress=False)
    sharded = train(tiny(head={"partial_fc": True}, **common), out_dir=tmp_path / "sharded", progress=False)
    assert plain["finished"] and sharded["finished"]
    a = torch.load(tmp_path / "plain" / "last.pt", weights_only=True)
    b = torch.load(tmp_path / "sharded" / "last.pt", weights_only=True)
    for key in a["state_dict"]:
        torch.testing.assert_close(a["state_dict"][key], b["state_dict"][key], atol=1e-4, rtol=1e-3)
    torch.testing.assert_close(a["training"]["head"]["weight"], b["training"]["ranks"][0]["head"]["weight"],
                               atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_trains_on_cpu(tmp_path, precision):
    config = tiny(train={"steps": 2, "precision": precision, "channels_last": True}, eval={"targets": []},
                  checkpoint={"keep_best": "none"})
    summary = train(config, out_dir=tmp_path, progress=False)
    record = torch.load(tmp_path / "last.pt", weights_only=True)
    assert summary["finished"] and all(torch.isfinite(v).all() for v in record["state_dict"].values()
                                       if v.is_floating_point())
    scaler = record["training"]["scaler"]
    assert (precision == "fp16") == bool(scaler)  # only fp16 carries a GradScaler's state


def test_compile_flag_compiles_the_backbone(tmp_path, monkeypatch):
    compiled = []

    def fake_compile(module, **kwargs):  # torch.compile itself takes minutes on a CPU
        compiled.append(type(module).__name__)
        return module

    monkeypatch.setattr(torch, "compile", fake_compile)
    config = tiny(train={"steps": 1, "compile": True}, eval={"targets": []}, checkpoint={"keep_best": "none"})
    train(config, out_dir=tmp_path, progress=False)
    assert compiled == ["SmallCNN"]


def test_lfw_protocol_trains_on_other_folds_and_tests_on_its_own(tmp_path):
    from fake_faces import lfw_folder

    from frbook.data import LFW

    root = lfw_folder(tmp_path / "lfw", size=40)
    extra = root / "lfw" / "Fay_Gil"  # a second person in no pair: with two folds held out, two people train
    extra.mkdir()
    for k, image in enumerate(sorted((root / "lfw" / "Di_Egan").iterdir())):
        (extra / f"Fay_Gil_{k + 1:04d}.jpg").write_bytes(image.read_bytes())
    config = tiny(data={"kind": "lfw", "path": str(root), "test_fold": 0, "crop": 36, "size": 16,
                        "channels": 1, "cache": True},
                  train={"steps": 2, "batch_size": 4}, eval={"targets": ["val", "lfw"], "every": 0},
                  checkpoint={"keep_best": "val/accuracy"})
    summary = train(config, out_dir=tmp_path / "run", progress=False)
    lfw = LFW(root)
    assert lfw.train_identities(0) == ["Ed_Fox", "Fay_Gil"]  # outside the test fold 0 and validation fold 1
    assert not set(lfw.train_identities(0)) & (lfw.fold_identities(0) | lfw.fold_identities(1))
    assert set(summary["metrics"]) == {f"{t}/{m}" for t in ("val", "lfw") for m in ("accuracy", "auc", "eer")}
    assert (tmp_path / "run" / "best.pt").exists()


def test_decoding_workers_keep_the_order(tmp_path):
    """Real images decoded by worker processes arrive in the plan's order: the same run with
    and without workers ends with the same weights."""
    from fake_faces import image_folder

    image_folder(tmp_path / "faces", identities=4, per_identity=4, size=24)
    runs = {}
    for workers in (0, 2):
        config = tiny(data={"kind": "folder", "path": str(tmp_path / "faces"), "size": 16, "channels": 1,
                            "workers": workers},
                      train={"steps": 3, "batch_size": 4}, eval={"targets": []}, checkpoint={"keep_best": "none"})
        train(config, out_dir=tmp_path / f"w{workers}", progress=False)
        runs[workers] = weights(tmp_path / f"w{workers}" / "last.pt")
    assert_identical(runs[0], runs[2])


def test_a_failed_write_leaves_the_previous_checkpoint_whole(tmp_path, monkeypatch):
    from frbook import models

    params = {"embedding_dim": 8, "width": 4, "input_size": 16}
    path = checkpoint.save(tmp_path / "last.pt", models.get("small_cnn", **params), "small_cnn", params)
    before = path.read_bytes()

    def crash(obj, f, *args, **kwargs):  # the disk fills up half-way through
        f.write(b"half a checkpoint")
        raise OSError("No space left on device")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(OSError):
        checkpoint.save(path, models.get("small_cnn", **params), "small_cnn", params)
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_numbers_written_without_a_dot_are_numbers():
    config = load_config(raw={"train": {"steps": 5}}, overrides=["optim.weight_decay=5e-4"])
    assert config["optim"]["weight_decay"] == 5e-4
