"""Where the real face data lives: an explicit path, ``$FRBOOK_DATA``, or ``../shared/data``.

The project never ships real faces (licences), so every reader of real data asks
:func:`find_dataset` for its folder. The rule, in order:

1. a path given by the caller always wins, and is the only place looked at when given (a typo
   should fail, not silently read some other copy);
2. otherwise the environment variable ``FRBOOK_DATA`` names a data root;
3. otherwise ``../shared/data`` next to the project root (the folder holding the ``frbook``
   package), where developers and CI keep LFW and ORL.

``FRBOOK_DATA=none`` switches real data off: no data root is searched (an explicit path still
works), so a machine that has the data can run the book as a reader without it would.

Inside a data root each set has its own folder (``lfw/``, ``orl/``). A missing set raises
:class:`~frbook.data.errors.DataNotFoundError` listing every place tried and how to get the data.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from .errors import DataNotFoundError

__all__ = ["ENV_VAR", "NO_DATA", "DEFAULT_ROOT", "data_roots", "find_dataset"]

ENV_VAR = "FRBOOK_DATA"
#: ``FRBOOK_DATA=none``: search no data root at all, as if no real data existed.
NO_DATA = "none"
_PROJECT_ROOT = Path(__file__).resolve().parents[2]  # the folder holding the frbook package
#: ``<project root>/../shared/data``, where developers and CI keep the real sets.
DEFAULT_ROOT = _PROJECT_ROOT.parent / "shared" / "data"


def data_roots() -> list[Path]:
    """The data roots searched when no explicit path is given, in order (none at all when
    ``FRBOOK_DATA=none``)."""
    roots = []
    if os.environ.get(ENV_VAR, "").strip().lower() == NO_DATA:
        return roots
    if os.environ.get(ENV_VAR):
        roots.append(Path(os.environ[ENV_VAR]).expanduser())
    roots.append(DEFAULT_ROOT)
    return roots


def find_dataset(name: str, holds: Callable[[Path], bool], root=None, how_to_get: str = "") -> Path:
    """The folder of data set ``name``: the first candidate for which ``holds(folder)`` is true.

    With ``root`` given, the candidates are ``root`` itself and ``root/name`` (so both the set's
    own folder and a data root work); without it, ``<data root>/name`` for each of
    :func:`data_roots`.
    """
    if root is not None:
        root = Path(root).expanduser()
        candidates = [root, root / name]
    else:
        candidates = [r / name for r in data_roots()]
    for folder in candidates:
        if folder.is_dir() and holds(folder):
            return folder
    tried = ("\n".join(f"  - {c}" for c in candidates)
             or f"  nowhere: {ENV_VAR}={NO_DATA} switches real data off")
    env = os.environ.get(ENV_VAR)
    raise DataNotFoundError(
        f"{name} not found; looked in:\n{tried}\n"
        f"Pass root=PATH (the {name} folder or a data root holding '{name}/'), or set {ENV_VAR} "
        f"to a data root ({'now ' + repr(env) if env else 'now unset'}). {how_to_get}".rstrip()
    )
