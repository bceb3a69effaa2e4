"""What a comparison holds fixed: the entries and their runs, the evaluation of a test set, run names
and the protocol's fingerprint. (The data splits are the trainer's own, :func:`frbook.train.data.build_data`,
so that a comparison's runs and a plain training split the data alike.) The comparison (:mod:`frbook.experiment`) and the search
(:mod:`frbook.search.run`) both import it; it imports neither.

A comparison config is a training config (:mod:`frbook.train.config`, the one schema) with a
``compare`` section: ``seeds``, LFW ``folds`` and ``losses``, a mapping from a label to the sections
that entry changes. Each (label, fold, seed) is one run of the one engine (the trainer, or for an
entry with a ``search`` section the search loop built on the same pieces), evaluated once on the
test split (:func:`evaluate_test`) and written to ``<out>/<run_name>.json``.
"""
from __future__ import annotations

import hashlib
import json
import resource
import warnings

import numpy as np
import torch

from .data.decoded import PairFaces
from .eval import embed, make_pairs, rank_k_accuracy, split_gallery_probe, tar_at_far, verify
from .train.config import SCHEMA, entry_config, load_config
from .train.data import cross_age_test_pairs

__all__ = ["load_comparison", "runs", "run_name", "protocol_hash", "evaluate_test",
           "all_pairs_metrics", "ROC_GRID", "peak_memory", "memory_record", "entry_config"]

# Keys that say where or how fast a run goes, not what it computes: left out of the fingerprint.
NOT_PROTOCOL = {"data": ("path", "workers", "cache", "test_fold"),
                "train": ("device", "log_every", "compile", "seed"),
                "eval": ("every", "targets", "batch_size")}
# Keys added later, whose default computes what runs did before they existed: left out of the
# fingerprint at that default, so results written before them stay current.
NEUTRAL_DEFAULTS = {"data": {"age": 0.0, "cross_age_gap": None}}


def load_comparison(path, overrides=()) -> dict:
    """A comparison config: the training schema's :func:`~frbook.train.config.load_config` (every
    entry checked there) with at least one entry under ``compare.losses``."""
    config = load_config(path, overrides)
    if not config["compare"]["losses"]:
        from .train.config import ConfigError
        raise ConfigError(f"{path}: compare.losses is empty; list at least one entry, e.g. "
                          "compare: {losses: {arcface: {loss: {name: arcface, params: {s: 30, m: 0.5}}}}}")
    return config


def runs(config: dict, labels=None, folds=None) -> list[tuple[str, int | None, int]]:
    """(label, test fold or None, seed) of every run, label by label."""
    labels = list(config["compare"]["losses"]) if labels is None else labels
    if config["data"]["kind"] == "lfw":
        folds = config["compare"]["folds"] if folds is None else folds
    else:
        folds = [None]
    return [(label, fold, seed) for label in labels for fold in folds for seed in config["compare"]["seeds"]]


def run_name(label: str, seed: int, fold: int | None) -> str:
    """A run's file name (no suffix): ``<label>-seed<s>``, or ``<label>-fold<k>-seed<s>`` on LFW."""
    return f"{label}-seed{seed}" if fold is None else f"{label}-fold{fold}-seed{seed}"


def protocol_hash(config: dict) -> str:
    """A short fingerprint of what every run of the comparison shares (data, model, optimiser,
    schedule, training, evaluation), without the entries, the seeds, the folds, the name, and the
    keys that say where or how fast a run goes: runs that share it are comparable."""
    shared = {k: v for k, v in config.items() if k in SCHEMA and k not in ("compare", "checkpoint", "search", "loss")}
    shared = json.loads(json.dumps(shared))
    for section, keys in NOT_PROTOCOL.items():
        for key in keys:
            shared[section].pop(key, None)
    for section, defaults in NEUTRAL_DEFAULTS.items():
        for key, default in defaults.items():
            if shared[section].get(key) == default:
                del shared[section][key]
    return hashlib.sha256(json.dumps(shared, sort_keys=True).encode()).hexdigest()[:12]


def evaluate_test(model, test, config: dict, device) -> dict:
    """Verification (accuracy, AUC, EER, TAR@FAR, conservative reading) and rank-1 on the test
    identities; on LFW's test pairs (:class:`PairFaces`), verification alone; with
    ``data.cross_age_gap``, verification alone, on cross-age pairs of the test identities."""
    e = config["eval"]
    fars = tuple(e["fars"])
    if isinstance(test, PairFaces):
        embeddings, _ = embed(model, test, device=device, flip=e["flip"])
        report = verify(embeddings, pairs=test.pairs, n_folds=test.n_folds, fars=fars)
        return {"accuracy": report.accuracy, "accuracy_std": report.accuracy_std, "auc": report.auc,
                "eer": report.eer, "pairs": len(test.pairs.i),
                "tar_at_far": {f"{far:g}": report.tar[far]["conservative"] for far in fars}}
    embeddings, labels = embed(model, test, device=device, flip=e["flip"])
    if config["data"]["cross_age_gap"] is not None:  # cross-age pairs: verification across the gap alone
        pairs = cross_age_test_pairs(test, config)
        report = verify(embeddings, pairs=pairs, fars=fars)
        return {"accuracy": report.accuracy, "accuracy_std": report.accuracy_std, "auc": report.auc,
                "eer": report.eer, "pairs": len(pairs[0]), "cross_age_gap": config["data"]["cross_age_gap"],
                "tar_at_far": {f"{far:g}": report.tar[far]["conservative"] for far in fars}}
    pairs = make_pairs(labels, num_pairs=e["num_pairs"], seed=0)
    report = verify(embeddings, pairs=pairs, fars=fars)
    gallery, probe = split_gallery_probe(labels, gallery_per_class=1, seed=0)
    rank1 = rank_k_accuracy(embeddings[gallery], labels[gallery], embeddings[probe], labels[probe], k=1)
    metrics = {"accuracy": report.accuracy, "accuracy_std": report.accuracy_std, "auc": report.auc,
               "eer": report.eer, "tar_at_far": {f"{far:g}": report.tar[far]["conservative"] for far in fars},
               "rank1": rank1}
    if e["all_pairs_fars"]:
        metrics["all_pairs"] = all_pairs_metrics(embeddings, labels, e["all_pairs_fars"])
    return metrics


# The FARs at which a result file keeps its all-pairs ROC curve (for plots).
ROC_GRID = (1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0)


def all_pairs_metrics(embeddings, labels, fars) -> dict:
    """TAR at each FAR over every pair of test images, and the ROC curve on :data:`ROC_GRID`.

    The balanced pairs of :func:`evaluate_test` hold a few thousand impostor pairs, too few to
    measure a FAR of 1e-4 (one impostor in ten thousand). Every pair of 1,000 faces of 100
    identities gives about 4,500 genuine and 495,000 impostor pairs, enough down to about 1e-5.
    Scores are cosine similarities; TARs are the conservative reading (FAR at most the target).
    """
    e = torch.nn.functional.normalize(torch.as_tensor(np.asarray(embeddings), dtype=torch.float64), dim=1)
    labels = torch.as_tensor(np.asarray(labels))
    i, j = torch.triu_indices(len(e), len(e), offset=1)
    scores = (e[i] * e[j]).sum(1).numpy()
    issame = (labels[i] == labels[j]).numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a grid FAR below 1 / impostors reads as FAR = 0; counts are kept
        curve = [tar_at_far(scores, issame, far) for far in ROC_GRID]
    return {"tar_at_far": {f"{far:g}": tar_at_far(scores, issame, far) for far in fars},
            "roc": {"far": list(ROC_GRID), "tar": curve},
            "genuine_pairs": int(issame.sum()), "impostor_pairs": int((~issame).sum())}


def peak_memory(device, reset: bool = False) -> int:
    """Peak memory so far, in bytes: CUDA's allocator peak (reset on request), else the process's
    peak resident set size (ru_maxrss, a high-water mark that cannot be reset)."""
    if device.type == "cuda":
        if reset:
            torch.cuda.reset_peak_memory_stats(device)
        return torch.cuda.max_memory_allocated(device)
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def memory_record(device, before: int, after: int) -> dict:
    if device.type == "cuda":
        return {"cuda_peak_bytes": after}
    # Growth of the high-water mark during training: 0 when the run stayed below an earlier peak
    # of the same process (an earlier run, data generation), so it is a lower bound on its cost.
    return {"maxrss_growth_bytes": after - before}
