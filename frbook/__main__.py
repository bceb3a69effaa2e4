"""The command line: ``python -m frbook COMMAND ...`` (or ``frbook COMMAND`` once installed).

Commands grow with the book; each has its own ``--help``:

  list       the losses and backbones the library knows
  preview    render a grid of SynthFaces to a PNG, to see what a difficulty looks like
  experiment compare   train several losses under one protocol, one result file per run
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
    fig.savefig(args.out, dpi=args.dpi, bbox_inches="tight")
    print(f"wrote {args.out}")
    return 0


def _compare(args) -> int:
    from frbook.experiment import compare

    paths = compare(args.config, out_dir=args.out, only=args.only, device=args.device,
                    progress=not args.quiet)
    print(f"{len(paths)} result files in {paths[0].parent if paths else args.out}")
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
    c.add_argument("--device", default=None, help="cpu or cuda (default: cuda when present)")
    c.add_argument("--quiet", action="store_true", help="no progress output")
    c.set_defaults(run=_compare)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return args.run(args)
    except (ValueError, TypeError, FileNotFoundError) as error:
        # Bad arguments reach the library's own checks; show their message, not a traceback.
        parser.exit(2, f"{parser.prog} {args.command}: error: {error}\n")


if __name__ == "__main__":
    sys.exit(main())
