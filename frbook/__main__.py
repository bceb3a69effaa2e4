"""The command line: ``python -m frbook COMMAND ...`` (or ``frbook COMMAND`` once installed).

Commands grow with the book; each has its own ``--help``:

  list       the losses and backbones the library knows
  preview    render a grid of SynthFaces to a PNG, to see what a difficulty looks like
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
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return args.run(args)
    except (ValueError, TypeError) as error:
        # Bad arguments reach the library's own checks; show their message, not a traceback.
        parser.exit(2, f"{parser.prog} {args.command}: error: {error}\n")


if __name__ == "__main__":
    sys.exit(main())
