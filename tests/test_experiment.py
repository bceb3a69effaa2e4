"""Comparisons with the one engine: one schema (the trainer's, plus a compare section), configs
checked up front, runs of the trainer written with provenance, resumed, and seeds independent."""
import ast
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from frbook import losses, models
from frbook.experiment import compare, load_comparison
from frbook.heads import make_head
from frbook.protocol import all_pairs_metrics, entry_config, protocol_hash
from frbook.provenance import REPO
from frbook.train import fit
from frbook.train.batches import epoch_order
from frbook.train.config import ConfigError, load_config
from frbook.train.data import build_data
from frbook.train.distributed import World
from frbook.train.trainer import Trainer
from frbook.utils import seed_everything

TINY = {
    "name": "tiny",
    "data": {"identities": 6, "val_identities": 2, "test_identities": 6, "images_per_identity": 4,
             "test_images_per_identity": 4, "size": 32, "flip": False},
    "model": {"name": "small_cnn", "params": {"embedding_dim": 8}},
    "train": {"steps": 3, "batch_size": 8},
    "eval": {"targets": [], "num_pairs": 40, "fars": [0.1], "flip": False},
    "checkpoint": {"keep_best": "none"},
    "compare": {"seeds": [0, 1], "losses": {
        "normface": {"loss": {"name": "normface", "params": {"s": 10}}},
        "arcface_st": {"loss": {"name": "arcface", "params": {"s": 10, "grad": "straight_through"}}}}},
}


def write(tmp_path, config, name="c.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(config))
    return path


def with_entries(**entries):
    return {**TINY, "compare": {"seeds": [0], "losses": entries}}


@pytest.mark.parametrize("change, message", [
    ({"trian": {"steps": 3}}, "unknown section 'trian'"),
    ({"train": {"stpes": 3}}, "unknown key train.stpes"),
    ({"optim": {"lr": "abc"}}, "optim.lr must be a float"),
    ({"compare": {"losses": {}}}, "compare.losses is empty"),
    ({"compare": {"losses": {"a": {"loss": {"name": "arcface", "params": {"m": 4.0}}}}}}, "compare.losses.a: loss"),
    ({"compare": {"losses": {"a": {"los": {}}}}}, "compare.losses.a: an entry changes sections"),
    ({"compare": {"losses": {"a": {"optim": {"lr": -1}}}}}, r"compare.losses.a: optim.lr must be a number in \(0, 100\]"),
    ({"compare": {"losses": {"../x": {}}}}, "a label names result files"),
    ({"compare": {"losses": {"..": {}}}}, "cannot name a file"),
    ({"compare": {"seeds": [0, 0], "losses": {"a": {}}}}, "compare.seeds must be distinct"),
    ({"compare": {"losses": {"s": {"search": {"method": "search", "epochs": 10}}}}}, "search.epochs"),
    ({"compare": {"losses": {"s": {"search": {"method": "search", "epochs": 1, "sigma": -1}}}}}, "search.sigma"),
    ({"compare": {"losses": {"s": {"search": {"method": "grid"}}}}}, "search.method must be one of"),
])
def test_bad_comparisons_are_named(tmp_path, change, message):
    with pytest.raises(ConfigError, match=message):
        load_comparison(write(tmp_path, {**TINY, **change}))


def test_bad_comparisons_exit_2_from_the_cli(tmp_path, capsys):
    from frbook.__main__ import main

    broken = tmp_path / "broken.yaml"
    broken.write_text("compare: {losses: [\n")
    for path, message in ((broken, "not valid YAML"), (write(tmp_path, {**TINY, "optim": {"lr": "abc"}}), "optim.lr"),
                          (tmp_path / "none.yaml", "no config at")):
        with pytest.raises(SystemExit) as stop:
            main(["experiment", "compare", "--config", str(path), "--check"])
        assert stop.value.code == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err


def test_every_shipped_config_passes_check(capsys):
    """Comparisons through 'experiment compare --check', training configs through 'train --check'."""
    from frbook.__main__ import main

    configs = sorted((REPO / "configs").glob("*.yaml"))
    assert len(configs) >= 15
    for path in configs:
        raw = yaml.safe_load(path.read_text())
        command = ["experiment", "compare"] if "compare" in raw else ["train"]
        # A config for the user's own folder leaves data.path to them (--set data.path=...).
        where = ["--set", "data.path=photos/"] if raw["data"].get("kind") in ("folder", "rec") else []
        assert main([*command, "--config", str(path), "--check", *where]) == 0, path
        assert "valid" in capsys.readouterr().out


def test_an_entry_is_the_shared_config_with_its_changes(tmp_path):
    config = load_comparison(write(tmp_path, with_entries(p2s={"loss": {"name": "p2sgrad"}, "optim": {"lr": 3.0}})))
    run = entry_config(config, "p2s", seed=4)
    assert run["loss"]["name"] == "p2sgrad" and run["optim"]["lr"] == 3.0 and run["train"]["seed"] == 4
    assert run["optim"]["momentum"] == config["optim"]["momentum"] and run["data"] == config["data"]
    assert run["compare"]["losses"] == {}  # a run is one training, not a comparison


def test_compare_writes_results_with_provenance_and_resumes(tmp_path):
    out = tmp_path / "results" / "tiny"
    paths = compare(write(tmp_path, TINY), out_dir=out, progress=False, device="cpu", runs_dir=tmp_path / "runs")
    assert sorted(p.name for p in paths) == sorted(
        ["normface-seed0.json", "normface-seed1.json", "arcface_st-seed0.json", "arcface_st-seed1.json"])
    record = json.loads(paths[0].read_text())
    for key in ("command", "git_commit", "device", "cpu", "date", "torch"):
        assert key in record["provenance"]
    cpu = record["provenance"]["cpu"]
    assert cpu["model"] and cpu["kernels"] in ("DEFAULT", "VSX", "ZVECTOR", "AVX2", "AVX512", "SVE256", "NEON") \
        and cpu["cores"] >= 1, cpu
    assert 0.0 <= record["metrics"]["accuracy"] <= 1.0 and set(record["metrics"]["tar_at_far"]) == {"0.1"}
    assert record["loss_params"]["s"] == 10 and record["config"]["train"]["seed"] == record["seed"]
    assert record["history"][-1]["step"] == 3

    # A second call finds every run done and trains nothing: the files are untouched.
    stamps = {p: p.stat().st_mtime_ns for p in paths}
    compare(write(tmp_path, TINY), out_dir=out, progress=False, device="cpu", runs_dir=tmp_path / "runs")
    assert {p: p.stat().st_mtime_ns for p in paths} == stamps

    # A changed protocol, or a changed entry, does not reuse old runs.
    changed = {**TINY, "train": {"steps": 2, "batch_size": 8}}
    compare(write(tmp_path, changed), out_dir=out, progress=False, device="cpu", runs_dir=tmp_path / "runs", only=["normface"])
    rerun = out / "normface-seed0.json"
    assert rerun.stat().st_mtime_ns != stamps[rerun]
    assert json.loads(rerun.read_text())["config"]["train"]["steps"] == 2
    edited = {**changed, "compare": {"seeds": [0, 1], "losses": {"normface": {"loss": {"name": "normface"}}}}}
    before = rerun.stat().st_mtime_ns
    compare(write(tmp_path, edited), out_dir=out, progress=False, device="cpu", runs_dir=tmp_path / "runs")
    assert rerun.stat().st_mtime_ns != before and json.loads(rerun.read_text())["loss_params"]["s"] == 16


def test_a_diverged_training_writes_nothing_and_the_other_runs_go_on(tmp_path, monkeypatch):
    from frbook import experiment
    from frbook.experiment import DivergedRuns

    real_run_one = experiment.run_one

    def run_one(config, label, *args, **kwargs):  # the trainer's own error for a non-finite loss
        if label == "exploding":
            raise FloatingPointError("the loss became nan by step 2; lower optim.lr (0.1) or the loss's scale")
        return real_run_one(config, label, *args, **kwargs)

    monkeypatch.setattr(experiment, "run_one", run_one)
    config = with_entries(exploding={"loss": {"name": "softmax"}},
                          normface={"loss": {"name": "normface", "params": {"s": 10}}})
    with pytest.raises(DivergedRuns, match="(?s)1 of 2 runs diverged.*exploding-seed0: the loss became"):
        compare(write(tmp_path, config), out_dir=tmp_path / "out", progress=False, device="cpu",
                runs_dir=tmp_path / "runs")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["normface-seed0.json"]


def test_seeds_train_differently_and_a_seed_repeats(tmp_path):
    out = tmp_path / "out"
    compare(write(tmp_path, TINY), out_dir=out, progress=False, device="cpu", runs_dir=tmp_path / "runs", only=["normface"])
    a, b = (json.loads((out / f"normface-seed{s}.json").read_text()) for s in (0, 1))
    assert a["metrics"]["accuracy"] != b["metrics"]["accuracy"] or a["history"] != b["history"]
    compare(write(tmp_path, TINY), out_dir=tmp_path / "again", progress=False, device="cpu", runs_dir=tmp_path / "runs2", only=["normface"])
    again = json.loads((tmp_path / "again" / "normface-seed0.json").read_text())
    assert again["metrics"]["accuracy"] == a["metrics"]["accuracy"]


def test_a_comparison_can_hold_a_search(tmp_path):
    config = with_entries(normface={"loss": {"name": "normface", "params": {"s": 10}}},
                          searched={"search": {"method": "search", "s": 10, "candidates": 2, "epochs": 1,
                                               "engine": "loop"}})
    paths = compare(write(tmp_path, config), out_dir=tmp_path / "out", progress=False, device="cpu",
                    runs_dir=tmp_path / "runs")
    searched = json.loads((tmp_path / "out" / "searched-seed0.json").read_text())
    fixed = json.loads((tmp_path / "out" / "normface-seed0.json").read_text())
    assert len(paths) == 2 and searched["protocol"] == fixed["protocol"]
    assert len(searched["history"]) == 1 and len(searched["history"][0]["samples"]) == 2
    assert searched["metrics"]["train_seconds"] > 0 and 0 <= searched["metrics"]["accuracy"] <= 1
    assert not (tmp_path / "runs" / "searched-seed0" / "search_state.pt").exists()  # no state left behind


def test_the_search_command_is_an_alias_of_compare(tmp_path, capsys):
    from frbook.__main__ import main

    config = with_entries(ss={"search": {"method": "random", "s": 10, "candidates": 2, "epochs": 1, "engine": "loop"}})
    assert main(["search", "--config", str(write(tmp_path, config)), "--out", str(tmp_path / "o"), "--runs",
                 str(tmp_path / "runs"), "--quiet"]) == 0
    assert json.loads((tmp_path / "o" / "ss-seed0.json").read_text())["search"]["method"] == "random"


def test_the_reward_reads_the_validation_identities_only(tmp_path):
    config = load_comparison(write(tmp_path, TINY))
    data = build_data(entry_config(config, "normface"))
    # train 0..5, validation 6..7, test 8..13: three disjoint blocks of identities
    assert data.train.identities.tolist() == list(range(6)) and data.val.identities.tolist() == [6, 7]
    assert data.test.identities.tolist() == list(range(8, 14))


def test_fit_and_the_trainer_give_the_same_weights(tmp_path):
    """Same settings (fp32, one process, no flips): the short loop and the engine are one algorithm."""
    config = load_config(raw={**{k: v for k, v in TINY.items() if k != "compare"},
                              "loss": {"name": "arcface", "params": {"s": 16, "m": 0.3}},
                              "optim": {"lr": 0.05, "momentum": 0.9, "weight_decay": 5e-4},
                              "schedule": {"kind": "cosine", "warmup_steps": 2},
                              "train": {"steps": 5, "batch_size": 8, "seed": 3}})
    trainer = Trainer(config, out_dir=tmp_path / "run", world=World(device=torch.device("cpu")), progress=False)
    trainer.run()

    seed_everything(3)  # as the trainer: seed, then backbone, loss, head
    backbone = models.get("small_cnn", embedding_dim=8, in_channels=1, input_size=32)
    loss = losses.get("arcface", s=16, m=0.3)
    head = make_head(loss, 8, trainer.train_set.num_classes)
    fit(backbone, head, loss, build_data(config).train, steps=5, batch_size=8, lr=0.05, warmup_steps=2,
        seed=3, progress=False)
    for (name, a), b in zip(trainer.backbone.state_dict().items(), backbone.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6, msg=name)
    torch.testing.assert_close(trainer.head.weight, head.weight, rtol=0, atol=1e-6)


def test_seeds_share_no_epoch_order():
    """Batch order is a function of (seed, epoch): seeds 0..4 share no epoch's order in 20 epochs
    (with seed + epoch, seed 1's first epoch was seed 0's second)."""
    orders = {(seed, epoch): tuple(epoch_order(500, seed, epoch).tolist()) for seed in range(5) for epoch in range(20)}
    assert len(set(orders.values())) == len(orders)
    assert torch.equal(epoch_order(500, 2, 7), epoch_order(500, 2, 7))


def test_protocol_fingerprint_ignores_entries_seeds_and_where_the_data_is(tmp_path):
    config = load_comparison(write(tmp_path, TINY))
    other = json.loads(json.dumps(config))
    other["compare"] = {"seeds": [5], "folds": [0], "losses": {"x": {}}}
    other["train"]["device"], other["name"] = "cuda", "elsewhere"
    assert protocol_hash(other) == protocol_hash(config)
    other["data"]["size"] = 16
    assert protocol_hash(other) != protocol_hash(config)


def test_no_import_cycle_between_frbook_modules():
    """Module A imports B and B imports A (directly or through others): none, at import time."""
    root = REPO / "frbook"
    graph = {}
    for path in root.rglob("*.py"):
        name = ".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        imports = set()
        for node in ast.parse(path.read_text()).body:  # top level only: imports inside functions are deferred
            if isinstance(node, ast.ImportFrom) and node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                target = f"{base}.{node.module}" if node.module else base
                imports |= {target} | {f"{target}.{a.name}" for a in node.names}
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("frbook"):
                imports |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
        graph[name] = imports
    modules = set(graph)
    graph = {m: {i for i in deps if i in modules and i != m} for m, deps in graph.items()}

    def reaches(start, goal, seen=()):
        return any(d == goal or (d not in seen and reaches(d, goal, (*seen, d))) for d in graph[start])

    pairs = [(a, b) for a in graph for b in graph[a] if not a.startswith(b) and reaches(b, a)
             and not b.startswith(a)]
    assert not pairs, f"import cycles: {pairs}"


def test_all_pairs_tar_matches_brute_force():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(20), 5)
    centres = rng.normal(size=(20, 8))
    embeddings = centres[labels] + 0.9 * rng.normal(size=(100, 8))
    out = all_pairs_metrics(embeddings, labels, fars=[1e-2, 1e-3])
    unit = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)
    i, j = np.triu_indices(100, k=1)
    scores, same = (unit[i] * unit[j]).sum(1), labels[i] == labels[j]
    genuine, impostor = scores[same], scores[~same]
    assert out["genuine_pairs"] == len(genuine) == 20 * 10 and out["impostor_pairs"] == len(impostor)
    for far in (1e-2, 1e-3):
        # Conservative reading: the best TAR over thresholds whose FAR does not exceed the target.
        best = max((genuine >= t).mean() for t in np.append(scores, np.inf) if (impostor >= t).mean() <= far)
        assert out["tar_at_far"][f"{far:g}"] == pytest.approx(best)
    assert out["roc"]["tar"] == sorted(out["roc"]["tar"]) and out["roc"]["tar"][-1] == 1.0
