"""The trainer's periodic evaluation: a few verification numbers per target, by name.

Targets (``eval.targets`` of a training config):

* ``synth``: the held-out SynthFaces identities of the run (never trained on); pairs drawn from
  their labels, as :func:`frbook.eval.evaluate` does for a SynthFaces target.
* ``heldout`` with ``data.kind: folder`` or ``rec`` and ``data.test_identities``: the people held
  out of the folder's training; pairs drawn from their labels (all genuine pairs, as many impostors).
* ``lfw`` with ``data.kind: lfw``: the 600 pairs of the test fold, LFW's "unrestricted, no
  outside data" protocol (the fold's people are not in the training set). The accuracy's
  threshold is cross-validated inside the fold: ten sub-folds (fewer for a tiny fold) of 30 matched + 30 mismatched
  pairs, each scored with the threshold learned on the other nine, so no pair is scored with a
  threshold fitted to it. AUC and EER need no threshold.
* ``lfw`` with other training data: all 6,000 pairs, the usual 10-fold protocol.
* a ``.bin`` path: an InsightFace verification set (AgeDB-30, CFP-FP, ...), its 10-fold protocol.

Each yields ``{"<name>/accuracy", "<name>/auc", "<name>/eer"}``; ``<name>`` is ``synth``,
``lfw`` or the file's stem.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ..data import LFW
from ..eval import embed, evaluate, verify

__all__ = ["make_evaluators", "lfw_fold_report", "interleave_fold"]


def interleave_fold(pairs) -> tuple[np.ndarray, int]:
    """(an order of one LFW fold's pairs, a number of sub-folds) such that each sub-fold holds
    as many matched as mismatched pairs; pairs.txt lists a fold's matched pairs first."""
    same, diff = np.flatnonzero(pairs.issame), np.flatnonzero(~pairs.issame)
    n_folds = next((k for k in (10, 5, 2) if len(same) == len(diff) and len(same) % k == 0), 1)
    order = [np.concatenate([s, d]) for s, d in zip(np.split(same, n_folds), np.split(diff, n_folds))]
    return np.concatenate(order), n_folds


@torch.no_grad()
def lfw_fold_report(model, lfw: LFW, fold: int, flip: bool = True, batch_size: int = 256, device=None,
                    fars=(1e-2, 1e-3), progress: bool = False):
    """The :class:`~frbook.eval.VerificationReport` of one LFW fold (see the module docstring)."""
    pairs = lfw.pairs(fold)
    items = np.unique(np.concatenate([pairs.i, pairs.j]))
    loader = torch.utils.data.DataLoader(torch.utils.data.Subset(lfw, items.tolist()), batch_size=batch_size)
    batches = tqdm(loader, desc=f"embedding {len(items)} LFW images", unit="batch", disable=not progress, leave=False)
    embeddings, _ = embed(model, batches, device=device, flip=flip)
    order, n_folds = interleave_fold(pairs)
    rows = (np.searchsorted(items, pairs.i[order]), np.searchsorted(items, pairs.j[order]), pairs.issame[order])
    return verify(embeddings, pairs=rows, n_folds=n_folds, fars=fars,
                  title=f"LFW fold {fold} ({len(order)} pairs), {'flip-sum' if flip else 'single'} embeddings")


def _metrics(name: str, report) -> dict:
    return {f"{name}/accuracy": float(report.accuracy), f"{name}/auc": float(report.auc),
            f"{name}/eer": float(report.eer)}


def make_evaluators(config: dict, synth_val=None, lfw: LFW | None = None, device=None,
                    progress: bool = False) -> dict:
    """``{name: evaluate(model) -> metrics}`` for each of the config's ``eval.targets``;
    ``progress``: a bar over each evaluation's embedding."""
    e, d = config["eval"], config["data"]
    # No TAR@FAR here: small evaluation sets have too few impostor pairs for low FARs.
    common = dict(flip=e["flip"], batch_size=e["batch_size"], device=device, fars=(), progress=progress)
    evaluators = {}
    for target in e["targets"]:
        if target == "synth":
            evaluators["synth"] = lambda model: _metrics("synth", evaluate(model, synth_val, **common))
        elif target == "heldout":  # the identities data.test_identities kept out of training
            evaluators["heldout"] = lambda model: _metrics("heldout", evaluate(model, synth_val, **common))
        elif target == "lfw" and lfw is not None:
            evaluators["lfw"] = lambda model: _metrics("lfw", lfw_fold_report(model, lfw, d["test_fold"], **common))
        elif target == "lfw":
            evaluators["lfw"] = lambda model: _metrics("lfw", evaluate(model, "lfw", **common))
        else:
            name = Path(target).stem
            evaluators[name] = lambda model, t=target, n=name: _metrics(n, evaluate(model, t, **common))
    return evaluators
