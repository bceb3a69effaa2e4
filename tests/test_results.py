"""Result files: reading (with the migration of old records), summaries, pairing on (fold, seed),
Holm's correction and the verdict."""
import json
import math

import numpy as np
import pytest

from frbook.results import (difference_matrix, holm, load_results, metric_value, paired_difference,
                           reversed_verdict, summarise, verdict)


def run(label, seed, accuracy, fold=None, **metrics):
    return {"label": label, "seed": seed, "fold": fold, "metrics": {"accuracy": accuracy, **metrics}}


def test_load_results_migrates_old_records_and_says_how_to_produce_missing_ones(tmp_path):
    folder = tmp_path / "old"
    folder.mkdir()
    # Written before LFW comparisons: no "fold" key.
    (folder / "arcface-seed1.json").write_text(json.dumps(
        {"label": "arcface", "seed": 1, "metrics": {"accuracy": 0.9, "tar_at_far": {"0.001": 0.5}}}))
    # An evaluation report: no label, seed or metrics.
    (folder / "pixels.json").write_text(json.dumps({"model": "pixels", "report": {}}))
    arcface, pixels = load_results("old", tmp_path)
    assert arcface["fold"] is None and arcface["seed"] == 1 and arcface["label"] == "arcface"
    assert metric_value(arcface, "tar_at_far/1e-3") == 0.5  # any spelling of the FAR
    assert pixels == {"model": "pixels", "report": {}, "fold": None, "seed": None, "label": "pixels", "metrics": {}}
    with pytest.raises(FileNotFoundError, match="experiment compare --config configs/none.yaml"):
        load_results("none", tmp_path)
    (folder / "broken.json").write_text("{")
    with pytest.raises(ValueError, match="broken.json: not valid JSON"):
        load_results("old", tmp_path)


def test_metric_value_names_the_run_and_the_missing_metric():
    with pytest.raises(KeyError, match="'arcface' \\(seed 0, fold 3\\) has no metric 'rank1'"):
        metric_value(run("arcface", 0, 0.9, fold=3), "rank1")


def test_summarise_is_mean_and_sample_std_per_label():
    table = summarise([run("a", 0, 0.90), run("a", 1, 0.94), run("b", 0, 0.5)], "accuracy")
    assert table["a"]["mean"] == pytest.approx(0.92) and table["a"]["std"] == pytest.approx(0.04 / 2 ** 0.5)
    assert table["a"]["n"] == 2 and table["a"]["values"] == [0.90, 0.94]
    assert table["b"] == {"mean": 0.5, "std": 0.0, "n": 1, "values": [0.5]}


def test_paired_difference_matches_a_hand_computed_t_test():
    results = [run("a", 0, 0.90), run("a", 1, 0.92), run("a", 2, 0.91),
               run("b", 2, 0.90), run("b", 0, 0.88), run("b", 1, 0.91), run("b", 7, 0.5)]
    out = paired_difference(results, "a", "b")
    d = [0.02, 0.01, 0.01]  # seeds 0, 1, 2; seed 7 has no partner
    mean = sum(d) / 3
    std = (sum((x - mean) ** 2 for x in d) / 2) ** 0.5
    assert out["seeds"] == [0, 1, 2] and out["differences"] == pytest.approx(d)
    assert out["mean"] == pytest.approx(mean) and out["std"] == pytest.approx(std)
    assert out["t"] == pytest.approx(4.0)
    assert out["p"] == pytest.approx(0.0572, abs=2e-4)  # two-sided, t = 4 with 2 degrees of freedom
    with pytest.raises(ValueError, match="no results labelled 'c'"):
        paired_difference(results, "a", "c")


def test_lfw_runs_pair_by_fold_not_by_seed_alone():
    # LFW files: four test folds, all with seed 0. Keyed by seed alone, three folds would vanish.
    a = [run("a", 0, acc, fold=k) for k, acc in enumerate((0.80, 0.82, 0.84, 0.86))]
    b = [run("b", 0, acc, fold=k) for k, acc in enumerate((0.79, 0.80, 0.81, 0.82))]
    out = paired_difference(b[::-1] + a, "a", "b")
    assert out["n"] == 4 and out["keys"] == [(0, 0), (1, 0), (2, 0), (3, 0)]
    assert out["differences"] == pytest.approx([0.01, 0.02, 0.03, 0.04])
    with pytest.raises(ValueError, match="two runs labelled 'a' with fold 0 and seed 0"):
        paired_difference(a + a, "a", "b")


def test_holm_against_hand_computed_values():
    # m = 4, sorted 0.01 < 0.02 < 0.03 < 0.04: 4 * 0.01, 3 * 0.02, 2 * 0.03, 1 * 0.04, made monotone.
    assert holm([0.03, 0.01, 0.04, 0.02]) == pytest.approx([0.06, 0.04, 0.06, 0.06])
    # Step-down with a running maximum: 3 * 0.001 = 0.003, 2 * 0.04 = 0.08, 1 * 0.05 -> 0.08.
    assert holm([0.05, 0.001, 0.04]) == pytest.approx([0.08, 0.003, 0.08])
    assert holm([0.6, 0.55]) == pytest.approx([1.0, 1.0])  # 2 * 0.55 = 1.1, capped at 1; 0.6 -> the running max
    assert holm([0.6, 0.45]) == pytest.approx([0.9, 0.9])  # 2 * 0.45 = 0.9, then max(0.9, 1 * 0.6)
    adjusted = holm([0.01, float("nan"), 0.02])  # an untestable comparison does not count in m
    assert adjusted[0] == pytest.approx(0.02) and math.isnan(adjusted[1]) and adjusted[2] == pytest.approx(0.02)
    assert holm([]) == []


def test_verdict_needs_one_sign_and_a_corrected_p_below_alpha():
    seeds = range(5)
    results = ([run("a", s, 0.90 + 0.01 * s) for s in seeds]
               + [run("b", s, 0.85 + 0.01 * s + 0.001 * (s % 2)) for s in seeds]   # a - b ~ 0.05, one sign
               + [run("c", s, 0.90 + 0.01 * s + (0.004 if s % 2 else -0.001)) for s in seeds])  # mixed signs
    ab, ca, ba = verdict(results, [("a", "b"), ("c", "a"), ("b", "a")])
    assert ab["decision"] == "a > b" and ab["consistent"] and ba["decision"] == "b < a"
    assert ca["consistent"] is False and ca["decision"] == "not distinguished"
    assert ab["p_corrected"] == pytest.approx(holm([ab["p"], ca["p"], ba["p"]])[0])
    assert ab["p_corrected"] >= ab["p"]
    # The correction counts the table: a p-value just below alpha alone is not below it among many.
    alone = verdict(results, [("a", "b")], alpha=ab["p"] * 1.5)[0]
    assert alone["decision"] == "a > b"
    crowded = verdict(results, [("a", "b"), ("b", "a")], alpha=ab["p"] * 1.5)[0]
    assert crowded["p_corrected"] == pytest.approx(2 * ab["p"]) and crowded["decision"] == "not distinguished"
    assert verdict(results, [("a", "b"), ("b", "a")], alpha=ab["p"] * 1.5, correction="none")[0]["decision"] == "a > b"
    with pytest.raises(ValueError, match="correction must be"):
        verdict(results, [("a", "b")], correction="bonferoni")


def test_verdict_does_not_decide_on_one_pair():
    row = verdict([run("a", 0, 0.9), run("b", 0, 0.1)], [("a", "b")])[0]
    assert row["n"] == 1 and not row["consistent"] and row["decision"] == "not distinguished"


def test_reversed_verdict_is_the_same_test_read_the_other_way():
    runs = [run("a", s, acc) for s, acc in enumerate([0.90, 0.91, 0.92])]
    runs += [run("b", s, acc) for s, acc in enumerate([0.80, 0.805, 0.81])]
    runs += [run("c", s, acc) for s, acc in enumerate([0.85, 0.86, 0.84])]
    for row in verdict(runs, [("a", "b"), ("c", "a")]):
        back = reversed_verdict(row)
        assert (back["first"], back["second"]) == (row["second"], row["first"])
        assert back["mean"] == -row["mean"] and back["differences"] == [-d for d in row["differences"]]
        assert back["t"] == -row["t"] and (back["p"], back["p_corrected"]) == (row["p"], row["p_corrected"])
        # The reversed decision is what verdict itself says of (B, A) on the same corrected p.
        again = verdict(runs, [(row["second"], row["first"])], correction="none")[0]
        if row["decision"] == "not distinguished":
            assert back["decision"] == "not distinguished"
        else:
            assert back["decision"] == again["decision"]
    assert reversed_verdict(verdict(runs, [("a", "b")])[0])["decision"] == "b < a"


def test_difference_matrix_is_antisymmetric_and_corrects_over_every_pair():
    runs = [run("a", s, acc) for s, acc in enumerate([0.90, 0.91, 0.92])]
    runs += [run("b", s, acc) for s, acc in enumerate([0.80, 0.805, 0.81])]
    runs += [run("c", s, acc) for s, acc in enumerate([0.85, 0.87, 0.83])]
    mean, decided = difference_matrix(runs, ["a", "b", "c"])
    assert mean.shape == decided.shape == (3, 3)
    assert np.allclose(mean, -mean.T) and np.all(np.diag(mean) == 0)
    assert (decided == decided.T).all() and not decided.diagonal().any()
    rows = verdict(runs, [("a", "b"), ("a", "c"), ("b", "c")])
    assert mean[0, 1] == pytest.approx(rows[0]["mean"]) and mean[2, 1] == pytest.approx(-rows[2]["mean"])
    assert [decided[0, 1], decided[0, 2], decided[1, 2]] == [r["decision"] != "not distinguished" for r in rows]
    with pytest.raises(ValueError, match="at least two labels"):
        difference_matrix(runs, ["a"])
