"""The training loop of the CPU chapters: a backbone, a head and a loss, trained with SGD.

It is deliberately one screen long: draw a batch, embed it, score it against the class centres,
apply the loss, step. The trainer of the later chapters (:mod:`frbook.train.trainer`: configs,
checkpoints, mixed precision, many GPUs) runs the same step with the same pieces
(:mod:`frbook.train.parts`, the epoch order of :mod:`frbook.train.batches`, the schedules of
:mod:`frbook.train.schedules`), so under the same settings the two give the same weights.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn
from tqdm import tqdm

from ..utils import pick_device
from .batches import BatchPlan, fetch, flip_mask
from .parts import embed_batch, loss_value, make_optimizer, parameter_groups
from .schedules import make_scheduler


@dataclass
class History:
    """What :func:`fit` measured: one record per logged step (step, epoch, loss, accuracy, lr, seconds)."""

    records: list[dict] = field(default_factory=list)

    def column(self, name: str) -> list:
        return [r[name] for r in self.records]

    @property
    def last(self) -> dict:
        return self.records[-1] if self.records else {}

    def __len__(self) -> int:
        return len(self.records)


def fit(
    model: nn.Module,
    head: nn.Module,
    loss: nn.Module,
    data,
    *,
    steps: int | None = None,
    epochs: int | None = None,
    batch_size: int = 128,
    lr: float = 0.1,
    momentum: float = 0.9,
    weight_decay: float = 5e-4,
    warmup_steps: int = 0,
    seed: int = 0,
    device: str | torch.device | None = None,
    log_every: int = 10,
    progress: bool = True,
    evaluate: Callable[[nn.Module], dict] | None = None,
    evaluate_every: int = 0,
    on_step: Callable[[int], None] | None = None,
) -> History:
    """Train ``model`` and ``head`` under ``loss`` on ``data``; return the :class:`History`.

    Args:
        data: a face set (:class:`frbook.data.SynthFaces`, or any data set of ``(image, label)``
            items), drawn in the epoch order of ``seed`` (:func:`frbook.train.batches.epoch_order`,
            the trainer's), or any re-iterable of ``(images, labels)`` batches such as a
            ``DataLoader``, used in its own order.
        steps, epochs: how long to train; give exactly one. With ``steps`` the data is cycled.
        lr: the peak learning rate of SGD with momentum; it rises linearly over
            ``warmup_steps`` then follows a cosine down to zero, so short runs end converged.
        weight_decay: applied to the backbone and the head, not to loss parameters (a learned
            scale must not be pulled towards zero).
        evaluate, evaluate_every: every ``evaluate_every`` steps (and at the end), call
            ``evaluate(model)`` with the model in eval mode and no gradient, and add the metrics it
            returns to that step's record: how a held-out accuracy evolves during training.
        on_step: called as ``on_step(step)`` after every optimiser step (1-based), e.g. to record a
            learned parameter such as NormFace's scale.

    Each record holds the step, epoch, batch loss, batch accuracy, learning rate, seconds, and,
    for cosine heads, ``target_angle``: the batch's mean angle in degrees between each embedding
    and its own class centre (the quantity every margin loss works on).
    """
    if (steps is None) == (epochs is None):
        raise ValueError("give exactly one of steps= or epochs= to say how long to train")
    device = pick_device(device)
    model.to(device).train()
    head.to(device).train()
    loss.to(device).train()

    batches = draw_batches(data, batch_size, seed, device)
    if steps is None:
        steps = epochs * _epoch_length(data, batch_size)
    if steps < 1:
        raise ValueError(f"nothing to train: steps={steps}")
    optimizer = make_optimizer(parameter_groups(model, head, loss, weight_decay), "sgd", lr, momentum)
    schedule = make_scheduler(optimizer, {"kind": "cosine", "warmup_steps": warmup_steps, "milestones": [],
                                          "gamma": 0.1, "power": 2.0}, steps)

    history = History()
    start = time.perf_counter()
    bar = tqdm(total=steps, disable=not progress, desc="training", unit="step")
    for step, (epoch, (images, labels)) in zip(range(1, steps + 1), batches):
        images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
        embeddings, feature_map = embed_batch(model, images, loss)
        outputs = head(embeddings)
        value = loss_value(loss, outputs, labels, embeddings, feature_map)
        if not torch.isfinite(value):
            raise FloatingPointError(
                f"the loss became {value.item()} at step {step}; lower the learning rate (lr={lr}) "
                "or the loss's scale"
            )
        optimizer.zero_grad(set_to_none=True)
        value.backward()
        optimizer.step()
        schedule.step()
        loss.step()  # a loss's own schedule (SphereFace's lambda); a no-op for most
        if on_step is not None:
            on_step(step)

        evaluate_now = evaluate is not None and (step == steps or (evaluate_every and step % evaluate_every == 0))
        if step % log_every == 0 or step == steps or evaluate_now:
            accuracy = (outputs.argmax(1) == labels).float().mean().item()
            record = {
                "step": step, "epoch": epoch, "loss": value.item(), "train_accuracy": accuracy,
                "lr": optimizer.param_groups[0]["lr"], "seconds": time.perf_counter() - start,
            }
            if loss.head == "cosine":
                target = outputs.detach().gather(1, labels.unsqueeze(1)).clamp(-1, 1)
                record["target_angle"] = math.degrees(target.acos().mean().item())
            if evaluate_now:
                model.eval()
                with torch.no_grad():
                    record.update(evaluate(model))
                model.train()
            history.records.append(record)
            bar.set_postfix(loss=f"{value.item():.3f}", acc=f"{accuracy:.2f}")
        bar.update(1)
    bar.close()
    model.eval(), head.eval(), loss.eval()
    return history


def is_face_set(data) -> bool:
    """A data set of items (drawn by index in an epoch order), not an iterable of batches."""
    return hasattr(data, "__len__") and hasattr(data, "__getitem__") and not isinstance(data, (list, tuple))


def draw_batches(data, batch_size: int, seed: int, device=None, flip: bool = False):
    """Yield (epoch, (images, labels)) for ever: a face set in the epoch order of ``seed`` (the
    trainer's :class:`~frbook.train.batches.BatchPlan`, last incomplete batch dropped; with
    ``flip``, the trainer's mirrored images, :func:`~frbook.train.batches.flip_mask`), else the
    batches of ``data``, replayed epoch after epoch."""
    if is_face_set(data):
        source = getattr(data, "device", device)  # SynthFaces renders where it lives
        for step, (epoch, _, [(_, items)]) in enumerate(BatchPlan(len(data), batch_size, seed)()):
            images, labels = fetch(data, items, source)
            if flip:
                mirror = flip_mask(batch_size, seed, step).to(images.device).view(-1, 1, 1, 1)
                images = torch.where(mirror, images.flip(-1), images)
            yield epoch, (images, labels)
        return
    epoch = 0
    while True:
        empty = True
        for batch in data:
            empty = False
            yield epoch, batch
        if empty:
            raise ValueError("the training data yielded no batch (is it smaller than one batch?)")
        epoch += 1


def _epoch_length(data, batch_size: int) -> int:
    if is_face_set(data):
        return len(data) // batch_size
    try:
        return len(data)
    except TypeError:
        raise ValueError("this data has no length; give steps= instead of epochs=") from None
