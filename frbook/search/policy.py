r"""The controller: a Gaussian over the loss parameters, moved by REINFORCE.

Each epoch the policy ``pi = N(mu, sigma^2 I)`` draws M samples ``x_k``, one loss per candidate.
After the epoch each candidate has a reward ``R_k`` (its validation accuracy), normalised across
the candidates. REINFORCE (Williams, 1992) estimates the gradient of the expected reward,

    grad_mu E[R] = E[R grad_mu log pi(x)],   grad_mu log pi(x) = (x - mu) / sigma^2,

so the update minimises ``-sum_k R_k log pi(x_k)`` with Adam, as the official code does: mu
moves towards the samples that did better than average and away from the others.
"""
from __future__ import annotations

import math

import torch


def normalise_rewards(rewards: torch.Tensor) -> torch.Tensor:
    """2 (R - mean) / (max - min), Search-Softmax's normalisation: zero-mean, spread 2.

    All-equal rewards carry no information; they normalise to zeros (no update), not to NaN.
    """
    rewards = torch.as_tensor(rewards, dtype=torch.float64)
    spread = rewards.max() - rewards.min()
    if spread == 0:
        return torch.zeros_like(rewards)
    return 2 * (rewards - rewards.mean()) / spread


class GaussianPolicy:
    """N(mean, sigma^2 I) over a ``len(mean)``-vector; the mean is learned, sigma is fixed.

    Args:
        mean: the initial mean (its length is the number of loss parameters).
        sigma: the standard deviation of every coordinate (Search-Softmax: 0.2).
        lr, betas: Adam's settings for the mean (the official code: 0.05, (0.5, 0.999)).
    """

    def __init__(self, mean: torch.Tensor, sigma: float = 0.2, lr: float = 0.05, betas=(0.5, 0.999)):
        if not (isinstance(sigma, (int, float)) and math.isfinite(sigma) and sigma > 0):
            raise ValueError(f"sigma must be a positive number, got {sigma!r}")
        self.sigma = float(sigma)
        self.mean = torch.nn.Parameter(torch.as_tensor(mean, dtype=torch.float64).clone().reshape(-1))
        self.optimizer = torch.optim.Adam([self.mean], lr=lr, betas=tuple(betas))

    def sample(self, count: int, generator: torch.Generator) -> torch.Tensor:
        """``count`` samples, (count, dim), drawn with ``generator`` (so a resumed search draws the same)."""
        noise = torch.randn(count, self.mean.numel(), generator=generator, dtype=torch.float64)
        return self.mean.detach() + self.sigma * noise

    def log_prob(self, samples: torch.Tensor) -> torch.Tensor:
        """log pi(x) of each sample, (M,); differentiable in the mean."""
        z = (samples - self.mean) / self.sigma
        return (-0.5 * z ** 2 - math.log(self.sigma) - 0.5 * math.log(2 * math.pi)).sum(-1)

    def update(self, samples: torch.Tensor, rewards: torch.Tensor) -> float:
        """One REINFORCE step with normalised ``rewards`` (M,); returns the surrogate loss."""
        surrogate = -(self.log_prob(samples) * torch.as_tensor(rewards, dtype=torch.float64)).sum()
        self.optimizer.zero_grad()
        surrogate.backward()
        self.optimizer.step()
        return float(surrogate.detach())

    def state_dict(self) -> dict:
        return {"mean": self.mean.detach().clone(), "sigma": self.sigma, "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        with torch.no_grad():
            self.mean.copy_(state["mean"])
        self.sigma = state["sigma"]
        self.optimizer.load_state_dict(state["optimizer"])
