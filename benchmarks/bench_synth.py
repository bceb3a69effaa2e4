"""How fast does SynthFaces render? Images per second on the CPU, written to a JSON result.

    python benchmarks/bench_synth.py            # 64x64 grey, 112x112 colour, 32x32 grey
    python benchmarks/bench_synth.py --quick    # fewer repeats
    python benchmarks/bench_synth.py --device cuda

Each configuration renders batches of ``--batch`` new images (fresh identities every time, so
nothing is cached) after a warm-up, ``--repeats`` times; the result records the best and the
median rate, because other programs sharing the CPU slow some repeats down. The number of
threads is torch's default (``torch.get_num_threads()``), as a user would run it, unless
``--threads`` sets it.

When other programs keep every core busy, torch's multi-threaded operations stall: each one
waits for a core for each of its threads, and the renderer runs hundreds of operations per
batch. On a 2-core machine shared with other jobs, two threads then rendered 40 times slower
than one (280 against 7,200 images/s, measured); ``--threads 1`` shows that case.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from frbook.data.synth import render_faces

CONFIGS = [  # (size, channels): the book's default first
    (64, 1),
    (112, 3),
    (32, 1),
]
RESULT = Path(__file__).resolve().parent / "results" / "synth_speed.json"


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                             cwd=Path(__file__).resolve().parent, timeout=10, check=True)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def images_per_second(size: int, channels: int, batch: int, repeats: int, difficulty: float,
                      device: str) -> list[float]:
    """Render ``repeats`` batches of distinct images and return the rate of each batch."""
    items = torch.arange(batch)

    def render(batch_number: int) -> None:
        # a new block of identities for every batch: 10 images each
        ids = batch_number * batch + items // 10
        render_faces(ids, items % 10, size=size, channels=channels, difficulty=difficulty,
                     device=device)
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    render(0)  # warm-up: first-call costs (allocator, noise bank, kernels)
    rates = []
    for r in range(1, repeats + 1):
        start = time.perf_counter()
        render(r)
        rates.append(batch / (time.perf_counter() - start))
    return rates


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 repeats instead of 10")
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--difficulty", type=float, default=0.5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch.set_num_threads before measuring (default: leave as is)")
    parser.add_argument("--output", type=Path, default=RESULT)
    args = parser.parse_args(argv)
    repeats = args.repeats or (3 if args.quick else 10)
    if args.threads is not None:
        torch.set_num_threads(args.threads)

    results = []
    for size, channels in CONFIGS:
        rates = images_per_second(size, channels, args.batch, repeats, args.difficulty,
                                  args.device)
        row = {
            "benchmark": "synth_render",
            "device": args.device if args.device == "cpu" else torch.cuda.get_device_name(),
            "torch_version": torch.__version__,
            "num_threads": torch.get_num_threads(),
            "size": size,
            "channels": channels,
            "batch": args.batch,
            "difficulty": args.difficulty,
            "images_per_second": round(max(rates), 1),
            "images_per_second_median": round(statistics.median(rates), 1),
            "repeats": repeats,
            # other programs on the machine slow the rates down; this records how busy it was
            "load_average_1min": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg")
            else None,
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "git_commit": git_commit(),
        }
        results.append(row)
        print(f"{size:>4}x{size:<4} {'grey' if channels == 1 else 'colour':6} "
              f"best {row['images_per_second']:>9.0f} img/s   "
              f"median {row['images_per_second_median']:>9.0f} img/s   "
              f"({repeats} x {args.batch} images, {row['num_threads']} threads, {args.device})")

    report = {
        "command": " ".join(["python benchmarks/bench_synth.py"] + (argv if argv is not None
                                                                   else sys.argv[1:])),
        "results": results,
    }
    # The headline configuration (64 x 64 grey) is repeated at the top level for quick reading.
    report.update(results[0])
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.output}")
    return report


if __name__ == "__main__":
    main()
