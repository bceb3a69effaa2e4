"""The trainer at scale: ``python -m frbook train --config configs/train_*.yaml``.

It is :func:`frbook.train.fit`'s loop (draw a batch, embed, score against the centres, apply the
loss, step) with what long runs on real data need around it: a config (:mod:`.config`), the
field's schedules (:mod:`.schedules`), mixed precision, channels-last and ``torch.compile``,
several processes (:mod:`.distributed`, :mod:`.batches`), a sharded classifier
(:mod:`.partial_fc`), periodic evaluation (:mod:`.evaluation`), metrics in ``metrics.jsonl``
(and TensorBoard when it is installed), and checkpoints that resume exactly
(:mod:`.checkpointing`).

A run folder holds ``config.yaml`` (the resolved config), ``metrics.jsonl`` (one JSON object per
logged step and per evaluation), ``last.pt``, ``best.pt`` (the checkpoint with the best
``checkpoint.keep_best`` metric) and ``summary.json``. A folder that holds a run is never half
overwritten: a new run there is refused unless ``resume`` continues it or ``force`` removes it first.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import re
import shutil
import sys
import time
import warnings
from pathlib import Path

import torch
import yaml
from torch import nn
from tqdm import tqdm

from .. import models
from ..heads import CosineClassifier, make_head
from ..provenance import REPO, provenance, write_json_atomic
from ..safe_io import read_jsonl, remove_stale_temporaries
from ..utils import seed_everything
from . import distributed
from .batches import BatchPlan, Prefetcher, flip_mask
from .checkpointing import capture_rng, preserved_rng, read_run, restore_rng, save_run
from .config import ConfigError, check_data_paths, check_device, compatible, make_loss, model_params
from .data import build_data
from .evaluation import make_evaluators, target_names
from .parts import loss_value, make_optimizer, parameter_groups
from .partial_fc import PartialFC, sum_gradients_hook
from .schedules import make_scheduler

__all__ = ["Trainer", "train"]

AUTOCAST = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


# What a run leaves in its folder; a fresh run into a folder holding any of them would mix runs.
RUN_FILES = ("last.pt", "best.pt", "metrics.jsonl", "summary.json")


def claim_run_folder(out: Path, resume, force: bool, main: bool = True) -> None:
    """Make ``out`` ready for a run: create it, remove temporary files that an interrupted save
    left, and refuse to start a new run over an old one unless ``force`` (or ``resume``) says so.
    Only the ``main`` process changes the folder; the others only check."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file; give a folder for the run")
    if not main:
        held = [name for name in RUN_FILES if (out / name).exists()]
        if held and resume is None and not force:
            raise ConfigError(f"{out} holds a run ({', '.join(held)}); continue it with --resume auto, "
                              "replace it with --force, or train into another folder with --out")
        return
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"--out {out}: cannot create the run folder ({exc.strerror or exc})") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise ConfigError(f"--out {out}: the folder is not writable; choose another with --out")
    for stale in remove_stale_temporaries(out):
        print(f"removed {stale}, left by an interrupted save", file=sys.stderr)
    if resume is not None and resume != "auto":
        return
    if resume == "auto" and (out / "last.pt").exists():
        return
    held = [name for name in RUN_FILES if (out / name).exists()]
    if not held:
        return
    if not (force or resume == "auto"):
        raise ConfigError(f"{out} holds a run ({', '.join(held)}); continue it with --resume auto, "
                          "replace it with --force, or train into another folder with --out")
    for name in held:  # --force, or --resume auto with nothing to resume: start clean
        (out / name).unlink()
    if (out / "tensorboard").is_dir():
        shutil.rmtree(out / "tensorboard")
    print(f"removed the previous run's {', '.join(held)} from {out}", file=sys.stderr)


class Network(nn.Module):
    """The backbone, with the head when it is replicated, as one module for DistributedDataParallel.

    The backbone runs under autocast; the head and the loss in float32, where the margins'
    arithmetic near cos = +-1 keeps its precision.
    """

    def __init__(self, backbone: nn.Module, head: nn.Module | None, autocast, feature_map: bool = False):
        super().__init__()
        self.backbone, self.head, self.autocast = backbone, head, autocast
        self.feature_map = feature_map  # also return the last feature map (the transformer-metric loss)

    def forward(self, images):
        with self.autocast():
            out = self.backbone(images, return_feature_map=True) if self.feature_map else self.backbone(images)
        embeddings, feature_map = out if self.feature_map else (out, None)
        embeddings = embeddings.float()
        outputs = self.head(embeddings) if self.head is not None else None
        return (embeddings, outputs, feature_map) if self.feature_map else (embeddings, outputs)


def _split_optimizer_state(state: dict, rows: set[int]):
    """(state without ``rows``' entries, only ``rows``' entries): the per-rank part of a sharded head."""
    shared = {"param_groups": state["param_groups"], "state": {k: v for k, v in state["state"].items() if k not in rows}}
    return shared, {k: v for k, v in state["state"].items() if k in rows}


def train(config: dict, out_dir=None, resume=None, progress: bool = True, stop_at: int | None = None,
          force: bool = False) -> dict:
    """Train as ``config`` says (from :func:`frbook.train.config.load_config`); return a summary.

    Args:
        out_dir: the run folder (default ``runs/<config name>``).
        resume: a checkpoint to continue from, or ``"auto"`` for ``<out_dir>/last.pt`` when it exists.
        stop_at: stop after this step with a checkpoint (to be resumed), as a preempted job would.
        force: start afresh in a folder that holds a run, removing that run's files first (without
            it, such a folder is refused: a new ``last.pt`` beside an old ``best.pt`` would mix runs).
    """
    check_device(config)
    world = distributed.setup(config["train"]["device"])
    # every rank checks (so that all refuse together, none waiting for the others); rank 0 writes
    claim_run_folder(Path(out_dir or REPO / "runs" / config["name"]), resume, force, world.is_main)
    try:
        return Trainer(config, out_dir, world, progress).run(resume, stop_at)
    finally:
        distributed.teardown()


class Trainer:
    """One run's state: data, backbone, head, loss, optimiser, schedule, position. :func:`train`
    builds one and calls :meth:`run`; a benchmark can call :meth:`train_step` on batches it made.

    ``world`` is :func:`frbook.train.distributed.setup`'s answer (default: one process).
    """

    def __init__(self, config, out_dir=None, world=None, progress: bool = True):
        world = world or distributed.World(device=torch.device(config["train"]["device"] or
                                                               ("cuda" if torch.cuda.is_available() else "cpu")))
        self.config, self.world, self.progress = config, world, progress
        self.out = Path(out_dir or REPO / "runs" / config["name"])
        t, device = config["train"], world.device
        check_data_paths(config)
        # SynthFaces render, and decoded LFW sits, where the training runs; other real images are
        # decoded on the CPU (by worker processes) and moved batch by batch.
        in_place = config["data"]["kind"] in ("synth", "lfw")
        self.data = build_data(config, device if in_place else None, progress and world.is_main)
        self.train_set = self.data.train
        self.evaluators = make_evaluators(config, self.data, device, progress) if world.is_main else {}
        self.plan = BatchPlan(len(self.train_set), t["batch_size"], t["seed"], world.rank, world.size, t["accumulate"])
        self.total = t["steps"] or t["epochs"] * self.plan.batches_per_epoch

        seed_everything(t["seed"])
        self.model_name, self.model_params = config["model"]["name"], model_params(config)
        self.backbone = models.get(self.model_name, **self.model_params).to(device)
        h, num_classes = config["head"], self.train_set.num_classes
        self.loss = make_loss(config, self.backbone, num_classes).to(device)
        if h["partial_fc"]:
            self.head = PartialFC(self.backbone.embedding_dim, num_classes, self.loss, h["sample_rate"])
        elif h["sub_centers"] > 1:
            self.head = CosineClassifier(self.backbone.embedding_dim, num_classes, sub_centers=h["sub_centers"])
        else:
            self.head = make_head(self.loss, self.backbone.embedding_dim, num_classes)
        self.head.to(device)
        if t["channels_last"]:
            self.backbone.to(memory_format=torch.channels_last)
        if t["sync_bn"] and world.size > 1:
            self.backbone = nn.SyncBatchNorm.convert_sync_batchnorm(self.backbone)

        dtype = AUTOCAST[t["precision"]]
        self.autocast = (lambda: torch.autocast(device.type, dtype=dtype)) if dtype else contextlib.nullcontext
        self.scaler = torch.amp.GradScaler(device.type, enabled=t["precision"] == "fp16")
        o = config["optim"]
        groups = parameter_groups(self.backbone, self.head, self.loss, o["weight_decay"])
        # On a GPU one fused kernel steps every parameter (the same arithmetic in far fewer launches).
        fused = all(p.is_cuda for g in groups for p in g["params"])
        self.optimizer = make_optimizer(groups, o["name"], o["lr"], o["momentum"], fused=fused)
        self.scheduler = make_scheduler(self.optimizer, config["schedule"], self.total)
        n_backbone = len(list(self.backbone.parameters()))
        self.head_rows = set(range(n_backbone, n_backbone + len(list(self.head.parameters()))))

        compiled = torch.compile(self.backbone) if t["compile"] else self.backbone
        replicated_head = None if h["partial_fc"] else self.head
        self.net = Network(compiled, replicated_head, self.autocast,
                           feature_map=self.loss.needs_feature_map)
        if world.size > 1:
            ids = [device.index] if device.type == "cuda" else None
            self.net = nn.parallel.DistributedDataParallel(self.net, device_ids=ids)
            if h["partial_fc"]:
                self.net.register_comm_hook(None, sum_gradients_hook)
        self.step, self.epoch, self.position = 0, 0, 0
        self.best = None  # (metric value, step)
        self.fit_stats = None  # (correct, sum of target angles, count) since the last log line

    # -- checkpoints ---------------------------------------------------------------------------
    def _save(self, name: str, metrics: dict | None = None) -> None:
        """Write ``name`` (last.pt / best.pt) on rank 0; every rank contributes its own state."""
        mine = {"rng": capture_rng()}
        optimizer_state = self.optimizer.state_dict()
        partial = self.config["head"]["partial_fc"]
        if partial:  # each rank's centres and their optimiser state are its own
            optimizer_state, mine["optimizer_head"] = _split_optimizer_state(optimizer_state, self.head_rows)
            mine["head"] = self.head.state_dict()
        ranks = distributed.gather_objects(mine, self.world)
        if not self.world.is_main:
            return
        training = {
            "config": self.config, "step": self.step, "epoch": self.epoch, "position": self.position,
            "world_size": self.world.size, "head": None if partial else self.head.state_dict(),
            "loss": self.loss.state_dict(), "optimizer": optimizer_state,
            "scheduler": self.scheduler.state_dict(), "scaler": self.scaler.state_dict(),
            "ranks": ranks, "best": None if self.best is None else list(self.best),
        }
        extra = {"loss": self.config["loss"]["name"], "loss_params": self.loss.hparams(), "step": self.step,
                 "metrics": metrics or {}}
        save_run(self.out / name, self.backbone, self.model_name, self.model_params, training, extra)

    def restore(self, path) -> None:
        record = read_run(path)
        saved = record["training"]
        changed = compatible(saved["config"], self.config)
        if changed:
            raise ConfigError(f"{path} was trained with another config; resuming would not continue that run. "
                              f"Changed: {'; '.join(changed)}")
        partial = self.config["head"]["partial_fc"]
        if saved["world_size"] != self.world.size:
            raise ConfigError(f"{path} was written by {saved['world_size']} processes; resume it with as many "
                              f"(now {self.world.size}), since each holds its own random state and data slice")
        mine = saved["ranks"][self.world.rank]
        self.backbone.load_state_dict(record["state_dict"])
        self.head.load_state_dict(mine["head"] if partial else saved["head"])
        self.loss.load_state_dict(saved["loss"])
        optimizer_state = saved["optimizer"]
        if partial:
            optimizer_state = {**optimizer_state, "state": {**optimizer_state["state"], **mine["optimizer_head"]}}
        self.optimizer.load_state_dict(optimizer_state)
        self.scheduler.load_state_dict(saved["scheduler"])
        if saved["scaler"]:
            self.scaler.load_state_dict(saved["scaler"])
        self.step, self.epoch, self.position = saved["step"], saved["epoch"], saved["position"]
        self.best = tuple(saved["best"]) if saved["best"] is not None else None
        restore_rng(mine["rng"])

    # -- logging --------------------------------------------------------------------------------
    def _open_logs(self, resumed: bool):
        if not self.world.is_main:
            return
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / "config.yaml").write_text(yaml.safe_dump(self.config, sort_keys=False))
        metrics = self.out / "metrics.jsonl"
        # A resumed run re-does the steps after its checkpoint: drop their lines.
        # A torn last line (a crash or a full disk mid-append) is dropped with a warning.
        kept = [r for r in (read_jsonl(metrics, ConfigError) if resumed and metrics.exists() else [])
                if r.get("step", 0) <= self.step]
        metrics.write_text("".join(json.dumps(r) + "\n" for r in kept))
        self.tensorboard = None
        try:
            from torch.utils.tensorboard import SummaryWriter
            self.tensorboard = SummaryWriter(str(self.out / "tensorboard"))
        except ImportError:  # optional: metrics.jsonl has everything
            pass

    def _log(self, record: dict) -> None:
        if not self.world.is_main:
            return
        with open(self.out / "metrics.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")
        if self.tensorboard is not None:
            for key, value in record.items():
                if key != "step" and isinstance(value, (int, float)):
                    self.tensorboard.add_scalar(key, value, record["step"])

    def _evaluate(self) -> dict:
        """Every target's metrics (rank 0), the training's random stream untouched."""
        metrics = {}
        if self.evaluators:
            self.backbone.eval()
            with preserved_rng(), torch.no_grad():
                for evaluate in self.evaluators.values():
                    metrics.update(evaluate(self.backbone))
            self.backbone.train()
        return metrics

    def _log_training(self, loss: float, epoch: int, steps: int, seconds: float, bar) -> None:
        stats, self.fit_stats = self.fit_stats, None
        fit = {} if stats is None else {"train_accuracy": (stats[0] / stats[2]).item(),
                                        "train_target_angle_deg": (stats[1] / stats[2]).item()}
        numbers = distributed.all_reduce_mean({"loss": loss, **fit}, self.world)
        if not math.isfinite(numbers["loss"]):
            raise FloatingPointError(f"the loss became {numbers['loss']} by step {self.step}; lower "
                                     f"optim.lr ({self.config['optim']['lr']}) or the loss's scale")
        record = {"step": self.step, "epoch": epoch, "loss": numbers["loss"],
                  **{k: numbers[k] for k in fit},  # not with partial_fc (no full logits)
                  "lr": self.optimizer.param_groups[0]["lr"],
                  "images_per_second": steps * self.config["train"]["batch_size"] / max(seconds, 1e-9)}
        self._log(record)
        bar.set_postfix(loss=f"{record['loss']:.3f}", img_s=f"{record['images_per_second']:.0f}")

    def _is_best(self, metric: str | None, metrics: dict) -> bool:
        """Whether ``metrics`` beat the best so far (rank 0 decides; EER: lower is better)."""
        if metric is None or not self.world.is_main:
            return False
        if metric not in metrics:
            raise ConfigError(f"checkpoint.keep_best {metric!r} is not measured; the evaluation "
                              f"gives {', '.join(metrics)}")
        value = metrics[metric]
        lower = metric.endswith("/eer")
        if self.best is None or (value < self.best[0] if lower else value > self.best[0]):
            self.best = (value, self.step)
            return True
        return False

    def _best_metric(self) -> str | None:
        choice = self.config["checkpoint"]["keep_best"]
        if choice == "none" or not self.config["eval"]["targets"]:
            return None
        if choice == "auto":
            return f"{target_names(self.config)[0]}/accuracy"
        return choice

    # -- the loop -------------------------------------------------------------------------------
    def _fit_stats(self, outputs, embeddings, labels) -> None:
        """Add a micro-batch to the training accuracy (arg-max class) and the mean angle between
        each embedding and its own class centre: a run that only fits its training identities
        shows as a high accuracy and small angles next to a poor held-out score."""
        with torch.no_grad():
            weight = getattr(self.head, "weight", None)
            if isinstance(self.head, CosineClassifier):
                cos = outputs.gather(1, labels[:, None]).squeeze(1)
            elif weight is not None and weight.shape[0] == outputs.shape[1]:  # the linear (softmax) head
                cos = nn.functional.cosine_similarity(embeddings, weight[labels].to(embeddings.dtype), dim=1)
            else:
                return
            stats = torch.stack([(outputs.argmax(1) == labels).float().sum(),
                                 torch.rad2deg(torch.acos(cos.float().clamp(-1, 1))).sum(),
                                 torch.tensor(float(len(labels)), device=labels.device)])
            self.fit_stats = stats if self.fit_stats is None else self.fit_stats + stats

    def train_step(self, slices) -> torch.Tensor:
        """One optimiser step on this rank's micro-batches ``[(offset in the global batch,
        (images, labels)), ...]``; returns the mean loss (a tensor, not synchronised)."""
        t, device = self.config["train"], self.world.device
        self.optimizer.zero_grad(set_to_none=True)
        total = torch.zeros((), device=device)
        flips = flip_mask(t["batch_size"], t["seed"], self.step) if self.config["data"]["flip"] else None
        for k, (start, (images, labels)) in enumerate(slices):
            images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
            if flips is not None:
                mirror = flips[start:start + len(labels)].to(device).view(-1, 1, 1, 1)
                images = torch.where(mirror, images.flip(-1), images)
            if t["channels_last"]:
                images = images.contiguous(memory_format=torch.channels_last)
            last = k == len(slices) - 1
            sync = self.net.no_sync() if isinstance(self.net, nn.parallel.DistributedDataParallel) and not last \
                else contextlib.nullcontext()
            with sync:
                embeddings, outputs, *feature_map = self.net(images)
                if outputs is None:
                    value = self.head(embeddings, labels)
                else:
                    value = loss_value(self.loss, outputs, labels, embeddings, *feature_map)
                    self._fit_stats(outputs.detach(), embeddings.detach(), labels)
                self.scaler.scale(value / len(slices)).backward()
            total += value.detach() / len(slices)
        distributed.average_gradients(self.loss.parameters(), self.world)  # outside DDP's reach
        if self.config["optim"]["clip_grad_norm"] > 0:
            self.scaler.unscale_(self.optimizer)
            params = [p for g in self.optimizer.param_groups for p in g["params"]]
            nn.utils.clip_grad_norm_(params, self.config["optim"]["clip_grad_norm"])
        self.scaler.step(self.optimizer)
        self.scaler.update()
        with warnings.catch_warnings():
            # fp16: the GradScaler skips the steps whose gradients overflowed (the first few, while
            # it finds its scale); the schedule still advances, which is what we want.
            warnings.filterwarnings("ignore", message=re.escape("Detected call of `lr_scheduler.step()`"))
            self.scheduler.step()
        self.loss.step()  # a loss's own schedule (SphereFace's lambda); a no-op for most
        distributed.average_buffers(self.loss, self.world)
        return total

    def run(self, resume=None, stop_at=None) -> dict:
        if resume == "auto":
            resume = self.out / "last.pt" if (self.out / "last.pt").exists() else None
        if resume is not None:
            self.restore(resume)
        self._open_logs(resumed=resume is not None)
        if self.step >= self.total:
            raise ConfigError(f"the checkpoint is at step {self.step}, the config trains {self.total} steps: "
                              "nothing to do (raise train.steps to train on)")
        best_metric = self._best_metric()
        t = self.config["train"]
        self.backbone.train(), self.head.train(), self.loss.train()
        batches = iter(Prefetcher(self.train_set, self.plan(self.epoch, self.position), self.config["data"]["workers"]))
        bar = tqdm(total=self.total, initial=self.step, disable=not (self.progress and self.world.is_main),
                   desc=f"training {self.config['name']}", unit="step")
        running, since, clock, paused = torch.zeros((), device=self.world.device), 0, time.perf_counter(), 0.0
        metrics = {}
        while self.step < self.total:
            epoch, position, slices = next(batches)
            running += self.train_step(slices)
            self.step, since = self.step + 1, since + 1
            self.epoch, self.position = epoch, position + 1
            bar.update(1)  # now, so that evaluation and checkpoints do not show as a slow step
            if self.step % t["log_every"] == 0 or self.step == self.total:
                self._log_training(running.item() / since, epoch, since, time.perf_counter() - clock - paused, bar)
                running, since, clock, paused = torch.zeros((), device=self.world.device), 0, time.perf_counter(), 0.0
            started = time.perf_counter()  # evaluation and checkpoints do not count as training time
            every = self.config["eval"]["every"]
            is_best = False
            if (every and self.step % every == 0) or self.step == self.total:
                metrics = self._evaluate()
                if metrics:
                    self._log({"step": self.step, **metrics})
                    bar.write(f"step {self.step}: " + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
                is_best = distributed.broadcast_object(self._is_best(best_metric, metrics), self.world)
            if is_best:
                self._save("best.pt", metrics)
            stop = stop_at is not None and self.step >= stop_at
            if (self.config["checkpoint"]["every"] and self.step % self.config["checkpoint"]["every"] == 0) \
                    or self.step == self.total or stop:
                self._save("last.pt", metrics)
            paused += time.perf_counter() - started
            if stop:
                break
        bar.close()
        summary = {"name": self.config["name"], "out_dir": str(self.out), "step": self.step,
                   "total_steps": self.total, "finished": self.step >= self.total, "metrics": metrics,
                   "best": None if self.best is None else {"metric": best_metric, "value": self.best[0],
                                                           "step": self.best[1]},
                   "world_size": self.world.size, "provenance": provenance(self.world.device)}
        if self.world.is_main:
            write_json_atomic(self.out / "summary.json", summary)
            if self.tensorboard is not None:
                self.tensorboard.close()
        return summary
