"""How much a chapter slows on a busy machine, for a given torch thread count.

    python benchmarks/bench_chapter_load.py --chapter book/ch01_verification.ipynb --threads 1 2
    python benchmarks/bench_chapter_load.py --load 4 --threads 1 0     # 0: torch's default

For each thread setting, the chapter is executed twice with nbclient: on the machine as it is
("quiet"), then with ``--load`` busy processes spinning beside it ("loaded"). The thread count
replaces the chapter's own ``torch.set_num_threads(...)`` call (0 removes it, leaving torch's
default of one thread per core) and reaches the kernel as OMP_NUM_THREADS and MKL_NUM_THREADS.
Each run records its wall time and the 1-minute load average before and after; the result, with
the machine's core count and the commit, goes to ``benchmarks/results/chapter_load.json``.

A chapter that slows in proportion to the load takes about ``(1 + load / cores)`` times its quiet
time; ``slowdown_over_proportional`` (loaded / quiet / that factor) says how far beyond it went.
torch's intra-op threads wait on busy cores, so with more threads than free cores it goes far
beyond (the issue measured 488 s loaded against 28 s quiet for chapter 1). Runs take minutes:
this is a benchmark, never a test.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import re
import sys
import time
from pathlib import Path

from frbook.provenance import benchmark_report, git_commit, write_json_atomic

REPO = Path(__file__).resolve().parents[1]


def _spin(stop):
    while not stop.is_set():
        sum(i * i for i in range(10_000))


def with_threads(nb, threads: int):
    """The chapter with its ``torch.set_num_threads(...)`` calls set to ``threads`` (0: removed)."""
    call = re.compile(r"^(\s*)torch\.set_num_threads\([^)]*\)", re.M)
    replacement = rf"\1torch.set_num_threads({threads})" if threads else r"\1pass  # torch's default threads"
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.source = call.sub(replacement, cell.source)
    return nb


def execute(chapter: Path, threads: int) -> float:
    import nbclient
    import nbformat

    env_keys = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
    saved = {k: os.environ.get(k) for k in env_keys}
    for k in env_keys:
        if threads:
            os.environ[k] = str(threads)
        else:
            os.environ.pop(k, None)
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), saved.get("PYTHONPATH")]))
    try:
        nb = with_threads(nbformat.read(chapter, as_version=4), threads)
        start = time.perf_counter()
        nbclient.NotebookClient(nb, timeout=3600, kernel_name="python3",
                                resources={"metadata": {"path": str(chapter.parent)}}).execute()
        return time.perf_counter() - start
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chapter", type=Path, default=REPO / "book" / "ch01_verification.ipynb")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 0],
                        help="torch thread counts to compare (0: torch's default)")
    parser.add_argument("--load", type=int, default=4, help="busy processes beside the loaded run")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "chapter_load.json")
    args = parser.parse_args(argv)
    git_state = git_commit()  # before the run: it rewrites its own tracked result file
    if not args.chapter.is_file():
        parser.exit(2, f"bench_chapter_load.py: error: no chapter at {args.chapter}\n")
    cores = os.cpu_count() or 1
    runs = []
    for threads in args.threads:
        for loaded in (False, True):
            stop = mp.Event()
            spinners = [mp.Process(target=_spin, args=(stop,)) for _ in range(args.load if loaded else 0)]
            for p in spinners:
                p.start()
            if loaded:
                time.sleep(5)  # let the load average feel them
            before = os.getloadavg()[0]
            seconds = execute(args.chapter, threads)
            after = os.getloadavg()[0]
            stop.set()
            for p in spinners:
                p.join()
            runs.append({"threads": threads or "default", "loaded": loaded, "busy_processes": len(spinners),
                         "seconds": round(seconds, 1), "loadavg_1min_before": before, "loadavg_1min_after": after})
            print(json.dumps(runs[-1]), flush=True)
    summary = []
    for threads in args.threads:
        quiet, loaded = (r for r in runs if r["threads"] == (threads or "default"))
        proportional = 1 + args.load / cores
        summary.append({"threads": threads or "default", "slowdown": round(loaded["seconds"] / quiet["seconds"], 2),
                        "slowdown_over_proportional": round(loaded["seconds"] / quiet["seconds"] / proportional, 2)})
    chapter = args.chapter.resolve()
    report = benchmark_report(
        "benchmarks/bench_chapter_load.py", argv, "cpu",
        "wall seconds to execute the chapter, quiet and beside busy processes, per torch thread count",
        runs, git_state=git_state, cores=cores, load=args.load, summary=summary,
        chapter=chapter.relative_to(REPO).as_posix() if chapter.is_relative_to(REPO) else chapter.name)
    write_json_atomic(args.out, report)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
