"""Chapter 6: what, if anything, makes P2SGrad train in the SynthFaces pipeline.

Every attempt trains the chapter's small setting (SmallCNN, 128-dimensional embeddings, 100
identities of 32x32 SynthFaces, 150 steps of 128 images, SGD with momentum, cosine schedule,
seed 0) and changes one thing; NormFace in the same setting is the reference. It records the
collapse measurements of :mod:`frbook.eval.diagnostics` on the training images and the 10-fold
verification accuracy on 2,000 pairs of 50 unseen identities, and writes one JSON file with the
command, commit and date:

    python scripts/p2sgrad_fixes.py [--out book/results/p2sgrad_fixes/p2sgrad_fixes.json] [--only NAME ...]

About 20 s of one CPU core per 150-step run. The book's files: the first ten attempts
(``p2sgrad_fixes.json``, from an earlier version of this list), then
``--only "p2sgrad lr 0.1" "p2sgrad backbone x0.03" "p2sgrad backbone x0.01" "p2sgrad backbone x0.1, 600 steps"
--out book/results/p2sgrad_fixes/p2sgrad_fixes_2.json``.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from torch import nn

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from frbook import losses, models  # noqa: E402
from frbook.data import SynthFaces  # noqa: E402
from frbook.eval import embed, evaluate, synth_benchmark  # noqa: E402
from frbook.eval.diagnostics import embedding_geometry  # noqa: E402
from frbook.heads import make_head  # noqa: E402
from frbook.provenance import provenance, write_json_atomic  # noqa: E402
from frbook.train.loop import fit  # noqa: E402
from frbook.utils import seed_everything  # noqa: E402

IDENTITIES, DIM, STEPS = 100, 128, 150


class BackboneGradScale(nn.Module):
    """The backbone unchanged in the forward pass; the gradient reaching it multiplied by ``k``."""

    def __init__(self, net: nn.Module, k: float):
        super().__init__()
        self.net, self.k = net, k
        self.embedding_dim, self.in_channels, self.input_size = net.embedding_dim, net.in_channels, net.input_size

    def forward(self, images):
        e = self.net(images)
        return e * self.k + (e * (1 - self.k)).detach()


# name -> (what is changed, loss, loss params, fit lr, steps, final_bn, head gradient x, backbone gradient x)
ATTEMPTS = {
    "normface (reference)": ("NormFace s = 16, lr 0.1", "normface", {"s": 16}, 0.1, STEPS, True, 1, 1),
    "p2sgrad lr 3": ("the book's setting", "p2sgrad", {}, 3.0, STEPS, True, 1, 1),
    "p2sgrad lr 0.3": ("smaller learning rate", "p2sgrad", {}, 0.3, STEPS, True, 1, 1),
    "p2sgrad lr 30": ("larger learning rate", "p2sgrad", {}, 30.0, STEPS, True, 1, 1),
    "p2sgrad no final BN": ("no BatchNorm before the embedding", "p2sgrad", {}, 3.0, STEPS, False, 1, 1),
    "p2sgrad head x10": ("head's gradient x 10 (its learning rate, up to weight decay)", "p2sgrad", {}, 3.0, STEPS, True, 10, 1),
    "p2sgrad head x100": ("head's gradient x 100", "p2sgrad", {}, 3.0, STEPS, True, 100, 1),
    "p2sgrad backbone x0.1": ("gradient reaching the backbone x 0.1", "p2sgrad", {}, 3.0, STEPS, True, 1, 0.1),
    "p2sgrad lr 30, backbone x0.1": ("head at lr 30, backbone at lr 3", "p2sgrad", {}, 30.0, STEPS, True, 1, 0.1),
    "p2sgrad 600 steps": ("four times longer", "p2sgrad", {}, 3.0, 4 * STEPS, True, 1, 1),
    # Second round (--only, written to p2sgrad_fixes_2.json), after the first showed that a slower backbone helps.
    "p2sgrad lr 0.1": ("the learning rate of the softmax losses", "p2sgrad", {}, 0.1, STEPS, True, 1, 1),
    "p2sgrad backbone x0.03": ("gradient reaching the backbone x 0.03", "p2sgrad", {}, 3.0, STEPS, True, 1, 0.03),
    "p2sgrad backbone x0.01": ("gradient reaching the backbone x 0.01", "p2sgrad", {}, 3.0, STEPS, True, 1, 0.01),
    "p2sgrad backbone x0.1, 600 steps": ("backbone x 0.1 and four times longer", "p2sgrad", {}, 3.0, 4 * STEPS, True, 1, 0.1),
}


def run(name, spec, data, held_out_seed=0):
    what, loss_name, params, lr, steps, final_bn, head_k, backbone_k = spec
    seed_everything(0)
    net = models.get("small_cnn", embedding_dim=DIM, input_size=data.size, final_bn=final_bn)
    loss = losses.get(loss_name, **params)
    head = make_head(loss, DIM, data.num_classes)
    if head_k != 1:
        head.weight.register_hook(lambda g: g * head_k)
    model = BackboneGradScale(net, backbone_k) if backbone_k != 1 else net
    start = time.perf_counter()
    history = fit(model, head, loss, data, steps=steps, batch_size=128, lr=lr, warmup_steps=20, seed=0,
                  log_every=10, progress=False)
    x, y = embed(net, data)
    geometry = embedding_geometry(x, head.weight.detach(), y)
    report = evaluate(net, synth_benchmark(net, identities=50, seed=held_out_seed), flip=False, num_pairs=2000)
    row = {"attempt": name, "change": what, "loss": loss_name, "lr": lr, "steps": steps, "final_bn": final_bn,
           "head_gradient_scale": head_k, "backbone_gradient_scale": backbone_k,
           "target_angle_first": history.column("target_angle")[0], **geometry,
           "train_accuracy": float((head(x).argmax(1) == y).float().mean()),
           "verification_accuracy": float(report.accuracy), "seconds": time.perf_counter() - start}
    print(f"{name:30s} dim {row['effective_dimension']:6.2f}  span {row['centre_span_energy']:.3f}  "
          f"angle {row['target_angle']:5.1f}  train {row['train_accuracy']:.2f}  "
          f"verification {row['verification_accuracy']:.3f}  ({row['seconds']:.0f} s)", flush=True)
    return row


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=str(REPO / "book/results/p2sgrad_fixes/p2sgrad_fixes.json"))
    parser.add_argument("--only", nargs="*", help="run only these attempts (names as in ATTEMPTS)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    unknown = sorted(set(args.only or []) - set(ATTEMPTS))
    if unknown:
        parser.error(f"unknown attempts {unknown}; known: {sorted(ATTEMPTS)}")
    data = SynthFaces(identities=IDENTITIES, images_per_identity=20, size=32, difficulty=0.5, seed=0)
    rows = [run(name, spec, data) for name, spec in ATTEMPTS.items() if not args.only or name in args.only]
    record = {"what": __doc__.split("\n\n")[1].replace("\n", " "), "provenance": provenance("cpu"),
              "setting": {"identities": IDENTITIES, "embedding_dim": DIM, "size": 32, "batch_size": 128,
                          "warmup_steps": 20, "weight_decay": 5e-4, "momentum": 0.9, "seed": 0},
              "attempts": rows}
    write_json_atomic(args.out, record)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
