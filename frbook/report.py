"""What the chapters share for display: Markdown tables, labelled lines of text, mean ± std cells,
a run's settings, and the rows of a verdict table (:func:`frbook.results.verdict`).

Every function returns or prints text; none computes a result the text then claims, so a chapter's
hidden asserts check the numbers, not this formatting.
"""
from __future__ import annotations

import re
import textwrap

from IPython.display import Markdown


def markdown_table(header: list, rows: list[list]) -> Markdown:
    """A table the book renders, from a header and rows of cells (any value, shown with str)."""
    for k, row in enumerate(rows):
        if len(row) != len(header):
            raise ValueError(f"row {k} has {len(row)} cells for {len(header)} columns: {row!r}")
    lines = ["| " + " | ".join(str(c) for c in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return Markdown("\n".join(lines))


def show(name: str, text: str, width: int = 78, indent: int = 9) -> None:
    """Print ``name:`` then ``text`` wrapped to ``width`` columns, continuation lines indented."""
    label = f"{name}: ".ljust(indent)  # always a space after the colon
    print(textwrap.fill(text, width=width, initial_indent=label, subsequent_indent=" " * indent,
                        break_on_hyphens=False))


# Where a run wrote its files and whether it printed progress are choices of the machine that
# ran it, not of the experiment: a page leaves them out (and with them any machine path).
_LOCAL_OPTIONS = re.compile(r"\s+--out(?:=|\s+)\S+|\s+--quiet\b")
_THREADS = re.compile(r",\s*\d+\s+threads?\b")


def public_command(command: str) -> str:
    """A result file's command as a page shows it: what reproduces the run (config, ``--set``,
    ``--only``, ``--folds`` ...), without ``--out FOLDER`` and ``--quiet``."""
    return _LOCAL_OPTIONS.sub("", command).strip()


def public_device(device: str) -> str:
    """A result file's device as a page shows it: the CPU or GPU model, without the thread count
    the run happened to use (it changes no result of a seeded run)."""
    return _THREADS.sub("", device).strip()


def mean_std(stats: dict, scale: float = 100, digits: int = 2) -> str:
    """``mean ± std`` of one label of :func:`frbook.results.summarise`, times ``scale`` (percent)."""
    return f"{scale * stats['mean']:.{digits}f} ± {scale * stats['std']:.{digits}f}"


def settings(run: dict, keys: tuple | None = None, train_keys: tuple = ()) -> str:
    """A run's loss settings in one line: a searched loss's search, else its loss parameters
    (those in ``keys``, all by default; floats to 4 decimals), then the training settings named
    in ``train_keys`` (e.g. ``("lr",)`` when losses were trained with different rates)."""
    if "search" in run:
        s = run["search"]
        return (f"{s['method']} over a ({s['space']}, {s['mode']} mode), s = {s['s']}, "
                f"{s['candidates']} candidates, {s['epochs']} epochs")
    params = {k: v for k, v in (run.get("loss_params") or {}).items()
              if v is not None and (keys is None or k in keys)}
    params.update({k: run["train"][k] for k in train_keys})
    return ", ".join(f"{k} = {_number(v)}" for k, v in params.items()) or "none"


def _number(value) -> str:
    return f"{round(value, 4):g}" if isinstance(value, float) else str(value)


def verdict_rows(rows: list[dict], names: dict | None = None, scale: float = 100) -> list[list[str]]:
    """Cells for a verdict table: comparison, the differences (times ``scale``), their mean,
    sign consistency, p, Holm-corrected p and the decision. Header: :data:`VERDICT_HEADER`."""
    names = names or {}
    out = []
    for r in rows:
        a, b = names.get(r["first"], r["first"]), names.get(r["second"], r["second"])
        decision = r["decision"] if r["decision"] == "not distinguished" else \
            f"{a} > {b}" if r["mean"] > 0 else f"{a} < {b}"
        out.append([f"{a} − {b}", " ".join(f"{scale * d:+.2f}" for d in r["differences"]),
                    f"{scale * r['mean']:+.2f}", "yes" if r["consistent"] else "no",
                    _p(r["p"]), _p(r["p_corrected"]), decision])
    return out


VERDICT_HEADER = ["difference", "per (fold, seed)", "mean", "one sign", "p", "p (Holm)", "verdict"]


def _p(p: float) -> str:
    return "–" if p != p else f"{p:.3f}" if p >= 0.001 else f"{p:.0e}"
