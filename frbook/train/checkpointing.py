"""Everything a run needs to continue exactly where it stopped, in one :mod:`frbook.checkpoint` file.

Resuming *exactly* means the resumed run computes the same numbers as one that never stopped,
so the checkpoint holds every piece of state that the next step reads:

* the backbone (the checkpoint's ``state_dict``, so :func:`frbook.checkpoint.load` and
  ``python -m frbook eval`` read it like any model file), the head's class centres;
* the loss's state: SphereFace's iteration, AdaCos's scale, CurricularFace's and AdaFace's
  running statistics (buffers), a learned scale (a parameter);
* the optimiser (momentum buffers), the learning-rate schedule, the fp16 GradScaler;
* the random generators: Python's, NumPy's, torch's on the CPU and on every GPU, one set per
  rank (dropout and class sampling draw from them);
* the data position: the step, and the epoch and batch within it (the order of an epoch is a
  function of the seed and the epoch, :mod:`frbook.train.batches`, so these two numbers restore it).

Everything is plain data, so the file loads with ``weights_only=True``.
"""
from __future__ import annotations

import random

import numpy as np
import torch

from .. import checkpoint

__all__ = ["capture_rng", "restore_rng", "save_run", "read_run", "preserved_rng"]


def capture_rng() -> dict:
    """The state of every random generator this process draws from."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "gauss": float(gauss)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict) -> None:
    """Put every generator back into ``state`` (from :func:`capture_rng`)."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        saved = state["cuda"]
        if len(saved) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(saved)
        else:  # a different machine: keep each device's own generator rather than fail
            for device, s in enumerate(saved[:torch.cuda.device_count()]):
                torch.cuda.set_rng_state(s, device)


class preserved_rng:
    """``with preserved_rng(): ...`` runs the block and then restores every generator, so
    evaluation (whose loaders draw a seed) never shifts the training's random stream."""

    def __enter__(self):
        self.state = capture_rng()

    def __exit__(self, *exc):
        restore_rng(self.state)
        return False


def save_run(path, model, model_name: str, model_params: dict, training: dict, extra: dict | None = None):
    """Write a run's checkpoint: the backbone as :func:`frbook.checkpoint.save` does, plus
    ``training`` (see the module docstring), atomically."""
    return checkpoint.save(path, model, model_name, model_params, extra=extra, training=training)


def read_run(path) -> dict:
    """A run's checkpoint record; a plain model checkpoint (no ``training`` entry) is an error
    that says how to use it instead."""
    record = checkpoint.read(path)
    if "training" not in record:
        raise ValueError(f"{path}: a model checkpoint without training state; it can be evaluated "
                         "(python -m frbook eval --checkpoint ...) but not resumed")
    return record
