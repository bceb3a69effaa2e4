"""What a training run is, as plain data: the schema of ``configs/train_*.yaml``, read and checked.

A config is a YAML mapping of sections (``data``, ``model``, ``loss``, ``head``, ``optim``,
``schedule``, ``train``, ``eval``, ``checkpoint``). Every key has a default and a type, listed
in :data:`SCHEMA` (``python -m frbook train --help`` prints it). :func:`load_config` reads a file,
applies ``--set section.key=value`` overrides, fills in defaults and checks everything that can be
checked without data: unknown keys, types, choices, and the loss and model themselves (built
once, so a margin out of range fails now with the loss's own message, not after hours of data
loading). Data paths are checked by :func:`check_data_paths` when training starts, so a config
for a data set that lives on another machine still validates here.

Every error is a :class:`ConfigError` naming the key and the fix.
"""
from __future__ import annotations

import copy
import math
from pathlib import Path

import torch
import yaml

from .. import losses, models
from ..defaults import DEFAULT_CHANNELS, DEFAULT_SIZE
from ..safe_io import clip, read_yaml, safe_name, shorten

__all__ = ["SCHEMA", "ConfigError", "defaults", "load_config", "validate", "parse_override",
           "apply_override", "check_data_paths", "check_device", "describe", "loss_params", "model_params",
           "make_loss", "entry_config"]


class ConfigError(ValueError):
    """A training config that cannot run; the message names the key and the fix."""


# section -> key -> (default, type, help). Types: "int", "float", "bool", "str", "dict",
# "list[int]", "list[str]", a tuple of allowed values, or "T|null" where null (None) is allowed.
SCHEMA: dict[str, dict[str, tuple]] = {
    "data": {
        "kind": ("synth", ("synth", "lfw", "folder", "rec"),
                 "synth: SynthFaces; lfw: LFW unrestricted (train on identities not in test_fold); "
                 "folder: one folder per identity; rec: InsightFace train.rec/.idx"),
        "path": (None, "str|null", "folder, .rec folder or LFW root (lfw: found as for 'eval' when null)"),
        "size": (DEFAULT_SIZE, "int", "image side in pixels, after cropping (non-square images are "
                 "centre-cropped to square first, not squashed)"),
        "channels": (DEFAULT_CHANNELS, (1, 3), "1 grey, 3 colour"),
        "crop": (None, "int|null", "centre crop in pixels before resizing (real images)"),
        "crop_fraction": (None, "float|null", "centre crop, a square of this fraction of each image's shorter "
                          "side, in (0, 1] (real images of mixed sizes; instead of crop)"),
        "test_fold": (0, "int", "lfw: the fold (0-9) whose 600 pairs are the test; the next fold validates; the "
                      "people of both are not trained on"),
        "test_identities": (None, "float|null", "identities held out for the test: synth, a count (null: 100); "
                            "folder/rec, a fraction in (0, 1) or a count (null: none; eval target 'heldout' scores "
                            "pairs of them)"),
        "split_seed": (0, "int", "folder/rec: which identities test_identities holds out (as eval --split-seed)"),
        "identities": (400, "int", "synth: training identities"),
        "val_identities": (100, "int", "synth: held-out identities for the 'synth' evaluation and a search's reward"),
        "images_per_identity": (20, "int", "synth: images of each training identity"),
        "test_images_per_identity": (10, "int", "synth: images of each validation and test identity"),
        "label_noise": (0.0, "float", "synth: share of training labels moved to another identity, in [0, 1)"),
        "difficulty": (0.5, "float", "synth: nuisance strength in [0, 1]"),
        "age": (0.0, "float", "synth: how far ageing spans, in [0, 1]: each image's age is drawn from [0, age] "
                "(0: no ageing; 1: young to old), in every split"),
        "cross_age_gap": (None, "float|null", "synth: a comparison's test pairs are cross-age: the two faces of "
                          "every pair (genuine and impostor alike) differ in age by at least this, in (0, 1] "
                          "(needs data.age >= it; null: ordinary pairs)"),
        "seed": (0, "int", "synth: which population of faces"),
        "flip": (True, "bool", "random horizontal flips, the field's usual augmentation"),
        "workers": (0, "int", "processes decoding real images"),
        "cache": (False, "bool", "decode real images once and keep them in memory (sets that fit: LFW)"),
    },
    "model": {
        "name": ("small_cnn", "str", "a backbone of frbook.models"),
        "params": ({}, "dict", "its constructor arguments (in_channels, input_size default to the data's)"),
    },
    "loss": {
        "name": ("arcface", "str", "a loss of frbook.losses"),
        "params": ({}, "dict", "its parameters, or a mapping loss name -> parameters (only loss.name's are used)"),
        "aux": ("none", ("none", "tml"), "an auxiliary loss; tml: the transformer-metric loss (frbook.losses.tml) on "
                "the backbone's last feature map, added to loss.name's"),
        "tml": ({}, "dict", "aux tml: TransformerMetricLoss parameters (weight, depth, heads, width, mlp_ratio, "
                "dropout, pooling, embedding_dim); loss.name and its params are its base loss"),
    },
    "head": {
        "sub_centers": (1, "int", "centres per class (Sub-center ArcFace); the loss's own when 1"),
        "partial_fc": (False, "bool", "shard the class centres over the ranks (model-parallel classifier)"),
        "sample_rate": (1.0, "float", "partial_fc: fraction of each rank's centres scored per batch, in (0, 1]"),
    },
    "optim": {
        "name": ("sgd", ("sgd", "adamw"), "the optimiser"),
        "lr": (0.1, "float", "peak learning rate (for the global batch)"),
        "momentum": (0.9, "float", "sgd momentum"),
        "weight_decay": (5e-4, "float", "on backbone and head, never on loss parameters"),
        "clip_grad_norm": (0.0, "float", "clip the global gradient norm to this; 0: off"),
    },
    "schedule": {
        "kind": ("cosine", ("step", "poly", "cosine", "constant"), "after warm-up"),
        "warmup_steps": (0, "int", "linear warm-up from lr/warmup_steps"),
        "milestones": ([], "list[int]", "step: multiply lr by gamma at these steps"),
        "gamma": (0.1, "float", "step: the factor"),
        "power": (2.0, "float", "poly: lr (1 - t)^power"),
    },
    "train": {
        "steps": (None, "int|null", "optimiser steps (give steps or epochs)"),
        "epochs": (None, "int|null", "passes over the training set (give steps or epochs)"),
        "batch_size": (128, "int", "global batch: over all ranks and accumulation micro-batches"),
        "accumulate": (1, "int", "micro-batches per step on each rank (gradient accumulation)"),
        "precision": ("fp32", ("fp32", "bf16", "fp16"), "autocast dtype; fp16 adds a GradScaler"),
        "channels_last": (False, "bool", "NHWC memory format for the backbone"),
        "compile": (False, "bool", "torch.compile the backbone"),
        "sync_bn": (False, "bool", "batch-norm statistics over all ranks (CUDA only)"),
        "seed": (0, "int", "weights, data order, flips"),
        "device": (None, "str|null", "cpu or cuda (default: cuda when present; cuda:LOCAL_RANK under torchrun)"),
        "log_every": (10, "int", "steps between metrics.jsonl lines"),
    },
    "eval": {
        "every": (0, "int", "steps between evaluations; 0: only at the end"),
        "targets": (["synth"], "list[str]", "'synth' (held-out identities), 'val' (the validation split), 'lfw' "
                    "(test_fold's pairs for data.kind lfw, else all 6000), 'heldout' (data.test_identities' "
                    "people of a folder or .rec), or verification .bin paths"),
        "batch_size": (256, "int", "evaluation batch"),
        "flip": (True, "bool", "flip-sum embeddings (InsightFace's protocol)"),
        "num_pairs": (6000, "int", "comparisons: balanced pairs drawn from the SynthFaces test identities"),
        "fars": ([1e-3], "list[float]", "comparisons: FARs of the TAR@FAR in a result file"),
        "all_pairs_fars": ([], "list[float]", "comparisons: FARs read over every pair of the SynthFaces test images"),
    },
    "search": {
        "method": ("none", ("none", "search", "random", "random_best"), "none: train with loss.name; search: "
                   "Search-Softmax / AM-LFS (REINFORCE on the reward); random: Random-Softmax as the official code "
                   "(random samples, no reward, no selection); random_best: an ablation, random samples with the "
                   "best of M copied every rewarded epoch"),
        "space": ("search_softmax", ("search_softmax", "amlfs", "amlfs_cosine"), "the space of losses searched"),
        "s": (32.0, "float", "the scale of the searched losses"),
        "mode": ("global", "str", "search_softmax: how a sample becomes the loss's a: global or abs_local "
                 "(see frbook.search.spaces; 'local' was renamed abs_local)"),
        "mean": (1.0, "float", "search_softmax: the policy's initial mean"),
        "pieces": (6, "int", "amlfs: pieces of the piecewise-linear function"),
        "candidates": (8, "int", "M: candidate networks trained side by side"),
        "epochs": (20, "int", "policy updates; train.steps are split evenly into them"),
        "sigma": (0.2, "float", "the policy's standard deviation"),
        "policy_lr": (0.05, "float", "Adam's rate for the policy"),
        "betas": ([0.5, 0.999], "list[float]", "Adam's betas for the policy"),
        "fixed_epochs": (0, "int", "epochs at the start trained with the policy's initial mean, no sample "
                         "(the official code: 2)"),
        "reward_every": (1, "int", "reward (and update, copy) every this many epochs after the fixed ones"),
        "engine": ("auto", ("auto", "stacked", "loop"), "stacked: the M candidates in one vmapped network; loop: one "
                   "after another; auto: the loop on a CPU, stacked on a GPU (the faster on each, as measured)"),
    },
    "compare": {
        "seeds": ([0], "list[int]", "the seeds each entry of losses runs with (each its own weights and batch order)"),
        "folds": ([0], "list[int]", "lfw: the test folds each entry runs on"),
        "losses": ({}, "dict", "label -> the sections and keys this entry changes, e.g. "
                   "{loss: {name: arcface, params: {s: 30, m: 0.5}}} or {search: {method: search}}"),
    },
    "checkpoint": {
        "every": (0, "int", "steps between checkpoints (last.pt); 0: only at the end"),
        "keep_best": ("auto", "str", "metric that picks best.pt, e.g. 'lfw/accuracy'; auto: the first "
                      "target's accuracy; none: no best.pt"),
    },
}
TOP_LEVEL = {"name": (None, "str|null", "run name (default: the config file's name)")}

# Changing these between a run and its resumption does not change what is computed.
RESUMABLE_CHANGES = {("train", "device"), ("train", "log_every"), ("train", "compile"),
                     ("data", "workers"), ("data", "cache"), ("data", "path"), ("eval",), ("checkpoint",), ("name",),
                     ("compare",)}


def defaults() -> dict:
    """The default config, every key present."""
    out = {key: spec[0] for key, spec in TOP_LEVEL.items()}
    for section, keys in SCHEMA.items():
        out[section] = {key: copy.deepcopy(spec[0]) for key, spec in keys.items()}
    return out


def describe() -> str:
    """Every key with its default and meaning, for ``--help``."""
    lines = ["config keys (section.key: default  meaning):"]
    for section, keys in SCHEMA.items():
        for key, (default, kind, meaning) in keys.items():
            shown = yaml.safe_dump(default, default_flow_style=True).strip().removesuffix("...").strip()
            choices = f" [{'|'.join(map(str, kind))}]" if isinstance(kind, tuple) else ""
            lines.append(f"  {section}.{key}: {shown}{choices}  {meaning}")
    return "\n".join(lines)


# -- reading -----------------------------------------------------------------------------------
def parse_override(text: str) -> tuple[list[str], object]:
    """``"optim.lr=0.05"`` -> ``(["optim", "lr"], 0.05)``; the value is read as YAML."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set wants KEY=VALUE such as optim.lr=0.05, got {shorten(text)}")
    try:  # aliases and deep nesting refused here too (safe_io.read_yaml): then it is a string
        parsed = read_yaml(value, where="--set") if value.strip() else None
    except ValueError:
        parsed = value
    return key.strip().split("."), parsed


def apply_override(raw: dict, path: list[str], value) -> None:
    """Set ``raw[path[0]][path[1]]... = value``, creating mappings on the way (checked later)."""
    node = raw
    for part in path[:-1]:
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise ConfigError(f"--set {'.'.join(path)}: {shorten(part)} is not a section")
        node = child
    node[path[-1]] = value


def load_config(path=None, overrides=(), raw: dict | None = None) -> dict:
    """Read ``path`` (or take ``raw``), apply ``--set`` overrides, fill defaults, validate."""
    if raw is None:
        if path is None:
            raw = {}
        else:
            path = Path(path)
            if not path.is_file():
                raise ConfigError(f"no config at {path}; the shipped ones are configs/train_*.yaml")
            raw = read_yaml(path, error=ConfigError) or {}  # no aliases, bounded (safe_io)
    raw = copy.deepcopy(raw)
    if not isinstance(raw, dict):
        raise ConfigError(f"{path or 'config'}: expected a mapping of sections, got {type(raw).__name__}")
    for text in overrides:
        apply_override(raw, *parse_override(text))
    config = validate(raw)
    if config["name"] is None:
        config["name"] = Path(path).stem if path is not None else "run"
    return config


def _check_type(where: str, value, kind):
    """``value`` converted to ``kind`` (an int is a fine float), or a ConfigError."""
    if isinstance(kind, str) and kind.endswith("|null"):
        if value is None:
            return None
        kind = kind.removesuffix("|null")
    if isinstance(kind, tuple):
        if value not in kind or isinstance(value, bool) != any(isinstance(k, bool) for k in kind):
            raise ConfigError(f"{where} must be one of {', '.join(map(repr, kind))}; got {shorten(value)}")
        return value
    ok = {
        "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "float": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
        "bool": lambda v: isinstance(v, bool),
        "str": lambda v: isinstance(v, str),
        "dict": lambda v: isinstance(v, dict),
        "list[int]": lambda v: isinstance(v, list) and all(isinstance(x, int) and not isinstance(x, bool) for x in v),
        "list[str]": lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v),
        "list[float]": lambda v: isinstance(v, list) and all(isinstance(x, (int, float)) and not isinstance(x, bool)
                                                              for x in v),
    }[kind]
    if value is None and kind == "dict":
        return {}
    if kind == "float" and isinstance(value, str):
        try:  # PyYAML reads 5e-4 (no dot) as a string; it is meant as a number
            value = float(value)
        except ValueError:
            pass
    if not ok(value):
        raise ConfigError(f"{where} must be {'an' if kind == 'int' else 'a'} {kind}"
                          f"{' (or null)' if value is None else ''}; got {shorten(value)} ({type(value).__name__})")
    if kind == "float" and not math.isfinite(value):  # nan, .inf, 1e999
        raise ConfigError(f"{where} must be a finite number; got {shorten(value)}")
    if kind == "list[float]":
        if not all(math.isfinite(x) for x in value):
            raise ConfigError(f"{where} must hold finite numbers; got {shorten(value)}")
        return [float(x) for x in value]
    return float(value) if kind == "float" else value


def validate(raw: dict) -> dict:
    """A complete, checked config from a partial one (see the module docstring)."""
    config = defaults()
    for key, value in raw.items():
        if key in TOP_LEVEL:
            config[key] = _check_type(key, value, TOP_LEVEL[key][1])
            if key == "name" and value is not None:  # it names the run folder
                safe_name(value, "name", ConfigError)
            continue
        if key not in SCHEMA:
            raise ConfigError(f"unknown section {shorten(key)}; known: {', '.join([*TOP_LEVEL, *SCHEMA])}")
        if not isinstance(value, dict):
            raise ConfigError(f"{shorten(key)} must be a mapping of keys, got {shorten(value)}")
        for sub, v in value.items():
            if sub not in SCHEMA[key]:
                raise ConfigError(f"unknown key {key}.{clip(str(sub), 60)}; {key} has: {', '.join(SCHEMA[key])}")
            config[key][sub] = _check_type(f"{key}.{sub}", v, SCHEMA[key][sub][1])
    _check_values(config)
    for label, entry in config["compare"]["losses"].items():
        entry_config(config, label)  # every entry checked now, not when its turn comes
    return config


def _merged(base: dict, changes: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict) and key not in ("params", "tml", "losses"):
            out[key] = _merged(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def entry_config(config: dict, label: str, seed: int | None = None, fold: int | None = None) -> dict:
    """The whole config of the entry ``label`` of ``compare.losses``: the shared sections with the
    entry's changes, trained with ``seed`` (``train.seed``) and tested on LFW fold ``fold``
    (``data.test_fold``), checked like any config; its ``name`` is the comparison's."""
    entries = config["compare"]["losses"]
    if label not in entries:
        raise ConfigError(f"compare.losses has no entry {label!r}; it has: {', '.join(entries) or 'none'}")
    entry = entries[label]
    where = f"compare.losses.{label}"
    safe_name(label, where=f"{where} (a label names result files)", error=ConfigError)
    if not isinstance(entry, dict):
        raise ConfigError(f"{where} must be a mapping of the sections it changes, e.g. "
                          f"{{loss: {{name: arcface, params: {{s: 30, m: 0.5}}}}}}; got {entry!r}")
    wrong = sorted(set(entry) - set(SCHEMA) | (set(entry) & {"compare"}))
    if wrong:
        raise ConfigError(f"{where}: an entry changes sections of the config ({', '.join(k for k in SCHEMA if k != 'compare')}), "
                          f"not {', '.join(map(repr, wrong))}")
    base = {k: v for k, v in config.items() if k != "compare"}
    run = _merged(base, entry)
    if seed is not None:
        run["train"]["seed"] = seed
    if fold is not None:
        run["data"]["test_fold"] = fold
    try:
        return validate(run)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _positive(config, *keys, allow_zero=False):
    for key in keys:
        section, name = key.split(".")
        value = config[section][name]
        if value is not None and (value < 0 or (value == 0 and not allow_zero)):
            raise ConfigError(f"{key} must be {'>= 0' if allow_zero else '> 0'}; got {shorten(value)}")


def loss_params(config: dict) -> dict:
    """The parameters of ``loss.name``: ``loss.params`` itself, or its entry for that name."""
    params, name = config["loss"]["params"], config["loss"]["name"]
    if params and all(isinstance(v, dict) for v in params.values()):
        return dict(params.get(name, params.get(name.lower().replace("-", "_"), {})))
    return dict(params)


def model_params(config: dict) -> dict:
    """The backbone's constructor arguments, with the data's channels and size as defaults."""
    data = config["data"]
    return {"in_channels": data["channels"], "input_size": data["size"], **config["model"]["params"]}


# The one table of sane ranges: (low, high, low included?, high included?). A value outside is
# a typo or an attack (1e12 identities, a 1e5-pixel image, NaN momentum), caught here before
# anything is built or allocated, with the key and the range in the message.
_BIG = 10**9
RANGES = {
    "data.size": (1, 4096), "data.crop": (1, 4096), "data.identities": (1, 10_000_000),
    "data.val_identities": (1, 10_000_000), "data.images_per_identity": (1, 100_000),
    "data.workers": (0, 1024), "data.seed": (0, 2**32 - 1), "train.seed": (0, 2**32 - 1),
    "data.age": (0, 1), "data.cross_age_gap": (0, 1, False, True),
    "train.steps": (1, _BIG), "train.epochs": (1, 10**6), "train.batch_size": (1, 10**6),
    "train.accumulate": (1, 10**4), "train.log_every": (1, _BIG), "eval.batch_size": (1, 10**6),
    "eval.every": (0, _BIG), "checkpoint.every": (0, _BIG),
    "optim.lr": (0, 100, False, True), "optim.momentum": (0, 1, True, False),
    "optim.weight_decay": (0, 1), "optim.clip_grad_norm": (0, 1e6),
    "schedule.warmup_steps": (0, _BIG), "schedule.gamma": (0, 10, False, True),
    "schedule.power": (0, 100, False, True), "head.sub_centers": (1, 100),
}
MODEL_RANGES = {"embedding_dim": (1, 65536), "input_size": (1, 4096), "in_channels": (1, 64)}
MAX_PARAMETERS = 2 * 10**9  # a backbone beyond this is a typo (iresnet200 has 65 million)
MAX_SYNTH_ELEMENTS = 2**33  # SynthFaces pixels held in memory (32 GiB of float32)


def _in_range(key: str, value, low, high, low_in=True, high_in=True) -> None:
    if value is None:
        return
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) \
        and (value >= low if low_in else value > low) and (value <= high if high_in else value < high)
    if not ok:
        interval = f"{'[' if low_in else '('}{low:g}, {high:g}{']' if high_in else ')'}"
        raise ConfigError(f"{key} must be a number in {interval}; got {shorten(value)}")


def _check_finite(tree, where: str) -> None:
    """Every number in a parameter mapping (model.params, loss.params, loss.tml) is finite."""
    if isinstance(tree, dict):
        for key, value in tree.items():
            _check_finite(value, f"{where}.{clip(str(key), 40)}")
    elif isinstance(tree, (list, tuple)):
        for k, value in enumerate(tree):
            _check_finite(value, f"{where}[{k}]")
    elif isinstance(tree, float) and not math.isfinite(tree):
        raise ConfigError(f"{where} must be a finite number; got {tree}")


def _check_ranges(config: dict) -> None:
    for key, limits in RANGES.items():
        section, name = key.split(".")
        _in_range(key, config[section][name], *limits)
    for name, limits in MODEL_RANGES.items():
        if name in config["model"]["params"]:
            _in_range(f"model.params.{name}", config["model"]["params"][name], *limits)
    for where in ("model.params", "loss.params", "loss.tml"):
        section, name = where.split(".")
        _check_finite(config[section][name], where)
    d = config["data"]
    if d["kind"] == "synth":
        elements = (d["identities"] + d["val_identities"]) * d["images_per_identity"] * d["channels"] * d["size"] ** 2
        if elements > MAX_SYNTH_ELEMENTS:
            raise ConfigError(f"data: SynthFaces of (identities + val_identities) x images_per_identity x "
                              f"channels x size^2 = {elements:.3g} pixels exceeds {MAX_SYNTH_ELEMENTS:.3g}; "
                              "lower data.identities, data.images_per_identity or data.size")


def check_device(config: dict) -> None:
    """Fail, naming ``train.device``, when the device is not on this machine (checked when
    training starts, like the data paths, so a GPU config still validates on a laptop)."""
    name = config["train"]["device"]
    if name is None:
        return
    device = torch.device(name)
    if device.type != "cuda":
        return
    if not torch.cuda.is_available():
        raise ConfigError(f"train.device {shorten(name)}: this machine has no CUDA device; "
                          "use --set train.device=cpu")
    count = torch.cuda.device_count()
    if device.index is not None and device.index >= count:
        raise ConfigError(f"train.device {shorten(name)}: this machine has {count} CUDA device(s), "
                          f"cuda:0..cuda:{count - 1}")


def _check_values(config: dict) -> None:
    t, d, h = config["train"], config["data"], config["head"]
    _check_ranges(config)
    _positive(config, "data.size", "data.identities", "data.val_identities", "data.images_per_identity",
              "train.batch_size", "train.accumulate", "train.log_every", "eval.batch_size", "optim.lr")
    _positive(config, "data.workers", "optim.momentum", "optim.weight_decay", "optim.clip_grad_norm",
              "schedule.warmup_steps", "eval.every", "checkpoint.every", "data.seed", "train.seed",
              allow_zero=True)
    if (t["steps"] is None) == (t["epochs"] is None):
        raise ConfigError("give exactly one of train.steps and train.epochs (set the other to null), "
                          f"got steps={shorten(t['steps'])}, epochs={shorten(t['epochs'])}")
    _positive(config, "train.steps", "train.epochs")
    if t["steps"] is not None and config["schedule"]["warmup_steps"] >= t["steps"] > 0 \
            and config["schedule"]["warmup_steps"]:
        raise ConfigError(f"schedule.warmup_steps ({config['schedule']['warmup_steps']}) must be fewer than "
                          f"train.steps ({t['steps']})")
    if not 0 <= d["difficulty"] <= 1:
        raise ConfigError(f"data.difficulty must be in [0, 1]; got {d['difficulty']}")
    _check_age(config)
    if d["crop"] is not None and d["crop"] < 1:
        raise ConfigError(f"data.crop must be a positive number of pixels or null; got {d['crop']}")
    if d["crop_fraction"] is not None and (not 0 < d["crop_fraction"] <= 1 or d["crop"] is not None):
        raise ConfigError(f"data.crop_fraction must lie in (0, 1], with data.crop null; got "
                          f"crop_fraction={d['crop_fraction']}, crop={d['crop']}")
    if not 0 <= d["test_fold"] <= 9:
        raise ConfigError(f"data.test_fold must be a fold of LFW's pairs.txt, 0..9; got {d['test_fold']}")
    if d["kind"] in ("folder", "rec") and d["path"] is None:
        raise ConfigError(f"data.kind {d['kind']!r} needs data.path (e.g. --set data.path=/data/casia)")
    if not 0 < h["sample_rate"] <= 1:
        raise ConfigError(f"head.sample_rate must be in (0, 1]; got {h['sample_rate']}")
    if h["sample_rate"] < 1 and not h["partial_fc"]:
        raise ConfigError("head.sample_rate < 1 samples the centres of the sharded classifier: "
                          "also set head.partial_fc: true")
    _positive(config, "head.sub_centers")
    sched = config["schedule"]
    if sched["milestones"] != sorted(set(sched["milestones"])) or any(m < 1 for m in sched["milestones"]):
        raise ConfigError(f"schedule.milestones must be increasing positive steps; got {sched['milestones']}")
    if sched["kind"] == "step" and not sched["milestones"]:
        raise ConfigError("schedule.kind 'step' needs schedule.milestones, e.g. [20000, 28000]")
    _positive(config, "schedule.gamma", "schedule.power")
    if t["sync_bn"] and not torch.cuda.is_available():
        raise ConfigError("train.sync_bn needs CUDA (torch's SyncBatchNorm does not run on the CPU); "
                          "set it to false")
    if t["device"] is not None:
        try:
            device = torch.device(t["device"])
        except RuntimeError:
            raise ConfigError(f"train.device {shorten(t['device'])} is not a device; use cpu, cuda or cuda:N") from None
        if device.type == "cuda" and torch.cuda.is_available():
            check_device(config)
    metric = config["checkpoint"]["keep_best"]
    if metric not in ("auto", "none") and "/" not in metric:
        raise ConfigError(f"checkpoint.keep_best must be 'auto', 'none' or TARGET/METRIC such as "
                          f"'lfw/accuracy'; got {shorten(metric)}")
    if not config["eval"]["targets"] and metric not in ("auto", "none"):
        raise ConfigError(f"checkpoint.keep_best {shorten(metric)} needs an evaluation; add eval.targets")
    held_out = d["test_identities"]
    if held_out is not None and (held_out < 0 or (held_out >= 1 and held_out != int(held_out))):
        raise ConfigError(f"data.test_identities must be a fraction in (0, 1), a whole count, or 0; "
                          f"got {held_out}")
    if d["kind"] == "synth" and held_out is not None and (held_out < 1 or held_out != int(held_out)):
        raise ConfigError(f"data.test_identities of SynthFaces is a count of identities (>= 1); got {held_out}")
    if "heldout" in config["eval"]["targets"] and not (d["kind"] in ("folder", "rec") and d["test_identities"]):
        raise ConfigError("eval target 'heldout' is the identities that data.test_identities holds out of a "
                          "folder or .rec; set data.kind folder (or rec) and data.test_identities, e.g. 0.2")
    if "synth" in config["eval"]["targets"] and d["kind"] != "synth":
        raise ConfigError("eval target 'synth' is the held-out SynthFaces identities of data.kind synth; "
                          "for real data use 'lfw' or .bin paths in eval.targets")
    _check_protocol(config)
    _build_loss_and_model(config)


def _check_age(config: dict) -> None:
    """data.age and data.cross_age_gap: SynthFaces only, and a gap that the ages can span."""
    d = config["data"]  # their ranges are in RANGES
    if (d["age"] or d["cross_age_gap"] is not None) and d["kind"] != "synth":
        raise ConfigError("data.age and data.cross_age_gap age SynthFaces (data.kind: synth); real faces "
                          "bring their own ages")
    gap = d["cross_age_gap"]
    if gap is not None and gap > d["age"]:
        raise ConfigError(f"data.cross_age_gap {gap} needs faces that far apart in age: set data.age >= {gap} "
                          f"(got data.age {d['age']})")
    if gap is not None and config["eval"]["all_pairs_fars"]:
        raise ConfigError("eval.all_pairs_fars reads every pair of test images, at any age; with "
                          "data.cross_age_gap set it to []")


def _check_protocol(config: dict) -> None:
    """The keys comparisons and searches add: held-out sets, evaluation, the search, the entries."""
    d, e, s, c = config["data"], config["eval"], config["search"], config["compare"]
    _positive(config, "data.test_images_per_identity", "eval.num_pairs",
              "search.candidates", "search.epochs", "search.pieces", "search.sigma", "search.policy_lr", "search.s")
    if not 0 <= d["label_noise"] < 1:
        raise ConfigError(f"data.label_noise must be in [0, 1); got {d['label_noise']}")
    if d["label_noise"] and d["kind"] != "synth":
        raise ConfigError("data.label_noise flips SynthFaces labels; real data sets bring their own noise")
    for key in ("fars", "all_pairs_fars"):
        if not all(0 < far <= 1 for far in e[key]):
            raise ConfigError(f"eval.{key} must be false acceptance rates in (0, 1]; got {e[key]}")
    if e["all_pairs_fars"] and d["kind"] != "synth":
        raise ConfigError("eval.all_pairs_fars reads every pair of SynthFaces test images; LFW has its pairs")
    if "val" in e["targets"] and d["kind"] not in ("synth", "lfw"):
        raise ConfigError("eval target 'val' is the validation split of data.kind synth or lfw")
    if len(s["betas"]) != 2 or not all(0 <= b < 1 for b in s["betas"]):
        raise ConfigError(f"search.betas must be two numbers in [0, 1); got {s['betas']}")
    if s["method"] != "none":
        steps = config["train"]["steps"]
        if steps is None or steps < s["epochs"]:
            raise ConfigError(f"a search splits train.steps into search.epochs ({s['epochs']}): give train.steps "
                              f"of at least that many (got {steps})")
        if d["kind"] not in ("synth", "lfw"):
            raise ConfigError("a search rewards on the validation split: data.kind must be synth or lfw")
    if not c["seeds"] or any(seed < 0 for seed in c["seeds"]) or len(set(c["seeds"])) != len(c["seeds"]):
        raise ConfigError(f"compare.seeds must be distinct seeds >= 0; got {c['seeds']}")
    if not c["folds"] or any(not 0 <= k <= 9 for k in c["folds"]) or len(set(c["folds"])) != len(c["folds"]):
        raise ConfigError(f"compare.folds must be distinct LFW test folds in 0..9; got {c['folds']}")
    if c["folds"] != [0] and d["kind"] != "lfw":
        raise ConfigError("compare.folds are LFW's test folds; SynthFaces (data.kind: synth) has one split")


def _build_loss_and_model(config: dict) -> None:
    """Build the loss and the backbone once, so their own checks run now."""
    name = config["loss"]["name"]
    entries = config["loss"]["params"]
    per_loss = entries and all(isinstance(v, dict) for v in entries.values())
    for label, params in (entries.items() if per_loss else [(name, entries)]):
        try:
            loss = losses.get(label, **params)
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"loss.params{'.' + label if per_loss else ''}: {clip(exc, 400)}") from None
        if label == name and config["head"]["partial_fc"]:
            from .partial_fc import check_loss
            try:
                check_loss(loss)
            except ValueError as exc:
                raise ConfigError(f"head.partial_fc with loss.name {shorten(name)}: {clip(exc, 400)}") from None
    try:  # an unknown name fails here, with the list of known ones
        losses.get(name, **loss_params(config))
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"loss.name {shorten(name)} with loss.params: {clip(exc, 400)}") from None
    try:
        with torch.device("meta"):  # no memory, no time: only the constructor's checks
            backbone = models.get(config["model"]["name"], **model_params(config))
    except (ValueError, TypeError, OverflowError, RuntimeError) as exc:
        raise ConfigError(f"model: {clip(exc, 400)}") from None
    size = sum(p.numel() for p in backbone.parameters())
    if size > MAX_PARAMETERS:
        raise ConfigError(f"model {shorten(config['model']['name'])} with {shorten(config['model']['params'], 200)} "
                          f"would hold {size:.3g} parameters (more than {MAX_PARAMETERS:.0e}); check model.params")
    if config["loss"]["tml"] and config["loss"]["aux"] != "tml":
        raise ConfigError("loss.tml sets transformer-metric loss parameters but loss.aux is "
                          f"{config['loss']['aux']!r}; add --set loss.aux=tml (or drop loss.tml)")
    if config["loss"]["aux"] == "tml":
        if config["head"]["partial_fc"]:
            raise ConfigError("loss.aux tml does not run with head.partial_fc (its own classifier is not "
                              "sharded); set head.partial_fc: false")
        if not hasattr(backbone, "feature_channels"):
            raise ConfigError(f"loss.aux tml reads the backbone's last feature map; model "
                              f"{config['model']['name']!r} has none")
        try:
            with torch.device("meta"):
                make_loss(config, backbone, num_classes=2)
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"loss.tml: {clip(exc, 400)}") from None


def make_loss(config: dict, backbone, num_classes: int):
    """The loss of a config, with the transformer-metric loss around it when ``loss.aux`` is tml:
    :func:`frbook.losses.build`, the one builder."""
    tml = config["loss"]["tml"] if config["loss"]["aux"] == "tml" else None
    return losses.build(config["loss"]["name"], loss_params(config), tml=tml, backbone=backbone,
                        num_classes=num_classes)


def check_data_paths(config: dict) -> None:
    """Fail, naming ``data.path`` or ``eval.targets``, when the data is not there."""
    d = config["data"]
    if d["path"] is not None and not Path(d["path"]).expanduser().exists():
        raise ConfigError(f"data.path {shorten(d['path'])} does not exist; point it at the data with "
                          f"--set data.path=/where/it/is")
    for target in config["eval"]["targets"]:
        if target not in ("synth", "val", "lfw", "heldout") and not Path(target).expanduser().exists():
            raise ConfigError(f"eval.targets: {shorten(target)} does not exist; give 'synth', 'val', 'lfw', 'heldout' or "
                              "the path of a verification .bin (e.g. --set eval.targets=[lfw])")


def compatible(saved: dict, now: dict) -> list[str]:
    """Keys whose change would make a resumed run differ from an uninterrupted one."""
    changed = []
    for section in SCHEMA:
        for key in SCHEMA[section]:
            if (section,) in RESUMABLE_CHANGES or (section, key) in RESUMABLE_CHANGES:
                continue
            # A key added after the run was saved counts as its default (loss.aux: none).
            before = saved.get(section, {}).get(key, SCHEMA[section][key][0])
            if before != now[section][key]:
                changed.append(f"{section}.{key}: {before!r} -> {now[section][key]!r}")
    return changed
