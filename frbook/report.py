"""What the chapters share for display: Markdown tables, labelled lines of text, mean ± std cells,
verification reports side by side, a run's loss settings and a result file's protocol, the rows of a verdict table (:func:`frbook.results.verdict`), the display names
of the book's losses, and the rows of a table that sets a paper's claims against the verdicts.

Every function returns or prints text; none computes a result the text then claims, so a chapter's
hidden asserts check the numbers, not this formatting.
"""
from __future__ import annotations

import re
import textwrap
from collections.abc import Callable, Mapping

from IPython.display import Markdown


def markdown_table(header: list, rows: list[list], align: str | None = None) -> Markdown:
    """A table the book renders, from a header and rows of cells (any value, shown with str);
    ``align``, one letter per column (``l``, ``r`` or ``c``), aligns the columns, e.g. ``"lrr"``
    for a name then numbers."""
    for k, row in enumerate(rows):
        if len(row) != len(header):
            raise ValueError(f"row {k} has {len(row)} cells for {len(header)} columns: {row!r}")
    if align is None:
        rule = "|" + "---|" * len(header)
    elif len(align) != len(header) or set(align) - set("lrc"):
        raise ValueError(f"align needs one of l, r, c per column ({len(header)}), got {align!r}")
    else:
        rule = "|" + "".join({"l": ":---|", "r": "---:|", "c": ":---:|"}[a] for a in align)
    lines = ["| " + " | ".join(str(c) for c in header) + " |", rule]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return Markdown("\n".join(lines))


def show(name: str, text: str, width: int = 78, indent: int = 9) -> None:
    """Print ``name:`` then ``text`` wrapped to ``width`` columns, continuation lines indented."""
    label = f"{name}: ".ljust(indent)  # always a space after the colon
    print(textwrap.fill(text, width=width, initial_indent=label, subsequent_indent=" " * indent,
                        break_on_hyphens=False))


# Where a run wrote its files and whether it printed progress are choices of the machine that
# ran it, not of the experiment: a page leaves them out (and with them any machine path).
_LOCAL_OPTIONS = re.compile(r"\s+--(?:out|json)(?:=|\s+)\S+|\s+--quiet\b")
_THREADS = re.compile(r",\s*\d+\s+threads?\b")


def public_command(command: str) -> str:
    """A result file's command as a page shows it: what reproduces the run (config, ``--set``,
    ``--only``, ``--folds`` ...), without ``--quiet`` and where it wrote (``--out FOLDER``,
    ``--json FILE``: a path on the machine that ran it, which the page names in its own words)."""
    return _LOCAL_OPTIONS.sub("", command).strip()


def public_device(device: str) -> str:
    """A result file's device as a page shows it: the CPU or GPU model, without the thread count.
    The count does change a CPU run's numbers (the order of floating-point sums), but every result
    file of the book is written with one torch thread per process (``scripts/rerun_results.py``),
    so a page that lists its devices would repeat "1 threads" on every line."""
    return _THREADS.sub("", device).strip()


def verification_table(reports: Mapping[str, dict], title: str) -> Markdown:
    """One row per named verification report (``VerificationReport.to_dict()``, as result files
    hold it), in percent: the k-fold accuracy ± std, the range of the fold accuracies, AUC, EER and
    TAR at each FAR (conservative / nearest reading). ``title`` heads the name column; the reports
    must share their FARs."""
    fars = [[t["far"] for t in r["tar_at_far"]] for r in reports.values()]
    if any(f != fars[0] for f in fars):
        raise ValueError(f"the reports have different FARs: {fars}")

    def pct(x: float, digits: int = 2) -> str:
        return f"{100 * x:.{digits}f}"

    rows = [[name, f"{pct(r['accuracy'])} ± {pct(r['accuracy_std'])}",
             f"{pct(min(r['fold_accuracies']), 1)} to {pct(max(r['fold_accuracies']), 1)}",
             f"{r['auc']:.4f}", pct(r["eer"]),
             *(f"{pct(t['conservative'])} / {pct(t['nearest'])}" for t in r["tar_at_far"])]
            for name, r in reports.items()]
    header = [title, "accuracy (%)", "fold accuracies (%)", "AUC", "EER (%)",
              *(f"TAR@FAR={far:g} (%), cons. / near." for far in fars[0])]
    return markdown_table(header, rows)


def mean_std(stats: dict, scale: float = 100, digits: int = 2) -> str:
    """``mean ± std`` of one label of :func:`frbook.results.summarise`, times ``scale`` (percent)."""
    return f"{scale * stats['mean']:.{digits}f} ± {scale * stats['std']:.{digits}f}"


def settings(run: dict, keys: tuple | None = None, optim_keys: tuple = ()) -> str:
    """A run's loss settings in one line: a searched loss's search, else its loss parameters
    (those in ``keys``, all by default; floats to 4 decimals), then the optimiser settings of its
    config named in ``optim_keys`` (e.g. ``("lr",)`` when losses were trained with different rates)."""
    if "search" in run:
        s = run["search"]
        return (f"{s['method']} over a ({s['space']}, {s['mode']} mode), s = {s['s']}, "
                f"{s['candidates']} candidates, {s['epochs']} epochs")
    params = {k: v for k, v in (run.get("loss_params") or {}).items()
              if v is not None and (keys is None or k in keys)}
    params.update({k: run["config"]["optim"][k] for k in optim_keys})
    return ", ".join(f"{k} = {_number(v)}" for k, v in params.items()) or "none"


# Keys of a run's config that say where or how fast it ran, or which seed one run of a
# comparison had, not what the comparison was (and a data path can be a machine's): a page
# describing the protocol leaves them out.
_NOT_PROTOCOL = {("data", "path"), ("data", "workers"), ("data", "cache"), ("train", "device"),
                 ("train", "log_every"), ("train", "compile"), ("train", "channels_last"), ("train", "sync_bn"),
                 ("train", "seed"), ("eval", "batch_size")}


def protocol_settings(config: dict, sections: tuple = ("data", "model", "optim", "schedule", "train", "eval")
                      ) -> dict[str, str]:
    """Per section of a result file's config, its settings as ``key=value, ...``: every key the
    schema gives it, defaults included, except empty ones (None, [], {}), where or how fast the
    run ran (data path, workers, device ...) and the run's own seed. A nested mapping
    (``model.params``) is spelled out as ``params.key=value``."""
    out = {}
    for section in sections:
        items = []
        for k, v in config.get(section, {}).items():
            if (section, k) in _NOT_PROTOCOL or v is None or v == [] or v == {}:
                continue
            if isinstance(v, dict):
                items += [f"{k}.{sub}={_number(value)}" for sub, value in v.items()]
            else:
                items.append(f"{k}={_number(v)}")
        out[section] = ", ".join(items)
    return out


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


# Every loss of the book, in the order of the chapters: result-file label -> (display name, chapter).
LOSS_NAMES = {
    "softmax": ("softmax", "ch01_verification"),
    "normface": ("NormFace", "ch02_normface"),
    "sphereface": ("SphereFace", "ch03_margins"),
    "sphereface_scaled": ("SphereFace, λ scaled to the run", "ch03_margins"),
    "sphereface_m1_1.35": ("multiplicative margin m1 = 1.35", "ch03_margins"),
    "cosface": ("CosFace", "ch03_margins"),
    "arcface": ("ArcFace", "ch03_margins"),
    "arcface_straight_through": ("ArcFace, straight-through gradient", "ch03_margins"),
    "combined": ("combined margin", "ch03_margins"),
    "adacos": ("AdaCos", "ch04_adaptive"),
    "curricularface": ("CurricularFace", "ch04_adaptive"),
    "adaface": ("AdaFace", "ch04_adaptive"),
    "subcenter_arcface": ("sub-center ArcFace", "ch04_adaptive"),
    "p2sgrad": ("P2SGrad", "ch06_p2sgrad"),
    "amlfs": ("AM-LFS", "ch07_search"),
    "random_softmax": ("Random-Softmax", "ch07_search"),
    "random_best": ("random a + best-of-M selection", "ch07_search"),
    "search_softmax": ("Search-Softmax", "ch07_search"),
    "arcface_tml": ("ArcFace + TML", "ch08_tml"),
    "cosface_tml": ("CosFace + TML", "ch08_tml"),
}


def loss_name(label: str) -> str:
    """The display name of a result-file label (:data:`LOSS_NAMES`); an unknown label as it is."""
    return LOSS_NAMES.get(label, (label, None))[0]


def difference_cell(row: dict, scale: float = 100, star: bool = True) -> str:
    """One verdict row in a table cell: ``+1.23 (p Holm = 0.045) *``, the mean difference times
    ``scale`` (points), the Holm-corrected p-value, and a star when the verdict is decided."""
    text = f"{scale * row['mean']:+.2f} (p Holm = {row['p_corrected']:.3f})"
    return text + (" *" if star and row["decision"] != "not distinguished" else "")


def claim_rows(claims: list[tuple], judged: Mapping[str, Mapping[tuple, tuple]], paper: Mapping[str, float],
               name: Callable[[str], str] = str) -> tuple[list[list[str]], dict]:
    """Rows of a table that sets a paper's claims against this book's verdicts.

    ``claims``: ``(a, b, sign)``, the paper's a > b (sign 1; shown as a > b for -1 too, the
    claims being written best first) or a ≈ b (sign 0); ``paper``: its numbers by label;
    ``judged``: per column (e.g. a difficulty) ``{(a, b): (cell text, state)}``, a claim missing
    there left blank. Returns the rows (claim, the paper's difference a - b, one cell per column)
    and the states keyed ``(column, a, b)`` (None where the claim was not judged)."""
    rows, states = [], {}
    for a, b, sign in claims:
        row = [f"{name(a)} {'≈' if sign == 0 else '>'} {name(b)}", f"{paper[a] - paper[b]:+.2f}"]
        for column, by_claim in judged.items():
            text, state = by_claim.get((a, b), ("", None))
            row.append(text)
            states[column, a, b] = state
        rows.append(row)
    return rows, states
