"""The ``frossl-plugin`` command. Each subcommand imports what it needs when it runs."""

import argparse
from typing import List, Optional

from frossl_plugin.compare.command import add_compare
from frossl_plugin.upstream.command import add_export_upstream


def _run_demo_data(args: argparse.Namespace) -> int:
    from frossl_plugin.demo_data import write_digits_image_folder

    counts = write_digits_image_folder(args.directory, val_fraction=args.val_fraction)
    print(f"Demo data in {args.directory}: {counts['train']} train, {counts['val']} val images.")
    return 0


def _add_demo_data(commands) -> None:
    parser = commands.add_parser(
        "demo-data",
        help="write scikit-learn's digits as a train/val image folder (no download)",
        description="Write scikit-learn's digits as DIR/{train,val}/<digit>/*.png, the layout "
        "that frossl_demo.yaml reads (datasets/frossl_demo inside a solo-learn checkout).",
    )
    parser.add_argument("directory", metavar="DIR", help="destination folder")
    parser.add_argument(
        "--val-fraction", type=float, default=0.2, help="share of images for validation (0.2)"
    )
    parser.set_defaults(run=_run_demo_data)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="frossl-plugin", description="FroSSL for solo-learn.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    # each adder defines one subcommand; its module imports only the standard library at top
    for add_subcommand in (_add_demo_data, add_compare, add_export_upstream):
        add_subcommand(commands)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (ValueError, FileExistsError, ImportError) as err:
        print(f"frossl-plugin {args.command}: error: {err}")
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
