"""The trainer's periodic evaluation: a few verification numbers per target, by name.

Targets (``eval.targets`` of a training config):

* ``synth``: the held-out validation identities of a SynthFaces run (never trained on); pairs
  drawn from their labels, as :func:`frbook.eval.evaluate` does for a SynthFaces target.
* ``val`` with ``data.kind: lfw``: the validation fold's 600 pairs (:mod:`frbook.train.data`), for
  picking a best checkpoint on pairs that are not the test's.
* ``heldout`` with ``data.kind: folder`` or ``rec`` and ``data.test_identities``: the people held
  out of the folder's training; pairs drawn from their labels (all genuine pairs, as many impostors).
* ``lfw`` with ``data.kind: lfw``: the 600 pairs of the test fold, LFW's "unrestricted, no
  outside data" protocol (the fold's people are not in the training set). The accuracy's
  threshold is cross-validated inside the fold: ten sub-folds (fewer for a tiny fold) of 30
  matched + 30 mismatched pairs, each scored with the threshold learned on the other nine, so no
  pair is scored with a threshold fitted to it. AUC and EER need no threshold.
* ``lfw`` with other training data: all 6,000 pairs, the usual 10-fold protocol.
* a ``.bin`` path: an InsightFace verification set (AgeDB-30, CFP-FP, ...), its 10-fold protocol.

Each yields ``{"<name>/accuracy", "<name>/auc", "<name>/eer"}``; ``<name>`` is ``synth``, ``val``,
``lfw`` or the file's stem.
"""
from __future__ import annotations

from pathlib import Path

import torch

from ..data.decoded import PairFaces
from ..eval import embed, evaluate, verify

__all__ = ["make_evaluators", "pair_report", "target_names"]


@torch.no_grad()
def pair_report(model, pairs: PairFaces, flip: bool = True, batch_size: int = 256, device=None, fars=(1e-2, 1e-3),
                title: str | None = None):
    """The :class:`~frbook.eval.VerificationReport` of a set of pairs (an LFW fold)."""
    embeddings, _ = embed(model, pairs, device=device, flip=flip, batch_size=batch_size)
    return verify(embeddings, pairs=pairs.pairs, n_folds=pairs.n_folds, fars=fars, title=title)


def _metrics(name: str, report) -> dict:
    return {f"{name}/accuracy": float(report.accuracy), f"{name}/auc": float(report.auc),
            f"{name}/eer": float(report.eer)}


def target_names(config: dict) -> list[str]:
    """The metric prefix of each of the config's ``eval.targets``."""
    return [t if t in ("synth", "val", "lfw", "heldout") else Path(t).stem for t in config["eval"]["targets"]]


def make_evaluators(config: dict, data=None, device=None, progress: bool = False) -> dict:
    """``{name: evaluate(model) -> metrics}`` for each of the config's ``eval.targets``; ``data``
    is the run's :class:`~frbook.train.data.RunData`; ``progress``: a bar over each evaluation."""
    e, kind = config["eval"], config["data"]["kind"]
    # No TAR@FAR here: small evaluation sets have too few impostor pairs for low FARs.
    common = dict(flip=e["flip"], batch_size=e["batch_size"], device=device, fars=(), progress=progress)
    lfw_common = {k: v for k, v in common.items() if k != "progress"}  # 600 pairs: no bar needed
    evaluators = {}
    for target, name in zip(e["targets"], target_names(config)):
        if target == "synth" or (target == "val" and kind == "synth"):
            evaluators[name] = lambda model, n=name: _metrics(n, evaluate(model, data.val, **common))
        elif target == "heldout":  # the identities data.test_identities kept out of a folder's training
            evaluators[name] = lambda model, n=name: _metrics(n, evaluate(model, data.test, **common))
        elif target == "val":
            evaluators[name] = lambda model, n=name: _metrics(n, pair_report(model, data.val, **lfw_common))
        elif target == "lfw" and kind == "lfw":
            evaluators[name] = lambda model: _metrics("lfw", pair_report(model, data.test, **lfw_common))
        else:  # 'lfw' for other training data, or a .bin
            evaluators[name] = lambda model, t=target, n=name: _metrics(n, evaluate(model, t, **common))
    return evaluators
