"""Can the data keep up with the trainer? Images per second of each way the trainer gets images,
against the images per second the trainer's step consumes.

    python benchmarks/bench_data.py                  # CPU
    python benchmarks/bench_data.py --device cuda    # after bench_train.py --device cuda

Every path is the trainer's own (:class:`frbook.train.batches.Prefetcher` over a
:class:`~frbook.train.batches.BatchPlan`, the images moved to the device), timed over
``--batches`` batches after one:

* **synth**: SynthFaces rendered on the training device (``data.kind: synth``, the default);
* **rec_workers_N**: an InsightFace ``.rec`` of JPEGs (:class:`frbook.data.RecFaces`, written
  here from SynthFaces, quality 95) decoded by PIL in ``data.workers = N`` DataLoader processes,
  pinned memory on CUDA: what a user with a ``.rec`` gets (``N = 0`` decodes in the training
  process);
* **rec_cached**: the same ``.rec`` decoded once into memory as uint8 (``data.cache: true``,
  for sets that fit in memory), then indexed and moved per batch.

The trainer's consumption is the best trainer variant's images/s for the same image size and
batch in ``benchmarks/results/train_speed_<device>.json`` (``--train-json``), or ``--consumption``.
Each path's ``headroom`` is its supply over that consumption: below 1, the GPU waits on data.
Results go to ``benchmarks/results/data_speed_<device>.json``.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch

from frbook.data import RecFaces, SynthFaces
from frbook.data.images import encode
from frbook.data.recordio import IRHeader, RecordWriter, pack
from frbook.provenance import benchmark_report, write_json_atomic
from frbook.train.batches import BatchPlan, InMemoryFaces, Prefetcher

RESULTS = Path(__file__).resolve().parent / "results"

REC_PATH = ("A .rec is read by frbook.data.RecFaces: each JPEG is decoded by PIL on a CPU core, in "
            "data.workers DataLoader worker processes (pinned memory when CUDA is present), or once into "
            "memory as uint8 with data.cache: true (sets that fit in memory); nothing is decoded on the GPU.")


def write_rec(folder: Path, count: int, size: int, channels: int, identities: int = 100) -> Path:
    """A ``.rec`` + ``.idx`` of ``count`` JPEG faces (labels in the image headers), as InsightFace packs them."""
    faces = SynthFaces(identities, images_per_identity=-(-count // identities), size=size, channels=channels)
    images = (faces.images(torch.arange(count)) * 255).round().to(torch.uint8)
    rec = folder / "train.rec"
    with RecordWriter(rec, folder / "train.idx") as writer:
        for key in range(count):
            label = float(faces.labels[key])
            writer.write(key + 1, pack(IRHeader(0, label, key + 1, 0), encode(images[key], "jpeg", 95)))
    return rec


def supply(dataset, batch: int, workers: int, batches: int, device) -> float:
    """Images per second that the trainer's Prefetcher delivers on ``device`` (the first batch,
    which starts the workers, is not timed)."""
    plan = BatchPlan(len(dataset), batch, seed=0)
    stream = iter(Prefetcher(dataset, plan(), workers))
    times = []
    for k in range(batches + 1):
        start = time.perf_counter()
        _, _, slices = next(stream)
        images = slices[0][1][0].to(device, non_blocking=True)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if k:
            times.append(time.perf_counter() - start)
        del images
    del stream  # stops the DataLoader's workers
    return batch / statistics.median(times)


def consumption_from(path: Path, size: int, batch: int) -> tuple[float | None, str | None]:
    """The best trainer images/s for ``size`` and ``batch`` in a bench_train.py result."""
    if not path.is_file():
        return None, None
    rows = [r for r in json.loads(path.read_text()).get("results", []) if r.get("size") == size and r.get("batch") == batch]
    if not rows:
        return None, None
    best = max(rows, key=lambda r: r.get("best_images_per_second") or 0)
    return best.get("best_images_per_second"), f"{path.name}: {best['model']} {best.get('best')}"


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    # The defaults are bench_train.py's first case on each device, whose training rate is the consumption.
    parser.add_argument("--size", type=int, default=None, help="image side (default: 112 GPU, 64 CPU)")
    parser.add_argument("--channels", type=int, default=None, choices=[1, 3], help="(default: 3 GPU, 1 CPU)")
    parser.add_argument("--batch", type=int, default=None, help="(default: 128 GPU, 64 CPU)")
    parser.add_argument("--batches", type=int, default=5, help="timed batches per path (default: %(default)s)")
    parser.add_argument("--workers", type=int, nargs="+", default=None,
                        help="data.workers values for the .rec (default: 0 and the number of CPU cores)")
    parser.add_argument("--rec-images", type=int, default=None,
                        help="images in the .rec (default: enough for every timed batch, at most 4096)")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    parser.add_argument("--consumption", type=float, default=None, help="the trainer's images/s (default: --train-json)")
    parser.add_argument("--train-json", type=Path, default=None,
                        help="bench_train.py's result (default: results/train_speed_<device>.json)")
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    gpu = device.type == "cuda"
    args.size = args.size or (112 if gpu else 64)
    args.channels = args.channels or (3 if gpu else 1)
    args.batch = args.batch or (128 if gpu else 64)
    if gpu and not torch.cuda.is_available():
        parser.error("--device cuda: torch sees no CUDA device here")
    if min(args.size, args.batch, args.batches) < 1:
        parser.error("--size, --batch and --batches must be positive")
    if args.threads:
        torch.set_num_threads(args.threads)
    workers = args.workers if args.workers is not None else sorted({0, os.cpu_count() or 1})
    count = args.rec_images or min(4096, args.batch * (args.batches + 1))
    count = max(count, args.batch * 2)
    if args.consumption is not None:
        consumption, source = args.consumption, "--consumption"
    else:
        consumption, source = consumption_from(args.train_json or RESULTS / f"train_speed_{device.type}.json",
                                               args.size, args.batch)

    paths = {}
    synth = SynthFaces(1000, images_per_identity=max(2, args.batch * (args.batches + 1) // 1000 + 1),
                       size=args.size, channels=args.channels, device=device)
    paths["synth"] = supply(synth, args.batch, 0, args.batches, device)
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        rec = write_rec(Path(folder), count, args.size, args.channels)
        written = time.perf_counter() - start
        faces = RecFaces(rec, channels=args.channels)
        for n in workers:
            paths[f"rec_workers_{n}"] = supply(faces, args.batch, n, args.batches, device)
        start = time.perf_counter()
        cached = InMemoryFaces(faces, progress=False)
        decode_once = count / (time.perf_counter() - start)
        paths["rec_cached"] = supply(cached, args.batch, 0, args.batches, device)
        rec_bytes = rec.stat().st_size

    rows = []
    for name, rate in paths.items():
        rows.append({"path": name, "images_per_second": round(rate, 1),
                     "headroom": None if not consumption else round(rate / consumption, 2),
                     "keeps_up": None if not consumption else rate >= consumption})
        print(f"{name:>16}: {rate:9.1f} img/s" + (f"  x{rate / consumption:.2f} of the trainer's {consumption:.0f}"
                                                  if consumption else ""), flush=True)
    report = benchmark_report(
        "benchmarks/bench_data.py", argv, device,
        "images/s that each of the trainer's data paths delivers on the device (its Prefetcher), against the "
        "trainer's consumption (bench_train.py's best variant at this size and batch); headroom = supply / consumption",
        rows, size=args.size, channels=args.channels, batch=args.batch, timed_batches=args.batches,
        cpu_count=os.cpu_count(), rec_images=count, rec_mib=round(rec_bytes / 2**20, 2),
        rec_write_seconds=round(written, 2), rec_decode_once_images_per_second=round(decode_once, 1),
        trainer_images_per_second=consumption, consumption_source=source, rec_path=REC_PATH)
    output = args.output or RESULTS / f"data_speed_{device.type}.json"
    write_json_atomic(output, report)  # a run stopped mid-write leaves the previous file whole
    print(f"wrote {output}")
    return report


if __name__ == "__main__":
    main()
