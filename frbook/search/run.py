"""A search as one run of a comparison: the config's ``search`` section, trained and rewarded on
the run's data splits (:mod:`frbook.protocol`).

A search is written as an entry of a comparison config (:mod:`frbook.experiment`), with the
sections it changes, like any other entry::

    compare:
      losses:
        search_softmax: {search: {method: search, space: search_softmax, s: 30, candidates: 4, epochs: 8}}
        random_softmax: {search: {method: random, space: search_softmax, s: 30, candidates: 1, epochs: 8}}
        random_best: {search: {method: random_best, space: search_softmax, s: 30, candidates: 4, epochs: 8}}

Each search trains for the config's ``train.steps`` in all, split into ``search.epochs`` epochs of
``steps // epochs`` steps, with the config's optimiser (SGD: ``optim.lr``, ``optim.momentum``,
``optim.weight_decay``) and warm-up + cosine schedule (``schedule.warmup_steps``), so a search costs M trainings of the same length and schedule as
one compared loss. The reward is verification accuracy on the validation split; the test split
is used once, by the comparison, to evaluate the searched network exactly as a compared loss is
evaluated.
"""
from __future__ import annotations

import contextlib
from dataclasses import asdict
from pathlib import Path

import torch

from .. import models
from ..eval import embed, make_pairs, verify
from ..data.decoded import PairFaces
from ..heads import CosineClassifier
from ..train.config import ConfigError, model_params
from ..train.data import RunData
from ..utils import seed_everything
from .loop import SearchSettings, search
from .spaces import make_space

__all__ = ["check_search", "run_search", "settings_of", "space_of", "validation_reward"]


def space_of(config: dict):
    s = config["search"]
    return make_space(s["space"], s=s["s"], mode=s["mode"], mean=s["mean"], pieces=s["pieces"])


def settings_of(config: dict) -> SearchSettings:
    """The :class:`SearchSettings` of a config with a ``search`` section."""
    s, t, o, sched = config["search"], config["train"], config["optim"], config["schedule"]
    if t["precision"] == "fp16":
        raise ConfigError("a search runs in fp32 or bf16 (train.precision); fp16 needs a loss scaler it does not have")
    if o["name"] != "sgd" or sched["kind"] != "cosine":
        raise ConfigError("a search trains its candidates with SGD and the warm-up + cosine schedule "
                          "(optim.name: sgd, schedule.kind: cosine)")
    return SearchSettings(method=s["method"], candidates=s["candidates"], epochs=s["epochs"],
                          steps_per_epoch=t["steps"] // s["epochs"], batch_size=t["batch_size"], lr=o["lr"],
                          momentum=o["momentum"], weight_decay=o["weight_decay"], schedule="cosine",
                          warmup_steps=sched["warmup_steps"], sigma=s["sigma"], policy_lr=s["policy_lr"],
                          betas=tuple(s["betas"]), engine=s["engine"], seed=t["seed"],
                          fixed_epochs=s["fixed_epochs"], reward_every=s["reward_every"])


def check_search(config: dict, where: str = "search") -> None:
    """Build the space and the settings now, so a mistake fails before any training."""
    try:
        space_of(config), settings_of(config)
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def validation_reward(val, device, flip: bool = False):
    """The reward: verification accuracy on the validation split (SynthFaces identities, balanced
    pairs from their labels, or LFW's validation fold)."""
    def reward(backbone) -> float:
        embeddings, labels = embed(backbone, val, device=device, flip=flip)
        if isinstance(val, PairFaces):
            return verify(embeddings, pairs=val.pairs, n_folds=val.n_folds, fars=()).accuracy
        return verify(embeddings, pairs=make_pairs(labels, seed=0), fars=()).accuracy
    return reward


def run_search(config: dict, data: RunData, device, state_path=None, progress: bool = False) -> tuple:
    """Search as ``config["search"]`` says, on ``data``; returns (searched backbone, record)."""
    seed_everything(config["train"]["seed"])
    backbone = models.get(config["model"]["name"], **model_params(config))
    head = CosineClassifier(backbone.embedding_dim, data.train.num_classes)
    if config["train"]["channels_last"]:
        backbone = backbone.to(memory_format=torch.channels_last)
    settings = settings_of(config)
    # bf16: the backbone's convolutions under autocast; the heads compute their cosines in float32
    autocast = torch.autocast(torch.device(device).type, dtype=torch.bfloat16) \
        if config["train"]["precision"] == "bf16" else contextlib.nullcontext()
    with autocast:
        result = search(backbone, head, space_of(config), data.train, validation_reward(data.val, device), settings,
                        device=device, state_path=state_path, progress=progress, flip=config["data"]["flip"])
    if state_path is not None:  # finished: nothing left to resume
        Path(state_path).unlink(missing_ok=True)
    record = {"settings": asdict(settings) | {"betas": list(settings.betas)}, "history": result.history,
              "search_seconds": sum(result.column("seconds"))}
    return result.backbone, record
