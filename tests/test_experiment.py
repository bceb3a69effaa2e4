"""Comparisons of losses: configs are checked up front, runs write results with provenance, and resume."""
import json

import pytest
import yaml

from frbook.experiment import compare, load_config, load_results, summarise

TINY = {
    "name": "tiny",
    "data": {"train_identities": 6, "val_identities": 2, "test_identities": 6,
             "images_per_identity": 4, "test_images_per_identity": 4, "size": 32},
    "model": {"name": "small_cnn", "embedding_dim": 8},
    "train": {"steps": 3, "batch_size": 8},
    "eval": {"num_pairs": 40, "fars": [0.1]},
    "seeds": [0, 1],
    "losses": {"normface": {"s": 10}, "arcface_st": {"loss": "arcface", "s": 10, "grad": "straight_through"}},
}


def write(tmp_path, config):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_unknown_key_is_named(tmp_path):
    bad = dict(TINY, trian={"steps": 3})
    with pytest.raises(ValueError, match="unknown key 'trian'"):
        load_config(write(tmp_path, bad))
    bad = dict(TINY, train={"stpes": 3})
    with pytest.raises(ValueError, match="train: unknown key 'stpes'"):
        load_config(write(tmp_path, bad))


def test_bad_loss_parameter_fails_before_training(tmp_path):
    bad = dict(TINY, losses={"arcface": {"m": 4.0}})
    with pytest.raises(ValueError, match="m"):
        load_config(write(tmp_path, bad))


def test_missing_config_says_where_configs_are(tmp_path):
    with pytest.raises(FileNotFoundError, match="configs"):
        load_config(tmp_path / "nope.yaml")


def test_compare_writes_results_with_provenance_and_resumes(tmp_path):
    out = tmp_path / "results" / "tiny"
    paths = compare(write(tmp_path, TINY), out_dir=out, progress=False)
    assert sorted(p.name for p in paths) == sorted(
        ["normface-seed0.json", "normface-seed1.json", "arcface_st-seed0.json", "arcface_st-seed1.json"])
    record = json.loads(paths[0].read_text())
    for key in ("command", "git_commit", "device", "date", "torch"):
        assert key in record["provenance"]
    assert 0.0 <= record["metrics"]["accuracy"] <= 1.0
    assert set(record["metrics"]["tar_at_far"]) == {"0.1"}
    assert record["loss_params"]["s"] == 10

    # A second call finds every run done and trains nothing: the files are untouched.
    stamps = {p: p.stat().st_mtime_ns for p in paths}
    compare(write(tmp_path, TINY), out_dir=out, progress=False)
    assert {p: p.stat().st_mtime_ns for p in paths} == stamps

    # A changed protocol does not reuse old runs.
    changed = dict(TINY, train={"steps": 2, "batch_size": 8}, seeds=[0], losses={"normface": {"s": 10}})
    compare(write(tmp_path, changed), out_dir=out, progress=False)
    rerun = out / "normface-seed0.json"
    assert rerun.stat().st_mtime_ns != stamps[rerun]
    assert json.loads(rerun.read_text())["config"]["train"]["steps"] == 2

    results = load_results("tiny", tmp_path / "results")
    table = summarise(results, "tar_at_far/0.1")
    assert set(table) == {"normface", "arcface_st"}
    assert table["arcface_st"]["n"] == 2


def test_load_results_says_how_to_produce_them(tmp_path):
    with pytest.raises(FileNotFoundError, match="experiment compare --config configs/none.yaml"):
        load_results("none", tmp_path)


def test_paired_difference_matches_a_hand_computed_t_test():
    from frbook.experiment import paired_difference

    def run(label, seed, accuracy):
        return {"label": label, "seed": seed, "metrics": {"accuracy": accuracy}}

    results = [run("a", 0, 0.90), run("a", 1, 0.92), run("a", 2, 0.91),
               run("b", 2, 0.90), run("b", 0, 0.88), run("b", 1, 0.91), run("b", 7, 0.5)]
    out = paired_difference(results, "a", "b")
    d = [0.02, 0.01, 0.01]  # seeds 0, 1, 2; seed 7 has no partner
    mean = sum(d) / 3
    std = (sum((x - mean) ** 2 for x in d) / 2) ** 0.5
    assert out["seeds"] == [0, 1, 2] and out["differences"] == pytest.approx(d)
    assert out["mean"] == pytest.approx(mean) and out["std"] == pytest.approx(std)
    assert out["t"] == pytest.approx(mean / (std / 3 ** 0.5))
    assert out["t"] == pytest.approx(4.0)
    assert out["p"] == pytest.approx(0.0572, abs=2e-4)  # two-sided, t = 4 with 2 degrees of freedom
    with pytest.raises(ValueError, match="no results labelled 'c'"):
        paired_difference(results, "a", "c")


def test_a_comparison_can_hold_a_search(tmp_path):
    config = dict(TINY, seeds=[0], losses={"normface": {"s": 10},
                                           "searched": {"search": {"s": 10, "candidates": 2, "epochs": 1}}})
    paths = compare(write(tmp_path, config), out_dir=tmp_path / "out", progress=False)
    searched = json.loads((tmp_path / "out" / "searched-seed0.json").read_text())
    fixed = json.loads((tmp_path / "out" / "normface-seed0.json").read_text())
    assert len(paths) == 2 and searched["protocol"] == fixed["protocol"]
    assert len(searched["history"]) == 1 and len(searched["history"][0]["samples"]) == 2
    assert searched["metrics"]["train_seconds"] > 0 and 0 <= searched["metrics"]["accuracy"] <= 1
    bad = dict(config, losses={"searched": {"search": {"epochs": 1}, "s": 10}})
    with pytest.raises(ValueError, match="a search entry takes only 'search' and 'train'"):
        load_config(write(tmp_path, bad))
    bad = dict(config, losses={"searched": {"search": {"epochs": 1, "sigma": -1}}})
    with pytest.raises(ValueError, match="losses: searched: search: sigma must be a positive number"):
        load_config(write(tmp_path, bad))


def test_all_pairs_tar_matches_brute_force():
    import numpy as np

    from frbook.experiment import all_pairs_metrics

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
