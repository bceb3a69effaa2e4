"""Tests of frbook.eval (verification, identification) and frbook.viz.evaluation."""

import json
import warnings

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
from matplotlib.figure import Figure
from sklearn.model_selection import KFold

from frbook.eval import (
    DEFAULT_THRESHOLDS,
    VerificationReport,
    auc,
    cmc,
    cosine_scores,
    eer,
    kfold_accuracy,
    make_pairs,
    rank_k_accuracy,
    roc,
    split_gallery_probe,
    squared_distance,
    tar_at_far,
    verify,
)
from frbook.eval import verification as verification_module
from frbook.viz.evaluation import cmc_plot, roc_curve_plot, score_histogram


# ----------------------------------------------------------------------------------------------
# k-fold accuracy
# ----------------------------------------------------------------------------------------------
def reference_kfold(dist, issame, n_folds=10, thresholds=DEFAULT_THRESHOLDS, shuffle=False):
    """InsightFace's loop, written out plainly: per fold, per threshold, count on the train set."""
    accs, best_ts = [], []
    splitter = KFold(n_splits=n_folds, shuffle=shuffle, random_state=0 if shuffle else None)
    for train, test in splitter.split(np.arange(len(dist))):
        train_acc = []
        for t in thresholds:
            predict = dist[train] < t
            train_acc.append(float(np.sum(predict == issame[train])) / len(train))
        best_t = thresholds[int(np.argmax(train_acc))]
        predict = dist[test] < best_t
        accs.append(float(np.sum(predict == issame[test])) / len(test))
        best_ts.append(best_t)
    return np.mean(accs), np.std(accs), np.array(accs), np.array(best_ts)


@pytest.mark.parametrize("n, quantised", [(600, False), (607, True), (53, False)])
def test_kfold_matches_bruteforce_reference(n, quantised):
    rng = np.random.default_rng(n)
    issame = rng.random(n) < 0.5
    dist = np.clip(np.where(issame, 0.9, 1.4) + 0.4 * rng.normal(size=n), 0, 4)
    if quantised:  # values sitting exactly on grid points and many ties: tests "<" and argmax
        dist = np.round(dist, 2)
    result = kfold_accuracy(dist, issame)
    mean, std, accs, ts = reference_kfold(dist, issame)
    assert result.mean == pytest.approx(mean, abs=1e-12)
    assert result.std == pytest.approx(std, abs=1e-12)
    np.testing.assert_allclose(result.fold_accuracies, accs, atol=1e-12)
    np.testing.assert_array_equal(result.fold_thresholds, ts)


def test_kfold_all_scores_equal_gives_chance():
    issame = np.tile([True, False], 100)
    result = kfold_accuracy(np.ones(200), issame)
    assert result.mean == 0.5
    assert result.std == 0.0


def test_kfold_perfectly_separable():
    rng = np.random.default_rng(1)
    issame = rng.random(300) < 0.5
    dist = np.where(issame, rng.uniform(0.1, 0.5, 300), rng.uniform(1.5, 2.0, 300))
    result = kfold_accuracy(dist, issame)
    assert result.mean == 1.0
    assert result.std == 0.0
    # the first grid threshold above every genuine distance
    assert np.all(result.fold_thresholds > dist[issame].max())
    assert np.all(result.fold_thresholds - 0.01 <= dist[issame].max())


def test_kfold_folds_are_contiguous_in_file_order():
    # The first 10 pairs (fold 0) have their distances flipped: genuine far, impostor near.
    issame = np.tile([True, False], 50)
    dist = np.where(issame, 0.3, 1.5)
    dist[:10] = np.where(issame[:10], 1.5, 0.3)
    result = kfold_accuracy(dist, issame)
    # Contiguous folds: fold 0 is all wrong, the nine normal folds all right.
    np.testing.assert_array_equal(result.fold_accuracies, [0.0] + [1.0] * 9)
    assert result.mean == pytest.approx(0.9)
    assert result.std == pytest.approx(0.3)
    # Shuffled folds would spread the flipped pairs over several folds: a different result.
    _, _, shuffled, _ = reference_kfold(dist, issame, shuffle=True)
    assert not np.array_equal(np.sort(shuffled), np.sort(result.fold_accuracies))


def test_kfold_threshold_ties_take_first_best():
    # Separable with a gap: every threshold in (0.2, 1.0] is equally perfect; argmax picks 0.21.
    issame = np.tile([True, False], 50)
    dist = np.where(issame, 0.2, 1.0)
    result = kfold_accuracy(dist, issame)
    np.testing.assert_allclose(result.fold_thresholds, 0.21)


def test_kfold_bad_inputs():
    with pytest.raises(ValueError, match="issame has"):
        kfold_accuracy(np.zeros(20), np.zeros(19, bool))
    with pytest.raises(ValueError, match="cannot be split"):
        kfold_accuracy(np.zeros(5), np.ones(5, bool))
    with pytest.raises(ValueError, match="NaN"):
        kfold_accuracy(np.full(20, np.nan), np.ones(20, bool))
    with pytest.raises(ValueError, match="booleans"):
        kfold_accuracy(np.zeros(20), np.full(20, 2))


# ----------------------------------------------------------------------------------------------
# ROC, TAR@FAR, EER
# ----------------------------------------------------------------------------------------------
# 4 genuine and 10 impostor scores, so FAR moves in steps of 0.1 and TAR in steps of 0.25.
#   ROC points: (0, 0) (0, .25) (.1, .25) (.1, .5) (.2, .5) (.2, .75) (.3, .75) ... (.6, .75)
#               (.6, 1) ... (1, 1)
GENUINE = [0.95, 0.85, 0.75, 0.35]
IMPOSTOR = [0.90, 0.80, 0.70, 0.60, 0.50, 0.40, 0.30, 0.20, 0.10, 0.05]


def _scores_labels(genuine, impostor):
    return np.array(genuine + impostor), np.array([True] * len(genuine) + [False] * len(impostor))


def test_tar_at_far_readings_on_hand_made_example():
    s, y = _scores_labels(GENUINE, IMPOSTOR)
    # FAR 0.12: the best TAR at FAR <= 0.12 is 0.5 (the point (.1, .5)); the nearest FAR is 0.1,
    # read at the top of its jump: 0.5 too.
    assert tar_at_far(s, y, 0.12, "conservative") == 0.5
    assert tar_at_far(s, y, 0.12, "nearest") == 0.5
    # FAR 0.18: the nearest FAR is 0.2 > 0.18, read at the top of its jump (.2, .75).
    assert tar_at_far(s, y, 0.18, "conservative") == 0.5
    assert tar_at_far(s, y, 0.18, "nearest") == 0.75
    # FAR 0.45: sklearn's default curve drops (.3, .75) (.4, .75) (.5, .75), the middle of a
    # straight run, so the nearest FAR left is 0.6, read at the top of its jump: TAR 1.
    assert tar_at_far(s, y, 0.45, "conservative") == 0.75
    assert tar_at_far(s, y, 0.45, "nearest") == 1.0
    assert tar_at_far(s, y, 1.0) == 1.0


def test_tar_at_far_nearest_matches_insightface_reading():
    # InsightFace's IJB table, written out: flip the default ROC, take the first nearest point.
    from sklearn.metrics import roc_curve

    rng = np.random.default_rng(5)
    y = rng.random(3000) < 0.3
    s = np.round(np.where(y, 0.6, 0.2) + 0.2 * rng.normal(size=y.size), 2)  # with ties
    fpr, tpr, _ = roc_curve(y, s)
    fpr, tpr = np.flipud(fpr), np.flipud(tpr)
    for far in (1e-3, 3e-3, 1e-2, 0.05, 0.1):
        _, k = min(zip(abs(fpr - far), range(len(fpr))))
        assert tar_at_far(s, y, far, "nearest") == tpr[k]
        best = max(t for f, t in zip(*roc_curve(y, s, drop_intermediate=False)[:2]) if f <= far)
        assert tar_at_far(s, y, far, "conservative") == best


def test_tar_at_far_below_resolution_warns_and_returns_conservative():
    s, y = _scores_labels(GENUINE, IMPOSTOR)
    for reading in ("conservative", "nearest"):
        with pytest.warns(UserWarning, match="below 1/10"):
            assert tar_at_far(s, y, 0.05, reading) == 0.25  # TAR at FAR = 0
    # The top score is an impostor: TAR at FAR = 0 is 0.
    s2, y2 = _scores_labels([0.5, 0.4], [0.9, 0.1])
    with pytest.warns(UserWarning):
        assert tar_at_far(s2, y2, 0.1) == 0.0


def test_tar_at_far_bad_inputs():
    s, y = _scores_labels(GENUINE, IMPOSTOR)
    with pytest.raises(ValueError, match="reading"):
        tar_at_far(s, y, 0.1, "median")
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        tar_at_far(s, y, 0.0)
    with pytest.raises(ValueError, match="both genuine and impostor"):
        tar_at_far(s, np.ones(s.size, bool), 0.1)


def test_eer_known_cases():
    # FAR = FRR = 1/3 exactly at the ROC point (1/3, 2/3).
    s, y = _scores_labels([0.9, 0.8, 0.4], [0.7, 0.3, 0.2])
    assert eer(s, y) == pytest.approx(1 / 3)
    # Crossing inside a segment: from (0, .5) to (.5, 1) (a tie at 0.5); FAR = FRR = 0.25.
    s, y = _scores_labels([0.9, 0.5], [0.5, 0.1])
    assert eer(s, y) == pytest.approx(0.25)
    # Perfect separation.
    s, y = _scores_labels([0.9, 0.8], [0.1, 0.2])
    assert eer(s, y) == 0.0


def test_roc_and_auc():
    s, y = _scores_labels(GENUINE, IMPOSTOR)
    fpr, tpr, thr = roc(s, y)
    assert fpr[0] == 0 and tpr[0] == 0 and fpr[-1] == 1 and tpr[-1] == 1
    assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(tpr) >= 0)
    # AUC = P(genuine > impostor): count the pairs by hand.
    wins = sum(g > i for g in GENUINE for i in IMPOSTOR)
    assert auc(s, y) == pytest.approx(wins / (len(GENUINE) * len(IMPOSTOR)))


# ----------------------------------------------------------------------------------------------
# Pairs and scores
# ----------------------------------------------------------------------------------------------
def test_make_pairs_default_is_balanced_and_valid():
    labels = np.repeat(np.arange(6), [2, 3, 4, 1, 5, 2])
    i, j, same = make_pairs(labels)
    n_genuine = 1 + 3 + 6 + 0 + 10 + 1
    assert same.sum() == n_genuine and (~same).sum() == n_genuine
    assert np.all(i < j)
    assert np.all((labels[i] == labels[j]) == same)
    assert len(set(zip(i.tolist(), j.tolist()))) == i.size  # no repeated pair
    # Interleaved: every contiguous fold is balanced.
    for fold in np.array_split(same, 4):
        assert abs(int(fold.sum()) - int((~fold).sum())) <= 1
    # Deterministic by seed.
    for a, b in zip(make_pairs(labels, seed=3), make_pairs(labels, seed=3)):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(make_pairs(labels, seed=3)[1], make_pairs(labels, seed=4)[1])


def test_make_pairs_num_pairs_and_sampling_path(monkeypatch):
    labels = np.repeat(np.arange(40), 5)
    i, j, same = make_pairs(labels, num_pairs=101, seed=1)
    assert same.sum() == 50 and (~same).sum() == 51
    assert np.all((labels[i] == labels[j]) == same)
    # Force the sampling path used for sets too large to list every pair.
    monkeypatch.setattr(verification_module, "_MAX_ENUMERATED_PAIRS", 10)
    i, j, same = make_pairs(labels, num_pairs=300, seed=1)
    assert np.all(i < j) and np.all((labels[i] == labels[j]) == same)
    assert len(set(zip(i.tolist(), j.tolist()))) == 300


def test_make_pairs_errors():
    with pytest.raises(ValueError, match="no genuine pairs"):
        make_pairs(np.arange(10))
    with pytest.raises(ValueError, match="no impostor pairs"):
        make_pairs(np.zeros(5, int))
    with pytest.raises(ValueError, match="allow only 1"):
        make_pairs([0, 0, 1, 2], num_pairs=4)
    with pytest.raises(ValueError, match="empty"):
        make_pairs([])


def test_scores_and_distances():
    rng = np.random.default_rng(0)
    e = rng.normal(size=(20, 8)) * rng.uniform(0.5, 3, (20, 1))  # unnormalised on purpose
    i, j = np.arange(10), np.arange(10, 20)
    cos = cosine_scores(e, i, j)
    u = e / np.linalg.norm(e, axis=1, keepdims=True)
    np.testing.assert_allclose(cos, np.sum(u[i] * u[j], 1))
    np.testing.assert_allclose(squared_distance(e, i, j), 2 - 2 * cos, atol=1e-12)
    with pytest.raises(IndexError, match=r"\[0, 20\)"):
        cosine_scores(e, [0], [20])
    with pytest.raises(ValueError, match="all-zero"):
        cosine_scores(np.zeros((2, 3)), [0], [1])


def test_torch_tensors_are_accepted():
    torch = pytest.importorskip("torch")
    e = torch.randn(10, 4, generator=torch.Generator().manual_seed(0))
    i, j = torch.arange(5), torch.arange(5, 10)
    np.testing.assert_allclose(cosine_scores(e, i, j), cosine_scores(e.numpy(), i.numpy(), j.numpy()))


# ----------------------------------------------------------------------------------------------
# The report
# ----------------------------------------------------------------------------------------------
def _clustered(num_ids=30, per_id=6, dim=16, spread=0.6, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(num_ids), per_id)
    centres = rng.normal(size=(num_ids, dim))
    return centres[labels] + spread * rng.normal(size=(labels.size, dim)), labels


def test_verify_report():
    e, labels = _clustered()
    with pytest.warns(UserWarning, match="below 1/"):  # 1e-3 is below 1/450 impostor pairs
        report = verify(e, labels=labels)
    assert isinstance(report, VerificationReport)
    assert report.n_genuine == report.n_impostor == 30 * 15
    assert 0.5 < report.accuracy <= 1.0
    assert report.threshold_cosine == pytest.approx(1 - report.threshold / 2)
    assert set(report.tar) == {1e-2, 1e-3}
    text = report.table()
    assert "conservative / nearest" in text and "±" in text and str(report) == text
    d = report.to_dict()
    json.dumps(d)
    assert d["accuracy"] == report.accuracy and "scores" not in d
    json.dumps(report.to_dict(include_scores=True))
    # The same pairs given explicitly give the same report.
    i, j = report.pairs
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        again = verify(e, pairs=(i, j, report.issame))
    assert again.accuracy == report.accuracy and again.eer == report.eer
    fig = report.plot()
    assert isinstance(fig, Figure) and len(fig.axes) == 2


def test_verify_bad_inputs():
    e, labels = _clustered(num_ids=5, per_id=4)
    with pytest.raises(ValueError, match="exactly one"):
        verify(e)
    with pytest.raises(ValueError, match="exactly one"):
        verify(e, labels=labels, pairs=([0], [1], [True]))
    with pytest.raises(ValueError, match="labels for"):
        verify(e, labels=labels[:-1])
    with pytest.raises(ValueError, match="2-D"):
        verify(e[0], labels=labels)


# ----------------------------------------------------------------------------------------------
# Identification
# ----------------------------------------------------------------------------------------------
def _unit(degrees):
    r = np.deg2rad(np.asarray(degrees, dtype=float))
    return np.stack([np.cos(r), np.sin(r)], 1)


def test_cmc_hand_made_example():
    # Gallery: A at 0 deg, B at 90 deg, and three images of C (180, 40, 50 deg).
    gallery, gallery_labels = _unit([0, 90, 180, 40, 50]), np.array(["A", "B", "C", "C", "C"])
    probes, probe_labels = _unit([10, 80, 170, 35, 60]), np.array(["A", "B", "C", "A", "B"])
    # The last two probes see both C images first, then their own identity: by *image* they would
    # rank 3rd, by *identity* (C counted once, at its best image) they rank 2nd.
    curve = cmc(gallery, gallery_labels, probes, probe_labels)
    np.testing.assert_allclose(curve, [0.6, 1.0, 1.0])
    assert np.all(np.diff(curve) >= 0) and curve[-1] == 1.0
    assert rank_k_accuracy(gallery, gallery_labels, probes, probe_labels, k=1) == pytest.approx(0.6)
    assert rank_k_accuracy(gallery, gallery_labels, probes, probe_labels, k=2) == 1.0
    assert rank_k_accuracy(gallery, gallery_labels, probes, probe_labels, k=10) == 1.0
    np.testing.assert_allclose(cmc(gallery, gallery_labels, probes, probe_labels, max_rank=1), [0.6])


def test_cmc_ties_count_against_the_probe():
    same_vector = np.ones((3, 4))
    curve = cmc(same_vector, [0, 1, 2], np.ones((2, 4)), [0, 2])
    np.testing.assert_array_equal(curve, [0.0, 0.0, 1.0])


def test_cmc_on_clusters_is_monotone_and_ends_at_one():
    e, labels = _clustered(num_ids=20, per_id=5, spread=1.0)
    g, p = split_gallery_probe(labels, gallery_per_class=2, seed=0)
    curve = cmc(e[g], labels[g], e[p], labels[p])
    assert curve.shape == (20,)
    assert np.all(np.diff(curve) >= 0) and curve[-1] == 1.0


def test_identification_errors():
    g, gl = _unit([0, 90]), np.array([0, 1])
    with pytest.raises(ValueError, match="not in the gallery"):
        cmc(g, gl, _unit([10]), [7])
    with pytest.raises(ValueError, match="empty"):
        cmc(np.zeros((0, 2)), [], _unit([10]), [0])
    with pytest.raises(ValueError, match="gallery_labels for"):
        cmc(g, [0], _unit([10]), [0])
    with pytest.raises(ValueError, match="probe_labels for"):
        cmc(g, gl, _unit([10, 20]), [0])
    with pytest.raises(ValueError, match="dimension"):
        cmc(g, gl, np.ones((1, 3)), [0])
    with pytest.raises(ValueError, match="positive integer"):
        rank_k_accuracy(g, gl, _unit([10]), [0], k=0)


def test_split_gallery_probe():
    labels = np.repeat(np.arange(5), [1, 2, 3, 4, 5])
    g, p = split_gallery_probe(labels, gallery_per_class=2, seed=0)
    assert np.intersect1d(g, p).size == 0 and np.union1d(g, p).size == labels.size
    assert np.array_equal(np.bincount(labels[g]), [1, 2, 2, 2, 2])
    assert set(labels[p]) <= set(labels[g])
    g2, p2 = split_gallery_probe(labels, gallery_per_class=2, seed=0)
    assert np.array_equal(g, g2) and np.array_equal(p, p2)
    with pytest.raises(ValueError, match="no probes"):
        split_gallery_probe(np.arange(4))


# ----------------------------------------------------------------------------------------------
# Plots
# ----------------------------------------------------------------------------------------------
def test_plots_return_figures():
    s, y = _scores_labels(GENUINE, IMPOSTOR)
    fig = score_histogram(s, y, threshold=0.5)
    assert isinstance(fig, Figure) and fig.axes[0].get_xlabel()
    fpr, tpr, _ = roc(s, y)
    fig = roc_curve_plot(fpr, tpr, label="model A")
    assert isinstance(fig, Figure) and fig.axes[0].get_xscale() == "log"
    same = roc_curve_plot(fpr, tpr, label="model B", ax=fig.axes[0])  # overlay
    assert same is fig and len(fig.axes[0].lines) == 2
    assert roc_curve_plot(fpr, tpr, log_far=False).axes[0].get_xscale() == "linear"
    fig = cmc_plot(np.array([0.6, 0.9, 1.0]))
    assert isinstance(fig, Figure) and fig.axes[0].get_title()
    fig.savefig(__import__("io").BytesIO(), format="png")  # renders without error
