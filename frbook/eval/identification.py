"""Closed-set face identification: "who is this?", answered by searching a gallery.

A *gallery* holds enrolled faces with known identities; each *probe* face is compared with
every gallery face by cosine similarity, and the gallery identities are ranked by score. In the
closed-set setting every probe's identity is enrolled, so the question is only how high the true
identity ranks:

* **rank-k accuracy**: the fraction of probes whose true identity is among the top k
  (rank-1 accuracy is "identification accuracy" in most papers, e.g. MegaFace);
* the **CMC curve** (cumulative match characteristic): rank-r accuracy for r = 1, 2, ...

Identities are ranked, not images: when the gallery holds several images of one person, that
person's score is the best score among their images, so a person with many gallery images
cannot crowd the others out of the top k.

In the **open-set** setting (a watch list, a door that must not open for strangers) some probes
are of people who are *not* enrolled. A search must then both find the right person and be sure
enough: its best score must pass a threshold. :func:`dir_at_far` reports the *detection and
identification rate* (DIR) at a *false alarm rate* (FAR, called FPIR by NIST): the threshold is
set on the non-mated probes so that a fraction FAR of them raise an alarm, and DIR is the
fraction of mated probes whose true identity is rank 1 *and* passes that threshold.
"""

from __future__ import annotations

import numpy as np

from .verification import _embeddings, _l2_normalise, _labels

__all__ = ["cmc", "dir_at_far", "rank_k_accuracy", "split_gallery_probe"]

# Probes are scored in blocks so that a large search never holds the full probe x gallery
# similarity matrix in memory.
_PROBE_BLOCK = 1024


def _checked_sets(gallery_emb, gallery_labels, probe_emb, probe_labels):
    g = _l2_normalise(_embeddings(gallery_emb, "gallery_emb"), "gallery_emb")
    p = _l2_normalise(_embeddings(probe_emb, "probe_emb"), "probe_emb")
    gl = _labels(gallery_labels, "gallery_labels")
    pl = _labels(probe_labels, "probe_labels")
    if gl.size != g.shape[0]:
        raise ValueError(f"{gl.size} gallery_labels for {g.shape[0]} gallery embeddings")
    if pl.size != p.shape[0]:
        raise ValueError(f"{pl.size} probe_labels for {p.shape[0]} probe embeddings")
    if g.shape[1] != p.shape[1]:
        raise ValueError(
            f"gallery embeddings have dimension {g.shape[1]} but probes have {p.shape[1]}"
        )
    return g, gl, p, pl


def _identity_score_blocks(g, gl, p):
    """Yield ``(lo, hi, scores)``: ``scores[b, c]`` is the best cosine between probe ``lo + b``
    and any gallery image of identity ``c`` (identities in ``np.unique(gl)`` order)."""
    _, g_code = np.unique(gl, return_inverse=True)
    g_code = g_code.ravel()
    # Group gallery images by identity so that a max over each contiguous run gives the
    # identity's score (np.maximum.reduceat).
    order = np.argsort(g_code, kind="stable")
    g_sorted = g[order]
    starts = np.flatnonzero(np.r_[True, np.diff(g_code[order]) != 0])
    for lo in range(0, p.shape[0], _PROBE_BLOCK):
        hi = min(lo + _PROBE_BLOCK, p.shape[0])
        sims = p[lo:hi] @ g_sorted.T  # (block, gallery images)
        yield lo, hi, np.maximum.reduceat(sims, starts, axis=1)  # (block, identities)


def _true_identity_scores(g, gl, p, pl) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each probe whose identity is enrolled: the rank (1 = best) of its true identity and
    that identity's score; for every probe: its best score over all identities.

    Ties count against the probe: an identity that scores *equal* to the true one is ranked
    ahead of it. So a model that gives every face the same embedding gets the worst rank, not
    the best. Ranks and true scores of probes whose identity is not enrolled are 0 and -inf.
    """
    identities = np.unique(gl)
    enrolled = np.isin(pl, identities)
    p_code = np.searchsorted(identities, pl).clip(max=identities.size - 1)
    ranks = np.zeros(p.shape[0], dtype=np.int64)
    true_scores = np.full(p.shape[0], -np.inf)
    top_scores = np.empty(p.shape[0])
    for lo, hi, identity_scores in _identity_score_blocks(g, gl, p):
        rows = np.arange(hi - lo)
        true_score = identity_scores[rows, p_code[lo:hi]]
        mated = enrolled[lo:hi]
        # rank = 1 + number of *other* identities scoring at least as high
        ranks[lo:hi] = np.where(mated, np.sum(identity_scores >= true_score[:, None], axis=1), 0)
        true_scores[lo:hi] = np.where(mated, true_score, -np.inf)
        top_scores[lo:hi] = identity_scores.max(axis=1)
    return ranks, true_scores, top_scores


def _true_identity_ranks(gallery_emb, gallery_labels, probe_emb, probe_labels) -> np.ndarray:
    """For each probe, the rank (1 = best) of its true identity among the gallery identities;
    every probe identity must be enrolled (closed set)."""
    g, gl, p, pl = _checked_sets(gallery_emb, gallery_labels, probe_emb, probe_labels)
    missing = np.setdiff1d(np.unique(pl), np.unique(gl))
    if missing.size:
        raise ValueError(
            f"{missing.size} probe identities are not in the gallery (e.g. {missing[:5].tolist()}); "
            "closed-set identification needs every probe identity enrolled; "
            "use split_gallery_probe to build a valid split, or dir_at_far for open-set search"
        )
    return _true_identity_scores(g, gl, p, pl)[0]


def cmc(gallery_emb, gallery_labels, probe_emb, probe_labels, max_rank: int | None = None):
    """The cumulative match characteristic: ``curve[r - 1]`` is the fraction of probes whose
    true identity is among the ``r`` gallery identities with the highest cosine similarity.

    ``r`` runs from 1 to ``max_rank`` (default: the number of gallery identities, where the curve
    reaches 1.0). The curve never decreases; ``curve[0]`` is the rank-1 accuracy.
    """
    ranks = _true_identity_ranks(gallery_emb, gallery_labels, probe_emb, probe_labels)
    n_identities = np.unique(_labels(gallery_labels, "gallery_labels")).size
    if max_rank is None:
        max_rank = n_identities
    if int(max_rank) != max_rank or max_rank < 1:
        raise ValueError(f"max_rank must be a positive integer; got {max_rank}")
    counts = np.bincount(np.minimum(ranks, int(max_rank) + 1), minlength=int(max_rank) + 2)
    return np.cumsum(counts[1 : int(max_rank) + 1]) / ranks.size


def rank_k_accuracy(gallery_emb, gallery_labels, probe_emb, probe_labels, k: int = 1) -> float:
    """The fraction of probes whose true identity is among the top ``k`` gallery identities.

    ``k=1`` is the usual "identification accuracy": is the best match the right person?
    """
    if int(k) != k or k < 1:
        raise ValueError(f"k must be a positive integer; got {k}")
    return float(cmc(gallery_emb, gallery_labels, probe_emb, probe_labels, max_rank=int(k))[-1])


def dir_at_far(gallery_emb, gallery_labels, probe_emb, probe_labels, far):
    """Open-set identification: the detection and identification rate at a false alarm rate.

    Probes whose identity is in the gallery are *mated*, the others *non-mated* (both kinds
    must be present). Each search returns the gallery identity with the highest cosine score.

    1. The threshold ``t`` is the ``(k+1)``-th highest best score among the non-mated probes,
       ``k = floor(far * num_non_mated)``, and a search *passes* iff its score is ``> t``. So at
       most a fraction ``far`` of non-mated probes raise a false alarm (fewer when scores tie
       at ``t``: the reading is conservative, like ``tar_at_far(..., "conservative")``). With
       ``far = 1`` every search passes.
    2. DIR is the fraction of mated probes whose true identity is rank 1 (ties count against
       it, as in :func:`cmc`) and whose score passes ``t``.

    At ``far = 1`` DIR is the rank-1 accuracy of the mated probes; it can only fall as ``far``
    shrinks. ``far`` may be one number (returns a float) or a sequence (returns an array).
    A ``far`` below ``1 / num_non_mated`` is measured as "no false alarm at all".
    """
    g, gl, p, pl = _checked_sets(gallery_emb, gallery_labels, probe_emb, probe_labels)
    fars = np.atleast_1d(np.asarray(far, dtype=np.float64))
    if fars.size == 0 or np.any(~(fars > 0) | (fars > 1)):
        raise ValueError(f"far must be in (0, 1]; got {far}")
    ranks, true_scores, top_scores = _true_identity_scores(g, gl, p, pl)
    mated = np.isin(pl, gl)
    n_mated, n_non_mated = int(mated.sum()), int((~mated).sum())
    if n_mated == 0 or n_non_mated == 0:
        raise ValueError(f"open-set search needs mated and non-mated probes; got {n_mated} mated "
                         f"and {n_non_mated} non-mated (probe identities absent from the gallery)")
    alarms = np.sort(top_scores[~mated])[::-1]  # best scores of non-mated probes, high to low
    # floor(far * n), with a little slack so that e.g. 0.3 * 10 counts as 3, not 2.999...
    allowed = np.floor(fars * n_non_mated + 1e-9).astype(np.int64)
    thresholds = np.where(allowed < n_non_mated, alarms[np.minimum(allowed, n_non_mated - 1)], -np.inf)
    hit = (ranks[mated] == 1)[None, :] & (true_scores[mated][None, :] > thresholds[:, None])
    rates = hit.mean(axis=1)
    return float(rates[0]) if np.ndim(far) == 0 else rates


def split_gallery_probe(labels, gallery_per_class: int = 1, seed: int = 0):
    """Split labelled faces into a gallery and probes for closed-set identification.

    For each identity, ``gallery_per_class`` faces chosen at random (fixed by ``seed``) are
    enrolled in the gallery and the rest become probes. An identity with no more faces than
    that goes to the gallery entirely: it has no probes but still competes as a distractor.

    Returns ``(gallery_idx, probe_idx)``, sorted index arrays into ``labels``.
    """
    lab = _labels(labels)
    if int(gallery_per_class) != gallery_per_class or gallery_per_class < 1:
        raise ValueError(f"gallery_per_class must be a positive integer; got {gallery_per_class}")
    rng = np.random.default_rng(seed)
    _, codes = np.unique(lab, return_inverse=True)
    codes = codes.ravel()
    in_gallery = np.zeros(lab.size, dtype=bool)
    order = np.argsort(codes, kind="stable")
    boundaries = np.flatnonzero(np.diff(codes[order])) + 1
    for members in np.split(order, boundaries):
        chosen = rng.permutation(members)[: int(gallery_per_class)]
        in_gallery[chosen] = True
    if in_gallery.all():
        raise ValueError(
            f"no probes left: no identity has more than gallery_per_class={gallery_per_class} "
            "faces; lower gallery_per_class or use more faces per identity"
        )
    return np.flatnonzero(in_gallery), np.flatnonzero(~in_gallery)
