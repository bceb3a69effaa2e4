"""Watching a module during training: record what it sees at every forward call.

The adaptive losses (AdaCos, CurricularFace, AdaFace) change their own state while they train; a
chapter shows that state by calling a ``watch`` function on every forward pass of the loss, through
a PyTorch forward hook that is removed again when the ``with`` block ends (a hook left behind would
keep recording in every later training that reuses the loss object).
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from torch import nn

__all__ = ["watching"]


@contextmanager
def watching(module: nn.Module, watch: Callable | None) -> Iterator[list]:
    """Within the block, append ``watch(module, *first_two_inputs)`` to the yielded list after
    every forward call of ``module`` (for a loss: ``watch(loss, cos, labels)``).

    With ``watch=None`` nothing is registered and the list stays empty, so a caller can watch
    optionally without a branch of its own.
    """
    trace: list = []
    if watch is None:
        yield trace
        return
    handle = module.register_forward_hook(lambda mod, inputs, output: trace.append(watch(mod, *inputs[:2])))
    try:
        yield trace
    finally:
        handle.remove()
