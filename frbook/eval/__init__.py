"""Evaluation as the field reports it.

``frbook.eval.verification``: pairs of faces, same person or not. k-fold accuracy with learned
thresholds (InsightFace's LFW/CFP-FP/AgeDB protocol), ROC, AUC, TAR@FAR (two labelled readings),
EER, and :func:`verify`, which runs them all and returns a :class:`VerificationReport`.

``frbook.eval.identification``: a probe searched against a gallery. Rank-k accuracy and the CMC
curve, ranking identities by their best-matching gallery image; open-set search (probes of
people who are not enrolled) with the detection and identification rate :func:`dir_at_far`.

:func:`embed` runs a backbone over a data set (optionally with InsightFace's flip-sum), the step
between training and evaluation; :func:`evaluate` does every step from a model to the report,
on LFW, a ``.bin`` file or SynthFaces.
"""

from .embed import embed, embed_batch
from .evaluate import evaluate, synth_benchmark
from .identification import cmc, dir_at_far, rank_k_accuracy, split_gallery_probe
from .verification import (
    DEFAULT_THRESHOLDS,
    KFoldResult,
    VerificationReport,
    as_numpy,
    auc,
    cosine_scores,
    cross_age_pairs,
    eer,
    kfold_accuracy,
    make_pairs,
    roc,
    squared_distance,
    tar_at_far,
    verify,
)

__all__ = [
    "DEFAULT_THRESHOLDS",
    "KFoldResult",
    "VerificationReport",
    "as_numpy",
    "auc",
    "cmc",
    "cosine_scores",
    "cross_age_pairs",
    "dir_at_far",
    "eer",
    "embed",
    "embed_batch",
    "evaluate",
    "kfold_accuracy",
    "make_pairs",
    "rank_k_accuracy",
    "roc",
    "split_gallery_probe",
    "squared_distance",
    "synth_benchmark",
    "tar_at_far",
    "verify",
]
