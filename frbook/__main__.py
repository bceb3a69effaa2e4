"""The command line: ``python -m frbook COMMAND ...`` (or ``frbook COMMAND`` once installed).

Commands grow with the book; each has its own ``--help``:

  list       the losses and backbones the library knows
  preview    render a grid of SynthFaces to a PNG, to see what a difficulty looks like
  experiment compare   train several losses under one protocol, one result file per run
  search     the same as 'experiment compare' (a loss search is an entry of a comparison)
  train      train a backbone from a config (checkpoints, resume, mixed precision, torchrun)
  eval       evaluate a checkpoint (or the pixels baseline) on LFW, a verification .bin or
             SynthFaces (InsightFace protocol)
  data pack  pack an image folder (one folder per identity) into InsightFace's .rec/.idx/property
  data bin   write LFW's pairs.txt protocol as an InsightFace verification .bin
  data pairs LFW's protocol for your own folder: person-disjoint folds, as pairs.txt or a .bin
  data align detect faces and five landmarks, warp each to InsightFace's 112x112 template
  data lfw-crops  a smaller copy of LFW (centre crops), e.g. to carry to a GPU machine
"""
from __future__ import annotations

import argparse
import sys


def _list(args) -> int:
    from frbook import losses, models

    print("losses:   " + ", ".join(losses.available()))
    print("backbones: " + ", ".join(models.available()))
    return 0


def _preview(args) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import torch

    from frbook.data import SynthFaces
    from frbook.viz.images import image_grid

    faces = SynthFaces(identities=args.identities, images_per_identity=args.images, size=args.size,
                       channels=args.channels, difficulty=args.difficulty, seed=args.seed, age=args.age)
    # Each row young to old (with --age 0 every age is 0 and the order is the images' own).
    order = faces.ages().view(args.identities, args.images).argsort(dim=1, stable=True)
    order = (order + args.images * torch.arange(args.identities).view(-1, 1)).flatten()
    fig = image_grid(faces.images(order), nrow=args.images)
    ages = f", ages in [0, {args.age}] (young to old)" if args.age else ""
    fig.suptitle(f"SynthFaces: {args.identities} identities (rows), difficulty {args.difficulty}{ages}, "
                 f"seed {args.seed}")
    from pathlib import Path

    out = Path(args.out)
    if out.suffix == "":  # matplotlib would add ".png" itself: name the file it writes
        out = out.with_name(out.name + ".png")
    if out.is_dir():
        raise IsADirectoryError(f"--out {out} is a folder; give the name of the image to write")
    fig.savefig(out, dpi=args.dpi, bbox_inches="tight")
    print(f"wrote {out}")
    return 0


def _compare(args) -> int:
    from frbook.experiment import DivergedRuns, compare, load_comparison

    if args.check:
        import yaml

        config = load_comparison(args.config, overrides=args.set or ())
        print(yaml.safe_dump(config, sort_keys=False), end="")
        print(f"{args.config}: valid, {len(config['compare']['losses'])} entries (data paths are checked "
              "when training starts)")
        return 0
    try:
        paths = compare(args.config, out_dir=args.out, only=args.only, device=args.device,
                        progress=not args.quiet, folds=args.folds, overrides=args.set or (), runs_dir=args.runs)
    except DivergedRuns as exc:
        print(f"python -m frbook experiment compare: {exc}", file=sys.stderr)
        return 1
    print(f"{len(paths)} result files in {paths[0].parent if paths else args.out}")
    return 0


def _train(args) -> int:
    import os

    from frbook.train.config import load_config
    from frbook.train.trainer import train

    config = load_config(args.config, overrides=args.set or ())
    if config["compare"]["losses"] or config["search"]["method"] != "none":
        raise ValueError(f"{args.config} is a comparison (compare.losses) or a search: run it with "
                         f"'python -m frbook experiment compare --config {args.config}'")
    if args.check:
        import yaml

        print(yaml.safe_dump(config, sort_keys=False), end="")
        print(f"{args.config}: valid (data paths are checked when training starts)")
        return 0
    summary = train(config, out_dir=args.out, resume=args.resume, progress=not args.quiet,
                    stop_at=args.stop_at, force=args.force)
    if int(os.environ.get("RANK", "0")) == 0:  # under torchrun, one report, not one per process
        best = summary["best"]
        print(f"step {summary['step']}/{summary['total_steps']}; run folder {summary['out_dir']}"
              + (f"; best {best['metric']} {best['value']:.4f} at step {best['step']}" if best else ""))
    return 0


def _list_config_keys_in_help(parser: argparse.ArgumentParser) -> None:
    """Append every config key and its default to ``train --help``; built only when asked for,
    since the schema's module imports torch (seconds every other command need not wait)."""
    plain = parser.format_help

    def format_help() -> str:
        from frbook.train.config import describe

        return plain() + "\n" + describe() + "\n"

    parser.format_help = format_help


def _model_params(pairs: list[str] | None) -> dict:
    """``["input_size=32", "pool=16"]`` -> ``{"input_size": 32, "pool": 16}``; values are read as
    Python literals (numbers, tuples, True/None) where they parse, else kept as strings."""
    import ast

    params = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--model-param wants KEY=VALUE, got {pair!r}")
        try:
            params[key.strip()] = ast.literal_eval(value.strip())
        except (ValueError, SyntaxError):
            params[key.strip()] = value.strip()
    return params


def _eval(args) -> int:
    from frbook import checkpoint, models
    from frbook.eval import evaluate
    from frbook.eval.evaluate import auto_crop
    from frbook.provenance import provenance, write_json_atomic
    from frbook.utils import pick_device

    from pathlib import Path

    for option, value in (("--json", args.json), ("--plot", args.plot)):
        if value is not None and Path(value).is_dir():  # before the evaluation, not after it
            raise IsADirectoryError(f"{option} {value} is a folder; give the name of the file to write")
    params = _model_params(args.model_param)
    if args.checkpoint is not None:
        if params:
            raise ValueError("--model-param goes with --model; a checkpoint carries its own parameters")
        model = checkpoint.load(args.checkpoint)
    else:
        model = models.get(args.model, **params)
        trainable = models.num_parameters(model)
        if trainable:
            raise ValueError(f"model {args.model!r} has {trainable:,} parameters: untrained, it "
                             "measures nothing; train it and pass --checkpoint (--model is for "
                             "parameter-free models such as 'pixels')")
    crop = auto_crop(args.target, "auto" if args.crop is None else args.crop or None)
    report = evaluate(model, args.target, root=args.data_root, crop=crop,
                      flip=not args.no_flip, n_folds=args.folds, batch_size=args.batch_size,
                      device=args.device, num_workers=args.workers, fars=tuple(args.far),
                      num_pairs=args.pairs, seed=args.seed, test_identities=args.test_identities,
                      split_seed=args.split_seed, progress=not args.quiet)
    print(report.table())
    if args.json:
        record = {"checkpoint": None if args.checkpoint is None else str(args.checkpoint),
                  "model": args.model, "model_params": params, "target": str(args.target),
                  "crop": crop, "flip": not args.no_flip,
                  **({"test_identities": args.test_identities, "split_seed": args.split_seed}
                     if args.test_identities else {}),
                  "report": report.to_dict(),
                  "provenance": provenance(pick_device(args.device))}
        print(f"wrote {write_json_atomic(args.json, record)}")
    if args.plot:
        report.plot().savefig(args.plot, dpi=100)
        print(f"wrote {args.plot}")
    return 0


def _data_pack(args) -> int:
    from frbook.data import pack_folder

    info = pack_folder(args.folder, args.out, check=not args.no_check, channels=args.channels,
                       crop=args.crop, size=args.size, progress=not args.quiet)
    print(f"packed {info['num_images']} images of {info['num_classes']} identities "
          f"({info['height']}x{info['width']}) into {info['rec']}, {info['idx']}, {info['property']}")
    return 0


def _data_bin(args) -> int:
    from frbook.data import LFW, pairs_to_bin

    lfw = LFW(args.lfw, channels=args.channels, crop=args.crop, size=args.size)
    pairs = lfw.pairs(args.fold)
    path = pairs_to_bin(lfw, pairs, args.out, format=args.format, quality=args.quality)
    print(f"wrote {len(pairs.i)} pairs ({2 * len(pairs.i)} images) to {path}")
    return 0


def _data_pairs(args) -> int:
    from pathlib import Path

    from frbook.data import ImageFolderFaces, pairs_to_bin
    from frbook.eval.folder_pairs import interleaved, person_disjoint_folds, write_pairs_txt

    out = Path(args.out) if args.out else Path(args.folder) / "pairs.txt"
    faces = ImageFolderFaces(args.folder, channels=args.channels, crop=args.crop, size=args.size)
    if args.test_identities:  # only the people a training run with the same split never sees
        faces = faces.split_identities(args.test_identities, args.split_seed)[1]
    folds = person_disjoint_folds(faces, folds=args.folds, per_fold=args.per_fold, seed=args.seed)
    per_fold = len(folds[0].i) // 2
    if out.suffix == ".bin":
        path = pairs_to_bin(faces, interleaved(folds), out, format=args.format, progress=not args.quiet)
    else:
        path = write_pairs_txt(faces, folds, out)
    print(f"wrote {len(folds)} person-disjoint folds of {per_fold} matched + {per_fold} mismatched "
          f"pairs ({faces.num_classes} identities{' held out' if args.test_identities else ''}, seed "
          f"{args.seed}) to {path}")
    if len(folds) != 10:
        print(f"note: {len(folds)} folds, not LFW's 10 (too few people for 10); evaluate a .bin of them "
              f"with --folds {len(folds)} (pairs.txt tells eval its fold count)")
    if out.suffix != ".bin" and out.resolve().parent != Path(args.folder).resolve():
        print(f"note: 'eval --target FOLDER' reads pairs.txt from FOLDER itself; move it to {args.folder}")
    return 0


def _data_align(args) -> int:
    from frbook.data.align import MTCNNDetector, align_folder

    detector = MTCNNDetector(device=args.device or "cpu", min_score=args.min_score)
    record = align_folder(args.src, args.dst, detector=detector, size=args.size,
                          fallback_crop=args.fallback_crop, progress=not args.quiet, limit=args.limit)
    print(f"faces found in {record['faces_found']} of {record['images']} images "
          f"({100 * record['faces_found'] / record['images']:.1f}%), aligned to {args.size}x{args.size} in "
          f"{args.dst}; {record['not_found']} without a face listed in {record['not_found_list']}"
          + (f" ({record['fallback']} written instead)" if record["fallback"] and record["not_found"] else ""))
    return 0


def _data_lfw_crops(args) -> int:
    from frbook.data import LFW, write_cropped_copy

    lfw = LFW(args.lfw, channels=args.channels, crop=args.crop)
    out = write_cropped_copy(lfw, args.out, quality=args.quality, progress=not args.quiet)
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    print(f"wrote {len(lfw)} images of {lfw.num_classes} people ({args.crop}x{args.crop}, "
          f"{size / 2**20:.1f} MiB) and pairs.txt to {out}")
    return 0


def _fraction_or_count(text: str):
    """'0.2' -> 0.2 (a share), '30' -> 30 (a count)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give a fraction such as 0.2 or a count such as 30") from None
    if value <= 0 or (value >= 1 and value != int(value)):
        raise argparse.ArgumentTypeError(f"{text!r}: give a fraction in (0, 1) or a whole count >= 1")
    return value if value < 1 else int(value)


def _crop_arg(text: str):
    """'128' -> 128 pixels; '0.6' -> 0.6 of the image's shorter side."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give pixels (128) or a fraction of the shorter side (0.6)") from None
    if value < 0 or (value > 1 and value != int(value)):
        raise argparse.ArgumentTypeError(f"{text!r}: give whole pixels (128) or a fraction in (0, 1] (0.6)")
    return int(value) if value > 1 or value == 0 else value


def build_parser() -> argparse.ArgumentParser:
    from frbook.defaults import DEFAULT_CHANNELS

    parser = argparse.ArgumentParser(prog="python -m frbook", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = commands.add_parser("list", help="the losses and backbones the library knows")
    p.set_defaults(run=_list)

    p = commands.add_parser("preview", help="render a grid of SynthFaces to a PNG",
                            description="Render identities (rows) by images (columns) of SynthFaces.")
    p.add_argument("--out", default="synthfaces.png", help="the PNG to write (default: %(default)s)")
    p.add_argument("--identities", type=int, default=8, help="rows: how many identities (default: %(default)s)")
    p.add_argument("--images", type=int, default=8, help="columns: images per identity (default: %(default)s)")
    p.add_argument("--size", type=int, default=64, help="image side in pixels (default: %(default)s)")
    p.add_argument("--channels", type=int, default=1, choices=[1, 3], help="1 grey, 3 colour (default: %(default)s)")
    p.add_argument("--difficulty", type=float, default=0.5, help="nuisance strength in [0, 1] (default: %(default)s)")
    p.add_argument("--age", type=float, default=0.0, help="ageing: ages drawn from [0, AGE], AGE in [0, 1]; each row "
                   "is shown young to old (default: %(default)s, no ageing)")
    p.add_argument("--seed", type=int, default=0, help="data seed (default: %(default)s)")
    p.add_argument("--dpi", type=int, default=100, help="resolution of the PNG (default: %(default)s)")
    p.set_defaults(run=_preview)

    p = commands.add_parser("experiment", help="run a comparison of losses (see 'experiment compare --help')")
    experiments = p.add_subparsers(dest="experiment", metavar="EXPERIMENT", required=True)
    compare_help = dict(
        description="Run every (entry, LFW fold, seed) of a comparison config: a training config (see "
                    "'train --help' for every key) with a compare section (seeds, folds, and losses: a label "
                    "per entry with the sections it changes; an entry with a search section is a loss "
                    "search). Each run is evaluated once on the test split and written to "
                    "<out>/<label>[-fold<k>]-seed<s>.json with metrics and provenance. Runs already done "
                    "under the same protocol are skipped, and an interrupted training resumes from its "
                    "checkpoint, so an interrupted comparison resumes.",
        epilog="example: python -m frbook experiment compare --config configs/compare_margins_cpu.yaml "
               "--only arcface cosface")
    c = experiments.add_parser("compare", help="train every entry of a config over its seeds; one result file per run",
                               **compare_help)
    search = commands.add_parser(
        "search", help="the same as 'experiment compare' (a search is an entry of a comparison config)",
        **compare_help)
    for c in (c, search):
        c.add_argument("--config", required=True, help="a comparison config, e.g. configs/compare_margins_cpu.yaml")
        c.add_argument("--set", action="append", default=None, metavar="KEY=VALUE",
                       help="override a shared key, e.g. --set train.steps=200 (value read as YAML; repeatable)")
        c.add_argument("--check", action="store_true", help="validate the config and every entry, print it, and exit")
        c.add_argument("--out", default=None, help="result folder (default: book/results/<config name>)")
        c.add_argument("--only", nargs="+", default=None, metavar="LABEL", help="run only these entries of the config")
        c.add_argument("--runs", default=None, help="where each run keeps its checkpoint and metrics.jsonl "
                       "(default: runs/<config name>)")
        c.add_argument("--folds", nargs="+", type=int, default=None, metavar="K",
                       help="LFW comparisons: run only these test folds of the config")
        c.add_argument("--device", default=None, help="cpu or cuda (default: cuda when present)")
        c.add_argument("--quiet", action="store_true", help="no progress output")
        c.set_defaults(run=_compare)

    p = commands.add_parser(
        "train", help="train a backbone from a config (see 'train --help')",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Train a backbone, its head and a loss as a config says, writing metrics.jsonl, "
                    "last.pt and best.pt to the run folder. Several processes: torchrun "
                    "--nproc_per_node=N -m frbook train ... (gloo on CPU, NCCL on GPU).",
        epilog="example: python -m frbook train --config configs/train_lfw_cpu.yaml "
               "--set loss.name=cosface --set optim.lr=0.05")
    p.add_argument("--config", required=True, help="a training config, e.g. configs/train_synth_cpu.yaml")
    p.add_argument("--set", action="append", default=None, metavar="KEY=VALUE",
                   help="override a config key, e.g. --set loss.name=arcface (value read as YAML; repeatable)")
    p.add_argument("--resume", default=None, metavar="PATH|auto",
                   help="continue exactly from a checkpoint; 'auto': OUT/last.pt when it exists")
    p.add_argument("--out", default=None, help="run folder (default: runs/<config name>)")
    p.add_argument("--stop-at", type=int, default=None, metavar="STEP",
                   help="stop after STEP with a checkpoint, to --resume later (e.g. before a job's time limit)")
    p.add_argument("--force", action="store_true",
                   help="start afresh in a run folder that holds a run, removing its last.pt, best.pt, "
                        "metrics.jsonl and summary.json (without it such a folder is refused)")
    p.add_argument("--check", action="store_true", help="validate the config, print it resolved, and exit")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=_train)
    _list_config_keys_in_help(p)

    p = commands.add_parser(
        "eval", help="evaluate a checkpoint on LFW, a .bin or SynthFaces",
        description="Evaluate a checkpoint (written by frbook.checkpoint.save), or a parameter-free "
                    "model such as the 'pixels' baseline, as InsightFace does: "
                    "flip-sum embeddings, squared distance of unit vectors, 10 folds in file order "
                    "with the threshold (grid 0..4 step 0.01) learned on nine; plus AUC, EER and "
                    "TAR@FAR. Prints the report table.")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--checkpoint", default=None, help="the .pt checkpoint")
    which.add_argument("--model", default=None, metavar="NAME",
                       help="a parameter-free model by name instead of a checkpoint, e.g. 'pixels'")
    p.add_argument("--model-param", action="append", default=None, metavar="KEY=VALUE",
                   help="a constructor argument of --model, e.g. input_size=32 (repeatable)")
    p.add_argument("--target", required=True,
                   help="'lfw', 'synth', a verification .bin file, a folder holding pairs.txt, or an "
                        "image folder (one sub-folder per identity; see --test-identities)")
    p.add_argument("--json", default=None, metavar="OUT", help="also write the report (and provenance) as JSON")
    p.add_argument("--plot", default=None, metavar="PNG", help="also save the histogram and ROC figure")
    p.add_argument("--data-root", default=None, help="where LFW is (default: $FRBOOK_DATA or ../shared/data)")
    p.add_argument("--crop", type=_crop_arg, default=None,
                   help="centre crop before resizing: pixels (128) or a fraction of each image's "
                        "shorter side (0.6); 0: none (default: 128 for 'lfw', whose faces fill the "
                        "middle of 250x250 frames, none for other targets)")
    p.add_argument("--test-identities", type=_fraction_or_count, default=None, metavar="SHARE",
                   help="image folder: evaluate on held-out identities only, a fraction (0.2) or a "
                        "count (30), chosen with --split-seed as training's data.test_identities "
                        "does (default: every identity)")
    p.add_argument("--split-seed", type=int, default=0, help="image folder: seed of the identity split "
                   "(default: %(default)s, the trainer's data.split_seed)")
    p.add_argument("--pairs", type=int, default=None, metavar="N",
                   help="image folder: draw N pairs, half genuine (default: every genuine pair and as "
                        "many impostors)")
    p.add_argument("--seed", type=int, default=0, help="image folder: seed of the pairs (default: %(default)s)")
    p.add_argument("--far", type=float, nargs="+", default=[1e-2, 1e-3],
                   help="FARs for TAR@FAR (default: %(default)s)")
    p.add_argument("--folds", type=int, default=None,
                   help="contiguous folds for the accuracy (default: the benchmark's own: the folds of "
                        "pairs.txt, else 10)")
    p.add_argument("--no-flip", action="store_true", help="embed each image once, without the flip-sum")
    p.add_argument("--batch-size", type=int, default=256, help="(default: %(default)s)")
    p.add_argument("--workers", type=int, default=0, help="image decoding processes (default: %(default)s)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when present)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=_eval)

    p = commands.add_parser("data", help="convert face data: pack, bin, pairs, align, lfw-crops (each has --help)")
    data = p.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    c = data.add_parser(
        "pack", help="pack an image folder into InsightFace's .rec/.idx/property",
        description="Pack FOLDER/<identity>/<image> into OUT.rec, OUT.idx and a 'property' file next "
                    "to them, in InsightFace's layout (record 0 header, image records, identity "
                    "records). Images are stored byte for byte unless --crop/--size ask for re-encoding.")
    c.add_argument("folder", help="one sub-folder per identity")
    c.add_argument("out", help="the .rec to write (e.g. data/casia/train.rec)")
    c.add_argument("--size", type=int, default=None,
                   help="resize (after --crop; non-square images centre-cropped to square first) and "
                        "re-encode as JPEG")
    c.add_argument("--crop", type=_crop_arg, default=None,
                   help="centre crop, pixels (128) or a fraction of the shorter side (0.6), then re-encode")
    c.add_argument("--channels", type=int, default=DEFAULT_CHANNELS, choices=[1, 3],
                   help="for re-encoding (default: %(default)s)")
    c.add_argument("--no-check", action="store_true",
                   help="do not decode every image first (faster; a broken file then fails in training)")
    c.add_argument("--quiet", action="store_true", help="no progress bar")
    c.set_defaults(run=_data_pack)
    c = data.add_parser(
        "bin", help="write LFW's pairs as a verification .bin",
        description="Write the pairs of an LFW-format folder (images + pairs.txt) as an InsightFace "
                    "verification .bin: a pickle of (images, issame), pair k = images 2k, 2k+1.")
    c.add_argument("--lfw", default=None, metavar="ROOT",
                   help="the folder holding pairs.txt (default: $FRBOOK_DATA/lfw or ../shared/data/lfw)")
    c.add_argument("out", help="the .bin to write")
    c.add_argument("--crop", type=_crop_arg, default=None,
                   help="centre crop before resizing, pixels (128) or a fraction of the shorter side (0.5)")
    c.add_argument("--size", type=int, default=None, help="resize to SIZE x SIZE, e.g. 112")
    c.add_argument("--channels", type=int, default=DEFAULT_CHANNELS, choices=[1, 3], help="(default: %(default)s)")
    c.add_argument("--format", default=None, choices=["jpeg", "png"],
                   help="re-encode as this (default: original bytes, or JPEG when cropping/resizing)")
    c.add_argument("--quality", type=int, default=95, help="JPEG quality (default: %(default)s)")
    c.add_argument("--fold", type=int, default=None, help="only this fold, 0..9 (default: all 6000 pairs)")
    c.set_defaults(run=_data_bin)
    c = data.add_parser(
        "pairs", help="LFW's pairs.txt protocol (person-disjoint folds) for an image folder, or a .bin",
        description="Draw person-disjoint folds of matched and mismatched pairs from FOLDER/<identity>/"
                    "<image> (seeded) and write them as LFW's pairs.txt ('FOLDS N', then per fold N "
                    "'name i j' lines and N 'name1 i name2 j' lines; i, j number each person's images "
                    "1, 2, ... in name order), or, for an OUT ending in .bin, as a verification .bin. "
                    "With pairs.txt inside FOLDER, 'eval --target FOLDER' runs LFW's 10-fold protocol on it.",
        epilog="example: python -m frbook data pairs faces/ (writes faces/pairs.txt)")
    c.add_argument("folder", help="one sub-folder per identity")
    c.add_argument("--out", default=None, help="pairs.txt or a .bin to write (default: FOLDER/pairs.txt)")
    c.add_argument("--folds", type=int, default=None,
                   help="person-disjoint folds (default: LFW's 10, fewer for fewer than 20 people)")
    c.add_argument("--per-fold", type=int, default=None, metavar="N",
                   help="matched (and as many mismatched) pairs per fold (default: as many as the "
                        "sparsest fold allows, at most 300, LFW's)")
    c.add_argument("--seed", type=int, default=0, help="(default: %(default)s)")
    c.add_argument("--test-identities", type=_fraction_or_count, default=None, metavar="SHARE",
                   help="only the identities held out by this share (0.2) or count (30), as training's "
                        "data.test_identities holds them out with the same --split-seed (default: all)")
    c.add_argument("--split-seed", type=int, default=0, help="seed of the identity split (default: %(default)s)")
    c.add_argument("--crop", type=_crop_arg, default=None,
                   help=".bin: centre crop before resizing, pixels or a fraction of the shorter side")
    c.add_argument("--size", type=int, default=None, help=".bin: resize to SIZE x SIZE")
    c.add_argument("--channels", type=int, default=DEFAULT_CHANNELS, choices=[1, 3],
                   help=".bin: when re-encoding (default: %(default)s)")
    c.add_argument("--format", default=None, choices=["jpeg", "png"],
                   help=".bin: re-encode as this (default: original bytes, or JPEG when cropping/resizing)")
    c.add_argument("--quiet", action="store_true", help="no progress bar")
    c.set_defaults(run=_data_pairs)
    c = data.add_parser(
        "align", help="detect each face and its five landmarks, warp it to the 112x112 template",
        description="Detect the face in every image under SRC (MTCNN, whose weights ship in the "
                    "facenet-pytorch wheel), find its five landmarks (eyes, nose tip, mouth corners) and "
                    "warp it with the least-squares similarity transform (Umeyama) onto InsightFace's "
                    "standard 112x112 template, as the field prepares faces. Writes the same tree under "
                    "DST (JPEG; PNG stays PNG; grey stays grey), DST/not_found.txt listing every image "
                    "without a face, DST/align.json with the counts, and copies SRC/pairs.txt.",
        epilog="example: python -m frbook data align photos/ aligned/")
    c.add_argument("src", help="a folder of images, e.g. one sub-folder per identity")
    c.add_argument("dst", help="the folder to write (outside SRC)")
    c.add_argument("--size", type=int, default=112, help="side of the aligned crop; the template scales (default: %(default)s)")
    c.add_argument("--min-score", type=float, default=0.9, help="detector confidence to accept a face (default: %(default)s)")
    c.add_argument("--fallback-crop", type=float, default=None, metavar="FRACTION",
                   help="where no face is found, write a centre crop of this fraction of the shorter side "
                        "instead (still listed), e.g. 0.5 for LFW, so pairs.txt keeps every image")
    c.add_argument("--limit", type=int, default=None, metavar="N", help="only the first N images (a trial run)")
    c.add_argument("--device", default=None, help="cpu or cuda (default: cpu)")
    c.add_argument("--quiet", action="store_true", help="no progress bar")
    c.set_defaults(run=_data_align)
    c = data.add_parser(
        "lfw-crops", help="write a smaller copy of LFW: centre crops, same layout and pairs.txt",
        description="Copy an LFW-format folder (images + pairs.txt) with every image centre-cropped "
                    "and re-encoded as JPEG, in the same layout. A config written for the original "
                    "with the same crop (e.g. 'crop: 128') reads the copy unchanged. LFW's faces fill "
                    "the middle of the 250x250 frame; 128x128 grey crops at quality 90 take 49 MB "
                    "against the original's 142 MB.")
    c.add_argument("--lfw", default=None, metavar="ROOT",
                   help="the folder holding pairs.txt (default: $FRBOOK_DATA/lfw or ../shared/data/lfw)")
    c.add_argument("out", help="the folder to write (it gets pairs.txt and lfw/<Name>/...)")
    c.add_argument("--crop", type=int, default=128, help="centre crop side in pixels (default: %(default)s)")
    c.add_argument("--channels", type=int, default=1, choices=[1, 3], help="(default: %(default)s)")
    c.add_argument("--quality", type=int, default=90, help="JPEG quality (default: %(default)s)")
    c.add_argument("--quiet", action="store_true", help="no progress bar")
    c.set_defaults(run=_data_lfw_crops)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return args.run(args)
    except (ValueError, TypeError, OSError, ImportError) as error:
        # Bad arguments reach the library's own checks; show their message, not a traceback.
        # OSError: a full disk, a folder that cannot be written, a file where a folder should be.
        parser.exit(2, f"{parser.prog} {args.command}: error: {_message(error)}\n")


def _message(error: Exception) -> str:
    """An error's text for the command line: an OSError raised by the system names its file."""
    if isinstance(error, OSError) and error.strerror:
        return f"{error.filename}: {error.strerror}" if error.filename else error.strerror
    return str(error)


if __name__ == "__main__":
    sys.exit(main())
