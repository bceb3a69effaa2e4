"""Training: a loop you can read top to bottom (:func:`fit`) and its record (:class:`History`);
the trainer at scale (:func:`train`, with configs from :func:`load_config`), imported on use so
that a chapter importing :func:`fit` does not pay for it; :func:`watching` records what a loss sees
at every step of either."""
from .hooks import watching
from .loop import History, fit

__all__ = ["History", "Trainer", "fit", "train", "load_config", "watching"]


def __getattr__(name):
    if name in ("train", "Trainer"):
        from . import trainer
        return getattr(trainer, name)
    if name == "load_config":
        from .config import load_config
        return load_config
    raise AttributeError(f"module 'frbook.train' has no attribute {name!r}")
