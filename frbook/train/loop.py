"""The training loop of the CPU chapters: a backbone, a head and a loss, trained with SGD.

It is deliberately one screen long: draw a batch, embed it, score it against the class centres,
apply the loss, step. The trainer of the later chapters (checkpoints, mixed precision, many GPUs)
grows from this loop and keeps its shape.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import count

import torch
from torch import nn
from tqdm import tqdm

from ..utils import pick_device


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
) -> History:
    """Train ``model`` and ``head`` under ``loss`` on ``data``; return the :class:`History`.

    Args:
        data: a data set with a fast batch ``loader(batch_size, shuffle, generator_seed)``
            (:class:`frbook.data.SynthFaces`), or any re-iterable of ``(images, labels)``
            batches such as a ``DataLoader``.
        steps, epochs: how long to train; give exactly one. With ``steps`` the data is cycled.
        lr: the peak learning rate of SGD with momentum; it rises linearly over
            ``warmup_steps`` then follows a cosine down to zero, so short runs end converged.
        weight_decay: applied to the backbone and the head, not to loss parameters (a learned
            scale must not be pulled towards zero).
        evaluate, evaluate_every: every ``evaluate_every`` steps (and at the end), call
            ``evaluate(model)`` with the model in eval mode and no gradient, and add the metrics it
            returns to that step's record: how a held-out accuracy evolves during training.

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

    batches = batches_forever(data, batch_size, seed)
    if steps is None:
        per_epoch = _epoch_length(data, batch_size)
        steps = epochs * per_epoch
    if steps < 1:
        raise ValueError(f"nothing to train: steps={steps}")

    decayed = list(model.parameters()) + list(head.parameters())
    groups = [{"params": decayed, "weight_decay": weight_decay}]
    loss_params = [p for p in loss.parameters() if p.requires_grad]
    if loss_params:
        groups.append({"params": loss_params, "weight_decay": 0.0})
    optimizer = torch.optim.SGD(groups, lr=lr, momentum=momentum)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda i: warmup_cosine(i, warmup_steps, steps))

    history = History()
    start = time.perf_counter()
    bar = tqdm(total=steps, disable=not progress, desc="training", unit="step")
    for step, (epoch, (images, labels)) in zip(range(1, steps + 1), batches):
        images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
        if getattr(loss, "needs_feature_map", False):  # the transformer-metric loss (frbook.tml)
            embeddings, feature_map = model(images, return_feature_map=True)
        else:
            embeddings, feature_map = model(images), None
        outputs = head(embeddings)
        value = compute_loss(loss, outputs, labels, embeddings, feature_map)
        if not torch.isfinite(value):
            raise FloatingPointError(
                f"the loss became {value.item()} at step {step}; lower the learning rate (lr={lr}) "
                "or the loss's scale"
            )
        optimizer.zero_grad(set_to_none=True)
        value.backward()
        optimizer.step()
        schedule.step()
        if hasattr(loss, "step"):  # losses with a schedule of their own (SphereFace's lambda)
            loss.step()

        evaluate_now = evaluate is not None and (step == steps or (evaluate_every and step % evaluate_every == 0))
        if step % log_every == 0 or step == steps or evaluate_now:
            accuracy = (outputs.argmax(1) == labels).float().mean().item()
            record = {
                "step": step, "epoch": epoch, "loss": value.item(), "train_accuracy": accuracy,
                "lr": optimizer.param_groups[0]["lr"], "seconds": time.perf_counter() - start,
            }
            if getattr(loss, "head", None) == "cosine":
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


def compute_loss(loss: nn.Module, outputs: torch.Tensor, labels: torch.Tensor,
                 embeddings: torch.Tensor, feature_map: torch.Tensor | None = None) -> torch.Tensor:
    """Call ``loss``, giving it the feature norms when it reads them (AdaFace) and the backbone's
    last feature map when it reads that (the transformer-metric loss, :mod:`frbook.tml`)."""
    extra = {}
    if getattr(loss, "needs_norms", False):
        extra["norms"] = embeddings.norm(dim=1)
    if getattr(loss, "needs_feature_map", False):
        extra["feature_map"] = feature_map
    return loss(outputs, labels, **extra)


def warmup_cosine(i: int, warmup: int, total: int) -> float:
    if i < warmup:
        return (i + 1) / warmup
    progress = (i - warmup) / max(1, total - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def batches_forever(data, batch_size: int, seed: int):
    """Yield (epoch, batch) for ever; each epoch reshuffled with its own seed."""
    for epoch in count():
        if hasattr(data, "loader"):
            epoch_batches = data.loader(batch_size, shuffle=True, generator_seed=seed + epoch, drop_last=True)
        else:
            epoch_batches = data
        empty = True
        for batch in epoch_batches:
            empty = False
            yield epoch, batch
        if empty:
            raise ValueError("the training data yielded no batch (is it smaller than one batch?)")


def _epoch_length(data, batch_size: int) -> int:
    if hasattr(data, "loader"):
        return len(data) // batch_size
    try:
        return len(data)
    except TypeError:
        raise ValueError("this data has no length; give steps= instead of epochs=") from None
