"""Reading result files, summarising them, and deciding whether one loss beats another.

A comparison writes one JSON file per run (``<label>-seed<s>.json``, or on LFW
``<label>-fold<k>-seed<s>.json``). A run is identified by its label and its key
``(fold, seed)``: on SynthFaces the fold is None and the seeds vary; on LFW the folds vary (often
with one seed). Two labels are compared run by run on that key, since runs that share it share
their test data, initial weights and batch order, so their difference cancels that shared luck.

:func:`verdict` is the one rule the book uses to say "A beats B": every paired difference has the
same sign, and the paired t-test's p-value, corrected by Holm's step-down method for the number of
comparisons in the same table, is below ``alpha``. Anything else is "not distinguished".
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from .provenance import REPO

RESULTS = REPO / "book" / "results"


def load_results(name: str, results_dir: str | Path | None = None) -> list[dict]:
    """Every result file of the comparison ``name``, from ``<results_dir>/<name>/`` (by default
    ``book/results/<name>/``), migrated to the current shape (:func:`migrate`)."""
    folder = Path(results_dir or RESULTS) / name
    files = sorted(folder.glob("*.json"))
    if not files:
        raise FileNotFoundError(f"no results in {folder}; produce them with "
                                f"'python -m frbook experiment compare --config configs/{name}.yaml'")
    records = []
    for f in files:
        try:
            record = json.loads(f.read_text())
        except json.JSONDecodeError as exc:
            raise ValueError(f"{f}: not valid JSON ({exc}); delete it and rerun its comparison") from None
        if not isinstance(record, dict):
            raise ValueError(f"{f}: a result file holds one JSON object, got {type(record).__name__}")
        records.append(migrate(record, f.stem))
    return records


def migrate(record: dict, stem: str) -> dict:
    """A record in the current shape: ``fold`` (None before LFW comparisons existed, and on
    SynthFaces), ``seed`` (None when the file has none), ``label`` (the file's name without its
    suffix when the file has none) and ``metrics`` (empty when the file has none, as an evaluation
    report has). The other keys are kept as written."""
    record.setdefault("fold", None)
    record.setdefault("seed", None)
    record.setdefault("label", stem)
    record.setdefault("metrics", {})
    return record


def metric_value(run: dict, metric: str) -> float:
    """``metric`` of one run: a key of its metrics, or a path such as ``"tar_at_far/1e-3"``.

    A path's last part may be written as any float (``1e-3``, ``0.001``): result files store FARs
    as Python's ``f"{far:g}"`` spells them."""
    value = run["metrics"]
    for part in metric.split("/"):
        if not isinstance(value, dict):
            raise KeyError(f"{metric!r}: {part!r} is below a number in run {_name(run)}")
        value = value[part] if part in value else value.get(_as_far(part), None)
        if value is None:
            raise KeyError(f"run {_name(run)} has no metric {metric!r} (at {part!r})")
    return float(value)


def _as_far(part: str) -> str:
    try:
        return f"{float(part):g}"
    except ValueError:
        return part


def _name(run: dict) -> str:
    fold = "" if run.get("fold") is None else f", fold {run['fold']}"
    return f"{run.get('label')!r} (seed {run.get('seed')}{fold})"


def summarise(results: list[dict], metric: str) -> dict[str, dict]:
    """Per label: the mean, standard deviation (ddof=1; 0 for a single run), count and values
    of ``metric`` over its runs, in the order of ``results``."""
    table: dict[str, list[float]] = {}
    for r in results:
        table.setdefault(r["label"], []).append(metric_value(r, metric))
    return {label: {"mean": float(np.mean(v)), "std": float(np.std(v, ddof=1)) if len(v) > 1 else 0.0,
                    "n": len(v), "values": v} for label, v in table.items()}


def key(run: dict) -> tuple:
    """What pairs two runs: ``(fold, seed)``."""
    return run.get("fold"), run.get("seed")


def paired_difference(results: list[dict], first: str, second: str, metric: str = "accuracy") -> dict:
    """``first`` minus ``second`` on ``metric``, run by run on the key ``(fold, seed)``, with a
    paired t-test.

    The mean of the n differences over its standard error is Student's t with n - 1 degrees of
    freedom under "no difference". Returns the keys paired, the differences, their mean and
    standard deviation (ddof=1), t and the two-sided p-value (NaN with fewer than two pairs; with
    no spread, p is 0 when every difference is the same non-zero value and 1 when all are zero).
    """
    runs = {label: _by_key(results, label) for label in (first, second)}
    keys = sorted(set(runs[first]) & set(runs[second]), key=lambda k: (k[0] is not None, k[0] or 0, k[1] or 0))
    if not keys:
        raise ValueError(f"{first!r} and {second!r} share no (fold, seed), so they cannot be paired")
    differences = np.array([metric_value(runs[first][k], metric) - metric_value(runs[second][k], metric)
                            for k in keys])
    n = len(differences)
    mean = float(differences.mean())
    std = float(np.std(differences, ddof=1)) if n > 1 else float("nan")
    if n < 2:
        t = p = float("nan")
    elif std == 0:
        t, p = (math.copysign(math.inf, mean), 0.0) if mean != 0 else (float("nan"), 1.0)
    else:
        from scipy import stats

        t = mean / (std / math.sqrt(n))
        p = float(2 * stats.t.sf(abs(t), df=n - 1))
    return {"first": first, "second": second, "metric": metric, "keys": keys,
            "seeds": [s for _, s in keys], "folds": [f for f, _ in keys],
            "differences": differences.tolist(), "mean": mean, "std": std, "t": float(t), "p": float(p), "n": n}


def _by_key(results: list[dict], label: str) -> dict:
    runs: dict[tuple, dict] = {}
    for r in results:
        if r["label"] != label:
            continue
        if key(r) in runs:
            fold, seed = key(r)
            raise ValueError(f"two runs labelled {label!r} with fold {fold} and seed {seed}: results from "
                             "two comparisons that share a label cannot be paired; pass one comparison's")
        runs[key(r)] = r
    if not runs:
        known = sorted({r["label"] for r in results})
        raise ValueError(f"no results labelled {label!r}; the labels are {', '.join(known)}")
    return runs


def holm(p_values: list[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the order given.

    Sort the m p-values ascending, p_(1) <= ... <= p_(m); the i-th (1-based) is adjusted to
    max over j <= i of min(1, (m - j + 1) p_(j)). Rejecting where the adjusted value is below
    alpha keeps the family-wise error rate at alpha for any dependence between the tests
    (Holm 1979). NaN p-values (a test that could not be run) stay NaN and do not count in m.
    """
    finite = [i for i, p in enumerate(p_values) if not math.isnan(p)]
    m = len(finite)
    adjusted = [float("nan")] * len(p_values)
    running = 0.0
    for rank, i in enumerate(sorted(finite, key=lambda i: p_values[i])):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def verdict(results: list[dict], comparisons: list[tuple[str, str]], metric: str = "accuracy",
            alpha: float = 0.05, correction: str = "holm") -> list[dict]:
    """One row per comparison ``(A, B)``: is A better than B on ``metric``?

    Each row holds the paired differences A - B on the key (fold, seed), their mean, whether all
    share one sign (``consistent``; never with a zero difference), the paired t-test's p-value
    (``p``), its value corrected over every comparison of this call (``p_corrected``: Holm, or
    ``correction="none"`` for a single planned comparison) and the ``decision``: "A > B" or
    "A < B" when the signs are consistent and the corrected p-value is below ``alpha``, else
    "not distinguished".
    """
    if correction not in ("holm", "none"):
        raise ValueError(f"correction must be 'holm' or 'none', got {correction!r}")
    if not comparisons:
        raise ValueError("verdict needs at least one (A, B) comparison")
    tests = [paired_difference(results, a, b, metric) for a, b in comparisons]
    p_values = [t["p"] for t in tests]
    corrected = holm(p_values) if correction == "holm" else p_values
    rows = []
    for (a, b), test, p_corr in zip(comparisons, tests, corrected):
        d = np.asarray(test["differences"])
        consistent = bool(len(d) > 1 and (np.all(d > 0) or np.all(d < 0)))
        decided = consistent and not math.isnan(p_corr) and p_corr < alpha
        decision = (f"{a} > {b}" if test["mean"] > 0 else f"{a} < {b}") if decided else "not distinguished"
        rows.append({"first": a, "second": b, "metric": metric, "keys": test["keys"],
                     "differences": test["differences"], "mean": test["mean"], "std": test["std"],
                     "n": test["n"], "consistent": consistent, "t": test["t"], "p": test["p"],
                     "p_corrected": p_corr, "decision": decision})
    return rows


def reversed_verdict(row: dict) -> dict:
    """A row of :func:`verdict` read the other way round: B - A instead of A - B.

    The same test (same p-values, same correction), so a table may show both directions of a pair
    while the pair counts once in Holm's correction."""
    a, b = row["first"], row["second"]
    decision = row["decision"] if row["decision"] == "not distinguished" else \
        f"{b} > {a}" if row["mean"] < 0 else f"{b} < {a}"
    return {**row, "first": b, "second": a, "mean": -row["mean"], "t": -row["t"],
            "differences": [-d for d in row["differences"]], "decision": decision}


def difference_matrix(results: list[dict], labels: list[str], metric: str = "accuracy",
                      alpha: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Every pair of ``labels`` compared by :func:`verdict`, Holm-corrected over all the pairs.

    Returns ``(mean, decided)``, both (k, k): ``mean[i, j]`` is the mean paired difference
    ``labels[i] - labels[j]`` on ``metric`` (antisymmetric, zero on the diagonal) and
    ``decided[i, j]`` whether the verdict tells the two apart (symmetric)."""
    k = len(labels)
    if k < 2:
        raise ValueError(f"a difference matrix needs at least two labels, got {labels!r}")
    mean, decided = np.zeros((k, k)), np.zeros((k, k), dtype=bool)
    pairs = [(labels[i], labels[j]) for i in range(k) for j in range(i + 1, k)]
    for row in verdict(results, pairs, metric, alpha):
        i, j = labels.index(row["first"]), labels.index(row["second"])
        mean[i, j], mean[j, i] = row["mean"], -row["mean"]
        decided[i, j] = decided[j, i] = row["decision"] != "not distinguished"
    return mean, decided


def mean_history(results: list[dict], label: str, key: str) -> tuple[np.ndarray, np.ndarray]:
    """``(steps, mean over runs)`` of one column of the training histories of ``label``'s runs,
    on the steps that every run logged (a run that logged ``key`` less often sets the grid)."""
    runs = [r for r in results if r["label"] == label]
    if not runs:
        known = sorted({r["label"] for r in results})
        raise ValueError(f"no results labelled {label!r}; the labels are {', '.join(known)}")
    tables = [{h["step"]: h[key] for h in r.get("history", []) if key in h} for r in runs]
    steps = sorted(set.intersection(*(set(t) for t in tables)))
    if not steps:
        raise ValueError(f"the runs of {label!r} share no step that logged {key!r}")
    return np.array(steps), np.array([np.mean([t[s] for t in tables]) for s in steps])
