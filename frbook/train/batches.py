"""The trainer's batches: which items, in which order, on which rank, and where to resume.

The order of epoch ``e`` is a permutation drawn from ``(seed, e)`` alone, so two numbers, the
epoch and the batch within it, say where a run is; a resumed run recomputes the permutation and
continues from the next batch. Each global batch of ``B`` items is cut into ``world_size x
accumulate`` equal, disjoint slices: rank ``r`` takes slices ``r*A .. r*A + A-1``, one per
accumulation micro-batch. One process with ``accumulate=N`` therefore sees the very micro-batches
that N processes see, which is how the tests check distributed training against a single process
(batch norm's statistics are per micro-batch in both). The last incomplete batch of an epoch is
dropped, as the field does.

Flips (the usual augmentation) are drawn per global batch from ``(seed, step)``, not from a
process's generator, so they too are the same however the batch is split.
"""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from ..data import SynthFaces
from ..data.decoded import DecodedFaces, decode_all

__all__ = ["BatchPlan", "InMemoryFaces", "Prefetcher", "epoch_order", "flip_mask", "fetch"]


def epoch_order(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The permutation of ``range(n)`` that epoch ``epoch`` of a run with ``seed`` follows.

    The generator's seed is a hash of the pair ``(seed, epoch)`` (NumPy's SeedSequence), not a sum
    such as ``seed + epoch``: with a sum, seed 1's first epoch would be seed 0's second, and runs
    meant to be independent would train on the same batches (and their spread over seeds would
    understate the luck of one run)."""
    if seed < 0 or epoch < 0:
        raise ValueError(f"seed and epoch must be >= 0, got {seed} and {epoch}")
    words = np.random.SeedSequence([int(seed), int(epoch)]).generate_state(2, np.uint32)
    generator = torch.Generator().manual_seed(int(words[0]) << 31 ^ int(words[1]))
    return torch.randperm(n, generator=generator)


def flip_mask(batch_size: int, seed: int, step: int) -> torch.Tensor:
    """Which images of global batch ``step`` are mirrored (True for about half)."""
    generator = torch.Generator().manual_seed((seed * 1_000_033 + 7919 * step) % 2**63 + 1)
    return torch.rand(batch_size, generator=generator) < 0.5


class BatchPlan:
    """Global batches of ``batch_size`` over a data set of ``n`` items, split for ``rank``.

    Iterating from ``(epoch, position)`` yields ``(epoch, position, slices)`` for each global
    batch: ``slices`` are this rank's ``accumulate`` lists of item indices (and their offsets in
    the global batch, for the flips).
    """

    def __init__(self, n: int, batch_size: int, seed: int, rank: int = 0, world_size: int = 1,
                 accumulate: int = 1):
        parts = world_size * accumulate
        if batch_size % parts:
            raise ValueError(f"train.batch_size {batch_size} must be divisible by the number of ranks "
                             f"({world_size}) times train.accumulate ({accumulate})")
        if n < batch_size:
            raise ValueError(f"the training set has {n} images, fewer than one batch of {batch_size}; "
                             "lower train.batch_size")
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.rank, self.world_size, self.accumulate = rank, world_size, accumulate
        self.micro = batch_size // parts

    @property
    def batches_per_epoch(self) -> int:
        return self.n // self.batch_size

    def __call__(self, epoch: int = 0, position: int = 0) -> Iterator[tuple[int, int, list[tuple[int, torch.Tensor]]]]:
        while True:
            order = epoch_order(self.n, self.seed, epoch)
            for b in range(position, self.batches_per_epoch):
                batch = order[b * self.batch_size:(b + 1) * self.batch_size]
                slices = []
                for k in range(self.accumulate):
                    start = (self.rank * self.accumulate + k) * self.micro
                    slices.append((start, batch[start:start + self.micro]))
                yield epoch, b, slices
            epoch, position = epoch + 1, 0


class InMemoryFaces(torch.utils.data.Dataset):
    """A real face set decoded once and kept as ``uint8`` (``data.cache``): decoding JPEGs is
    most of a CPU step's time for a small backbone, and LFW at 64x64 grey is only 54 MB."""

    def __init__(self, dataset, progress: bool = True):
        self.images = decode_all(dataset, progress)
        self.labels = dataset.labels
        self.num_classes = dataset.num_classes

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i):
        return self.images[i].float() / 255, int(self.labels[i])


def fetch(dataset, items: torch.Tensor, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The images and labels of ``items``; SynthFaces renders them in one batch."""
    if isinstance(dataset, SynthFaces):
        ids, idx, labels = dataset._items(items)
        return dataset.render(ids, idx).to(device, non_blocking=True), labels.to(device)
    if isinstance(dataset, (InMemoryFaces, DecodedFaces)):
        rows = items.to(dataset.images.device)
        return (dataset.images[rows].to(device).float() / 255), dataset.labels[rows].to(device)
    images, labels = zip(*(dataset[int(i)] for i in items))
    return torch.stack(images).to(device, non_blocking=True), torch.as_tensor(labels, device=device)


class Prefetcher:
    """Decode real images in worker processes, in the plan's order (a DataLoader whose batch
    sampler is the plan's slices). ``workers == 0`` decodes in this process."""

    def __init__(self, dataset, slices_iter, workers: int):
        self.dataset, self.workers = dataset, workers
        self.slices_iter = slices_iter

    def __iter__(self):
        if self.workers == 0 or isinstance(self.dataset, (SynthFaces, InMemoryFaces, DecodedFaces)):
            for epoch, position, slices in self.slices_iter:
                device = getattr(self.dataset, "device", torch.device("cpu"))  # SynthFaces renders there
                yield epoch, position, [(start, fetch(self.dataset, items, device)) for start, items in slices]
            return
        plans = []

        def sampler():
            for plan in self.slices_iter:
                plans.append(plan)
                for _, items in plan[2]:
                    yield items.tolist()

        loader = torch.utils.data.DataLoader(self.dataset, batch_sampler=sampler(), num_workers=self.workers,
                                             pin_memory=torch.cuda.is_available(), persistent_workers=False)
        pending = []
        for images, labels in loader:
            pending.append((images, labels))
            epoch, position, slices = plans[0]
            if len(pending) == len(slices):
                plans.pop(0)
                yield epoch, position, [(start, batch) for (start, _), batch in zip(slices, pending)]
                pending = []
