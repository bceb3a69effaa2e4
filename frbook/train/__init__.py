"""Training: a loop you can read top to bottom (:func:`fit`) and its record (:class:`History`)."""
from .loop import History, fit

__all__ = ["History", "fit"]
