r"""Search spaces: what a sample of the policy means as a loss.

The policy (:mod:`frbook.search.policy`) draws vectors ``x`` from a Gaussian. A space turns each
vector into a loss and evaluates the losses of M candidates at once, on their stacked cosines
(M, B, C), so M candidates train as one computation (:mod:`frbook.search.candidates`):

* :class:`SearchSoftmaxSpace` (Wang et al., ICML 2020): one number, the modulating factor
  ``a = -|x| exp(s / 3)`` (``"global"``, the official code's global mode and this library's
  default) or ``a = -|x|`` (``"abs_local"``, this library's own), used as in
  :class:`frbook.losses.SearchSoftmax`. The official code's ``local`` mode is another thing
  (ten bins of the target probability, each with its own a and the factor ``exp(s / 2)``); frbook
  does not implement it, and refuses the name so that nobody takes one for the other.
* :class:`AMLFSSpace` (Li et al., ICCV 2019): 2M numbers, the slopes and intercepts of a
  piecewise-linear map of the target cosine or probability (:class:`frbook.losses.AMLFS`),
  centred on the identity map.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..losses import AMLFS, SearchSoftmax
from ..losses.amlfs import DOMAINS, amlfs_losses
from ..losses.base import check_positive
from ..losses.search_softmax import cosface_margin, search_softmax_logits


SEARCH_SOFTMAX_MODES = ("global", "abs_local")


class SearchSoftmaxSpace:
    """a <= 0 from one Gaussian number.

    Args:
        s: the scale of the cosines (the paper: 32).
        mode: ``"global"`` multiplies ``-|x|`` by ``exp(s / 3)`` so the search starts where the
            margins live (a of order -1e4 to -1e5, CosFace's m of about 0.33 at s = 32);
            ``"abs_local"`` uses ``a = -|x|``, a few units from plain softmax (called "local"
            before; not the official code's ``local`` mode, see the module).
        mean: the policy's initial mean (our choice, 1.0: the paper does not give it). Not 0:
            ``a`` depends on ``|x|``, so a policy centred on 0 is symmetric and its expected
            REINFORCE gradient is zero there.
    """

    dim = 1

    def __init__(self, s: float = 32.0, mode: str = "global", mean: float = 1.0):
        self.s = check_positive("s", s)
        if mode == "local":
            raise ValueError("mode 'local' is not available: frbook's a = -|x| mode is now called 'abs_local' "
                             "(it is not the official code's 'local' mode of ten probability bins, which frbook "
                             "does not implement); use mode='abs_local' or mode='global'")
        if mode not in SEARCH_SOFTMAX_MODES:
            raise ValueError(f"mode must be one of {', '.join(SEARCH_SOFTMAX_MODES)}, got {mode!r}")
        self.mode, self.mean = mode, float(mean)

    def initial_mean(self) -> torch.Tensor:
        return torch.tensor([self.mean], dtype=torch.float64)

    def log_minus_a(self, x: torch.Tensor) -> torch.Tensor:
        """log(-a) of each sample (M, 1) -> (M,), without forming a (exp(s/3) overflows float32 at s > 266)."""
        offset = self.s / 3 if self.mode == "global" else 0.0
        return x[:, 0].abs().log() + offset

    def losses(self, cos: torch.Tensor, labels: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """The batch-mean loss of each candidate: cos (M, B, C), x (M, 1) -> (M,)."""
        shift = F.softplus(self.log_minus_a(x.to(torch.float64))).to(cos.dtype)  # log(1 - a), stably
        logits = search_softmax_logits(cos, labels, self.s, shift)
        return -logits.log_softmax(-1).gather(-1, labels.expand(cos.shape[:-1]).unsqueeze(-1)).squeeze(-1).mean(-1)

    def a(self, x: torch.Tensor) -> float:
        """The modulating factor of one sample (1,)."""
        return -math.exp(float(self.log_minus_a(x.reshape(1, 1).to(torch.float64))[0]))

    def describe(self, x: torch.Tensor) -> dict:
        a = self.a(x)
        return {"a": a, "cosface_m": cosface_margin(a, self.s)}

    def to_loss(self, x: torch.Tensor) -> SearchSoftmax:
        return SearchSoftmax(s=self.s, a=self.a(x))

    def settings(self) -> dict:
        return {"space": "search_softmax", "s": self.s, "mode": self.mode, "mean": self.mean}


class AMLFSSpace:
    """Piecewise-linear maps with ``pieces`` intervals: x = (slopes, intercepts), mean the identity.

    Args:
        s: the scale of the cosines.
        space: ``"cosine"`` or ``"probability"``, what the map is applied to.
        pieces: M, the number of equal intervals (6, as in an unofficial reproduction of AM-LFS).
    """

    def __init__(self, s: float = 32.0, space: str = "cosine", pieces: int = 6):
        self.s = check_positive("s", s)
        if space not in DOMAINS:
            raise ValueError(f"space must be one of {', '.join(DOMAINS)}, got {space!r}")
        if isinstance(pieces, bool) or int(pieces) != pieces or pieces < 1:
            raise ValueError(f"pieces must be a positive integer, got {pieces!r}")
        self.space, self.pieces = space, int(pieces)
        self.dim = 2 * self.pieces

    def initial_mean(self) -> torch.Tensor:
        return torch.cat([torch.ones(self.pieces), torch.zeros(self.pieces)]).double()

    def losses(self, cos: torch.Tensor, labels: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        x = x.to(cos.dtype)
        return amlfs_losses(cos, labels, self.s, x[:, :self.pieces], x[:, self.pieces:], self.space)

    def describe(self, x: torch.Tensor) -> dict:
        return {"slopes": x[:self.pieces].tolist(), "intercepts": x[self.pieces:].tolist()}

    def to_loss(self, x: torch.Tensor) -> AMLFS:
        return AMLFS(s=self.s, slopes=x[:self.pieces].tolist(), intercepts=x[self.pieces:].tolist(), space=self.space)

    def settings(self) -> dict:
        return {"space": f"amlfs_{self.space}", "s": self.s, "pieces": self.pieces}


def make_space(name: str, s: float = 32.0, mode: str = "global", mean: float = 1.0, pieces: int = 6):
    """A space by name: ``search_softmax``, ``amlfs_cosine`` or ``amlfs_probability``."""
    if name == "search_softmax":
        return SearchSoftmaxSpace(s=s, mode=mode, mean=mean)
    if name in ("amlfs_cosine", "amlfs_probability"):
        return AMLFSSpace(s=s, space=name.split("_", 1)[1], pieces=pieces)
    raise ValueError(f"unknown search space {name!r}; known: search_softmax, amlfs_cosine, amlfs_probability")
