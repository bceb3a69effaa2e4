"""Loss function search: Search-Softmax, Random-Softmax and AM-LFS.

>>> from frbook import search
>>> loss = search.get("search_softmax", s=32, a=-100.0)   # one point of the search space

:func:`frbook.search.search` (in :mod:`frbook.search.loop`) runs the search itself (the policy, M candidates trained
together, rewards on validation identities); :mod:`frbook.search.run` runs it from a config and
writes result files, which is what ``python -m frbook search`` does.
"""
from ..losses import AMLFS, SearchSoftmax, get
from ..losses.search_softmax import cosface_margin, modulating_curve, modulating_factor, reduce_probability
from .candidates import LoopCandidates, StackedCandidates, make_candidates
from .policy import GaussianPolicy, normalise_rewards
from .loop import SearchResult, SearchSettings, search
from .spaces import AMLFSSpace, SearchSoftmaxSpace, make_space

__all__ = ["AMLFS", "AMLFSSpace", "GaussianPolicy", "LoopCandidates", "SearchResult", "SearchSettings",
           "SearchSoftmax", "SearchSoftmaxSpace", "StackedCandidates", "cosface_margin", "get",
           "make_candidates", "make_space", "modulating_curve", "modulating_factor", "normalise_rewards",
           "reduce_probability", "search"]
