"""How fast does the trainer train? Images per second of its step against a plain loop, one run.

    python benchmarks/bench_train.py                 # CPU: small sizes, a few dozen steps
    python benchmarks/bench_train.py --device cuda   # GPU: also iResNet-50 at 112x112, batch 128/256

Both sides train the same backbone, cosine head and ArcFace loss on the same batches, rendered
once before timing (SynthFaces; the renderer has its own benchmark, bench_synth.py), so the
numbers compare the training step alone:

* **baseline**: the loop everyone writes first: eager, NCHW, float32 on a CPU, fp16 autocast with
  a GradScaler on a GPU (the field's usual mixed precision);
* **trainer** variants: :meth:`frbook.train.trainer.Trainer.train_step` with the config's options
  (precision, channels_last, compile), as ``python -m frbook train`` runs it.

Each measurement runs ``--warmup`` steps (``torch.compile`` compiles there), then times
``--steps`` steps (synchronising the GPU at both ends). On a GPU the result also gives the
model-FLOPs utilisation: the FLOPs of one training step, counted by
``torch.utils.flop_counter`` (convolutions and matrix products, forward and backward), times the
step rate, over the GPU's dense bf16/fp16 peak. Results go to
``benchmarks/results/train_speed_<device>.json`` with the device, the torch version and the ratios.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from frbook import losses, models
from frbook.data import SynthFaces
from frbook.heads import CosineClassifier
from frbook.provenance import benchmark_report
from frbook.train.config import load_config
from frbook.train.trainer import Trainer

RESULTS = Path(__file__).resolve().parent / "results"

# Dense bf16/fp16 tensor-core peaks (FLOP/s) from NVIDIA's data sheets, by device-name fragment.
PEAK_FLOPS = {"H200": 989e12, "H100 PCIe": 756e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12,
              "A10": 125e12, "V100": 125e12, "T4": 65e12}

CPU_CASES = [  # (model, params, size, channels, batch, classes, share of --steps timed on a CPU)
    ("small_cnn", {"embedding_dim": 64}, 64, 1, 64, 200, 1.0),
    ("iresnet18", {"embedding_dim": 128}, 32, 3, 16, 200, 0.5),  # ~20 img/s on one core
]
GPU_CASES = CPU_CASES + [
    ("iresnet50", {"embedding_dim": 512}, 112, 3, 128, 1000, 1.0),
    ("iresnet50", {"embedding_dim": 512}, 112, 3, 256, 1000, 1.0),
]
# bf16 autocast is left out on CPUs by default: without native bf16 units (AMX, AVX512-BF16) it
# ran 8 to 20 times slower than fp32 here (small_cnn x0.12, iresnet18 x0.05); --cpu-bf16 adds it.
CPU_VARIANTS = {"fp32": {}, "fp32+channels_last": {"channels_last": True}}
GPU_VARIANTS = {"bf16": {"precision": "bf16"},
                "bf16+channels_last": {"precision": "bf16", "channels_last": True},
                "bf16+channels_last+compile": {"precision": "bf16", "channels_last": True, "compile": True}}


def batches(size, channels, batch, classes, device, count=4):
    """``count`` distinct batches, rendered once, cycled by both sides."""
    faces = SynthFaces(classes, images_per_identity=max(1, batch * count // classes + 1), size=size,
                       channels=channels, device=device)
    order = torch.randperm(len(faces), generator=torch.Generator().manual_seed(0))[:batch * count]
    labels = faces.labels[order]
    images = faces.images(order)
    return [(images[k * batch:(k + 1) * batch], labels[k * batch:(k + 1) * batch].to(device)) for k in range(count)]


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


def baseline_step(name, params, size, channels, classes, device):
    """The plain loop: eager, NCHW; fp16 autocast + GradScaler on a GPU, float32 on a CPU."""
    torch.manual_seed(0)
    model = models.get(name, in_channels=channels, input_size=size, **params).to(device).train()
    head = CosineClassifier(model.embedding_dim, classes).to(device)
    loss = losses.get("arcface", s=64, m=0.5)
    optimizer = torch.optim.SGD(list(model.parameters()) + list(head.parameters()), lr=0.01, momentum=0.9,
                                weight_decay=5e-4)
    gpu = device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=gpu)

    def step(images, labels):
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=torch.float16, enabled=gpu):
            embeddings = model(images)
        value = loss(head(embeddings.float()), labels)
        scaler.scale(value).backward()
        scaler.step(optimizer)
        scaler.update()
    return step, model, head, loss


def trainer_step(name, params, size, channels, batch, classes, device, options, out):
    config = load_config(raw={
        "data": {"identities": classes, "images_per_identity": 2, "size": size, "channels": channels,
                 "flip": False},
        "model": {"name": name, "params": params},
        "loss": {"name": "arcface", "params": {"s": 64, "m": 0.5}},
        "optim": {"lr": 0.01}, "schedule": {"kind": "constant"},
        "train": {"steps": 10**6, "batch_size": batch, "device": str(device), **options},
        "eval": {"targets": []}, "checkpoint": {"keep_best": "none"},
    })
    trainer = Trainer(config, out_dir=out, progress=False)
    return lambda images, labels: trainer.train_step([(0, (images, labels))])


def training_flops(name, params, size, channels, batch, classes, device) -> int:
    """FLOPs of one float32 training step (forward and backward) of backbone and head."""
    from torch.utils.flop_counter import FlopCounterMode

    step, *_ = baseline_step(name, params, size, channels, classes, device)
    images = torch.rand(batch, channels, size, size, device=device)
    labels = torch.randint(0, classes, (batch,), device=device)
    with FlopCounterMode(display=False) as counter:
        step(images, labels)
    return counter.get_total_flops()


def peak_flops(device) -> float | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in PEAK_FLOPS.items() if k in name), None)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=None, help="timed steps (default: 20 CPU, 50 GPU)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps first (default: 3 CPU, 15 GPU)")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (CPU)")
    parser.add_argument("--only", default=None, help="only cases whose model name contains this")
    parser.add_argument("--cpu-bf16", action="store_true", help="also time bf16 autocast on a CPU")
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    gpu = device.type == "cuda"
    steps, warmup = args.steps or (50 if gpu else 20), args.warmup or (15 if gpu else 3)
    if args.threads:
        torch.set_num_threads(args.threads)
    cases = [c for c in (GPU_CASES if gpu else CPU_CASES) if args.only is None or args.only in c[0]]
    variants = GPU_VARIANTS if gpu else dict(CPU_VARIANTS, **({"bf16": {"precision": "bf16"}} if args.cpu_bf16 else {}))
    if gpu:
        torch.backends.cudnn.benchmark = True

    rows = []
    with tempfile.TemporaryDirectory() as out:
        for name, params, size, channels, batch, classes, share in cases:
            case_steps = steps if gpu else max(2, round(steps * share))
            data = batches(size, channels, batch, classes, device)
            base, *_ = baseline_step(name, params, size, channels, classes, device)
            row = {"model": name, "params": params, "size": size, "channels": channels, "batch": batch,
                   "classes": classes, "timed_steps": case_steps, "baseline": "fp16 autocast + GradScaler, NCHW, eager" if gpu
                   else "fp32, NCHW, eager",
                   "baseline_images_per_second": round(rate(base, data, warmup, case_steps, device), 1)}
            flops, peak = (training_flops(name, params, size, channels, batch, classes, device), peak_flops(device)) \
                if gpu else (None, None)
            if flops and peak:
                row["training_gflops_per_step"] = round(flops / 1e9, 1)
                row["baseline_mfu"] = round(flops * row["baseline_images_per_second"] / batch / peak, 4)
            for label, options in variants.items():
                step = trainer_step(name, params, size, channels, batch, classes, device, options, out)
                speed = rate(step, data, warmup, case_steps, device)
                row[f"trainer_{label}_images_per_second"] = round(speed, 1)
                row[f"trainer_{label}_ratio"] = round(speed / row["baseline_images_per_second"], 3)
                if flops and peak:
                    row[f"trainer_{label}_mfu"] = round(flops * speed / batch / peak, 4)
            rows.append(row)
            print(f"{name:>10} {size}x{size}x{channels} batch {batch}: baseline "
                  f"{row['baseline_images_per_second']:8.1f} img/s; "
                  + "; ".join(f"{label} x{row[f'trainer_{label}_ratio']:.2f}" for label in variants), flush=True)

    report = benchmark_report(
        "benchmarks/bench_train.py", argv, device,
        "training-step throughput (images/s) on pre-rendered batches; ratio = trainer / baseline", rows,
        warmup=warmup)
    output = args.output or RESULTS / f"train_speed_{device.type}.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {output}")
    return report


if __name__ == "__main__":
    main()
