"""Searches from a config file, with a result file per (search, seed): ``python -m frbook search``.

A search config is a comparison config (:mod:`frbook.experiment`: the same ``data``, ``model``,
``train``, ``eval`` and ``seeds`` sections, so its results sit beside a comparison's under one
protocol) with a ``searches`` section instead of ``losses``::

    searches:
      search_softmax: {method: search, space: search_softmax, candidates: 4, epochs: 8}
      random_softmax: {method: random, space: search_softmax, candidates: 4, epochs: 8}

Each entry trains for the protocol's ``train.steps`` in all, split into ``epochs`` epochs of
``steps // epochs`` steps, with the protocol's learning rate, weight decay and warm-up-and-cosine
schedule, so a search costs M trainings of the same length and schedule as one compared loss.
The reward is verification accuracy on the validation identities; the test identities are used
once, to evaluate the searched network, exactly as a compared loss is evaluated.

A comparison config may also hold a search among its losses, as ``LABEL: {search: {...}}`` with
the same keys (:func:`frbook.experiment.search_spec`), so one ``experiment compare`` runs fixed and
searched losses alike.
"""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import torch
import yaml

from .. import models
from ..experiment import (DEFAULTS, check_data, evaluate_test, held_out_accuracy, make_splits, merge,
                          precision, protocol_hash, run_each, run_name)
from ..heads import CosineClassifier
from ..provenance import REPO
from ..utils import pick_device, seed_everything
from .search import SearchSettings, search
from .spaces import make_space

# One entry of ``searches``: the search's settings (SearchSettings) and its space's.
SEARCH_DEFAULTS = {"method": "search", "space": "search_softmax", "s": 32.0, "mode": "global", "mean": 1.0,
                   "pieces": 6, "candidates": 8, "epochs": 20, "sigma": 0.2, "policy_lr": 0.05,
                   "betas": [0.5, 0.999], "engine": "auto"}
CONFIG_DEFAULTS = {**{k: v for k, v in DEFAULTS.items() if k != "losses"}, "searches": {}}


def load_search_config(path: str | Path) -> dict:
    """Read a search config, fill in defaults, and check every entry by building its space and settings."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no search config at {path}; the shipped ones are in {REPO / 'configs'}")
    raw = yaml.safe_load(path.read_text()) or {}
    searches = raw.pop("searches", None) or {}
    config = merge(CONFIG_DEFAULTS, raw, where=str(path))
    if not searches:
        raise ValueError(f"{path}: 'searches' is empty; e.g. 'search_softmax: {{method: search, candidates: 4}}'")
    config["searches"] = {label: check_search_entry(config, spec or {}, where=f"{path}: searches: {label}")
                          for label, spec in searches.items()}
    config["name"] = config["name"] or path.stem
    check_data(config, where=str(path))
    return config


def check_search_entry(config: dict, entry: dict, where: str) -> dict:
    """One search entry completed with :data:`SEARCH_DEFAULTS`; its space and settings are built
    now, so a mistake fails before any training, with ``where`` in the message."""
    entry = merge(SEARCH_DEFAULTS, entry, where=where)
    try:
        _space(entry), _settings(entry, config["train"], seed=0)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None
    return entry


def _space(entry: dict):
    return make_space(entry["space"], s=entry["s"], mode=entry["mode"], mean=entry["mean"], pieces=entry["pieces"])


def _settings(entry: dict, train: dict, seed: int) -> SearchSettings:
    e, t = entry, train
    if t["steps"] < e["epochs"]:
        raise ValueError(f"train.steps ({t['steps']}) must be at least the number of epochs ({e['epochs']})")
    return SearchSettings(method=e["method"], candidates=e["candidates"], epochs=e["epochs"],
                          steps_per_epoch=t["steps"] // e["epochs"], batch_size=t["batch_size"], lr=t["lr"],
                          weight_decay=t["weight_decay"], schedule="cosine", warmup_steps=t["warmup_steps"],
                          sigma=e["sigma"],
                          policy_lr=e["policy_lr"], betas=tuple(e["betas"]), engine=e["engine"], seed=seed)


def run_search(config: dict, label: str, seed: int, device=None, state_path=None, progress=False,
               entry: dict | None = None, train: dict | None = None, fold: int | None = None) -> dict:
    """Search with one seed under the config's protocol; evaluate the searched network on the test
    identities. ``entry`` and ``train`` default to the config's ``searches: label`` and ``train``."""
    device = pick_device(device)
    entry = entry if entry is not None else config["searches"][label]
    train_settings = train if train is not None else config["train"]
    train_data, val, test = make_splits(config, device, fold)
    seed_everything(seed)
    m = config["model"]
    backbone = models.get(m["name"], embedding_dim=m["embedding_dim"], in_channels=config["data"]["channels"],
                          input_size=config["data"]["size"])
    head = CosineClassifier(backbone.embedding_dim, train_data.num_classes)
    if train_settings.get("channels_last"):
        backbone = backbone.to(memory_format=torch.channels_last)
    validation = held_out_accuracy(val, device)
    settings = _settings(entry, train_settings, seed)
    with precision(train_settings, device):
        result = search(backbone, head, _space(entry), train_data, lambda b: validation(b)["val_accuracy"],
                        settings, device=device, state_path=state_path, progress=progress)
    metrics = evaluate_test(result.backbone, test, config, device)
    metrics["train_seconds"] = metrics["search_seconds"] = sum(result.column("seconds"))
    if state_path is not None:  # finished and evaluated: nothing left to resume
        Path(state_path).unlink(missing_ok=True)
    return {"label": label, "loss": entry["space"], "search": entry, "train": train_settings,
            "settings": asdict(settings) | {"betas": list(settings.betas)}, "seed": seed, "fold": fold, "metrics": metrics,
            "history": result.history}


def search_hash(config: dict) -> str:
    """The protocol's fingerprint: equal to a comparison's with the same data, model, training and evaluation."""
    return protocol_hash({k: v for k, v in config.items() if k != "searches"})


def run_config(config_path: str | Path, out_dir: str | Path | None = None, only: list[str] | None = None,
               device=None, state_dir: str | Path | None = None, progress: bool = True) -> list[Path]:
    """Run every (search, seed) of the config without a result file yet; return every result path.

    The state of a running search is saved after each epoch under ``state_dir`` (default
    ``runs/search/<name>``), so an interrupted search resumes from its last epoch.
    """
    config = load_search_config(config_path)
    out_dir = Path(out_dir or REPO / "book" / "results" / config["name"])
    state_dir = Path(state_dir or REPO / "runs" / "search" / config["name"])
    labels = only or list(config["searches"])
    unknown = sorted(set(labels) - set(config["searches"]))
    if unknown:
        raise ValueError(f"not in {config_path}: {', '.join(unknown)}; its searches: {', '.join(config['searches'])}")
    fingerprint = search_hash(config)

    def run(label, seed, fold):
        state = state_dir / f"{run_name(label, seed, fold)}-{fingerprint}.pt"
        return run_search(config, label, seed, device=device, state_path=state, progress=progress, fold=fold)

    return run_each(config, labels, out_dir, fingerprint, run, device=device, progress=progress)


__all__ = ["load_search_config", "run_config", "run_search", "search_hash"]
