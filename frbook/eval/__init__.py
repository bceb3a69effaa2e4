"""Evaluation as the field reports it.

``frbook.eval.verification``: pairs of faces, same person or not. k-fold accuracy with learned
thresholds (InsightFace's LFW/CFP-FP/AgeDB protocol), ROC, AUC, TAR@FAR (two labelled readings),
EER, and :func:`verify`, which runs them all and returns a :class:`VerificationReport`.

``frbook.eval.identification``: a probe searched against a gallery. Rank-k accuracy and the CMC
curve, ranking identities by their best-matching gallery image.

:func:`embed` runs a backbone over a data set: the step between training and evaluation.
"""

from .embed import embed
from .identification import cmc, rank_k_accuracy, split_gallery_probe
from .verification import (
    DEFAULT_THRESHOLDS,
    KFoldResult,
    VerificationReport,
    as_numpy,
    auc,
    cosine_scores,
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
    "eer",
    "embed",
    "kfold_accuracy",
    "make_pairs",
    "rank_k_accuracy",
    "roc",
    "split_gallery_probe",
    "squared_distance",
    "tar_at_far",
    "verify",
]
