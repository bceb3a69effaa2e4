"""Comparing losses fairly: one protocol, several seeds, one result file per run.

A comparison is a YAML file (see ``configs/compare_*.yaml``) that fixes the data, the backbone,
the training budget and the evaluation, and lists the losses to compare. :func:`compare` trains
every (loss, seed) pair under that protocol and writes ``<out>/<label>-seed<k>.json`` with the
metrics and the provenance of the run. A run whose file already exists for the same protocol is
not repeated, so an interrupted comparison resumes where it stopped.

The data are SynthFaces (``data.kind: synth``, the default: train, validation and test identities
drawn apart) or LFW's "unrestricted, no outside data" protocol (``data.kind: lfw``): for each test
fold k of ``folds``, train on every person outside folds k and k+1, reward a search on fold k+1's
600 pairs (the validation fold; nothing else reads it), and test on fold k's 600 pairs; the result
files are then ``<label>-fold<k>-seed<s>.json``.
"""
from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import resource
import time
import warnings
from pathlib import Path

import numpy as np
import torch
import yaml

from . import losses, models
from .data import LFW, identity_splits
from .data.decoded import DecodedFaces, PairFaces, decode_all
from .data.noise import NoisyLabels
from .eval import embed, make_pairs, rank_k_accuracy, split_gallery_probe, tar_at_far, verify
from .heads import make_head
from .losses.tml import FusedModel, TransformerMetricLoss
from .provenance import REPO, provenance, write_json_atomic
from .train import fit
from .train.evaluation import interleave_fold
from .utils import pick_device, seed_everything

# Keys added after results were first written, with the value that means "as before": left at that
# value they stay out of the protocol's fingerprint, so older result files still match.
NEUTRAL = {"data": {"label_noise": 0.0, "kind": "synth", "crop": None, "flip": False},
           "train": {"precision": "fp32", "channels_last": False}, "eval": {"every": 0, "all_pairs_fars": [], "flip": False}}

# The keys a comparison config may have, with their defaults: anything else is a typo.
DEFAULTS = {
    "name": None,
    "data": {"train_identities": 400, "val_identities": 50, "test_identities": 100,
             "images_per_identity": 20, "test_images_per_identity": 10, "size": 64,
             "channels": 1, "difficulty": 0.5, "seed": 0, "label_noise": 0.0,
             # LFW (kind: lfw) reads only these and size, channels: the others are SynthFaces'
             "kind": "synth", "path": None, "crop": None, "flip": False},
    "model": {"name": "small_cnn", "embedding_dim": 64},
    "train": {"steps": 600, "batch_size": 128, "lr": 0.1, "warmup_steps": 0, "weight_decay": 5e-4,
              # GPU speed: bf16 autocast for the backbone (heads stay in float32), NHWC memory layout
              "precision": "fp32", "channels_last": False},
    "eval": {"num_pairs": 6000, "fars": [1e-3, 1e-4], "every": 0, "all_pairs_fars": [], "flip": False},
    "seeds": [0, 1, 2],
    "folds": [0],  # LFW's test folds (data.kind: lfw)
    "losses": {},
}


def load_config(path: str | Path) -> dict:
    """Read a comparison config and fill in defaults; unknown keys are errors that name the key."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no comparison config at {path}; the shipped ones are in {REPO / 'configs'}")
    raw = yaml.safe_load(path.read_text()) or {}
    config = merge(DEFAULTS, raw, where=str(path))
    if not config["losses"]:
        raise ValueError(f"{path}: 'losses' is empty; list at least one, e.g. 'arcface: {{s: 30, m: 0.5}}'")
    for label in config["losses"]:
        name, params, train, tml = split_loss_spec(config, label)
        merge(config["train"], train, where=f"{path}: losses: {label}: train")
        if search_spec(config, label, where=str(path)) is not None:
            continue
        losses.get(name, **params)  # fails now, with the loss's own message, not after hours
        if tml is not None:
            try:
                with torch.device("meta"):
                    _build(config, name, params, tml, num_classes=2)
            except (ValueError, TypeError) as exc:
                raise ValueError(f"{path}: losses: {label}: tml: {exc}") from None
    config["name"] = config["name"] or path.stem
    check_data(config, where=str(path))
    return config


def check_data(config: dict, where: str) -> None:
    """The data's kind, LFW's folds and the training precision: wrong values fail before any training.
    A SynthFaces config loses the ``folds`` key, which only LFW has."""
    d = config["data"]
    if config["train"]["precision"] not in ("fp32", "bf16"):
        raise ValueError(f"{where}: train: precision must be 'fp32' or 'bf16', got {config['train']['precision']!r}")
    if d["kind"] not in ("synth", "lfw"):
        raise ValueError(f"{where}: data: kind must be 'synth' or 'lfw', got {d['kind']!r}")
    if d["kind"] == "synth":
        if config.pop("folds") != DEFAULTS["folds"]:
            raise ValueError(f"{where}: folds are LFW's test folds; SynthFaces (data.kind: synth) has none")
    else:
        folds = config["folds"]
        if not folds or not all(isinstance(k, int) and 0 <= k < 10 for k in folds):
            raise ValueError(f"{where}: folds must be a list of LFW test folds in 0..9, got {folds!r}")
        if d["label_noise"] or config["eval"]["all_pairs_fars"]:
            raise ValueError(f"{where}: label_noise and all_pairs_fars are SynthFaces settings; LFW has neither")


def folds_of(config: dict) -> list:
    """The test folds a comparison runs: LFW's, or [None] for SynthFaces (one split)."""
    return list(config["folds"]) if config["data"]["kind"] == "lfw" else [None]  # check_data drops synth's


def split_loss_spec(config: dict, label: str) -> tuple[str, dict, dict, dict | None]:
    """A loss entry -> (registry name, loss parameters, training overrides, tml parameters or None).

    An entry is ``{loss: NAME, PARAM: VALUE, ..., train: {KEY: VALUE}, tml: {KEY: VALUE}}``;
    ``loss`` defaults to the label, ``train`` overrides the shared training settings for this
    entry only (a loss whose gradient has another scale, such as P2SGrad, may need its own
    learning rate), and ``tml`` (a mapping, possibly empty) adds the transformer-metric loss with
    those parameters of :class:`frbook.tml.TransformerMetricLoss`.
    """
    spec = dict(config["losses"][label] or {})
    spec.pop("search", None)  # a searched loss: see search_spec
    name = spec.pop("loss", label)
    train = spec.pop("train", None) or {}
    tml = spec.pop("tml", None)
    if tml is not None and not isinstance(tml, dict):
        raise ValueError(f"losses: {label}: tml must be a mapping of parameters (weight, depth, ...), got {tml!r}")
    return name, spec, train, tml


def search_spec(config: dict, label: str, where: str = "") -> dict | None:
    """The search settings of an entry ``{search: {method: search, candidates: 4, ...}}``, checked
    and completed with :data:`frbook.search.run.SEARCH_DEFAULTS`; None for a fixed loss.

    Such an entry is not one loss but a loss search (Search-Softmax, Random-Softmax, AM-LFS) that
    trains under the same protocol; see :mod:`frbook.search.run`."""
    spec = config["losses"][label] or {}
    if "search" not in spec:
        return None
    from .search.run import check_search_entry  # the search builds on this module

    extra = sorted(set(spec) - {"search", "train"})
    if extra:
        raise ValueError(f"{where}: losses: {label}: a search entry takes only 'search' and 'train', "
                         f"not {', '.join(extra)}")
    return check_search_entry(config, spec["search"] or {}, where=f"{where}: losses: {label}: search")


def _build(config: dict, name: str, params: dict, tml: dict | None, num_classes: int):
    """(backbone, loss) of one entry: the registry's loss, or the transformer-metric loss around it."""
    m, d = config["model"], config["data"]
    model = models.get(m["name"], embedding_dim=m["embedding_dim"], in_channels=d["channels"], input_size=d["size"])
    if tml is None:
        return model, losses.get(name, **params)
    return model, TransformerMetricLoss.for_backbone(model, num_classes, base_loss=name, base_params=params, **tml)


def merge(defaults: dict, given: dict, where: str) -> dict:
    out = copy.deepcopy(defaults)
    for key, value in given.items():
        if key not in defaults:
            raise ValueError(f"{where}: unknown key {key!r}; known keys: {', '.join(defaults)}")
        if isinstance(defaults[key], dict) and key != "losses":
            if not isinstance(value, dict):
                raise ValueError(f"{where}: {key!r} must be a mapping, got {value!r}")
            out[key] = merge(defaults[key], value, f"{where}: {key}")
        else:
            out[key] = value
    return out


def protocol_hash(config: dict) -> str:
    """A short fingerprint of everything but the list of losses and seeds: runs that share it are comparable."""
    shared = {k: v for k, v in config.items() if k not in ("losses", "seeds", "name", "folds")}
    for section, keys in NEUTRAL.items():
        shared[section] = {k: v for k, v in shared[section].items() if not (k in keys and v == keys[k])}
    shared["data"] = {k: v for k, v in shared["data"].items() if k != "path"}  # where the data lives, not what
    return hashlib.sha256(json.dumps(shared, sort_keys=True).encode()).hexdigest()[:12]


def run_one(config: dict, label: str, seed: int, device=None, progress: bool = False, fold: int | None = None) -> dict:
    """Train one loss with one seed under the config's protocol and evaluate it on test identities
    (for LFW, on test fold ``fold``)."""
    device = pick_device(device)
    name, spec, train_overrides, tml = split_loss_spec(config, label)
    searched = search_spec(config, label)
    if searched is not None:
        from .search.run import run_search

        state = REPO / "runs" / "search" / config["name"] / f"{run_name(label, seed, fold)}-{protocol_hash(config)}.pt"
        return run_search(config, label, seed, device=device, entry=searched, progress=progress,
                          train=merge(config["train"], train_overrides, where=label), state_path=state, fold=fold)
    train, val, test = make_splits(config, device, fold)

    seed_everything(seed)
    model, loss = _build(config, name, spec, tml, train.num_classes)
    head = make_head(loss, model.embedding_dim, train.num_classes)
    t = merge(config["train"], train_overrides, where=label)
    if t["channels_last"]:
        model = model.to(memory_format=torch.channels_last)
    peak_before = _peak_memory(device, reset=True)
    start = time.perf_counter()
    with precision(t, device):
        history = fit(model, head, loss, train, steps=t["steps"], batch_size=t["batch_size"], lr=t["lr"],
                      warmup_steps=t["warmup_steps"], weight_decay=t["weight_decay"], seed=seed,
                      device=device, progress=progress,
                      evaluate=held_out_accuracy(val, device) if config["eval"]["every"] else None,
                      evaluate_every=config["eval"]["every"])
    train_seconds = time.perf_counter() - start
    peak_after = _peak_memory(device)

    metrics = evaluate_test(model, test, config, device)
    metrics.update(train_seconds=train_seconds, final_train_loss=history.last["loss"], **_memory_record(
        device, peak_before, peak_after))
    if tml is not None:
        metrics["fused"] = evaluate_test(FusedModel(model, loss), test, config, device)
    return {
        "label": label, "loss": name, "loss_params": loss.hparams(), "train": t, "seed": seed, "fold": fold,
        "metrics": metrics, "history": thin(history.records, 50),
    }


def precision(train: dict, device) -> contextlib.AbstractContextManager:
    """The training's precision: bf16 autocast when ``train.precision`` says so (the backbone's
    convolutions and matrix products in bf16; the heads compute their cosines in float32)."""
    if train["precision"] == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def run_name(label: str, seed: int, fold: int | None) -> str:
    """A run's file name (no suffix): ``<label>-seed<s>``, or ``<label>-fold<k>-seed<s>`` on LFW."""
    return f"{label}-seed{seed}" if fold is None else f"{label}-fold{fold}-seed{seed}"


def make_splits(config: dict, device, fold: int | None = None) -> tuple:
    """(train, validation, test) of the config's data section. SynthFaces: disjoint identities;
    validation and test with ``test_images_per_identity`` images each, train with the label noise
    the config asks for. LFW: :func:`lfw_splits` of test fold ``fold``."""
    d = config["data"]
    if d["kind"] == "lfw":
        return lfw_splits(config, fold, device)
    common = dict(size=d["size"], channels=d["channels"], difficulty=d["difficulty"], device=device)
    train, _, _ = identity_splits(d["train_identities"], d["val_identities"], d["test_identities"],
                                  seed=d["seed"], images_per_identity=d["images_per_identity"], **common)
    _, val, test = identity_splits(d["train_identities"], d["val_identities"], d["test_identities"],
                                   seed=d["seed"], images_per_identity=d["test_images_per_identity"], **common)
    if d["label_noise"]:
        train = NoisyLabels(train, d["label_noise"], seed=d["seed"])
    return train, val, test


_LFW_IMAGES: dict = {}  # decoded once per process: several runs of a comparison share them


def lfw_splits(config: dict, fold: int, device) -> tuple:
    """LFW unrestricted, no outside data, for test fold ``fold``: (train, validation, test).

    The validation fold is the next one, ``(fold + 1) % 10``; pairs.txt's folds are
    person-disjoint, so training on everyone outside both folds leaves the validation pairs (a
    search's reward) and the test pairs unseen. Train: :class:`DecodedFaces` (random flips when
    ``data.flip``); validation and test: :class:`PairFaces`. Everything sits on ``device``.
    """
    d = config["data"]
    key = (d["path"], d["channels"], d["crop"], d["size"])
    if key not in _LFW_IMAGES:
        lfw = LFW(d["path"], channels=d["channels"], crop=d["crop"], size=d["size"])
        _LFW_IMAGES[key] = lfw, decode_all(lfw)
    lfw, images = _LFW_IMAGES[key]
    images = images.to(device)
    val_fold = (fold + 1) % lfw.num_folds
    held_out = lfw.fold_identities(fold) | lfw.fold_identities(val_fold)
    labels = lfw.labels
    items = [k for k, label in enumerate(labels.tolist()) if lfw.identities[label] not in held_out]
    renumbered = torch.unique(labels[items], return_inverse=True)[1]  # 0 .. K-1, in LFW's order
    train = DecodedFaces(images[items], renumbered, flip=d["flip"])
    return train, _fold_pairs(images, lfw, val_fold), _fold_pairs(images, lfw, fold)


def _fold_pairs(images, lfw: LFW, fold: int) -> PairFaces:
    """One fold's 600 pairs, reordered so each of the ten contiguous sub-folds that verify's
    accuracy cross-validates its threshold over holds 30 matched and 30 mismatched pairs (the
    trainer's LFW evaluation does the same; pairs.txt lists a fold's matched pairs first)."""
    i, j, issame = lfw.pairs(fold)
    order, n_folds = interleave_fold(lfw.pairs(fold))
    return PairFaces(images, (i[order], j[order], issame[order]), n_folds=n_folds)


def evaluate_test(model, test, config: dict, device) -> dict:
    """Verification (accuracy, AUC, EER, TAR@FAR, conservative reading) and rank-1 on the test
    identities; on LFW's test pairs (:class:`PairFaces`), verification alone."""
    if isinstance(test, PairFaces):
        embeddings, _ = embed(model, test, device=device, flip=config["eval"]["flip"])
        report = verify(embeddings, pairs=test.pairs, n_folds=test.n_folds, fars=tuple(config["eval"]["fars"]))
        return {"accuracy": report.accuracy, "accuracy_std": report.accuracy_std, "auc": report.auc,
                "eer": report.eer, "pairs": len(test.pairs.i),
                "tar_at_far": {f"{far:g}": report.tar[far]["conservative"] for far in config["eval"]["fars"]}}
    embeddings, labels = embed(model, test, device=device)
    pairs = make_pairs(labels, num_pairs=config["eval"]["num_pairs"], seed=0)
    report = verify(embeddings, pairs=pairs, fars=tuple(config["eval"]["fars"]))
    gallery, probe = split_gallery_probe(labels, gallery_per_class=1, seed=0)
    rank1 = rank_k_accuracy(embeddings[gallery], labels[gallery], embeddings[probe], labels[probe], k=1)
    metrics = {"accuracy": report.accuracy, "accuracy_std": report.accuracy_std, "auc": report.auc,
               "eer": report.eer,
               "tar_at_far": {f"{far:g}": report.tar[far]["conservative"] for far in config["eval"]["fars"]},
               "rank1": rank1}
    if config["eval"]["all_pairs_fars"]:
        metrics["all_pairs"] = all_pairs_metrics(embeddings, labels, config["eval"]["all_pairs_fars"])
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


def _peak_memory(device, reset: bool = False) -> int:
    """Peak memory so far, in bytes: CUDA's allocator peak (reset on request), else the process's
    peak resident set size (ru_maxrss, a high-water mark that cannot be reset)."""
    if device.type == "cuda":
        if reset:
            torch.cuda.reset_peak_memory_stats(device)
        return torch.cuda.max_memory_allocated(device)
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def _memory_record(device, before: int, after: int) -> dict:
    if device.type == "cuda":
        return {"cuda_peak_bytes": after}
    # Growth of the high-water mark during training: 0 when the run stayed below an earlier peak
    # of the same process (an earlier run, data generation), so it is a lower bound on its cost.
    return {"maxrss_growth_bytes": after - before}


def held_out_accuracy(val, device):
    """A callback for :func:`frbook.train.fit`: verification accuracy on the validation identities
    (every pair they allow, balanced)."""
    def evaluate(model) -> dict:
        embeddings, labels = embed(model, val, device=device)
        if isinstance(val, PairFaces):
            return {"val_accuracy": verify(embeddings, pairs=val.pairs, n_folds=val.n_folds, fars=()).accuracy}
        return {"val_accuracy": verify(embeddings, pairs=make_pairs(labels, seed=0), fars=()).accuracy}
    return evaluate


def thin(records: list[dict], keep: int) -> list[dict]:
    """About ``keep`` evenly spaced records, plus every record that holds a held-out evaluation."""
    every = max(1, len(records) // keep)
    return [r for i, r in enumerate(records) if i % every == 0 or "val_accuracy" in r or i == len(records) - 1]


def compare(config_path: str | Path, out_dir: str | Path | None = None, only: list[str] | None = None,
            device=None, progress: bool = True, folds: list[int] | None = None) -> list[Path]:
    """Run every (loss, seed) of the config (on LFW: every (loss, test fold, seed); ``folds``
    restricts the folds) that has no result file yet; return all result paths."""
    config = load_config(config_path)
    if folds is not None:
        if config["data"]["kind"] != "lfw":
            raise ValueError(f"{config_path}: --folds is for LFW comparisons (data.kind: lfw)")
        unknown = sorted(set(folds) - set(config["folds"]))
        if unknown:
            raise ValueError(f"folds {unknown} are not in {config_path}; its folds: {config['folds']}")
        config["folds"] = list(folds)
    out_dir = Path(out_dir or REPO / "book" / "results" / config["name"])
    labels = only or list(config["losses"])
    unknown = sorted(set(labels) - set(config["losses"]))
    if unknown:
        raise ValueError(f"not in {config_path}: {', '.join(unknown)}; its losses: {', '.join(config['losses'])}")
    return run_each(config, labels, out_dir, protocol_hash(config),
                    lambda label, seed, fold: run_one(config, label, seed, device=device, progress=progress, fold=fold),
                    device=device, progress=progress)


def run_each(config: dict, labels: list[str], out_dir: Path, fingerprint: str, run, device=None,
             progress: bool = True) -> list[Path]:
    """For every label, test fold (LFW) and seed, ``run(label, seed, fold)`` unless its result file
    (:func:`run_name`) already holds a run of this protocol; write each result with the protocol
    and provenance."""
    paths = []
    for label in labels:
        for fold, seed in [(fold, seed) for fold in folds_of(config) for seed in config["seeds"]]:
            path = out_dir / f"{run_name(label, seed, fold)}.json"
            paths.append(path)
            if path.exists() and json.loads(path.read_text()).get("protocol") == fingerprint:
                continue
            if progress:
                print(f"[{config['name']}] {label}, seed {seed}" + ("" if fold is None else f", test fold {fold}")
                      + " ...", flush=True)
            result = run(label, seed, fold)
            result.update(protocol=fingerprint, config=config, provenance=provenance(pick_device(device)))
            write_json_atomic(path, result)
            if progress:
                print(f"    accuracy {result['metrics']['accuracy']:.4f}  ->  {path}", flush=True)
    return paths


def load_results(name: str, results_dir: str | Path | None = None) -> list[dict]:
    """Every result file of the comparison ``name`` (under book/results/ by default)."""
    folder = Path(results_dir or REPO / "book" / "results") / name
    files = sorted(folder.glob("*.json"))
    if not files:
        raise FileNotFoundError(f"no results in {folder}; produce them with "
                                f"'python -m frbook experiment compare --config configs/{name}.yaml'")
    return [json.loads(f.read_text()) for f in files]


def summarise(results: list[dict], metric: str) -> dict[str, dict]:
    """Mean, standard deviation (ddof=1 across seeds) and count of ``metric`` for each label.

    ``metric`` is a key of a run's metrics, or ``"tar_at_far/1e-3"`` for a nested one.
    """
    table: dict[str, list[float]] = {}
    for r in results:
        value = r["metrics"]
        for part in metric.split("/"):
            value = value[part]
        table.setdefault(r["label"], []).append(float(value))
    return {label: {"mean": float(np.mean(v)), "std": float(np.std(v, ddof=1)) if len(v) > 1 else 0.0,
                    "n": len(v), "values": v} for label, v in table.items()}


def paired_difference(results: list[dict], first: str, second: str, metric: str = "accuracy") -> dict:
    """``first`` minus ``second`` on ``metric``, seed by seed, with a paired t-test.

    Runs with the same seed share their initial weights and batch order, so the per-seed
    difference removes that shared luck; its mean over seeds, over its standard error, is
    Student's t with n - 1 degrees of freedom. Returns the differences, their mean and standard
    deviation (ddof=1), t and the two-sided p-value (NaN with fewer than two seeds or no spread).
    """
    from scipy import stats

    by_seed = {label: {r["seed"]: r for r in results if r["label"] == label} for label in (first, second)}
    for label, runs in by_seed.items():
        if not runs:
            raise ValueError(f"no results labelled {label!r}")
    seeds = sorted(set(by_seed[first]) & set(by_seed[second]))
    if not seeds:
        raise ValueError(f"{first!r} and {second!r} share no seed, so they cannot be paired")
    values = {label: summarise([by_seed[label][s] for s in seeds], metric)[label]["values"] for label in by_seed}
    differences = np.subtract(values[first], values[second])
    n = len(differences)
    std = float(np.std(differences, ddof=1)) if n > 1 else float("nan")
    if n > 1 and std > 0:
        t, p = stats.ttest_rel(values[first], values[second])
    else:
        t = p = float("nan")
    return {"first": first, "second": second, "metric": metric, "seeds": seeds,
            "differences": differences.tolist(), "mean": float(differences.mean()), "std": std,
            "t": float(t), "p": float(p), "n": n}
