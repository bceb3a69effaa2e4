"""A model checkpoint that says how to rebuild its model: one self-describing ``.pt`` file.

The file is ``torch.save`` of a plain dict::

    {
      "format": "frbook-checkpoint", "version": 1,
      "model": {"name": "iresnet50", "params": {"embedding_dim": 512, ...}},
      "state_dict": {...},          # the backbone's weights
      "provenance": {...},          # command, git commit, device, date (frbook.provenance)
      "extra": {...},               # anything else the writer wants kept (loss, step, metrics)
      "training": {...},            # optional: what resuming a run needs (frbook.train.checkpointing)
    }

``model.name`` and ``model.params`` are what :func:`frbook.models.get` takes, so :func:`load`
rebuilds the model without the training code. The file holds only tensors, strings, numbers,
lists and dicts, so it is read with ``torch.load(weights_only=True)``: a checkpoint from
elsewhere cannot run code. It is written to a temporary name in the same folder, flushed to
disk (fsync) and renamed over the old file, so a crash or a power cut never leaves a truncated
checkpoint in place of a good one.

A trainer's checkpoint is the same file with a ``training`` entry (head, loss state, optimiser,
schedule, scaler, random states, data position, step): :func:`load` reads its model like any
other, and ``python -m frbook eval --checkpoint run/best.pt`` works on it.
"""
from __future__ import annotations

import errno
import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

from . import models
from .provenance import provenance as _provenance
from .safe_io import clip, temporary_name

__all__ = ["FORMAT", "VERSION", "save", "read", "load", "write_atomic"]

FORMAT = "frbook-checkpoint"
VERSION = 1


def _plain(value, where: str):
    """``value`` as types ``torch.load(weights_only=True)`` accepts, or a TypeError naming it.

    Subclasses of plain types are narrowed (``torch.__version__`` is a ``str`` subclass that a
    safe load refuses), numpy values become numbers or tensors.
    """
    if value is None or type(value) in (bool, int, float, str):
        return value
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, np.ndarray):
        return torch.from_numpy(value.copy())
    if isinstance(value, np.generic):
        return value.item()
    for plain in (bool, int, float, str):
        if isinstance(value, plain):
            return plain(value)
    if isinstance(value, dict):
        return {_plain(k, where): _plain(v, f"{where}[{k!r}]") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v, f"{where}[{k}]") for k, v in enumerate(value))
    raise TypeError(f"{where} is a {type(value).__name__}; a checkpoint holds only tensors, numbers, "
                    "strings, lists and dicts, so that it loads with weights_only=True")


def save(path, model: nn.Module, model_name: str, model_params: dict | None = None,
         extra: dict | None = None, provenance: dict | None = None,
         training: dict | None = None) -> Path:
    """Write ``model``'s weights and how to rebuild it (``models.get(model_name, **model_params)``).

    ``provenance`` defaults to the current run's (:func:`frbook.provenance.provenance`).
    ``training``, when given, is stored as the record's ``training`` entry (plain data only).
    """
    if model_name not in models.available():
        raise ValueError(f"unknown model {model_name!r}; known models: {', '.join(models.available())}")
    path = Path(path)
    record = {
        "format": FORMAT,
        "version": VERSION,
        "model": {"name": model_name, "params": _plain(dict(model_params or {}), "model_params")},
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "provenance": _plain(provenance if provenance is not None else _provenance(), "provenance"),
        "extra": _plain(dict(extra or {}), "extra"),
    }
    if training is not None:
        record["training"] = _plain(dict(training), "training")
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, record)
    return path


def write_atomic(path: Path, record) -> None:
    """``torch.save(record)`` to ``path`` so that readers see the old file or the new, whole one.

    The bytes go to a temporary file in the same folder (``os.replace`` is atomic only within one
    file system), are forced to disk before the rename, and the folder's entry after it.
    """
    tmp = temporary_name(path)  # .NAME.PID.tmp: a later run removes it if a kill -9 leaves it
    try:
        with open(tmp, "wb") as f:
            torch.save(record, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:  # a full disk, a quota, a folder that became read-only
        kept = f"the previous {path.name} is intact" if path.is_file() else f"no {path.name} was written"
        raise OSError(exc.errno, f"cannot write {path}: {exc.strerror or exc}; {kept} and no temporary "
                      "file is left (free some space and resume)") from None
    except RuntimeError as exc:  # torch.save reports some write failures as RuntimeError
        raise OSError(errno.EIO, f"cannot write {path}: {clip(exc, 200)}; the previous file, if any, "
                      "is intact") from None
    finally:
        if tmp.exists():
            tmp.unlink()
    try:  # make the rename itself durable; not every system can open a folder
        fd = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def read(path, map_location="cpu") -> dict:
    """The checkpoint's dict, checked to be an frbook checkpoint (weights only, no code run)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint")
    try:
        record = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # not a torch file, truncated, or holds objects beyond weights
        raise ValueError(f"{path}: not a readable checkpoint ({type(exc).__name__}: "
                         f"{str(exc).splitlines()[0] if str(exc) else ''})") from None
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise ValueError(f"{path}: not an frbook checkpoint (no 'format': '{FORMAT}'); a bare "
                         "state_dict cannot say which model to build: save with frbook.checkpoint.save")
    if record.get("version") != VERSION:
        raise ValueError(f"{path}: checkpoint version {record.get('version')!r}; this frbook reads "
                         f"version {VERSION}")
    return record


def load(path, map_location="cpu") -> nn.Module:
    """Rebuild the model of checkpoint ``path`` through :func:`frbook.models.get`, load its
    weights, and return it in evaluation mode."""
    record = read(path, map_location)
    spec = record["model"]
    model = models.get(spec["name"], **spec.get("params", {}))
    try:
        model.load_state_dict(record["state_dict"])
    except RuntimeError as exc:
        raise ValueError(f"{path}: the weights do not fit {spec['name']}({spec.get('params')}): "
                         f"{str(exc).splitlines()[0]}") from None
    return model.eval()
