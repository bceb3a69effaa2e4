"""Run the jobs of a comparison as parallel processes, within a time budget.

    python scripts/parallel_compare.py --config configs/compare_lfw_gpu.yaml --jobs 2 \
        --launch-until 400 --stop-at 500

One job is one ``python -m frbook experiment compare --config C --only LOSS [--folds K]``: a
process of its own, so several trainings share one machine's cores or one GPU. That pays only
while one training leaves the device idle: on an H200, one iResNet-18 at 112x112 already fills it,
and seven jobs side by side ran no faster in total (``benchmarks/GPU_NOTES.md``). Jobs start in order (all losses of the first fold, then the next fold, the longest
losses first within a fold), at most ``--jobs`` at a time; none starts after ``--launch-until``
seconds, and any still running at ``--stop-at`` is stopped (its result is simply not written: the
comparison resumes it next time). Each job's output goes to ``<log-dir>/<loss>-fold<K>.log``.

Each job runs with ``--threads`` torch threads (default: the machine's cores shared out among the
jobs, at least one), set through OMP_NUM_THREADS: more threads than cores slow every job, and the
thread count changes the order of floating-point sums, so a run is reproduced only with the same
count (the result file's provenance records it).

Training times in the result files of runs that shared a device measure the shared device:
compare them only with runs made the same way.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from frbook.experiment import load_comparison  # noqa: E402
from frbook.protocol import entry_config  # noqa: E402


def job_list(config: dict, only, folds) -> list[tuple[str, int | None]]:
    """(label, fold) in launch order: fold by fold; searches (several trainings each) first."""
    labels = only or list(config["compare"]["losses"])
    is_fixed = {label: entry_config(config, label)["search"]["method"] == "none" for label in labels}
    labels = sorted(labels, key=is_fixed.get)  # stable: searches first
    if config["data"]["kind"] != "lfw":
        folds = [None]
    return [(label, fold) for fold in (folds or config["compare"]["folds"]) for label in labels]


def threads_per_job(jobs: int, threads: int | None, cores: int | None) -> int:
    """``threads`` when given, else the cores shared out among the jobs (at least one each)."""
    return threads or max(1, (cores or 1) // jobs)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="a comparison config")
    parser.add_argument("--jobs", type=int, default=4, help="processes at a time (default: %(default)s)")
    parser.add_argument("--only", nargs="+", default=None, metavar="LOSS", help="only these losses")
    parser.add_argument("--folds", nargs="+", type=int, default=None, metavar="K", help="LFW: only these folds")
    parser.add_argument("--launch-until", type=float, default=float("inf"), metavar="S",
                        help="start no job after S seconds")
    parser.add_argument("--stop-at", type=float, default=float("inf"), metavar="S",
                        help="stop the jobs still running after S seconds")
    parser.add_argument("--out", default=None, help="result folder (default: the comparison's)")
    parser.add_argument("--log-dir", default="runs/parallel_compare", help="(default: %(default)s)")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when present)")
    parser.add_argument("--report-every", type=float, default=60, metavar="S",
                        help="print the end of each running job's log every S seconds (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=None, metavar="N",
                        help="torch threads per job (default: the cores divided among the jobs, at least 1)")
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error("--jobs must be at least 1")
    if args.threads is not None and args.threads < 1:
        parser.error("--threads must be at least 1")
    threads = threads_per_job(args.jobs, args.threads, os.cpu_count())
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}

    config = load_comparison(args.config)
    pending = job_list(config, args.only, args.folds)
    log_dir = Path(args.log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    running, finished = {}, []
    start = time.monotonic()
    print(f"{len(pending)} jobs, {args.jobs} at a time, {threads} torch thread(s) each", flush=True)
    while pending or running:
        now = time.monotonic() - start
        while pending and len(running) < args.jobs and now < args.launch_until:
            label, fold = pending.pop(0)
            command = [sys.executable, "-m", "frbook", "experiment", "compare", "--config", args.config,
                       "--only", label]
            command += ["--folds", str(fold)] if fold is not None else []
            command += ["--out", args.out] if args.out else []
            command += ["--device", args.device] if args.device else []
            log = open(log_dir / f"{label}-fold{fold}.log", "w")
            running[label, fold] = (subprocess.Popen(command, cwd=REPO, env=env, stdout=log,
                                                     stderr=subprocess.STDOUT),
                                    log, now)
            print(f"[{now:6.0f} s] start {label}, fold {fold}", flush=True)
        if now >= args.launch_until and pending:
            print(f"[{now:6.0f} s] launch time over: {len(pending)} jobs not started", flush=True)
            finished += [(job, "not started", 0.0) for job in pending]
            pending = []
        for job, (process, log, began) in list(running.items()):
            if process.poll() is not None:
                state = "done" if process.returncode == 0 else f"failed ({process.returncode})"
            elif now >= args.stop_at:
                process.terminate()
                process.wait(30)
                state = "stopped"
            else:
                continue
            log.close()
            del running[job]
            finished.append((job, state, now - began))
            print(f"[{now:6.0f} s] {state}: {job[0]}, fold {job[1]} ({now - began:.0f} s)", flush=True)
        if running and now // args.report_every != (now + 1) // args.report_every:
            for (label, fold), (_, log, _) in running.items():
                log.flush()
                tail = (log_dir / f"{label}-fold{fold}.log").read_text(errors="replace")[-400:]
                print(f"[{now:6.0f} s] {label}, fold {fold}: ...{tail.split(chr(13))[-1].strip()[-110:]}", flush=True)
        time.sleep(1)
    failed = [job for job, state, _ in finished if state.startswith("failed")]
    print(f"{sum(state == 'done' for _, state, _ in finished)} done, {len(failed)} failed, "
          f"{sum(state in ('stopped', 'not started') for _, state, _ in finished)} stopped or not started "
          f"in {time.monotonic() - start:.0f} s")
    for label, fold in failed:
        print(f"--- {label}, fold {fold}: the end of its log", file=sys.stderr)
        print((log_dir / f"{label}-fold{fold}.log").read_text()[-3000:], file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
