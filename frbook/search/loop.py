r"""The search loop shared by Search-Softmax, Random-Softmax and AM-LFS.

Every epoch:

1. the policy draws M samples, one loss per candidate (:mod:`frbook.search.spaces`);
2. the M candidates, all holding the same weights, train for ``steps_per_epoch`` steps on the
   same batches, each under its own loss (:mod:`frbook.search.candidates`);
3. each candidate's reward is measured by ``reward(backbone)``: the caller's validation
   accuracy, on identities that are neither trained on nor tested on;
4. ``method="search"`` moves the policy's mean by REINFORCE on the normalised rewards
   (:mod:`frbook.search.policy`);
5. the best candidate's weights, statistics and momentum are copied to all of them.

Three methods:

- ``"search"``: Search-Softmax or AM-LFS, steps 1 to 5.
- ``"random"``: Random-Softmax as the official code runs it (``do_search=0``): the policy is never
  updated, nothing is rewarded and nothing is selected or copied (steps 3 to 5 are skipped); each
  candidate trains on its own with a new random sample every epoch, and the result is candidate 0
  (the official code saves rank 0's network). The other candidates change nothing, so give
  ``candidates=1``: the cost of one training.
- ``"random_best"``: an ablation, not a method of the paper: random samples as in ``"random"``, but
  with the reward and the best-of-M copy of step 5, so that a search's gain can be split into
  what the selection gives and what the policy adds. (Before this distinction, frbook's
  ``"random"`` was this ablation.)

The official schedule differs from this library's default in two ways, both settings:
``fixed_epochs`` (official: 2; default 0): the first epochs train every candidate with the
policy's initial mean instead of a sample (``set_loss_parameters`` samples from epoch 2 on);
``reward_every`` (default 1): reward, update and copy only every that many epochs, and only after
the fixed ones. The official ``main.py`` rewards when ``(epoch + 1) % val_freq == 0`` and
``epoch + 1 >= 3``, with ``val_freq`` 1 by default on its command line (every epoch from the third)
and ``val_freq = 2`` declared, unused, in its ``LossFuncSearch`` (every two epochs: 4, 6, 8, ...);
``fixed_epochs=2`` with ``reward_every=1`` or ``2`` gives the one or the other. Between rewarded
epochs the candidates keep their own weights.

After a rewarded epoch the candidates are identical, so the state of a search between epochs is
the candidates' networks (saved as one when they are identical), their momentum, the policy, the
sampler's random state and the history. It can be saved to ``state_path`` after each epoch; a
search started again with the same path resumes after the last saved epoch and ends exactly where
an uninterrupted one would.

Under ``torchrun`` (several processes, e.g. one per GPU) each process trains ``M / world size``
of the candidates on the same batches; the rewards are gathered, every process makes the same
policy update, and the best candidate is broadcast from the process that holds it.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from itertools import islice
from pathlib import Path

import torch
import torch.distributed as dist
from tqdm import tqdm

from ..checkpoint import write_atomic
from ..safe_io import remove_stale_temporaries
from ..train.distributed import gather_objects, setup
from ..train.loop import draw_batches
from ..train.schedules import LRMultiplier
from .candidates import ENGINE_NAMES, CandidateNetwork, make_candidates
from .policy import GaussianPolicy, normalise_rewards

METHODS = ("search", "random", "random_best")


@dataclass
class SearchSettings:
    """Every setting of a search, with Search-Softmax's values where the paper gives one.

    The defaults are the paper's: M = 8 candidates (the official script), 20 epochs, sigma 0.2,
    Adam for the policy at 0.05 with betas (0.5, 0.999), SGD at lr 0.1 with momentum 0.9 and
    weight decay 1e-4, the rate divided by 10 after epochs 4, 8 and 10 (``schedule="step"``,
    ``milestones``). ``schedule="cosine"`` is :func:`frbook.train.fit`'s warm-up and cosine over
    the whole search, ``epochs * steps_per_epoch`` steps: the schedule of this book's compared
    losses, which its configs use so that a search and a fixed loss train alike.
    ``steps_per_epoch`` has no paper value (an epoch of CASIA-WebFace); give it.
    ``method``, ``fixed_epochs`` and ``reward_every``: see the module (the official schedule is
    ``fixed_epochs=2``; the defaults, 0 and 1, sample and reward from the first epoch on).
    """

    method: str = "search"
    candidates: int = 8
    epochs: int = 20
    steps_per_epoch: int = 100
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 1e-4
    schedule: str = "step"
    milestones: tuple = (4, 8, 10)
    warmup_steps: int = 0
    sigma: float = 0.2
    policy_lr: float = 0.05
    betas: tuple = (0.5, 0.999)
    engine: str = "auto"
    seed: int = 0
    fixed_epochs: int = 0
    reward_every: int = 1

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {', '.join(METHODS)}, got {self.method!r}")
        for name in ("candidates", "epochs", "steps_per_epoch", "batch_size", "reward_every"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        for name in ("lr", "sigma", "policy_lr"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ValueError(f"{name} must be a positive number, got {value!r}")
        if not 0 <= self.momentum < 1 or self.weight_decay < 0:
            raise ValueError(f"momentum must be in [0, 1) and weight_decay >= 0, got {self.momentum} and "
                             f"{self.weight_decay}")
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise ValueError(f"betas must be two numbers in [0, 1), got {self.betas!r}")
        if isinstance(self.fixed_epochs, bool) or not isinstance(self.fixed_epochs, int) or self.fixed_epochs < 0:
            raise ValueError(f"fixed_epochs must be an integer >= 0, got {self.fixed_epochs!r}")
        if self.engine not in ENGINE_NAMES:
            raise ValueError(f"engine must be one of {', '.join(ENGINE_NAMES)}, got {self.engine!r}")
        if self.schedule not in ("step", "cosine"):
            raise ValueError(f"schedule must be 'step' or 'cosine', got {self.schedule!r}")
        self.betas, self.milestones = tuple(self.betas), tuple(self.milestones)

    def lr_at(self, step: int) -> float:
        """The SGD learning rate of (0-based) training step ``step``: the trainer's schedules
        (:mod:`frbook.train.schedules`), with the step schedule's milestones counted in epochs."""
        total = self.epochs * self.steps_per_epoch
        if self.schedule == "cosine":
            rule = LRMultiplier("cosine", total, self.warmup_steps)
        else:
            rule = LRMultiplier("step", total, self.warmup_steps,
                                milestones=[m * self.steps_per_epoch for m in self.milestones])
        return self.lr * rule(step)

    def rewarded(self, epoch: int) -> bool:
        """Whether (0-based) ``epoch`` ends with a reward (and, unless ``method="random"``, a
        policy update and the copy of the best candidate)."""
        return self.method != "random" and epoch + 1 > self.fixed_epochs and (epoch + 1) % self.reward_every == 0


@dataclass
class SearchResult:
    """The searched network (the best candidate of the last epoch) and one record per epoch."""

    network: CandidateNetwork
    history: list[dict] = field(default_factory=list)

    @property
    def backbone(self):
        return self.network.backbone

    def column(self, name: str) -> list:
        return [record[name] for record in self.history]


def search(backbone, head, space, data, reward: Callable[[torch.nn.Module], float], settings: SearchSettings,
           device=None, state_path: str | Path | None = None, stop_after: int | None = None,
           progress: bool = True, flip: bool = False) -> SearchResult:
    """Search a loss in ``space`` while training ``backbone`` and ``head`` on ``data``.

    Args:
        data: training data, drawn as :func:`frbook.train.fit` draws it (a face set in the epoch
            order of ``settings.seed``, or a re-iterable of batches).
        reward: maps a candidate's backbone (eval mode) to its reward, e.g. its verification
            accuracy on validation identities. Never the test set: the search would tune the
            loss to it (one of the official code's mistakes).
        state_path: save the state there after every epoch, and resume from it if it exists.
        stop_after: stop after this many epochs in all (to test resuming, or to split a long search).
        flip: mirror about half of each batch's images, as the trainer does (``data.flip``).
    """
    world = setup(device)
    device = world.device
    s = settings
    if s.candidates % world.size:
        raise ValueError(f"{s.candidates} candidates cannot be shared equally by {world.size} processes")
    per_rank = s.candidates // world.size
    mine = slice(world.rank * per_rank, (world.rank + 1) * per_rank)  # this process's candidates
    candidates = make_candidates(s.engine, backbone.to(device), head.to(device), per_rank,
                                 lr=s.lr, momentum=s.momentum, weight_decay=s.weight_decay)
    policy = GaussianPolicy(space.initial_mean(), sigma=s.sigma, lr=s.policy_lr, betas=s.betas)
    sampler = torch.Generator().manual_seed(s.seed)  # the same seed everywhere: every rank draws the same samples
    history: list[dict] = []
    identity = {"settings": asdict(s), "space": space.settings()}
    if state_path is not None:  # temporary files of a save cut short by kill -9
        remove_stale_temporaries(Path(state_path).parent)
    if state_path is not None and Path(state_path).exists():
        try:  # plain data only: a crafted state file cannot run code (weights_only=True)
            state = torch.load(state_path, weights_only=True, map_location=device)
        except Exception as exc:
            raise ValueError(f"{state_path}: not a readable search state ({type(exc).__name__}: "
                             f"{str(exc).splitlines()[0][:200] if str(exc) else ''}); delete it to start over") from None
        if {k: state[k] for k in identity} != identity:
            raise ValueError(f"{state_path} holds the state of another search ({state['settings']}, "
                             f"{state['space']}); delete it, or save this search elsewhere")
        if "candidate" in state:  # saved after a rewarded epoch: every candidate is this one
            candidates.fill(state["candidate"])
        elif world.distributed:  # each process holds other candidates; only the main one saved its own
            raise ValueError(f"{state_path} was saved after an epoch without a reward (candidates not identical), "
                             "which a search under several processes cannot resume; delete it to start over")
        else:
            for k, saved in enumerate(state["candidates"]):
                candidates.fill_one(k, saved)
        policy.load_state_dict(state["policy"])
        sampler.set_state(state["sampler"])
        history = state["history"]

    first = len(history)
    last = s.epochs if stop_after is None else min(s.epochs, stop_after)
    batches = islice(draw_batches(data, s.batch_size, s.seed, device, flip), first * s.steps_per_epoch, None)
    bar = tqdm(total=(last - first) * s.steps_per_epoch, disable=not (progress and world.is_main), unit="step",
               desc=f"{s.method} ({s.candidates} candidates)")
    for epoch in range(first, last):
        start = time.perf_counter()
        mean_before = policy.mean.detach().clone()
        samples = policy.sample(s.candidates, sampler)  # drawn even when fixed: the sampler's state stays one sequence
        if epoch < s.fixed_epochs:
            samples = policy.mean.detach().expand(s.candidates, -1).clone()
        loss_sums = torch.zeros(per_rank, dtype=torch.float64)
        for i in range(s.steps_per_epoch):
            step = epoch * s.steps_per_epoch + i
            candidates.set_lr(s.lr_at(step))
            _, (images, labels) = next(batches)
            images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
            losses = space.losses(candidates.cosines(images), labels, samples[mine].to(device))
            candidates.step(losses)
            loss_sums += losses.detach().double().cpu()
            bar.update(1)
        train_loss = sum(gather_objects((loss_sums / s.steps_per_epoch).tolist(), world), [])
        record = {"epoch": epoch + 1, "samples": samples.tolist(), "losses": [space.describe(x) for x in samples],
                  "train_loss": train_loss, "rewards": None, "normalised_rewards": None, "best": None}
        if s.rewarded(epoch):
            local_rewards = [_safe_reward(reward, candidates.network(k).backbone) for k in range(per_rank)]
            rewards = torch.tensor(sum(gather_objects(local_rewards, world), []), dtype=torch.float64)
            normalised = normalise_rewards(rewards)
            if s.method == "search":
                policy.update(samples, normalised)
            best = int(rewards.argmax())
            candidates.fill(_share(candidates, best, per_rank, world))
            record.update(rewards=rewards.tolist(), normalised_rewards=normalised.tolist(), best=best)
            bar.set_postfix(epoch=epoch + 1, best_reward=f"{rewards.max():.4f}")
        history.append({**record, "policy_mean_before": mean_before.tolist(),
                        "policy_mean": policy.mean.detach().tolist(), "seconds": time.perf_counter() - start})
        if state_path is not None and world.is_main:
            Path(state_path).parent.mkdir(parents=True, exist_ok=True)
            networks = ({"candidate": candidates.export(0)} if s.rewarded(epoch)  # all identical after the copy
                        else {"candidates": [candidates.export(k) for k in range(per_rank)]})
            write_atomic(Path(state_path), {**identity, **networks, "policy": policy.state_dict(),
                                            "sampler": sampler.get_state(), "history": history})
    bar.close()
    return SearchResult(network=candidates.network(0), history=history)


def _share(candidates, best: int, per_rank: int, world) -> dict:
    """Candidate ``best`` (a global index) as exported by the process that holds it, on every process."""
    owner, local = divmod(best, per_rank)
    state = candidates.export(local if world.rank == owner else 0)  # elsewhere: same shapes, overwritten
    if world.distributed:
        for part in ("network", "momentum"):
            for name in sorted(state[part]):
                dist.broadcast(state[part][name], src=owner)
    return state


def _safe_reward(reward, backbone) -> float:
    """A candidate whose loss diverged (non-finite weights) gets reward 0, below any accuracy."""
    if not all(torch.isfinite(p).all() for p in backbone.parameters()):
        return 0.0
    value = float(reward(backbone))
    return value if value == value else 0.0
