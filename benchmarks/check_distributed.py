"""The distributed code paths on one device: a process group of one (NCCL on a GPU, gloo on a CPU).

    python benchmarks/check_distributed.py --device cuda    # NCCL, world size 1
    python benchmarks/check_distributed.py                  # gloo, world size 1 (a test runs this)

Several GPUs are not lent to this project; one is, sometimes. So this runs, on one device and in
one process, everything of the multi-GPU path that does not need a second rank:

1. the collectives the trainer and Partial FC use (all_reduce sum and max, all_gather,
   all_gather_object, broadcast_object_list) on the device's tensors;
2. Partial FC's sharded margin softmax (:class:`frbook.train.partial_fc.PartialFC`) on the device:
   its loss and gradients against the whole classifier (CosineClassifier + the same ArcFace), in
   float32 and under bf16 autocast, and with negative-centre sampling (sample_rate 0.5);
3. DistributedDataParallel with Partial FC's summing communication hook, whose gradients must
   equal the plain module's (with one rank, a sum over ranks is the identity);
4. the trainer itself with ``head.partial_fc: true`` for a few steps, checkpoint included.

Each check records its largest difference and whether it passed; the JSON goes to
``benchmarks/results/distributed_<device>.json``. Exit status 1 if a check failed.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from frbook import losses, models
from frbook.heads import CosineClassifier
from frbook.provenance import benchmark_report, write_json_atomic
from frbook.train.config import load_config
from frbook.train.distributed import broadcast_object, gather_objects, one_process_group
from frbook.train.partial_fc import PartialFC, sum_gradients_hook
from frbook.train.trainer import Trainer

RESULTS = Path(__file__).resolve().parent / "results"


def largest(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.detach().double() - b.detach().double()).abs().max())


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    """The largest difference relative to the largest entry of ``b``."""
    return largest(a, b) / max(float(b.detach().double().abs().max()), 1e-30)


def check_collectives(world) -> dict:
    device = world.device
    x = torch.arange(6.0, device=device)
    summed = x.clone()
    dist.all_reduce(summed)
    biggest = x.clone()
    dist.all_reduce(biggest, op=dist.ReduceOp.MAX)
    parts = [torch.empty_like(x)]
    dist.all_gather(parts, x)
    objects = gather_objects({"rank": world.rank}, world)
    box = broadcast_object("from rank 0", world)
    ok = (torch.equal(summed, x) and torch.equal(biggest, x) and torch.equal(parts[0], x)
          and objects == [{"rank": 0}] and box == "from rank 0")
    return {"check": "collectives", "passed": bool(ok), "backend": dist.get_backend()}


def check_partial_fc(world, dim=64, classes=1000, batch=32) -> list[dict]:
    device = world.device
    torch.manual_seed(0)  # the centres' initialisation
    g = torch.Generator().manual_seed(0)
    loss = losses.get("arcface", s=64, m=0.5)
    sharded = PartialFC(dim, classes, loss).to(device)
    whole = CosineClassifier(dim, classes).to(device)
    with torch.no_grad():
        whole.weight.copy_(sharded.weight)
    embeddings = torch.randn(batch, dim, generator=g).to(device)
    labels = torch.randint(0, classes, (batch,), generator=g).to(device)
    rows = []
    precisions = [("float32", None, 1e-5), ("bf16 autocast", torch.bfloat16, 2e-2)]
    for label, dtype, tol in precisions:
        grads = []
        values = []
        for model, run in ((sharded, lambda x: sharded(x, labels)), (whole, lambda x: loss(whole(x).float(), labels))):
            x = embeddings.clone().requires_grad_(True)
            model.zero_grad(set_to_none=True)
            with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
                value = run(x)
            value.backward()
            values.append(value)
            grads.append((x.grad, model.weight.grad))
        if dtype is None:  # the same float32 arithmetic: equal to rounding
            diff = max(relative(values[0], values[1]), relative(grads[0][0], grads[1][0]),
                       relative(grads[0][1], grads[1][1]))
            rows.append({"check": f"partial_fc equals the whole classifier ({label})", "loss": float(values[0].detach()),
                         "largest_relative_difference": diff, "tolerance": tol, "passed": diff <= tol})
            continue
        # bf16: Partial FC's cosines are a bf16 product, the cosine head's float32 (it leaves
        # autocast), so they agree to bf16's precision: the loss closely, the gradients in direction.
        diff = relative(values[0], values[1])
        alignment = min(float(F.cosine_similarity(a.flatten().double(), b.flatten().double(), dim=0))
                        for a, b in zip(grads[0], grads[1]))
        rows.append({"check": f"partial_fc agrees with the whole classifier ({label})", "loss": float(values[0].detach()),
                     "loss_relative_difference": diff, "gradient_cosine_similarity": alignment,
                     "tolerance": {"loss": tol, "gradient_cosine_similarity": 0.99},
                     "passed": diff <= tol and alignment >= 0.99})
    sampled = PartialFC(dim, classes, loss, sample_rate=0.5).to(device)
    value = sampled(embeddings, labels)
    value.backward()
    scored = int((sampled.weight.grad.abs().sum(1) > 0).sum())
    present = int(torch.unique(labels).numel())
    ok = bool(torch.isfinite(value)) and present <= scored <= classes // 2 + 1
    rows.append({"check": "partial_fc sample_rate 0.5", "loss": float(value.detach()), "centres_with_gradient": scored,
                 "classes_in_batch": present, "passed": ok})
    return rows


def check_ddp_hook(world) -> dict:
    """DDP with the summing hook gives the plain module's gradients (one rank)."""
    device = world.device
    torch.manual_seed(0)
    plain = models.get("small_cnn", embedding_dim=16, in_channels=1, input_size=32, width=8).to(device)
    wrapped_module = models.get("small_cnn", embedding_dim=16, in_channels=1, input_size=32, width=8).to(device)
    wrapped_module.load_state_dict(plain.state_dict())
    ids = [device.index] if device.type == "cuda" else None
    wrapped = nn.parallel.DistributedDataParallel(wrapped_module, device_ids=ids)
    wrapped.register_comm_hook(None, sum_gradients_hook)
    images = torch.rand(8, 1, 32, 32, generator=torch.Generator().manual_seed(1)).to(device)
    for net in (plain, wrapped):
        net(images).pow(2).sum().backward()
    diff = max(relative(b.grad, a.grad) for a, b in zip(plain.parameters(), wrapped_module.parameters()))
    return {"check": "DDP with sum_gradients_hook", "largest_relative_difference": diff, "passed": diff <= 1e-4}


def check_trainer(world, steps=3) -> dict:
    device = world.device
    gpu = device.type == "cuda"
    config = load_config(raw={
        "data": {"identities": 64, "val_identities": 8, "images_per_identity": 4, "size": 32},
        "model": {"name": "small_cnn", "params": {"embedding_dim": 32, "width": 8}},
        "loss": {"name": "arcface", "params": {"s": 32, "m": 0.5}},
        "head": {"partial_fc": True, "sample_rate": 0.5},
        "train": {"steps": steps, "batch_size": 32, "log_every": 1, "device": str(device),
                  "precision": "bf16" if gpu else "fp32"},
        "eval": {"targets": []}, "checkpoint": {"keep_best": "none"},
    })
    with tempfile.TemporaryDirectory() as out:
        summary = Trainer(config, out, world, progress=False).run()
        lines = [json.loads(line) for line in (Path(out) / "metrics.jsonl").read_text().splitlines()]
        saved = (Path(out) / "last.pt").is_file()
    trained = [r["loss"] for r in lines if "loss" in r]
    ok = saved and len(trained) == steps and all(torch.isfinite(torch.tensor(trained)))
    return {"check": f"trainer with head.partial_fc, {steps} steps", "losses": trained, "checkpoint": saved,
            "passed": bool(ok), "summary_keys": sorted(summary)[:8]}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: torch sees no CUDA device here")
    if args.threads:
        torch.set_num_threads(args.threads)
    start = time.perf_counter()
    with one_process_group(args.device) as world:
        rows = [check_collectives(world), *check_partial_fc(world), check_ddp_hook(world), check_trainer(world)]
    for row in rows:
        print(f"{'ok  ' if row['passed'] else 'FAIL'} {row['check']}", flush=True)
    nccl = ".".join(map(str, torch.cuda.nccl.version())) if args.device == "cuda" else None
    report = benchmark_report("benchmarks/check_distributed.py", argv, torch.device(args.device),
                              "the distributed code paths in a process group of one; passed per check", rows,
                              backend="nccl" if args.device == "cuda" else "gloo", world_size=1, nccl_version=nccl,
                              seconds=round(time.perf_counter() - start, 1), passed=all(r["passed"] for r in rows))
    output = args.output or RESULTS / f"distributed_{args.device}.json"
    write_json_atomic(output, report)  # a run stopped mid-write leaves the previous file whole
    print(f"wrote {output}")
    return report


if __name__ == "__main__":
    sys.exit(0 if main()["passed"] else 1)
