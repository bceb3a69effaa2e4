"""Face verification: "are these two faces the same person?", measured as the field reports it.

A verification benchmark is a list of pairs ``(i, j, issame)``. The model embeds both faces, a
score compares the embeddings, and a threshold turns the score into a decision. Three ways of
summarising the result are in common use, and papers mix them freely, so this module keeps them
apart and names each one:

* **k-fold accuracy** (LFW, CFP-FP, AgeDB, ...): the threshold is *learned* on nine folds of the
  pairs and *applied* to the tenth, exactly as InsightFace's ``verification.py`` does it
  (:func:`kfold_accuracy`).
* **ROC, TAR@FAR and EER** (IJB-B/C, MegaFace-style reports): no threshold is learned; the whole
  trade-off between false accepts and false rejects is read off the ROC curve (:func:`roc`,
  :func:`tar_at_far`, :func:`eer`).
* :func:`verify` runs all of them on a set of embeddings and returns a
  :class:`VerificationReport`.

Two score conventions meet here. InsightFace thresholds the *squared Euclidean distance* of unit
vectors (lower = more similar, range 0..4), while ROC code wants a *similarity* (higher = more
similar). For unit vectors they carry the same information, ``d = 2 - 2 cos``, so a distance
threshold ``t`` is the cosine threshold ``1 - t / 2``.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np
from sklearn.metrics import auc as _sk_auc
from sklearn.metrics import roc_curve as _sk_roc_curve

__all__ = [
    "as_numpy",
    "make_pairs",
    "cross_age_pairs",
    "cosine_scores",
    "squared_distance",
    "KFoldResult",
    "kfold_accuracy",
    "roc",
    "auc",
    "tar_at_far",
    "eer",
    "VerificationReport",
    "verify",
    "DEFAULT_THRESHOLDS",
]

#: InsightFace's threshold grid on squared distance: 0 to 4 (the full range for unit vectors)
#: in steps of 0.01.
DEFAULT_THRESHOLDS = np.arange(0, 4, 0.01)
DEFAULT_THRESHOLDS.flags.writeable = False

# Above this many genuine pairs, enumerating them all would cost gigabytes.
_MAX_GENUINE_PAIRS = 20_000_000
# Up to this many candidate pairs, impostor pairs are drawn from an explicit list.
_MAX_ENUMERATED_PAIRS = 4_000_000


# ----------------------------------------------------------------------------------------------
# Input handling
# ----------------------------------------------------------------------------------------------
def as_numpy(x, name: str = "array") -> np.ndarray:
    """Return ``x`` as a numpy array; torch tensors are detached and moved to the CPU.

    Half-precision tensors (bf16 has no numpy dtype) are widened to float32 first.
    """
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # a torch.Tensor, without importing torch
        x = x.detach().cpu()
        if x.is_floating_point() and x.element_size() < 4:
            x = x.float()
        return x.numpy()
    try:
        return np.asarray(x)
    except Exception as exc:  # pragma: no cover - exotic inputs
        raise TypeError(f"{name} must be array-like (numpy array, list or torch tensor)") from exc


def _embeddings(x, name: str = "embeddings") -> np.ndarray:
    """A 2-D float array of embeddings, one row per face, checked for NaN/inf and zero rows."""
    e = as_numpy(x, name)
    if e.ndim != 2:
        raise ValueError(f"{name} must be 2-D (num_faces, dim); got shape {e.shape}")
    if e.shape[0] == 0 or e.shape[1] == 0:
        raise ValueError(f"{name} is empty (shape {e.shape})")
    e = e.astype(np.float64 if e.dtype == np.float64 else np.float32, copy=False)
    if not np.all(np.isfinite(e)):
        raise ValueError(f"{name} contains NaN or inf; check the model's output")
    return e


def _l2_normalise(e: np.ndarray, name: str = "embeddings") -> np.ndarray:
    norms = np.linalg.norm(e, axis=1, keepdims=True)
    if np.any(norms == 0):
        bad = np.flatnonzero(norms[:, 0] == 0)[:5].tolist()
        raise ValueError(
            f"{name} has all-zero rows (e.g. rows {bad}); a zero vector has no direction, "
            "so its cosine similarity is undefined"
        )
    return e / norms


def _labels(x, name: str = "labels") -> np.ndarray:
    lab = as_numpy(x, name)
    if lab.ndim != 1:
        raise ValueError(f"{name} must be 1-D; got shape {lab.shape}")
    if lab.size == 0:
        raise ValueError(f"{name} is empty")
    return lab


def _issame(x, n: int | None = None) -> np.ndarray:
    s = as_numpy(x, "issame")
    if s.ndim != 1:
        raise ValueError(f"issame must be 1-D; got shape {s.shape}")
    if s.dtype != bool:
        if not np.all(np.isin(s, (0, 1))):
            raise ValueError("issame must be booleans (or 0/1): True for a genuine pair")
        s = s.astype(bool)
    if n is not None and s.size != n:
        raise ValueError(f"issame has {s.size} entries but there are {n} scores")
    return s


def _scores(x, name: str = "scores") -> np.ndarray:
    s = as_numpy(x, name).astype(np.float64)
    if s.ndim != 1:
        raise ValueError(f"{name} must be 1-D (one value per pair); got shape {s.shape}")
    if s.size == 0:
        raise ValueError(f"{name} is empty")
    if not np.all(np.isfinite(s)):
        raise ValueError(f"{name} contains NaN or inf")
    return s


def _both_classes(issame: np.ndarray) -> tuple[int, int]:
    n_genuine = int(issame.sum())
    n_impostor = int(issame.size - n_genuine)
    if n_genuine == 0 or n_impostor == 0:
        raise ValueError(
            f"need both genuine and impostor pairs (got {n_genuine} genuine, {n_impostor} "
            "impostor); a ROC curve is undefined otherwise"
        )
    return n_genuine, n_impostor


def _pair_indices(i, j, n: int) -> tuple[np.ndarray, np.ndarray]:
    i = as_numpy(i, "i").astype(np.int64).ravel()
    j = as_numpy(j, "j").astype(np.int64).ravel()
    if i.shape != j.shape:
        raise ValueError(f"i and j must have the same length; got {i.size} and {j.size}")
    if i.size == 0:
        raise ValueError("no pairs given")
    lo, hi = min(i.min(), j.min()), max(i.max(), j.max())
    if lo < 0 or hi >= n:
        raise IndexError(f"pair indices must lie in [0, {n}) for {n} embeddings; got {lo}..{hi}")
    return i, j


# ----------------------------------------------------------------------------------------------
# Pairs and scores
# ----------------------------------------------------------------------------------------------
def make_pairs(labels, num_pairs: int | None = None, seed: int = 0):
    """Build a balanced list of verification pairs from labelled faces.

    Genuine pairs are two different faces of one identity, impostor pairs two faces of different
    identities; both are returned with ``i < j``. By default every genuine pair is used, with as
    many impostor pairs drawn at random (uniformly among all impostor pairs, without
    repetition). With ``num_pairs``, half of them (rounded down) are genuine and the rest
    impostor, both drawn at random.

    The pairs are interleaved genuine, impostor, genuine, ... so that every *contiguous* fold of
    :func:`kfold_accuracy` holds (almost exactly) half of each, as LFW's ten sets of 300 + 300
    pairs do. The result depends only on ``labels``, ``num_pairs`` and ``seed``.

    Returns ``(i, j, issame)``: two int64 index arrays and a bool array.
    """
    labels = _labels(labels)
    n = labels.size
    _, codes, counts = np.unique(labels, return_inverse=True, return_counts=True)
    codes = codes.ravel()
    n_genuine_all = int(np.sum(counts * (counts - 1) // 2))
    n_impostor_all = n * (n - 1) // 2 - n_genuine_all
    if n_genuine_all == 0:
        raise ValueError(
            f"no genuine pairs possible: each of the {counts.size} identities has fewer than 2 "
            "faces; verification needs at least one identity with 2 or more faces"
        )
    if n_impostor_all == 0:
        raise ValueError("no impostor pairs possible: all faces carry the same label")

    if num_pairs is None:
        n_gen = n_imp = min(n_genuine_all, n_impostor_all)
    else:
        if int(num_pairs) != num_pairs or num_pairs < 2:
            raise ValueError(f"num_pairs must be an integer >= 2; got {num_pairs}")
        n_gen = int(num_pairs) // 2
        n_imp = int(num_pairs) - n_gen
        if n_gen > n_genuine_all:
            raise ValueError(
                f"asked for {n_gen} genuine pairs but the labels allow only {n_genuine_all}; "
                f"use num_pairs <= {2 * n_genuine_all} or leave it None"
            )
        if n_imp > n_impostor_all:
            raise ValueError(
                f"asked for {n_imp} impostor pairs but the labels allow only {n_impostor_all}"
            )
    if n_genuine_all > _MAX_GENUINE_PAIRS:
        raise ValueError(
            f"{n_genuine_all} genuine pairs are too many to enumerate; pass a subset of the faces"
        )

    rng = np.random.default_rng(seed)
    gi, gj = _genuine_pairs(codes)
    pick = rng.permutation(gi.size)[:n_gen]
    gi, gj = gi[pick], gj[pick]
    ii, ij = _impostor_pairs(codes, n_imp, rng)
    return _interleave(gi, gj, ii, ij)


def _interleave(gi, gj, ii, ij):
    """Genuine pairs at even positions, impostor ones at odd positions, the surplus at the end:
    every contiguous fold then holds (almost exactly) half of each."""
    n_gen, n_imp = gi.size, ii.size
    m = min(n_gen, n_imp)
    i = np.concatenate([np.stack([gi[:m], ii[:m]], 1).ravel(), gi[m:], ii[m:]])
    j = np.concatenate([np.stack([gj[:m], ij[:m]], 1).ravel(), gj[m:], ij[m:]])
    issame = np.concatenate(
        [np.tile([True, False], m), np.ones(n_gen - m, bool), np.zeros(n_imp - m, bool)]
    )
    return i.astype(np.int64), j.astype(np.int64), issame


def cross_age_pairs(labels, ages, min_gap: float, num_pairs: int | None = None, seed: int = 0):
    """Balanced verification pairs whose two faces differ in age by at least ``min_gap``.

    Cross-age verification (as AgeDB's protocols, where the two faces of a pair are years apart):
    genuine pairs are one identity young and old, and impostor pairs obey the same age gap, so
    the age difference alone cannot tell them apart. Like :func:`make_pairs`: by default as many
    impostor as genuine pairs (all the genuine pairs the gap allows); with ``num_pairs``, half
    genuine, the rest impostor, drawn at random; interleaved genuine, impostor, ... for the
    contiguous folds of :func:`kfold_accuracy`; ``i < j``. Every pair of faces is listed, so
    this is for test sets of a few thousand faces.

    Returns ``(i, j, issame)``: two int64 index arrays and a bool array.
    """
    labels = _labels(labels)
    ages = as_numpy(ages, "ages").astype(np.float64).ravel()
    if ages.size != labels.size:
        raise ValueError(f"need one age per face: {labels.size} labels, {ages.size} ages")
    if not np.isfinite(ages).all():
        raise ValueError("ages must be finite numbers")
    if not (isinstance(min_gap, (int, float)) and math.isfinite(min_gap) and min_gap >= 0):
        raise ValueError(f"min_gap must be a finite number >= 0; got {min_gap!r}")
    n = labels.size
    if n * (n - 1) // 2 > _MAX_ENUMERATED_PAIRS:
        raise ValueError(f"{n} faces have too many pairs to list ({n * (n - 1) // 2}, at most "
                         f"{_MAX_ENUMERATED_PAIRS}); pass a subset of the faces")
    a, b = np.triu_indices(n, k=1)
    far_apart = np.abs(ages[a] - ages[b]) >= min_gap
    same = labels[a] == labels[b]
    genuine, impostor = np.flatnonzero(far_apart & same), np.flatnonzero(far_apart & ~same)
    if genuine.size == 0 or impostor.size == 0:
        raise ValueError(f"no {'genuine' if genuine.size == 0 else 'impostor'} pairs with an age gap of at "
                         f"least {min_gap}: lower the gap, or give more faces per identity or a wider "
                         "range of ages")
    if num_pairs is None:
        n_gen = n_imp = min(genuine.size, impostor.size)
    else:
        if int(num_pairs) != num_pairs or num_pairs < 2:
            raise ValueError(f"num_pairs must be an integer >= 2; got {num_pairs}")
        n_gen = int(num_pairs) // 2
        n_imp = int(num_pairs) - n_gen
        if n_gen > genuine.size or n_imp > impostor.size:
            raise ValueError(
                f"asked for {n_gen} genuine and {n_imp} impostor pairs with an age gap of at least "
                f"{min_gap}, but the faces allow only {genuine.size} and {impostor.size}; use "
                f"num_pairs <= {2 * min(genuine.size, impostor.size)}, a smaller gap, or more faces "
                "per identity")
    rng = np.random.default_rng(seed)
    genuine = rng.permutation(genuine)[:n_gen]
    impostor = rng.choice(impostor, size=n_imp, replace=False)
    return _interleave(a[genuine], b[genuine], a[impostor], b[impostor])


def _genuine_pairs(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All (i, j), i < j, with codes[i] == codes[j], in a fixed order."""
    order = np.argsort(codes, kind="stable")
    boundaries = np.flatnonzero(np.diff(codes[order])) + 1
    gi, gj = [], []
    for members in np.split(order, boundaries):
        if members.size >= 2:
            a, b = np.triu_indices(members.size, k=1)
            gi.append(members[a])
            gj.append(members[b])
    return np.concatenate(gi), np.concatenate(gj)


def _impostor_pairs(codes: np.ndarray, k: int, rng: np.random.Generator):
    """k distinct random pairs (i < j) with codes[i] != codes[j]."""
    n = codes.size
    if n * (n - 1) // 2 <= _MAX_ENUMERATED_PAIRS:
        a, b = np.triu_indices(n, k=1)
        diff = codes[a] != codes[b]
        a, b = a[diff], b[diff]
        pick = rng.choice(a.size, size=k, replace=False)
        return a[pick], b[pick]
    # Too many pairs to list: draw random pairs, keep impostors, drop repeats, until k are found.
    found = np.empty(0, np.int64)
    while found.size < k:
        a = rng.integers(0, n, size=2 * k + 1024)
        b = rng.integers(0, n, size=2 * k + 1024)
        keep = codes[a] != codes[b]
        lo, hi = np.minimum(a[keep], b[keep]), np.maximum(a[keep], b[keep])
        found = np.concatenate([found, lo * n + hi])
        _, first = np.unique(found, return_index=True)
        found = found[np.sort(first)]  # unique, in order of first appearance
    found = found[:k]
    return found // n, found % n


def cosine_scores(embeddings, i, j) -> np.ndarray:
    """Cosine similarity of each pair ``(i[k], j[k])``: the dot product of the L2-normalised rows.

    Higher means more similar; 1 for the same direction, -1 for opposite ones.
    """
    e = _l2_normalise(_embeddings(embeddings))
    i, j = _pair_indices(i, j, e.shape[0])
    return np.einsum("kd,kd->k", e[i], e[j]).astype(np.float64)


def squared_distance(embeddings, i, j) -> np.ndarray:
    """Squared Euclidean distance of each pair of L2-normalised embeddings (range 0..4).

    For unit vectors this equals ``2 - 2 cos``; it is computed literally as ``sum((a - b)**2)``,
    as InsightFace does, so that thresholds on the grid 0, 0.01, ... compare against the same
    floating-point numbers.
    """
    e = _l2_normalise(_embeddings(embeddings))
    i, j = _pair_indices(i, j, e.shape[0])
    diff = e[i] - e[j]
    return np.einsum("kd,kd->k", diff, diff).astype(np.float64)


# ----------------------------------------------------------------------------------------------
# k-fold accuracy (InsightFace's protocol)
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class KFoldResult:
    """The outcome of :func:`kfold_accuracy`.

    ``mean`` and ``std`` (population std, ``ddof=0``) are the numbers papers print as
    "99.80 ± 0.20"; ``fold_accuracies[k]`` is the accuracy on fold ``k`` with
    ``fold_thresholds[k]``, the distance threshold learned on the other folds.
    """

    mean: float
    std: float
    fold_accuracies: np.ndarray
    fold_thresholds: np.ndarray

    @property
    def threshold(self) -> float:
        """The mean of the per-fold distance thresholds: one number to quote."""
        return float(np.mean(self.fold_thresholds))


def _contiguous_folds(n: int, n_folds: int) -> list[np.ndarray]:
    """Test-index blocks of sklearn's ``KFold(n_folds, shuffle=False)``.

    Folds are contiguous runs in file order; the first ``n % n_folds`` folds get one extra item.
    """
    return np.array_split(np.arange(n), n_folds)


def _correct_counts(distances: np.ndarray, issame: np.ndarray, thresholds: np.ndarray):
    """For every threshold t, how many pairs are classified correctly by "same iff d < t"."""
    genuine = np.sort(distances[issame])
    impostor = np.sort(distances[~issame])
    genuine_accepted = np.searchsorted(genuine, thresholds, side="left")  # d < t
    impostor_rejected = impostor.size - np.searchsorted(impostor, thresholds, side="left")  # d >= t
    return genuine_accepted + impostor_rejected


def kfold_accuracy(distances, issame, n_folds: int = 10, thresholds=None) -> KFoldResult:
    """Verification accuracy with a threshold learned by k-fold cross-validation.

    This is InsightFace's (and FaceNet's) protocol for LFW, CFP-FP, AgeDB and friends:

    1. Split the pairs into ``n_folds`` **contiguous folds in file order** (like sklearn's
       ``KFold(n_folds, shuffle=False)``). The order matters: LFW's ``pairs.txt`` is ten
       disjoint sets of 300 genuine + 300 impostor pairs, and the folds are exactly those sets.
    2. For each fold, try every threshold ``t`` in ``thresholds`` on the *other* folds, predict
       "same person" iff ``distance < t``, and keep the ``t`` with the highest accuracy. Ties go
       to the first best threshold in grid order (``np.argmax``).
    3. Apply that threshold to the held-out fold and record its accuracy.

    The reported accuracy is the mean over folds and its spread the population standard
    deviation (``np.std``, ``ddof=0``). Learning the threshold on data that is not scored keeps
    the number honest; picking the best threshold on all pairs would flatter the model.

    ``distances`` are squared distances of unit vectors (lower = more similar), as returned by
    :func:`squared_distance`; the default grid ``thresholds=None`` is InsightFace's
    ``np.arange(0, 4, 0.01)`` (:data:`DEFAULT_THRESHOLDS`), which covers their whole range. With
    ``n_folds=1`` the threshold is chosen and scored on all pairs, as InsightFace's ``LFold``
    does; that number is optimistic.
    """
    d = _scores(distances, "distances")
    same = _issame(issame, d.size)
    thr = DEFAULT_THRESHOLDS if thresholds is None else np.asarray(thresholds, np.float64).ravel()
    if thr.size == 0:
        raise ValueError("thresholds is empty")
    if int(n_folds) != n_folds or n_folds < 1:
        raise ValueError(f"n_folds must be a positive integer; got {n_folds}")
    n_folds = int(n_folds)
    if d.size < n_folds:
        raise ValueError(f"{d.size} pairs cannot be split into {n_folds} folds")

    all_correct = _correct_counts(d, same, thr)
    accuracies, best_thresholds = [], []
    for test in _contiguous_folds(d.size, n_folds):
        test_correct = _correct_counts(d[test], same[test], thr)
        if n_folds == 1:
            train_correct = all_correct  # LFold(1): train on everything, test on everything
        else:
            train_correct = all_correct - test_correct
        best = thr[int(np.argmax(train_correct))]
        accuracies.append(np.mean((d[test] < best) == same[test]))
        best_thresholds.append(best)
    accuracies = np.asarray(accuracies, dtype=np.float64)
    return KFoldResult(
        mean=float(np.mean(accuracies)),
        std=float(np.std(accuracies)),
        fold_accuracies=accuracies,
        fold_thresholds=np.asarray(best_thresholds, dtype=np.float64),
    )


# ----------------------------------------------------------------------------------------------
# ROC, TAR@FAR, EER
# ----------------------------------------------------------------------------------------------
def roc(scores, issame, drop_intermediate: bool = False):
    """The ROC curve of similarity scores: ``(fpr, tpr, thresholds)`` from sklearn.

    Each point is one operating threshold ``s``: "same person" iff ``score >= s``. ``fpr`` is the
    false accept rate (FAR, impostor pairs accepted), ``tpr`` the true accept rate (TAR, genuine
    pairs accepted). Scores must be *similarities* (higher = more similar): pass cosine scores,
    or ``-distance``.

    By default every operating point is kept; sklearn's own default (``drop_intermediate=True``)
    drops points that lie on a straight segment between their neighbours, which is fine for a
    plot but changes which points a TAR@FAR reading can land on.
    """
    s = _scores(scores)
    same = _issame(issame, s.size)
    _both_classes(same)
    fpr, tpr, thr = _sk_roc_curve(same, s, drop_intermediate=drop_intermediate)
    return fpr, tpr, thr


def auc(scores, issame) -> float:
    """Area under the ROC curve: the probability that a random genuine pair scores higher than a
    random impostor pair (ties count one half). 1 is perfect, 0.5 is chance."""
    fpr, tpr, _ = roc(scores, issame)
    return float(_sk_auc(fpr, tpr))


TAR_READINGS = ("conservative", "nearest")


def tar_at_far(scores, issame, far: float, reading: str = "conservative") -> float:
    """True accept rate at a target false accept rate, read off the ROC curve.

    Two readings are in use, and they differ at small FARs, so always say which one you report:

    ``"conservative"``
        The largest TAR among operating points whose FAR is **at most** ``far``. This is the
        TAR you could actually promise: some threshold achieves it without exceeding the FAR.
    ``"nearest"``
        The TAR at the ROC point whose FAR is **nearest** to ``far``, above or below it. This
        is how InsightFace's IJB-B/C evaluation reads its table, reproduced exactly: sklearn's
        ``roc_curve`` with its default ``drop_intermediate=True`` (points in the middle of a
        straight run are dropped), the curve reversed, and the first nearest point taken; so
        where the curve jumps up at the nearest FAR, the *top* of the jump is read, and of two
        equally near FARs the higher one. The FAR it reads at may exceed the target, and then
        its TAR can exceed the conservative one.

    A FAR below ``1 / num_impostor_pairs`` cannot be measured: the only attainable FAR under it
    is 0. Then a warning says so and the conservative value (the TAR at FAR = 0, possibly 0) is
    returned for either reading.
    """
    if reading not in TAR_READINGS:
        raise ValueError(f"reading must be one of {TAR_READINGS}; got {reading!r}")
    far = float(far)
    if not 0.0 < far <= 1.0:
        raise ValueError(f"far must be in (0, 1]; got {far}")
    s = _scores(scores)
    same = _issame(issame, s.size)
    _, n_impostor = _both_classes(same)

    fpr, tpr, _ = _sk_roc_curve(same, s, drop_intermediate=False)
    conservative = float(np.max(tpr[fpr <= far]))  # (0, 0) is always on the curve
    if far < 1.0 / n_impostor:
        warnings.warn(
            f"target FAR {far:g} is below 1/{n_impostor} (one impostor pair): it cannot be "
            f"measured with {n_impostor} impostor pairs; returning the conservative TAR at FAR=0 "
            f"({conservative:.4f}). Use more impostor pairs for this operating point.",
            stacklevel=2,
        )
        return conservative
    if reading == "conservative":
        return conservative
    fpr, tpr, _ = _sk_roc_curve(same, s)  # as InsightFace: sklearn's default curve, ...
    fpr, tpr = fpr[::-1], tpr[::-1]  # ... reversed, so that ties go to the largest TAR
    return float(tpr[int(np.argmin(np.abs(fpr - far)))])  # argmin: the first nearest point


def eer(scores, issame) -> float:
    """Equal error rate: the error rate where false accepts equal false rejects.

    Along the ROC curve FAR rises while the false reject rate FRR = 1 - TAR falls; the EER is
    where they cross, linearly interpolated between the two ROC points around the crossing.
    Lower is better; 0 means some threshold separates genuine from impostor pairs perfectly.
    """
    fpr, tpr, _ = roc(scores, issame)
    gap = fpr - (1.0 - tpr)  # rises from -1 at (0, 0) to +1 at (1, 1)
    k = int(np.argmax(gap >= 0))
    if gap[k] == 0 or k == 0:
        return float(fpr[k])
    t = -gap[k - 1] / (gap[k] - gap[k - 1])
    return float(fpr[k - 1] + t * (fpr[k] - fpr[k - 1]))


# ----------------------------------------------------------------------------------------------
# The report
# ----------------------------------------------------------------------------------------------
def _pct(x: float) -> str:
    return f"{100 * x:.2f}%"


@dataclass(repr=False)  # the default repr would print every score
class VerificationReport:
    """Everything :func:`verify` measured, with the protocol written next to each number.

    ``scores`` are cosine similarities and ``issame`` the pair labels, one per pair; ``pairs``
    holds the ``(i, j)`` indices that were scored. ``accuracy`` ± ``accuracy_std`` is the k-fold
    accuracy; ``threshold`` is the mean of the per-fold squared-distance thresholds and
    ``threshold_cosine = 1 - threshold / 2`` the same threshold on cosine. ``tar`` maps each
    target FAR to ``{"conservative": ..., "nearest": ...}`` (see :func:`tar_at_far`). ``title``
    says what was evaluated (e.g. "LFW, 6000 pairs of pairs.txt, flip-sum").
    """

    scores: np.ndarray
    issame: np.ndarray
    pairs: tuple[np.ndarray, np.ndarray]
    kfold: KFoldResult
    accuracy: float
    accuracy_std: float
    threshold: float
    threshold_cosine: float
    auc: float
    eer: float
    tar: dict
    n_folds: int
    notes: list = field(default_factory=list)
    title: str = ""

    @property
    def n_genuine(self) -> int:
        return int(self.issame.sum())

    @property
    def n_impostor(self) -> int:
        return int(self.issame.size - self.issame.sum())

    def table(self) -> str:
        """A plain-text table of the results, one metric per line."""
        rows = [
            (f"accuracy ({self.n_folds}-fold, threshold learned on the other folds)"
             if self.n_folds > 1 else "accuracy (threshold learned on the scored pairs)",
             f"{_pct(self.accuracy)} ± {_pct(self.accuracy_std)}"),
            ("threshold (mean over folds)",
             f"distance² {self.threshold:.3f} = cosine {self.threshold_cosine:.3f}"),
            ("AUC", f"{self.auc:.4f}"),
            ("EER", _pct(self.eer)),
        ]
        for far, reads in self.tar.items():
            rows.append((f"TAR @ FAR={far:.0e} (conservative / nearest)",
                         f"{_pct(reads['conservative'])} / {_pct(reads['nearest'])}"))
        width = max(len(name) for name, _ in rows)
        what = f"{self.n_genuine} genuine + {self.n_impostor} impostor pairs"
        lines = [f"{self.title}: {what}" if self.title else f"Verification on {what}"]
        lines += [f"  {name:<{width}}  {value}" for name, value in rows]
        lines += [f"  note: {note}" for note in self.notes]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()

    __repr__ = __str__  # what a notebook shows for a report as a cell's last expression

    def to_dict(self, include_scores: bool = False) -> dict:
        """The metrics as plain Python types, ready for ``json.dump``.

        Per-pair scores are large, so they are left out unless ``include_scores=True``.
        """
        d = {
            "title": self.title,
            "num_genuine": self.n_genuine,
            "num_impostor": self.n_impostor,
            "n_folds": int(self.n_folds),
            "accuracy": float(self.accuracy),
            "accuracy_std": float(self.accuracy_std),
            "fold_accuracies": [float(a) for a in self.kfold.fold_accuracies],
            "fold_thresholds": [float(t) for t in self.kfold.fold_thresholds],
            "threshold_squared_distance": float(self.threshold),
            "threshold_cosine": float(self.threshold_cosine),
            "auc": float(self.auc),
            "eer": float(self.eer),
            "tar_at_far": [
                {"far": float(far), "conservative": float(r["conservative"]),
                 "nearest": float(r["nearest"])}
                for far, r in self.tar.items()
            ],
            "protocol": (
                f"{self.n_folds}-fold accuracy, folds contiguous in pair order, threshold on "
                "squared distance of unit vectors (grid 0..4 step 0.01) learned on the other "
                "folds; std ddof=0. TAR@FAR 'conservative' = largest TAR with FAR <= target; "
                "'nearest' = TAR at the ROC point with FAR nearest the target (InsightFace IJB)."
            ),
            "notes": [str(n) for n in self.notes],
        }
        if include_scores:
            d["scores"] = [float(s) for s in self.scores]
            d["issame"] = [bool(s) for s in self.issame]
        return d

    def plot(self):
        """A Figure with the score histograms (and the learned threshold) next to the ROC."""
        from matplotlib.figure import Figure

        from frbook.viz.evaluation import roc_curve_plot, score_histogram

        fig = Figure(figsize=(10, 4), layout="constrained")
        ax_hist, ax_roc = fig.subplots(1, 2)
        score_histogram(self.scores, self.issame, threshold=self.threshold_cosine, ax=ax_hist)
        fpr, tpr, _ = roc(self.scores, self.issame)
        roc_curve_plot(fpr, tpr, label=f"AUC {self.auc:.4f}, EER {_pct(self.eer)}", ax=ax_roc)
        return fig


def verify(embeddings, labels=None, pairs=None, n_folds: int = 10, fars=(1e-2, 1e-3),
           seed: int = 0, num_pairs: int | None = None, title: str = "") -> VerificationReport:
    """Evaluate face verification on a set of embeddings, every metric in one report.

    Give either ``labels`` (one identity per embedding; balanced pairs are drawn by
    :func:`make_pairs` with ``seed`` and ``num_pairs``) or explicit ``pairs = (i, j, issame)``,
    e.g. from LFW's ``pairs.txt``, or ``(arange(0, 2N, 2), arange(1, 2N, 2), issame)`` for an
    InsightFace ``.bin`` file whose pair k is images 2k and 2k+1. Pass the pairs in the
    benchmark's file order: the k-fold accuracy uses contiguous folds. ``title`` labels the
    report. For a model's flip-sum embeddings of a benchmark, :func:`frbook.eval.evaluate` does
    every step.
    """
    e = _embeddings(embeddings)
    if (labels is None) == (pairs is None):
        raise ValueError("give exactly one of labels= (pairs are drawn) or pairs=(i, j, issame)")
    if labels is not None:
        lab = _labels(labels)
        if lab.size != e.shape[0]:
            raise ValueError(f"{lab.size} labels for {e.shape[0]} embeddings")
        i, j, same = make_pairs(lab, num_pairs=num_pairs, seed=seed)
    else:
        if len(pairs) != 3:
            raise ValueError("pairs must be a tuple (i, j, issame)")
        i, j = _pair_indices(pairs[0], pairs[1], e.shape[0])
        same = _issame(pairs[2], i.size)

    scores = cosine_scores(e, i, j)
    distances = squared_distance(e, i, j)
    _both_classes(same)
    kf = kfold_accuracy(distances, same, n_folds=n_folds)

    notes, tar = [], {}
    one_class = [k for k, fold in enumerate(_contiguous_folds(same.size, int(n_folds)))
                 if n_folds > 1 and (same[fold].all() or not same[fold].any())]
    if one_class:  # e.g. 2 folds over one LFW fold: 300 genuine, then 300 impostor pairs
        notes.append(f"folds {one_class} hold pairs of one kind only, so their thresholds are "
                     "learned without the other kind; use the benchmark's own fold count")
    n_impostor = int((~same).sum())
    for far in fars:
        if far < 1.0 / n_impostor:  # one note and one warning, not one per reading
            note = f"FAR={far:.0e} is below 1/{n_impostor} impostor pairs: its TAR is read at FAR=0"
            notes.append(note)
            warnings.warn(note, stacklevel=2)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="target FAR", category=UserWarning)
            tar[float(far)] = {r: tar_at_far(scores, same, far, reading=r) for r in TAR_READINGS}

    return VerificationReport(
        scores=scores,
        issame=same,
        pairs=(i, j),
        kfold=kf,
        accuracy=kf.mean,
        accuracy_std=kf.std,
        threshold=kf.threshold,
        threshold_cosine=1.0 - kf.threshold / 2.0,
        auc=auc(scores, same),
        eer=eer(scores, same),
        tar=tar,
        n_folds=int(n_folds),
        notes=notes,
        title=str(title),
    )
