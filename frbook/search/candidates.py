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

Both take SGD with momentum and weight decay on the backbone and head, as :func:`frbook.train.fit`.
"""
from __future__ import annotations

import copy

import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap


class CandidateNetwork(nn.Module):
    """Backbone and head as one module: images -> cos (B, C)."""

    def __init__(self, backbone: nn.Module, head: nn.Module):
        super().__init__()
        self.backbone, self.head = backbone, head

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(images))


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
        self.skeleton = skeleton = copy.deepcopy(self.template).to("meta")

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
            # Seen with torch 2.11 on an H200 (2026-12-04): CUDA's BatchNorm asks for the memory
            # format, which vmap does not support. The loop engine computes the same thing.
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


ENGINES = {"stacked": StackedCandidates, "loop": LoopCandidates}


def make_candidates(engine: str, backbone: nn.Module, head: nn.Module, count: int, **sgd):
    """``engine`` is ``"stacked"`` (one batched computation) or ``"loop"`` (one after another)."""
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; known: {', '.join(ENGINES)}")
    return ENGINES[engine](backbone, head, count, **sgd)


def _check_count(count) -> None:
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError(f"the number of candidates must be an integer >= 1, got {count!r}")
