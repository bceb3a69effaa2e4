"""The command line: ``python -m frbook COMMAND ...`` (or ``frbook COMMAND`` once installed).

Commands grow with the book; each has its own ``--help``:

  list       the losses and backbones the library knows
  preview    render a grid of SynthFaces to a PNG, to see what a difficulty looks like
  experiment compare   train several losses under one protocol, one result file per run
  train      train a backbone from a config (checkpoints, resume, mixed precision, torchrun)
  eval       evaluate a checkpoint (or the pixels baseline) on LFW, a verification .bin or
             SynthFaces (InsightFace protocol)
  data pack  pack an image folder (one folder per identity) into InsightFace's .rec/.idx/property
  data bin   write LFW's pairs.txt protocol as an InsightFace verification .bin
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
    from frbook.data import SynthFaces
    from frbook.viz.images import image_grid

    faces = SynthFaces(identities=args.identities, images_per_identity=args.images, size=args.size,
                       channels=args.channels, difficulty=args.difficulty, seed=args.seed)
    fig = image_grid(faces.images(), nrow=args.images)
    fig.suptitle(f"SynthFaces: {args.identities} identities (rows), difficulty {args.difficulty}, seed {args.seed}")
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
    from frbook.experiment import compare

    paths = compare(args.config, out_dir=args.out, only=args.only, device=args.device,
                    progress=not args.quiet, folds=args.folds)
    print(f"{len(paths)} result files in {paths[0].parent if paths else args.out}")
    return 0


def _search(args) -> int:
    from frbook.search.run import run_config

    paths = run_config(args.config, out_dir=args.out, only=args.only, device=args.device,
                       state_dir=args.state_dir, progress=not args.quiet)
    print(f"{len(paths)} result files in {paths[0].parent if paths else args.out}")
    return 0


def _train(args) -> int:
    import os

    from frbook.train.config import load_config
    from frbook.train.trainer import train

    config = load_config(args.config, overrides=args.set or ())
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
    report = evaluate(model, args.target, root=args.data_root, crop=args.crop or None,
                      flip=not args.no_flip, n_folds=args.folds, batch_size=args.batch_size,
                      device=args.device, num_workers=args.workers, fars=tuple(args.far))
    print(report.table())
    if args.json:
        record = {"checkpoint": None if args.checkpoint is None else str(args.checkpoint),
                  "model": args.model, "model_params": params, "target": str(args.target),
                  "crop": args.crop or None, "flip": not args.no_flip,
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
                       crop=args.crop, size=args.size)
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


def _data_lfw_crops(args) -> int:
    from frbook.data import LFW, write_cropped_copy

    lfw = LFW(args.lfw, channels=args.channels, crop=args.crop)
    out = write_cropped_copy(lfw, args.out, quality=args.quality, progress=not args.quiet)
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    print(f"wrote {len(lfw)} images of {lfw.num_classes} people ({args.crop}x{args.crop}, "
          f"{size / 2**20:.1f} MiB) and pairs.txt to {out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
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
    p.add_argument("--seed", type=int, default=0, help="data seed (default: %(default)s)")
    p.add_argument("--dpi", type=int, default=100, help="resolution of the PNG (default: %(default)s)")
    p.set_defaults(run=_preview)

    p = commands.add_parser("experiment", help="run a comparison of losses (see 'experiment compare --help')")
    experiments = p.add_subparsers(dest="experiment", metavar="EXPERIMENT", required=True)
    c = experiments.add_parser(
        "compare", help="train every loss of a config over its seeds; one result file per run",
        description="Train every (loss, seed) of a comparison config under one protocol and write "
                    "<out>/<loss>-seed<k>.json with metrics and provenance. Runs already done are skipped, "
                    "so an interrupted comparison resumes.")
    c.add_argument("--config", required=True, help="a comparison config, e.g. configs/compare_margins_cpu.yaml")
    c.add_argument("--out", default=None, help="result folder (default: book/results/<config name>)")
    c.add_argument("--only", nargs="+", default=None, metavar="LOSS", help="run only these losses of the config")
    c.add_argument("--folds", nargs="+", type=int, default=None, metavar="K",
                   help="LFW comparisons: run only these test folds of the config")
    c.add_argument("--device", default=None, help="cpu or cuda (default: cuda when present)")
    c.add_argument("--quiet", action="store_true", help="no progress output")
    c.set_defaults(run=_compare)

    p = commands.add_parser(
        "search", help="search a loss (Search-Softmax, Random-Softmax, AM-LFS) from a config",
        description="Run every (search, seed) of a search config: M candidate losses drawn from a Gaussian "
                    "policy train together for an epoch, their validation accuracy is the reward, the policy "
                    "moves by REINFORCE (method: search) or not (method: random), the best candidate's weights "
                    "go to all. The searched network is evaluated on the test identities and written to "
                    "<out>/<search>-seed<k>.json with its history and provenance. A finished run is skipped; "
                    "an interrupted one resumes from its last epoch.",
        epilog="example: python -m frbook search --config configs/search_cpu.yaml --only search_softmax")
    p.add_argument("--config", required=True, help="a search config, e.g. configs/search_cpu.yaml")
    p.add_argument("--out", default=None, help="result folder (default: book/results/<config name>)")
    p.add_argument("--only", nargs="+", default=None, metavar="SEARCH", help="run only these searches of the config")
    p.add_argument("--state-dir", default=None,
                   help="where the state of a running search is saved each epoch (default: runs/search/<config name>)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when present)")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(run=_search)

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
                   help="'lfw', 'synth', a verification .bin file, or a folder holding pairs.txt")
    p.add_argument("--json", default=None, metavar="OUT", help="also write the report (and provenance) as JSON")
    p.add_argument("--plot", default=None, metavar="PNG", help="also save the histogram and ROC figure")
    p.add_argument("--data-root", default=None, help="where LFW is (default: $FRBOOK_DATA or ../shared/data)")
    p.add_argument("--crop", type=int, default=128,
                   help="centre crop of LFW-format images before resizing; 0: none (default: %(default)s)")
    p.add_argument("--far", type=float, nargs="+", default=[1e-2, 1e-3],
                   help="FARs for TAR@FAR (default: %(default)s)")
    p.add_argument("--folds", type=int, default=10,
                   help="contiguous folds for the accuracy (default: %(default)s, the protocol's)")
    p.add_argument("--no-flip", action="store_true", help="embed each image once, without the flip-sum")
    p.add_argument("--batch-size", type=int, default=256, help="(default: %(default)s)")
    p.add_argument("--workers", type=int, default=0, help="image decoding processes (default: %(default)s)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when present)")
    p.set_defaults(run=_eval)

    p = commands.add_parser("data", help="convert face data (see 'data pack --help', 'data bin --help', 'data lfw-crops --help')")
    data = p.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    c = data.add_parser(
        "pack", help="pack an image folder into InsightFace's .rec/.idx/property",
        description="Pack FOLDER/<identity>/<image> into OUT.rec, OUT.idx and a 'property' file next "
                    "to them, in InsightFace's layout (record 0 header, image records, identity "
                    "records). Images are stored byte for byte unless --crop/--size ask for re-encoding.")
    c.add_argument("folder", help="one sub-folder per identity")
    c.add_argument("out", help="the .rec to write (e.g. data/casia/train.rec)")
    c.add_argument("--size", type=int, default=None, help="resize (after --crop) and re-encode as JPEG")
    c.add_argument("--crop", type=int, default=None, help="centre crop, then re-encode as JPEG")
    c.add_argument("--channels", type=int, default=3, choices=[1, 3], help="for re-encoding (default: %(default)s)")
    c.add_argument("--no-check", action="store_true",
                   help="do not decode every image first (faster; a broken file then fails in training)")
    c.set_defaults(run=_data_pack)
    c = data.add_parser(
        "bin", help="write LFW's pairs as a verification .bin",
        description="Write the pairs of an LFW-format folder (images + pairs.txt) as an InsightFace "
                    "verification .bin: a pickle of (images, issame), pair k = images 2k, 2k+1.")
    c.add_argument("--lfw", default=None, metavar="ROOT",
                   help="the folder holding pairs.txt (default: $FRBOOK_DATA/lfw or ../shared/data/lfw)")
    c.add_argument("out", help="the .bin to write")
    c.add_argument("--crop", type=int, default=None, help="centre crop before resizing, e.g. 128")
    c.add_argument("--size", type=int, default=None, help="resize to SIZE x SIZE, e.g. 112")
    c.add_argument("--channels", type=int, default=3, choices=[1, 3], help="(default: %(default)s)")
    c.add_argument("--format", default=None, choices=["jpeg", "png"],
                   help="re-encode as this (default: original bytes, or JPEG when cropping/resizing)")
    c.add_argument("--quality", type=int, default=95, help="JPEG quality (default: %(default)s)")
    c.add_argument("--fold", type=int, default=None, help="only this fold, 0..9 (default: all 6000 pairs)")
    c.set_defaults(run=_data_bin)
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
    except (ValueError, TypeError, OSError) as error:
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
