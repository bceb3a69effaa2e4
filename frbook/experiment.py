"""Comparing losses fairly: one protocol, several seeds (and LFW folds), one result file per run.

A comparison is a training config (:mod:`frbook.train.config`, the one schema) with a ``compare``
section (:mod:`frbook.protocol`)::

    compare:
      seeds: [0, 1, 2]
      losses:
        softmax: {loss: {name: softmax}}
        arcface: {loss: {name: arcface, params: {s: 30, m: 0.5}}}
        p2sgrad: {loss: {name: p2sgrad}, optim: {lr: 3.0}}
        arcface_tml: {loss: {name: arcface, params: {s: 30, m: 0.5}, aux: tml, tml: {weight: 0.5}}}
        search_softmax: {search: {method: search, s: 30, candidates: 4, epochs: 8, engine: loop}}

:func:`compare` runs every (label, fold, seed) with the one engine: the trainer
(:class:`frbook.train.Trainer`), or, for an entry with a ``search`` section, the search loop
(:mod:`frbook.search.run`), which trains with the trainer's pieces. Each run is evaluated once on
the test split and written to ``<out>/<run_name>.json`` with its config, metrics and provenance.
A run whose file holds the same protocol and entry is not repeated, and an interrupted training
resumes from its last checkpoint (``runs/<name>/<run_name>/``), so a comparison resumes where it
stopped. A training that diverges (a non-finite loss) writes no file; the other runs go on, and
:class:`DivergedRuns` names it at the end.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import sys
import time
from pathlib import Path


from . import protocol
from .losses.tml import FusedModel
from .provenance import REPO, provenance, write_json_atomic
from .search.run import check_search, run_search
from .train.checkpointing import read_run
from .train.config import ConfigError, compatible, entry_config
from .train.data import build_data
from .train.distributed import World
from .utils import pick_device

__all__ = ["compare", "load_comparison", "run_one", "entry_hash", "DivergedRuns"]


class DivergedRuns(RuntimeError):
    """Raised by :func:`compare` after all its runs when some trainings diverged (a non-finite loss)."""


def load_comparison(path, overrides=()) -> dict:
    """:func:`frbook.protocol.load_comparison`, with every search entry's space and settings built."""
    config = protocol.load_comparison(path, overrides)
    for label in config["compare"]["losses"]:
        run = entry_config(config, label)
        if run["search"]["method"] != "none":
            check_search(run, where=f"{path}: compare.losses.{label}")
    return config


def entry_hash(config: dict, label: str) -> str:
    """A short fingerprint of one entry's changes: a result file of an edited entry is re-run."""
    entry = config["compare"]["losses"][label]
    return hashlib.sha256(json.dumps(entry, sort_keys=True).encode()).hexdigest()[:12]


def run_one(config: dict, label: str, seed: int, fold: int | None = None, device=None, progress: bool = False,
            run_dir: Path | None = None) -> dict:
    """Train (or search) the entry ``label`` with ``seed`` (on LFW, test fold ``fold``) and
    evaluate it once on the test split; return the result record (without provenance)."""
    device = pick_device(device)
    run = entry_config(config, label, seed=seed, fold=fold)
    run["train"]["device"] = str(device)
    run_dir = Path(run_dir or REPO / "runs" / config["name"] / protocol.run_name(label, seed, fold))
    before = protocol.peak_memory(device, reset=True)
    start = time.perf_counter()
    record = {"label": label, "seed": seed, "fold": fold}
    if run["search"]["method"] != "none":
        data = build_data(run, device)
        backbone, searched = run_search(run, data, device, state_path=run_dir / "search_state.pt", progress=progress)
        record.update(loss=run["search"]["space"], search=run["search"], **searched)
        metrics = protocol.evaluate_test(backbone, data.test, run, device)
    else:
        from .train.trainer import Trainer  # the engine, imported on use (it is the heaviest module)

        last = run_dir / "last.pt"
        saved = read_run(last)["training"] if last.exists() else None
        if saved is not None and compatible(saved["config"], run):
            shutil.rmtree(run_dir)  # a checkpoint of an older protocol or entry: start this run afresh
            saved = None
        trainer = Trainer(run, out_dir=run_dir, world=World(device=device), progress=progress)
        if saved is not None and saved["step"] >= trainer.total:
            trainer.restore(last)  # trained before the result was written: evaluate it
        else:
            trainer.run(resume="auto")
        metrics = protocol.evaluate_test(trainer.backbone, trainer.data.test, run, device)
        if run["loss"]["aux"] == "tml":
            metrics["fused"] = protocol.evaluate_test(FusedModel(trainer.backbone, trainer.loss), trainer.data.test,
                                                      run, device)
        record.update(loss=run["loss"]["name"], loss_params=trainer.loss.hparams(),
                      history=_history(run_dir / "metrics.jsonl"))
    metrics["train_seconds"] = time.perf_counter() - start
    metrics.update(protocol.memory_record(device, before, protocol.peak_memory(device)))
    record.update(metrics=metrics, config=run)
    return record


def _history(path: Path, keep: int = 50) -> list[dict]:
    """About ``keep`` evenly spaced training records of a run's metrics.jsonl, and every evaluation."""
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    every = max(1, len(records) // keep)
    return [r for i, r in enumerate(records) if i % every == 0 or "loss" not in r or i == len(records) - 1]


def compare(config_path, out_dir=None, only: list[str] | None = None, device=None, progress: bool = True,
            folds: list[int] | None = None, overrides=(), runs_dir=None) -> list[Path]:
    """Run every (label, fold, seed) of the comparison that has no result file of this protocol
    and entry yet; return every result path. ``only`` restricts the labels, ``folds`` LFW's folds;
    the runs' checkpoints and logs go to ``runs_dir`` (default ``runs/<name>``)."""
    config = load_comparison(config_path, overrides)
    labels = only or list(config["compare"]["losses"])
    unknown = sorted(set(labels) - set(config["compare"]["losses"]))
    if unknown:
        raise ConfigError(f"not in {config_path}: {', '.join(unknown)}; its entries: "
                          f"{', '.join(config['compare']['losses'])}")
    if folds is not None:
        if config["data"]["kind"] != "lfw":
            raise ConfigError(f"{config_path}: --folds is for LFW comparisons (data.kind: lfw)")
        extra = sorted(set(folds) - set(config["compare"]["folds"]))
        if extra:
            raise ConfigError(f"folds {extra} are not in {config_path}; its folds: {config['compare']['folds']}")
    out_dir = Path(out_dir or REPO / "book" / "results" / config["name"])
    fingerprint, paths, diverged = protocol.protocol_hash(config), [], []
    for label, fold, seed in protocol.runs(config, labels, folds):
        path = out_dir / f"{protocol.run_name(label, seed, fold)}.json"
        paths.append(path)
        if path.exists():
            old = json.loads(path.read_text())
            if old.get("protocol") == fingerprint and old.get("entry") == entry_hash(config, label):
                continue
        if progress:
            print(f"[{config['name']}] {label}, seed {seed}" + ("" if fold is None else f", test fold {fold}")
                  + " ...", flush=True)
        run_dir = Path(runs_dir or REPO / "runs" / config["name"]) / protocol.run_name(label, seed, fold)
        try:
            result = run_one(config, label, seed, fold, device=device, progress=progress, run_dir=run_dir)
        except FloatingPointError as exc:  # one diverged training must not stop the comparison's other runs
            diverged.append(f"{protocol.run_name(label, seed, fold)}: {exc}")
            print(f"[{config['name']}] {diverged[-1]}", file=sys.stderr, flush=True)
            continue
        result.update(comparison=config["name"], protocol=fingerprint, entry=entry_hash(config, label),
                      provenance=provenance(pick_device(device)))
        write_json_atomic(path, result)
        if progress:
            print(f"    accuracy {result['metrics']['accuracy']:.4f}  ->  {path}", flush=True)
    if diverged:
        raise DivergedRuns(f"{len(diverged)} of {len(paths)} runs diverged and wrote no result file "
                           "(the others did):\n  " + "\n  ".join(diverged))
    return paths
