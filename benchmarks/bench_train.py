"""How fast does the trainer train? Images per second of its step against the field's loop, one run.

    python benchmarks/bench_train.py                 # CPU: small sizes, a few dozen steps
    python benchmarks/bench_train.py --device cuda   # GPU: iResNet-50 at 112x112, batch 128
    python benchmarks/bench_train.py --device cuda --iresnet100        # and iResNet-100
    python benchmarks/bench_train.py --model iresnet18 --size 32 --batch 8 --steps 2   # one small case

Both sides train the same backbone, cosine head and ArcFace loss (s = 64, m = 0.5) with SGD
(momentum 0.9, weight decay 5e-4) on the same batches, rendered once on the device before timing
(SynthFaces; data feeding has its own benchmark, bench_data.py), so the numbers compare the
training step alone:

* **baseline**: the loop InsightFace's arcface_torch runs, written here: eager, NCHW, the
  backbone under fp16 autocast with a GradScaler on a GPU (float32 on a CPU), the margin head in
  float32, ``torch.optim.SGD`` without fusing;
* **trainer** variants: :meth:`frbook.train.trainer.Trainer.train_step` with the config's options
  (precision, channels_last, compile), as ``python -m frbook train`` runs it; on a GPU its
  optimiser is fused. ``best`` in each row is the fastest variant.

Each measurement runs ``--warmup`` steps (``torch.compile`` compiles there), then times
``--steps`` steps (synchronising the GPU at both ends). Every row gives the FLOPs of one training
step (forward and backward of backbone and head), counted by ``torch.utils.flop_counter.
FlopCounterMode``, and on a GPU the model-FLOPs utilisation: those FLOPs times the step rate over
the GPU's dense bf16 peak (:data:`PEAK_BF16_FLOPS`, named in the JSON; MFU is null on a CPU), and
the peak memory each side allocated. Results go to ``benchmarks/results/train_speed_<device>.json``
with the device, driver, torch version and commit.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import torch

from frbook import losses, models
from frbook.data import SynthFaces
from frbook.heads import CosineClassifier
from frbook.provenance import benchmark_report, git_commit, write_json_atomic
from frbook.train.config import load_config
from frbook.train.trainer import Trainer

RESULTS = Path(__file__).resolve().parent / "results"

# Dense (not 2:4 sparse) bf16 tensor-core peaks in FLOP/s from NVIDIA's data sheets, matched in
# this order against torch.cuda.get_device_name ("NVIDIA H100 80GB HBM3" is the SXM card).
PEAK_BF16_FLOPS = [("H100 PCIe", 756e12), ("H100 NVL", 835.5e12), ("H200", 989.4e12), ("H100", 989.4e12),
                   ("A100", 312e12), ("L40S", 362.05e12), ("A10", 125e12), ("L4", 121e12)]

CPU_CASES = [  # (model, params, size, channels, batch, classes, share of --steps timed on a CPU)
    ("small_cnn", {"embedding_dim": 64}, 64, 1, 64, 200, 1.0),
    ("iresnet18", {"embedding_dim": 128}, 32, 3, 16, 200, 0.5),  # ~20 img/s on one core
]
GPU_CASES = [("iresnet50", {"embedding_dim": 512}, 112, 3, 128, 1000, 1.0)]
IRESNET100 = ("iresnet100", {"embedding_dim": 512}, 112, 3, 128, 1000, 1.0)
# bf16 autocast is left out on CPUs by default: without native bf16 units (AMX, AVX512-BF16) it
# ran 8 to 20 times slower than fp32 here (small_cnn x0.12, iresnet18 x0.05); --cpu-bf16 adds it.
CPU_VARIANTS = {"fp32": {}, "fp32+channels_last": {"channels_last": True}}
GPU_VARIANTS = {"bf16+channels_last": {"precision": "bf16", "channels_last": True},
                "bf16+channels_last+compile": {"precision": "bf16", "channels_last": True, "compile": True}}
BASELINE = {"cpu": "fp32, NCHW, eager, SGD", "cuda": "fp16 autocast + GradScaler, NCHW, eager, SGD (arcface_torch)"}


def batches(size, channels, batch, classes, device, count=4):
    """``count`` distinct batches, rendered once on ``device``, cycled by both sides."""
    faces = SynthFaces(classes, images_per_identity=max(1, batch * count // classes + 1), size=size,
                       channels=channels, device=device)
    order = torch.randperm(len(faces), generator=torch.Generator().manual_seed(0))[:batch * count]
    labels = faces.labels[order].to(device)
    images = faces.images(order).to(device)
    return [(images[k * batch:(k + 1) * batch], labels[k * batch:(k + 1) * batch]) for k in range(count)]


def synchronize(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def rate(step, data, warmup, steps, device) -> float:
    """Images per second over ``steps`` calls of ``step(images, labels)`` after ``warmup``."""
    for k in range(warmup):
        step(*data[k % len(data)])
    synchronize(device)
    start = time.perf_counter()
    for k in range(steps):
        step(*data[k % len(data)])
    synchronize(device)
    return steps * len(data[0][1]) / (time.perf_counter() - start)


def baseline_step(name, params, size, channels, classes, device, mixed=None):
    """arcface_torch's step: the backbone under fp16 autocast (on a GPU), the margin head in
    float32 on the embeddings, the loss scaled by a GradScaler, plain SGD; eager and NCHW."""
    torch.manual_seed(0)
    model = models.get(name, in_channels=channels, input_size=size, **params).to(device).train()
    head = CosineClassifier(model.embedding_dim, classes).to(device)
    loss = losses.get("arcface", s=64, m=0.5)
    optimizer = torch.optim.SGD(list(model.parameters()) + list(head.parameters()), lr=0.1, momentum=0.9,
                                weight_decay=5e-4, foreach=True)
    mixed = device.type == "cuda" if mixed is None else mixed
    scaler = torch.amp.GradScaler(device.type, enabled=mixed)

    def step(images, labels):
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=torch.float16, enabled=mixed):
            embeddings = model(images)
        value = loss(head(embeddings.float()), labels)
        scaler.scale(value).backward()
        scaler.step(optimizer)
        scaler.update()
    return step


def trainer_step(name, params, size, channels, batch, classes, device, options, out):
    """The trainer's own step (``Trainer.train_step``) with ``options`` under ``train``."""
    config = load_config(raw={
        "data": {"identities": classes, "images_per_identity": 2, "size": size, "channels": channels,
                 "flip": False},
        "model": {"name": name, "params": params},
        "loss": {"name": "arcface", "params": {"s": 64, "m": 0.5}},
        "optim": {"lr": 0.1}, "schedule": {"kind": "constant"},
        "train": {"steps": 10**6, "batch_size": batch, "device": str(device), **options},
        "eval": {"targets": []}, "checkpoint": {"keep_best": "none"},
    })
    trainer = Trainer(config, out_dir=out, progress=False)
    return lambda images, labels: trainer.train_step([(0, (images, labels))])


def training_flops(name, params, size, channels, batch, classes, device) -> int:
    """FLOPs of one training step (forward and backward of backbone and head; convolutions and
    matrix products, as FlopCounterMode counts), in float32: the count does not depend on the
    precision the step runs in."""
    from torch.utils.flop_counter import FlopCounterMode

    step = baseline_step(name, params, size, channels, classes, device, mixed=False)
    images = torch.rand(batch, channels, size, size, device=device)
    labels = torch.randint(0, classes, (batch,), device=device)
    with FlopCounterMode(display=False) as counter:
        step(images, labels)
    return counter.get_total_flops()


def peak_for(gpu_name: str) -> tuple[float | None, str | None]:
    """(the dense bf16 peak in FLOP/s, the table entry it came from) of a GPU by its name;
    (None, None) for a GPU not in :data:`PEAK_BF16_FLOPS`."""
    return next(((peak, key) for key, peak in PEAK_BF16_FLOPS if key in gpu_name), (None, None))


def peak_flops(device) -> tuple[float | None, str | None]:
    """:func:`peak_for` of ``device``'s GPU; (None, None) on a CPU: MFU is a GPU measure here."""
    return peak_for(torch.cuda.get_device_name(device)) if device.type == "cuda" else (None, None)


def gpu_driver() -> str | None:
    """The NVIDIA driver's version, from nvidia-smi (None without one)."""
    import subprocess

    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20)
        return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else None
    except (OSError, subprocess.SubprocessError):
        return None


def measure(step_factory, data, warmup, steps, device) -> dict:
    """Images/s and the peak memory (GPU: bytes allocated by torch, from before the model is
    built; CPU: None) of one side."""
    import gc

    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    step = step_factory()
    speed = rate(step, data, warmup, steps, device)
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
    del step
    return {"images_per_second": round(speed, 1), "peak_memory_mib": None if peak is None else round(peak, 1)}


def cases_from(args, gpu: bool) -> list[tuple]:
    if args.model:
        params = {"embedding_dim": args.embedding_dim}
        return [(args.model, params, args.size, args.channels, args.batch, args.classes, 1.0)]
    cases = (GPU_CASES + ([IRESNET100] if args.iresnet100 else [])) if gpu else CPU_CASES
    return [c for c in cases if args.only is None or args.only in c[0]]


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--steps", type=int, default=None, help="timed steps (default: 20 CPU, 50 GPU)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps first (default: 3 CPU, 15 GPU)")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (CPU)")
    parser.add_argument("--only", default=None, help="only the default cases whose model name contains this")
    parser.add_argument("--model", default=None, help="one case of this backbone instead of the defaults")
    parser.add_argument("--size", type=int, default=112, help="--model: image side (default: %(default)s)")
    parser.add_argument("--channels", type=int, default=3, choices=[1, 3], help="--model: (default: %(default)s)")
    parser.add_argument("--batch", type=int, default=128, help="--model: batch (default: %(default)s)")
    parser.add_argument("--classes", type=int, default=1000, help="--model: identities (default: %(default)s)")
    parser.add_argument("--embedding-dim", type=int, default=512, help="--model: D (default: %(default)s)")
    parser.add_argument("--iresnet100", action="store_true", help="GPU: add iResNet-100 at 112x112, batch 128")
    parser.add_argument("--no-compile", action="store_true", help="leave out the torch.compile variant")
    parser.add_argument("--compile", action="store_true", help="CPU: add a torch.compile variant")
    parser.add_argument("--cpu-bf16", action="store_true", help="CPU: also time bf16 autocast")
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    gpu = device.type == "cuda"
    if gpu and not torch.cuda.is_available():
        parser.error("--device cuda: torch sees no CUDA device here")
    if args.model is not None and args.model not in models.available():
        parser.error(f"unknown --model {args.model!r}; known: {', '.join(models.available())}")
    if min(args.size, args.batch, args.classes, args.embedding_dim) < 1 or (args.steps or 1) < 1:
        parser.error("--size, --batch, --classes, --embedding-dim and --steps must be positive")
    steps, warmup = args.steps or (50 if gpu else 20), args.warmup if args.warmup is not None else (15 if gpu else 3)
    if args.threads:
        torch.set_num_threads(args.threads)
    cases = cases_from(args, gpu)
    if not cases:
        parser.error(f"no case matches --only {args.only!r}")
    variants = dict(GPU_VARIANTS) if gpu else dict(CPU_VARIANTS)
    if not gpu and args.cpu_bf16:
        variants["bf16"] = {"precision": "bf16"}
    if not gpu and args.compile:
        variants["fp32+channels_last+compile"] = {"channels_last": True, "compile": True}
    if gpu and args.no_compile:
        variants = {k: v for k, v in variants.items() if "compile" not in k}
    if gpu:
        torch.backends.cudnn.benchmark = True
    peak, peak_entry = peak_flops(device)

    output = args.output or RESULTS / f"train_speed_{device.type}.json"
    driver = gpu_driver() if gpu else None
    git_state = git_commit()  # before the first write of the (tracked) result file below

    def write(rows, finished):
        """The report so far: written after every measurement, so a run stopped at its time
        limit (the compile variant is the slow one) still leaves what it measured."""
        report = benchmark_report(
            "benchmarks/bench_train.py", argv, device,
            "training-step throughput (images/s) on batches already on the device; ratio = trainer / baseline; "
            "MFU = FlopCounterMode FLOPs of one step x steps/s / dense bf16 peak", rows, git_state=git_state,
            warmup=warmup, peak_bf16_flops=peak, peak_table_entry=peak_entry, gpu_driver=driver,
            cpu_count=os.cpu_count(), finished=finished)
        write_json_atomic(output, report)  # a run stopped mid-write leaves the previous file whole
        return report

    rows = []
    with tempfile.TemporaryDirectory() as out:
        for name, params, size, channels, batch, classes, share in cases:
            case_steps = steps if gpu or args.model else max(2, round(steps * share))
            data = batches(size, channels, batch, classes, device)
            flops = training_flops(name, params, size, channels, batch, classes, device)

            def mfu(images_per_second):
                return None if peak is None else round(flops * images_per_second / batch / peak, 4)

            base = measure(lambda: baseline_step(name, params, size, channels, classes, device),
                           data, warmup, case_steps, device)
            row = {"model": name, "params": params, "size": size, "channels": channels, "batch": batch,
                   "classes": classes, "timed_steps": case_steps, "training_gflops_per_step": round(flops / 1e9, 3),
                   "baseline": BASELINE[device.type], "baseline_images_per_second": base["images_per_second"],
                   "baseline_peak_memory_mib": base["peak_memory_mib"],
                   "baseline_mfu": mfu(base["images_per_second"]), "trainer": {}}
            rows.append(row)
            for label, options in variants.items():
                try:
                    result = measure(lambda: trainer_step(name, params, size, channels, batch, classes, device, options,
                                                          out), data, warmup, case_steps, device)
                except Exception as exc:  # noqa: BLE001 -- torch.compile can fail on a bare machine (no compiler)
                    row.setdefault("errors", {})[label] = f"{type(exc).__name__}: {str(exc)[:500]}"
                    print(f"{name}: {label} failed: {row['errors'][label]}", flush=True)
                    write(rows, finished=False)
                    continue
                result["ratio"] = round(result["images_per_second"] / base["images_per_second"], 3)
                result["mfu"] = mfu(result["images_per_second"])
                result["options"] = {**options, "fused_optimizer": gpu}
                row["trainer"][label] = result
                best = max(row["trainer"], key=lambda k: row["trainer"][k]["images_per_second"])
                row.update(best=best, best_images_per_second=row["trainer"][best]["images_per_second"],
                           best_ratio=row["trainer"][best]["ratio"], best_mfu=row["trainer"][best]["mfu"])
                write(rows, finished=False)
            print(f"{name:>10} {size}x{size}x{channels} batch {batch}: baseline "
                  f"{row['baseline_images_per_second']:8.1f} img/s; "
                  + "; ".join(f"{label} {r['images_per_second']:.1f} img/s x{r['ratio']:.2f}"
                              + (f" MFU {r['mfu']:.1%}" if r["mfu"] is not None else "")
                              for label, r in row["trainer"].items()), flush=True)

    report = write(rows, finished=True)
    print(f"wrote {output}")
    return report


if __name__ == "__main__":
    main()
