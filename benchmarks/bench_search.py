"""How much faster is a search step when the M candidates run as one computation?

    python benchmarks/bench_search.py                 # CPU: M = 4 and 8, two network sizes
    python benchmarks/bench_search.py --device cuda   # GPU: also iResNet-18 at 112x112

A search step is what one epoch of :func:`frbook.search.search` costs per training step: M
candidates, each with its own loss, one SGD step each on the same batch. Both engines of
:mod:`frbook.search.candidates` run it on the same pre-rendered batches, alternately, in one run:

* **loop**: M ordinary networks, one after another (what M sequential trainings cost);
* **stacked**: the M networks as stacked tensors, one ``vmap``-ed ``functional_call`` (batch
  norm as :class:`frbook.search.candidates.StackableBatchNorm`, which ``vmap`` batches on CUDA).

The ratio is stacked time / loop time (below 1: stacked is faster), per device: each row also
says which engine ``engine: auto`` picks there, so the JSON shows whether that choice is right
(the goal on a GPU: M = 8 SmallCNN candidates in at most 0.25 of the loop's time). Each engine gets ``--warmup``
steps, then ``--repeats`` timed blocks of ``--steps`` steps, interleaved loop/stacked so a change
in the machine's load hits both; the median block is reported. Results go to
``benchmarks/results/search_speed_<device>.json`` with the device, torch version and commit.
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from frbook import models
from frbook.heads import CosineClassifier
from frbook.provenance import benchmark_report, write_json_atomic
from frbook.search import SearchSoftmaxSpace, make_candidates
from frbook.search.candidates import pick_engine

RESULTS = Path(__file__).resolve().parent / "results"

CASES = [  # (label, model, params, size, channels, batch, classes)
    ("protocol", "small_cnn", {"embedding_dim": 64}, 32, 1, 128, 400),  # chapter 7's search_cpu.yaml
    ("tiny", "small_cnn", {"embedding_dim": 32, "width": 8}, 32, 1, 32, 100),
]
GPU_CASES = CASES + [("iresnet18_112", "iresnet18", {"embedding_dim": 512}, 112, 3, 64, 1000)]


def synchronize(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_block(engine, space, samples, data, steps, device) -> float:
    synchronize(device)
    start = time.perf_counter()
    for i in range(steps):
        images, labels = data[i % len(data)]
        engine.step(space.losses(engine.cosines(images), labels, samples))
    synchronize(device)
    return (time.perf_counter() - start) / steps


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="(default: %(default)s)")
    parser.add_argument("--candidates", type=int, nargs="+", default=[4, 8], help="values of M (default: 4 8)")
    parser.add_argument("--steps", type=int, default=5, help="training steps per timed block (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=3, help="timed blocks per engine (default: %(default)s)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--case", action="append", default=None,
                        help="only this case (repeatable): " + ", ".join(c[0] for c in GPU_CASES))
    parser.add_argument("--output", type=Path, default=None, help="JSON path (default: results/search_speed_<device>.json)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    space = SearchSoftmaxSpace(s=30.0)
    output = args.output or RESULTS / f"search_speed_{device.type}.json"

    def write(rows, finished):
        """The report so far, written after every row: a run stopped at its time limit keeps them."""
        report = benchmark_report(
            "benchmarks/bench_search.py", argv, device,
            "seconds per search training step (M candidates, one SGD step each, same batch); "
            "ratio = stacked (vmap) / loop (one after another); the goal on a GPU is <= 0.25 at M = 8; "
            "auto_picks: the engine that engine: auto uses on this device",
            rows, steps=args.steps, repeats=args.repeats, finished=finished)
        write_json_atomic(output, report)  # a run stopped mid-write leaves the previous file whole
        return report

    rows = []
    cases = [c for c in (GPU_CASES if device.type == "cuda" else CASES) if args.case is None or c[0] in args.case]
    if not cases:
        parser.error(f"no case named {args.case}; known: {', '.join(c[0] for c in GPU_CASES)}")
    for label, name, params, size, channels, batch, classes in cases:
        g = torch.Generator().manual_seed(0)
        data = [(torch.rand(batch, channels, size, size, generator=g).to(device),
                 torch.randint(0, classes, (batch,), generator=g).to(device)) for _ in range(2)]
        for m in args.candidates:
            torch.manual_seed(0)
            backbone = models.get(name, in_channels=channels, input_size=size, **params)
            head = CosineClassifier(backbone.embedding_dim, classes)
            samples = (1.0 + 0.2 * torch.randn(m, 1, generator=g, dtype=torch.float64)).to(device)
            engines = {kind: make_candidates(kind, backbone.to(device), head.to(device), m) for kind in ("loop", "stacked")}
            errors = {}
            for kind, engine in list(engines.items()):
                try:
                    time_block(engine, space, samples, data, max(args.warmup, 1), device)
                except RuntimeError as exc:  # recorded, so the other rows still get measured
                    errors[kind] = str(exc)[:500]
                    del engines[kind]
            times = {kind: [] for kind in engines}
            for _ in range(args.repeats):
                for kind, engine in engines.items():
                    times[kind].append(time_block(engine, space, samples, data, args.steps, device))
            row = {"case": label, "model": name, "params": params, "size": size, "channels": channels,
                   "batch": batch, "classes": classes, "candidates": m,
                   **{f"{kind}_seconds_per_step": statistics.median(t) for kind, t in times.items()},
                   **{f"{kind}_seconds_all": t for kind, t in times.items()}}
            row["device_type"], row["auto_picks"] = device.type, pick_engine("auto", device)
            if errors:
                row.update(errors=errors, stacked_over_loop=None, auto_is_faster_choice=None)
                print(f"{label:>14} M={m}: failed: {errors}", flush=True)
            else:
                row["stacked_over_loop"] = round(row["stacked_seconds_per_step"] / row["loop_seconds_per_step"], 3)
                row["auto_is_faster_choice"] = (row["stacked_over_loop"] < 1) == (row["auto_picks"] == "stacked")
                print(f"{label:>14} M={m}: loop {row['loop_seconds_per_step']:.3f} s/step, stacked "
                      f"{row['stacked_seconds_per_step']:.3f} s/step, ratio {row['stacked_over_loop']:.2f}", flush=True)
            rows.append(row)
            write(rows, finished=False)
            del engines

    report = write(rows, finished=True)
    print(f"wrote {output}")
    return report


if __name__ == "__main__":
    main()
