"""Where a number came from: the command, the commit, the machine and the date of a run.

Every result file the book reads carries this record (DESIGN.md: "every number a page shows
comes from a run"), so a reader can tell which code on which device produced a table.
"""
from __future__ import annotations

import datetime as _dt
import errno
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import torch

from .safe_io import temporary_name

REPO = Path(__file__).resolve().parents[1]


def git_commit() -> tuple[str | None, bool]:
    """The commit of the working tree and whether it had uncommitted changes (None outside git).

    A copy of a clean checkout made without its ``.git`` (shipped to a GPU machine, say) names the
    commit it was copied from in ``FRBOOK_GIT_COMMIT``; it is used when git cannot answer."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True,
                                text=True, timeout=10).stdout.strip() or None
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                                    capture_output=True, text=True, timeout=10).stdout.strip())
    except (OSError, subprocess.SubprocessError):
        commit, dirty = None, False
    if commit is None and os.environ.get("FRBOOK_GIT_COMMIT"):
        return os.environ["FRBOOK_GIT_COMMIT"], False
    return commit, dirty


def device_name(device: str | torch.device = "cpu") -> str:
    """A readable name of the device: the GPU's model, or the CPU's with its thread count."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{platform.processor() or platform.machine()} CPU, {torch.get_num_threads()} threads"


def cpu_description() -> dict:
    """The CPU a run computed on: its model, the instruction set torch's kernels were chosen for,
    and its cores. Two CPUs that differ here may round differently, so a CPU run is reproduced
    bit for bit only on the same kind of CPU (and with the same thread count, see :func:`device_name`)."""
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as info:
            model = next((line.split(":", 1)[1].strip() for line in info if line.startswith("model name")), model)
    except OSError:
        pass
    return {"model": model, "kernels": torch.backends.cpu.get_cpu_capability(), "cores": os.cpu_count()}


def current_command() -> str:
    """The command line of this process, as a user would type it again."""
    argv = list(sys.argv)
    if argv and argv[0].endswith(str(Path("frbook") / "__main__.py")):
        argv = ["-m", "frbook", *argv[1:]]  # run as `python -m frbook ...`
    elif argv and Path(argv[0]).is_absolute() and Path(argv[0]).is_relative_to(REPO):
        argv[0] = str(Path(argv[0]).relative_to(REPO))
    return " ".join(["python", *argv])


def provenance(device: str | torch.device = "cpu", command: str | None = None) -> dict:
    commit, dirty = git_commit()
    return {
        "command": command or current_command(),
        "git_commit": commit,
        "git_dirty": dirty,
        "device": device_name(device),
        "cpu": cpu_description(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


def write_json_atomic(path: str | Path, record: dict) -> Path:
    """Write ``record`` as JSON so that a crash never leaves a half-written file behind."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, f"{path} is a folder; give the name of a .json file to write")
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(record, indent=1, sort_keys=False) + "\n"  # before opening: a bad record leaves nothing
    tmp = temporary_name(path)
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    except OSError as exc:
        raise OSError(exc.errno, f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        tmp.unlink(missing_ok=True)
    return path


def benchmark_report(script: str, argv: list[str] | None, device, what: str, rows: list[dict],
                     git_state: tuple | None = None, **settings) -> dict:
    """A benchmark's JSON record: the command, the device and torch, the settings, what is
    measured, the machine's load (the machine is shared: a high load means noisy times), the
    date, the commit, and the result rows. ``git_state``: :func:`git_commit` as it was when the
    run started; a benchmark that rewrites its own tracked result file as it goes would otherwise
    find the tree dirty by its own hand."""
    commit, dirty = git_state or git_commit()
    return {
        "command": " ".join([f"python {script}"] + (argv if argv is not None else sys.argv[1:])),
        "device": device_name(device), "torch_version": torch.__version__,
        "num_threads": torch.get_num_threads(), **settings, "what": what,
        "load_average_1min": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "git_commit": commit, "git_dirty": dirty, "results": rows,
    }
