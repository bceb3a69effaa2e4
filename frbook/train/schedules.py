"""Learning-rate schedules of the field, as one multiplier of the peak rate per step.

* ``step``: divide by 1/gamma at milestones (ArcFace on CASIA and MS1M: /10 at fixed iterations);
* ``poly``: ``(1 - t)^power`` down to zero (InsightFace's later recipes use power 2);
* ``cosine``: ``(1 + cos(pi t)) / 2`` down to zero (the CPU chapters' :func:`frbook.train.fit`);
* ``constant``.

Each starts with an optional linear warm-up, ``(i + 1) / warmup_steps`` for the first steps; ``t``
is the fraction of the steps after warm-up done. :class:`LRMultiplier` is a plain object with
only numbers as attributes, so ``LambdaLR.state_dict()`` saves it in a checkpoint and a resumed
run gets the same learning rate at every step.
"""
from __future__ import annotations

import bisect
import math

import torch

__all__ = ["LRMultiplier", "make_scheduler"]


class LRMultiplier:
    """The factor of the peak learning rate at step ``i`` (0-based: the rate of the i-th update)."""

    def __init__(self, kind: str, total_steps: int, warmup_steps: int = 0, milestones=(),
                 gamma: float = 0.1, power: float = 2.0):
        if kind not in ("step", "poly", "cosine", "constant"):
            raise ValueError(f"unknown schedule {kind!r}; known: step, poly, cosine, constant")
        self.kind, self.total_steps, self.warmup_steps = kind, int(total_steps), int(warmup_steps)
        self.milestones, self.gamma, self.power = [int(m) for m in milestones], float(gamma), float(power)

    def __call__(self, i: int) -> float:
        if i < self.warmup_steps:
            warm = (i + 1) / self.warmup_steps
        else:
            warm = 1.0
        if self.kind == "step":  # milestones count optimiser steps from the start, warm-up included
            return warm * self.gamma ** bisect.bisect_right(self.milestones, i)
        if self.kind == "constant" or i < self.warmup_steps:
            return warm
        t = min(1.0, (i - self.warmup_steps) / max(1, self.total_steps - self.warmup_steps))
        if self.kind == "poly":
            return (1.0 - t) ** self.power
        return 0.5 * (1.0 + math.cos(math.pi * t))


def make_scheduler(optimizer: torch.optim.Optimizer, schedule: dict, total_steps: int):
    """A ``LambdaLR`` following ``schedule`` (the config's section) over ``total_steps``."""
    if schedule["warmup_steps"] >= total_steps and schedule["warmup_steps"] > 0:
        raise ValueError(f"schedule.warmup_steps ({schedule['warmup_steps']}) must be fewer than the "
                         f"{total_steps} training steps")
    rule = LRMultiplier(schedule["kind"], total_steps, schedule["warmup_steps"], schedule["milestones"],
                        schedule["gamma"], schedule["power"])
    return torch.optim.lr_scheduler.LambdaLR(optimizer, rule)
