r"""M candidate networks trained side by side, each under its own loss.

A search trains M copies of one backbone and head for an epoch, each with another loss, on the
same batches (common random numbers: the candidates then differ by their loss alone, which
makes their rewards comparable with fewer epochs). Two engines do this, with the same interface
and the same arithmetic:

* :class:`StackedCandidates` keeps the M copies as stacked tensors (``torch.func.
  stack_module_state``) and runs them as one batched computation: ``functional_call`` of the
  network with the k-th slice of every tensor, ``vmap``-ed over k. A convolution over M weight
  sets becomes one grouped convolution; the optimiser steps the stacked tensors, which is
  element-wise the same as M optimisers.
* :class:`LoopCandidates` keeps M ordinary modules and runs them one after another: the
  baseline the benchmark measures the stacked engine against, and a check on it.

``make_candidates("auto", ...)`` picks the loop on a CPU and the stacked engine on a GPU. On a
CPU the work is compute-bound and the grouped convolutions that ``vmap`` makes ran slower than M
ordinary ones (stacked / loop = 1.87 at M = 4 and 1.54 at M = 8 for the protocol's SmallCNN,
``benchmarks/results/search_speed_cpu.json``); on a GPU a small network is bound by kernel
launches, which stacking divides by M.

Batch norm inside ``vmap``: PyTorch's own kernel asks its input for its memory format, which a
batched tensor cannot answer on CUDA (``NYI: querying is_contiguous inside of vmap``, torch 2.11,
an H200). The stacked engine therefore runs a copy of the network whose batch norms are
:class:`StackableBatchNorm`: the same arithmetic (batch statistics, running statistics updated
with the unbiased variance) in plain tensor operations, on the same parameter and buffer names
(on a CPU, where torch's kernel works under ``vmap`` and is faster, that kernel).

Both take SGD with momentum and weight decay on the backbone and head, as :func:`frbook.train.fit`.
"""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, stack_module_state, vmap


class CandidateNetwork(nn.Module):
    """Backbone and head as one module: images -> cos (B, C)."""

    def __init__(self, backbone: nn.Module, head: nn.Module):
        super().__init__()
        self.backbone, self.head = backbone, head

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(images))


class StackableBatchNorm(nn.Module):
    """``nn.BatchNorm1d/2d/3d``'s training and evaluation arithmetic in plain tensor operations,
    so that ``vmap`` batches it on any device (see the module docstring). It holds the replaced
    module's parameters and buffers under the same names, so the stacked engine's state dict is
    the ordinary network's."""

    def __init__(self, norm: nn.modules.batchnorm._BatchNorm):
        super().__init__()
        self.eps, self.momentum = norm.eps, norm.momentum
        for name, p in norm.named_parameters(recurse=False):
            self.register_parameter(name, nn.Parameter(p.detach().clone(), requires_grad=p.requires_grad))
        for name, b in norm.named_buffers(recurse=False):
            self.register_buffer(name, b.clone())
        self.affine = "weight" in self._parameters
        self.tracks = "running_mean" in self._buffers
        self.train(norm.training)

    #: On a CPU torch's own kernel runs under vmap, and faster (tiny SmallCNN, M = 8: stacked /
    #: loop 0.78 against 0.95 with the plain operations, one thread); the tests switch it off to
    #: check the plain operations, which every other device runs.
    torch_kernel_on_cpu = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.torch_kernel_on_cpu and x.device.type == "cpu" and self.momentum is not None:
            if self.training and self.tracks:
                self.num_batches_tracked.add_(1)
            running = (self.running_mean, self.running_var) if self.tracks else (None, None)
            return F.batch_norm(x, *running, getattr(self, "weight", None), getattr(self, "bias", None),
                                self.training or not self.tracks, self.momentum, self.eps)
        dims = [0, *range(2, x.dim())]  # every axis but the channels
        shape = [1, -1] + [1] * (x.dim() - 2)
        if self.training or not self.tracks:
            var, mean = torch.var_mean(x, dim=dims, correction=0)
            if self.training and self.tracks:
                n = x.numel() // x.shape[1]
                with torch.no_grad():
                    self.num_batches_tracked.add_(1)
                    # momentum None: a cumulative average, as nn.BatchNorm's
                    factor = (1.0 / self.num_batches_tracked.to(mean.dtype)) if self.momentum is None else self.momentum
                    # mul_ and add_, not lerp_: vmap has no batching rule for lerp_ and would loop
                    self.running_mean.mul_(1 - factor).add_(mean.detach() * factor)
                    self.running_var.mul_(1 - factor).add_(var.detach() * (factor * n / max(n - 1, 1)))
        else:
            mean, var = self.running_mean, self.running_var
        out = (x - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        if self.affine:
            out = out * self.weight.view(shape) + self.bias.view(shape)
        return out


def stackable(module: nn.Module) -> nn.Module:
    """``module`` with every batch norm replaced by a :class:`StackableBatchNorm` (in place)."""
    for name, child in module.named_children():
        if isinstance(child, nn.modules.batchnorm._BatchNorm):
            if isinstance(child, nn.SyncBatchNorm):
                raise ValueError("SyncBatchNorm cannot run under the stacked engine; use engine='loop'")
            setattr(module, name, StackableBatchNorm(child))
        else:
            stackable(child)
    return module


class StackedCandidates:
    """M copies of ``backbone`` + ``head`` (all starting from their weights), trained as one.

    Args:
        backbone, head: the network every candidate starts from (not modified).
        count: M.
        lr, momentum, weight_decay: SGD's settings; ``set_lr`` changes the rate per step.
    """

    def __init__(self, backbone: nn.Module, head: nn.Module, count: int, lr: float = 0.1,
                 momentum: float = 0.9, weight_decay: float = 5e-4):
        _check_count(count)
        self.count = count
        self.template = CandidateNetwork(copy.deepcopy(backbone), copy.deepcopy(head))
        self.params, self.buffers = stack_module_state([copy.deepcopy(self.template) for _ in range(count)])
        self.optimizer = torch.optim.SGD(list(self.params.values()), lr=lr, momentum=momentum,
                                         weight_decay=weight_decay)
        # functional_call only needs the module's code; its own tensors are never read.
        self.skeleton = skeleton = stackable(copy.deepcopy(self.template)).to("meta")

        def one(params, buffers, images):
            return functional_call(skeleton, (params, buffers), (images,))

        self._forward = vmap(one, in_dims=(0, 0, None))

    def cosines(self, images: torch.Tensor) -> torch.Tensor:
        """Every candidate's classifier output on the same batch, (M, B, C), in training mode."""
        self.skeleton.train()  # BatchNorm uses batch statistics and updates the stacked running ones
        try:
            return self._forward(self.params, self.buffers, images)
        except RuntimeError as exc:
            if "inside of vmap" not in str(exc):
                raise
            # A layer whose kernel asks a batched tensor about its memory format on this device
            # (CUDA's BatchNorm did, hence StackableBatchNorm). The loop computes the same thing.
            raise RuntimeError(f"the stacked engine cannot run this network here ({exc}); "
                               "use engine='loop'") from exc

    def step(self, candidate_losses: torch.Tensor) -> None:
        """One SGD step of every candidate on its own loss (M,). The candidates share no tensor,
        so the gradient of the sum with respect to candidate k's weights is that of loss k."""
        self.optimizer.zero_grad(set_to_none=True)
        candidate_losses.sum().backward()
        self.optimizer.step()

    def set_lr(self, lr: float) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def network(self, k: int) -> CandidateNetwork:
        """An ordinary module holding candidate k's weights (a copy), in eval mode."""
        net = copy.deepcopy(self.template)
        state = {name: t[k].detach().clone() for name, t in {**self.params, **self.buffers}.items()}
        net.load_state_dict(state)
        return net.eval()

    def copy_from(self, k: int) -> None:
        """Give every candidate candidate k's weights, statistics and momentum."""
        self.fill(self.export(k))

    @torch.no_grad()
    def export(self, k: int) -> dict:
        """Candidate k as ``{"network": state_dict, "momentum": {parameter name: buffer}}``: the
        same format for both engines, so a state saved by one can be loaded by the other."""
        momentum = {}
        for name, p in self.params.items():
            buffer = self.optimizer.state.get(p, {}).get("momentum_buffer")
            if buffer is not None:
                momentum[name] = buffer[k].clone()
        return {"network": {n: t[k].clone() for n, t in {**self.params, **self.buffers}.items()}, "momentum": momentum}

    @torch.no_grad()
    def fill(self, state: dict) -> None:
        """Make every candidate the one ``state`` describes (see :meth:`export`)."""
        for name, t in {**self.params, **self.buffers}.items():
            t.copy_(state["network"][name].expand_as(t))
        for name, p in self.params.items():
            if name in state["momentum"]:
                self.optimizer.state[p]["momentum_buffer"] = state["momentum"][name].expand_as(p).clone()

    @torch.no_grad()
    def fill_one(self, k: int, state: dict) -> None:
        """Make candidate k (only) the one ``state`` describes: candidates that were not made
        identical by a copy (Random-Softmax, epochs without a reward) are saved one by one."""
        for name, t in {**self.params, **self.buffers}.items():
            t[k].copy_(state["network"][name])
        for name, p in self.params.items():
            if name in state["momentum"]:
                buffer = self.optimizer.state[p].setdefault("momentum_buffer", torch.zeros_like(p))
                buffer[k].copy_(state["momentum"][name])


class LoopCandidates:
    """The same M candidates as ordinary modules, run one after another (the baseline)."""

    def __init__(self, backbone: nn.Module, head: nn.Module, count: int, lr: float = 0.1,
                 momentum: float = 0.9, weight_decay: float = 5e-4):
        _check_count(count)
        self.count = count
        template = CandidateNetwork(copy.deepcopy(backbone), copy.deepcopy(head))
        self.networks = [copy.deepcopy(template) for _ in range(count)]
        self.optimizer = torch.optim.SGD([p for net in self.networks for p in net.parameters()], lr=lr,
                                         momentum=momentum, weight_decay=weight_decay)

    def cosines(self, images: torch.Tensor) -> torch.Tensor:
        return torch.stack([net.train()(images) for net in self.networks])

    step = StackedCandidates.step
    set_lr = StackedCandidates.set_lr

    def network(self, k: int) -> CandidateNetwork:
        return copy.deepcopy(self.networks[k]).eval()

    copy_from = StackedCandidates.copy_from

    @torch.no_grad()
    def export(self, k: int) -> dict:
        net = self.networks[k]
        momentum = {name: self.optimizer.state[p]["momentum_buffer"].clone()
                    for name, p in net.named_parameters()
                    if self.optimizer.state.get(p, {}).get("momentum_buffer") is not None}
        return {"network": {n: t.clone() for n, t in net.state_dict().items()}, "momentum": momentum}

    @torch.no_grad()
    def fill(self, state: dict) -> None:
        for net in self.networks:
            net.load_state_dict(state["network"])
            for name, p in net.named_parameters():
                if name in state["momentum"]:
                    self.optimizer.state[p]["momentum_buffer"] = state["momentum"][name].clone()

    @torch.no_grad()
    def fill_one(self, k: int, state: dict) -> None:
        net = self.networks[k]
        net.load_state_dict(state["network"])
        for name, p in net.named_parameters():
            if name in state["momentum"]:
                self.optimizer.state[p]["momentum_buffer"] = state["momentum"][name].clone()


ENGINES = {"stacked": StackedCandidates, "loop": LoopCandidates}
ENGINE_NAMES = ("auto", *ENGINES)


def pick_engine(engine: str, device) -> str:
    """The engine ``engine`` means on ``device``: ``"auto"`` is the loop on a CPU (where stacking
    was measured slower) and the stacked engine on a GPU; the others are themselves."""
    if engine not in ENGINE_NAMES:
        raise ValueError(f"unknown engine {engine!r}; known: {', '.join(ENGINE_NAMES)}")
    if engine != "auto":
        return engine
    return "loop" if torch.device(device).type == "cpu" else "stacked"


def make_candidates(engine: str, backbone: nn.Module, head: nn.Module, count: int, **sgd):
    """``engine`` is ``"stacked"`` (one batched computation), ``"loop"`` (one after another) or
    ``"auto"`` (:func:`pick_engine` on the device of ``backbone``'s parameters)."""
    device = next(iter(backbone.parameters()), torch.empty(0)).device
    return ENGINES[pick_engine(engine, device)](backbone, head, count, **sgd)


def _check_count(count) -> None:
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError(f"the number of candidates must be an integer >= 1, got {count!r}")
