"""Every command that writes the book's result files, in one list, and a check of where each file came from.

    python scripts/rerun_results.py --list                    # the steps and their commands
    python scripts/rerun_results.py --status                  # per folder: files, commits, dirty flags
    python scripts/rerun_results.py --run [--jobs 2] [--only compare_lfw_cpu ...] [--device cpu]

``--run`` writes every result folder under ``--dest`` (default ``runs/rerun_results/results``,
which git ignores: a result file written over a tracked one would make every later run record a dirty
tree), from the checkout it is run in, which must be a clean commit (the files record that commit; a
dirty tree is refused). Move the folders into ``book/results/`` and commit them when it is done. Steps
run in the order listed, at most ``--jobs`` at a time, each in its own processes with ``--threads``
torch threads (default 1): the thread count changes the order of floating-point sums, and with it a
training's trajectory (on LFW's 600-pair folds, by points of accuracy), so a file is reproduced by
the same command on the same kind of machine with the same thread count. Comparisons resume where
they stopped and skip the runs already written under the same protocol; any other step is skipped
once its result files exist, and one that was interrupted starts again afresh (its training with
``--force``), so ``--run`` can be stopped and started again.
Each step's output goes to ``runs/rerun_results/<step>.log``.

``--status`` is the check of "every file from one clean commit": it lists, per folder of
``--results`` (default ``book/results``), how many files there are (and how many runs of the
configs have none), the commits and dates they
record, the machines (device and thread count; the CPU's model and the instruction set torch chose
its kernels for) and how many say the tree was dirty, and exits with 1 when they come from more
than one commit or any is dirty.

The cost on the 2-core CPU this book is built on (AMD EPYC, AVX2 kernels: about 350 training
images/s per core for the small CNN at 64x64 grey, 9.4 GFLOP a step of 128): one LFW training of
1,200 steps takes 10-15 minutes of one core, a fold about thirteen trainings' worth (a search with
four candidates costs four), so the ten folds are about 20 hours of one core.
On a GPU the LFW comparison is ``configs/compare_lfw_gpu.yaml`` (a different protocol, iResNet-18
at 112x112), not a step of this list.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from frbook.provenance import git_commit  # noqa: E402  (the dirty flag the result files record)

RESULTS = REPO / "book" / "results"
PY = "python"  # replaced by the running interpreter when a step runs


OUT = "{out}"  # replaced by the step's result folder under --dest


def compare(config: str, *extra: str) -> list[str]:
    return [PY, "-m", "frbook", "experiment", "compare", "--config", f"configs/{config}.yaml", "--out", OUT,
            "--quiet", *extra]


# (step, result folder, commands run one after another). LFW first: the costliest and the one the
# chapters compare across the most entries. A step's commands depend on each other; steps do not,
# except where a later step reads an earlier one's output (noted).
STEPS: list[tuple[str, str, list[list[str]]]] = [
    *[(f"compare_lfw_cpu-fold{k}", "compare_lfw_cpu", [compare("compare_lfw_cpu", "--folds", str(k))])
      for k in range(10)],
    ("compare_all_cpu", "compare_all_cpu", [compare("compare_all_cpu")]),
    # The same runs of three losses with two torch threads instead of one: how far the order of
    # floating-point sums alone moves a result, beside the spread between seeds (chapter 9). Its own
    # --runs folder: in compare_all_cpu's, each run would find its finished checkpoint and only
    # evaluate it again.
    ("compare_all_cpu_2threads", "compare_all_cpu_2threads", [
        ["env", "OMP_NUM_THREADS=2", "MKL_NUM_THREADS=2",
         *compare("compare_all_cpu", "--only", "softmax", "cosface", "arcface", "--runs", "runs/compare_all_cpu_2threads")]]),
    ("compare_all_hard_cpu", "compare_all_hard_cpu", [compare("compare_all_hard_cpu")]),
    ("compare_margins_cpu", "compare_margins_cpu", [compare("compare_margins_cpu")]),
    ("compare_scale_cpu", "compare_scale_cpu", [compare("compare_scale_cpu")]),
    ("p2sgrad_cpu", "p2sgrad_cpu", [compare("p2sgrad_cpu")]),
    ("p2sgrad_noise20_cpu", "p2sgrad_noise20_cpu", [compare("p2sgrad_noise20_cpu")]),
    ("p2sgrad_noise40_cpu", "p2sgrad_noise40_cpu", [compare("p2sgrad_noise40_cpu")]),
    ("p2sgrad_fixes", "p2sgrad_fixes", [[PY, "scripts/p2sgrad_fixes.py", "--out", f"{OUT}/p2sgrad_fixes.json"]]),
    ("search_cpu", "search_cpu", [compare("search_cpu")]),
    ("search_fixed_a_cpu", "search_fixed_a_cpu", [compare("search_fixed_a_cpu")]),
    ("tml_cpu", "tml_cpu", [compare("tml_cpu")]),
    ("tml_age_cpu", "tml_age_cpu", [compare("tml_age_cpu")]),
    ("lfw_eval", "lfw_eval", [[PY, "-m", "frbook", "eval", "--model", "pixels", "--target", "lfw",
                               "--json", f"{OUT}/pixels.json", "--quiet"]]),
    # The alignment comparison reads the aligned copy of LFW that its first command writes; the
    # aligner's counts go to the folder lfw_align beside it (chapter 5 reads them).
    ("compare_lfw_align_cpu", "compare_lfw_align_cpu", [
        [PY, "-m", "frbook", "data", "align", "../shared/data/lfw", ".lfw/aligned", "--fallback-crop", "0.5"],
        ["mkdir", "-p", f"{OUT}/../lfw_align"],
        ["cp", ".lfw/aligned/align.json", f"{OUT}/../lfw_align/align.json"],
        compare("compare_lfw_align_cpu")]),
    ("synth_transfer", "synth_transfer", [
        [PY, "-m", "frbook", "train", "--config", "configs/train_synth_cpu.yaml", "--set", "eval.targets=[synth, lfw]",
         "--out", "runs/synth_transfer", "--force", "--quiet"],
        [PY, "-m", "frbook", "eval", "--checkpoint", "runs/synth_transfer/last.pt", "--target", "lfw",
         "--json", f"{OUT}/arcface_synth_on_lfw.json", "--quiet"]]),
    *[(f"lfw_unrestricted_cpu-{loss}", "lfw_unrestricted_cpu", [
        [PY, "-m", "frbook", "train", "--config", "configs/train_lfw_cpu.yaml", "--set", f"loss.name={loss}",
         "--out", f"runs/lfw_unrestricted_cpu/{loss}", "--force", "--quiet"],
        [PY, "scripts/collect_run.py", f"runs/lfw_unrestricted_cpu/{loss}",
         f"{OUT}/{loss}-fold0.json"]])
      for loss in ("softmax", "normface", "cosface", "arcface")],
]
FOLDERS = sorted({folder for _, folder, _ in STEPS} | {"lfw_align"})  # lfw_align: see compare_lfw_align_cpu


def folder_status(folder: Path) -> dict:
    """Files, the commits, machines and dates they record, and how many say dirty, for one result folder."""
    commits, machines, dirty, dates = Counter(), Counter(), 0, []
    files = sorted(folder.rglob("*.json"))
    for path in files:
        provenance = json.loads(path.read_text()).get("provenance", {})
        commits[str(provenance.get("git_commit", "none"))[:10]] += 1
        cpu = provenance.get("cpu")  # files written before it was recorded have none
        machines[f"{provenance.get('device', '?')}" + (f" ({cpu['model']}, {cpu['kernels']})" if cpu else "")] += 1
        dirty += bool(provenance.get("git_dirty"))
        dates.append(str(provenance.get("date", ""))[:10])
    expected = expected_files(folder.name)
    missing = None if expected is None else len(expected - {path.name for path in files})
    return {"files": len(files), "missing": missing, "commits": dict(commits), "machines": dict(machines),
            "dirty": dirty, "dates": (min(dates), max(dates)) if dates else None}


def flag_values(command: list[str], flag: str) -> list[str] | None:
    """The values after ``flag`` in ``command`` (up to the next option), or None without it."""
    if flag not in command:
        return None
    rest = command[command.index(flag) + 1:]
    return rest[:next((k for k, part in enumerate(rest) if part.startswith("--")), len(rest))]


def expected_files(folder: str) -> set[str] | None:
    """The result files the comparison steps of ``folder`` write (None for a folder without one)."""
    from frbook import protocol

    names = set()
    for _, step_folder, commands in STEPS:
        for command in (c for c in commands if step_folder == folder and "compare" in c):
            config = protocol.load_comparison(REPO / flag_values(command, "--config")[0])
            folds = flag_values(command, "--folds")
            names |= {protocol.run_name(label, seed, fold) + ".json" for label, fold, seed in
                      protocol.runs(config, flag_values(command, "--only"),
                                    None if folds is None else [int(f) for f in folds])}
    return names or None


def status(results: Path = RESULTS) -> tuple[list[tuple[str, dict]], bool]:
    """(folder, status) for every folder under ``results``, and whether they all share one clean commit."""
    rows = [(folder.name, folder_status(folder)) for folder in sorted(results.iterdir()) if folder.is_dir()]
    commits = {commit for _, row in rows for commit in row["commits"]}
    return rows, len(commits) == 1 and not any(row["dirty"] for _, row in rows)  # completeness: see "missing"


def commands_of(step, dest: Path, device: str | None) -> list[list[str]]:
    """The step's commands as they run: this interpreter, its result folder, the device."""
    _, folder, commands = step
    out = str(dest / folder)
    return [[sys.executable if part == PY else part.replace(OUT, out) for part in command]
            + (["--device", device] if device and "compare" in command else []) for command in commands]


def finished(step, dest: Path) -> bool:
    """Whether a step without a comparison (a training, an evaluation, a script) has written all its
    result files already, so that running it again would only repeat it. A comparison step always
    runs: the comparison itself skips the runs it has written."""
    commands = commands_of(step, dest, None)
    outputs = [Path(part) for command in commands for part in command
               if part.startswith(str(dest)) and part.endswith(".json")]
    return not any("compare" in command for command in commands) and bool(outputs) and all(
        path.exists() for path in outputs)


def run(steps, jobs: int, threads: int, device: str | None, dest: Path, log_dir: Path) -> int:
    """Run the steps, at most ``jobs`` at a time, skipping the finished ones; return the number that failed."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    log_dir.mkdir(parents=True, exist_ok=True)
    pending, running, failed, start = list(steps), {}, 0, time.monotonic()
    while pending or running:
        while pending and len(running) < jobs:
            step = pending.pop(0)
            if finished(step, dest):
                print(f"[{time.monotonic() - start:7.0f} s] already done: {step[0]}", flush=True)
                continue
            name, commands = step[0], commands_of(step, dest, device)
            (dest / step[1]).mkdir(parents=True, exist_ok=True)
            script = " && ".join(subprocess.list2cmdline(command) for command in commands)
            log = open(log_dir / f"{name}.log", "w")
            running[name] = (subprocess.Popen(script, shell=True, cwd=REPO, env=env, stdout=log,
                                              stderr=subprocess.STDOUT), log)
            print(f"[{time.monotonic() - start:7.0f} s] start {name}", flush=True)
        for name, (process, log) in list(running.items()):
            if process.poll() is not None:
                log.close()
                del running[name]
                failed += process.returncode != 0
                state = "done" if process.returncode == 0 else f"FAILED (exit {process.returncode}; see {log.name})"
                print(f"[{time.monotonic() - start:7.0f} s] {state}: {name}", flush=True)
        time.sleep(2)
    return failed


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--list", action="store_true", help="print the steps and their commands")
    what.add_argument("--status", action="store_true", help="where the files under --results came from")
    what.add_argument("--run", action="store_true", help="run the steps (hours on a CPU; resumable)")
    parser.add_argument("--only", nargs="+", metavar="STEP",
                        help="only these steps, or every step of these result folders")
    parser.add_argument("--jobs", type=int, default=1, help="steps at a time (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process (default: %(default)s)")
    parser.add_argument("--device", default=None, help="cpu or cuda, for the comparisons (default: theirs)")
    parser.add_argument("--dest", default=str(REPO / "runs" / "rerun_results" / "results"),
                        help="where the result folders are written (default: %(default)s)")
    parser.add_argument("--results", default=str(RESULTS), help="the folder --status reads (default: %(default)s)")
    parser.add_argument("--log-dir", default=str(REPO / "runs" / "rerun_results"), help="(default: %(default)s)")
    args = parser.parse_args(argv)
    if args.jobs < 1 or args.threads < 1:
        parser.error("--jobs and --threads must be at least 1")
    steps = STEPS
    if args.only:
        unknown = set(args.only) - {name for name, _, _ in STEPS} - set(FOLDERS)
        if unknown:
            parser.error(f"unknown step or folder: {', '.join(sorted(unknown))} (see --list)")
        steps = [step for step in STEPS if step[0] in args.only or step[1] in args.only]

    if args.list:
        for name, folder, commands in steps:
            print(f"{name}  ({{out}} = <dest>/{folder})")
            for command in commands:
                print("    " + subprocess.list2cmdline(command))
        return 0
    if args.status:
        rows, one_clean_commit = status(Path(args.results))
        for folder, row in rows:
            commits = ", ".join(f"{c} x{n}" for c, n in row["commits"].items())
            dates = "" if row["dates"] is None else f", {row['dates'][0]} to {row['dates'][1]}"
            missing = "" if row["missing"] is None else f" ({row['missing']} of the configs' runs missing)"
            print(f"{folder:24s} {row['files']:4d} files{missing}, {row['dirty']:3d} dirty, commits {commits}{dates}")
            print(" " * 25 + "; ".join(f"{machine} x{n}" for machine, n in row["machines"].items()))
        print("one clean commit: " + ("yes" if one_clean_commit else "no"))
        return 0 if one_clean_commit else 1
    if git_commit()[1]:
        print(f"{REPO} has uncommitted changes: result files must come from a clean commit "
              "(commit or stash them, or run from a clean clone)", file=sys.stderr)
        return 2
    failed = run(steps, args.jobs, args.threads, args.device, Path(args.dest), Path(args.log_dir))
    print(f"{len(steps) - failed} of {len(steps)} steps done" + (f", {failed} failed" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
