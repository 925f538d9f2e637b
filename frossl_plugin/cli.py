"""The ``frossl-plugin`` command. Each subcommand imports what it needs when it runs."""

import argparse
import difflib
import sys
from pathlib import Path
from typing import List, Optional

from frossl_plugin.compare.command import add_compare
from frossl_plugin.compare.report import add_report
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


def _run_results(args: argparse.Namespace) -> int:
    from frossl_plugin.run_results import describe_run, run_outputs

    since = Path(args.since).stat().st_mtime
    outputs = run_outputs(Path(args.logs), Path(args.checkpoints), since)
    print(describe_run(args.label, args.accuracy_name, outputs))
    return 0 if outputs["metrics"] and outputs["checkpoint"] else 1


def _add_results(commands) -> None:
    parser = commands.add_parser(
        "results",
        help="print the accuracies, metrics file and checkpoint of the run started after a marker",
        description="Finds the newest LOGS/version_*/metrics.csv and CHECKPOINTS/**/*.ckpt "
        "written since the file SINCE was touched, and prints the final top-1 accuracies and "
        "both paths. Exit code 1 when either is missing.",
    )
    parser.add_argument("--since", required=True, help="marker file touched before the run")
    parser.add_argument("--logs", default="lightning_logs", help="log folder (lightning_logs)")
    parser.add_argument("--checkpoints", required=True, help="the run's checkpoint.dir")
    parser.add_argument("--label", default="run", help="name of the step, e.g. pretraining")
    parser.add_argument(
        "--accuracy-name", default="online linear", help="what val_acc1 measures (online linear)"
    )
    parser.set_defaults(run=_run_results)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="frossl-plugin", description="FroSSL for solo-learn.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    # each adder defines one subcommand; its module imports only the standard library at top
    for add_subcommand in (
        _add_demo_data,
        _add_results,
        add_compare,
        add_report,
        add_export_upstream,
    ):
        add_subcommand(commands)
    for subparser in commands.choices.values():  # for the usage and flags of an error
        subparser.set_defaults(command_parser=subparser)
    return parser


def unknown_flags(parser: argparse.ArgumentParser, extra: List[str]) -> List[str]:
    """What is wrong with the arguments ``parser`` left, if they are to be Hydra overrides.

    A Hydra override (``key=value``, ``+key=value``, ``~key``) never starts with ``-``, so such
    an argument is a flag the subcommand does not know, most likely a mistyped one.

    Args:
        parser: the subcommand's parser.
        extra: the arguments it did not recognise.

    Returns:
        One message per unknown flag, naming it and, where one is close, the known flag meant.
    """

    known = [flag for action in parser._actions for flag in action.option_strings]
    messages = []
    for argument in extra:
        if not argument.startswith("-"):
            continue
        flag = argument.split("=", 1)[0]
        close = difflib.get_close_matches(flag, known, n=1)
        messages.append(f"{flag} (did you mean {close[0]}?)" if close else flag)
    return messages


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    takes_overrides = getattr(args, "takes_overrides", False)
    if extra and not takes_overrides:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    unknown = unknown_flags(args.command_parser, extra) if takes_overrides else []
    if unknown:  # before anything starts: the run would not be the one asked for
        args.command_parser.print_usage(sys.stderr)
        print(
            f"frossl-plugin {args.command}: error: unrecognized "
            f"{'argument' if len(unknown) == 1 else 'arguments'} {', '.join(unknown)}; "
            "Hydra overrides (key=value) never start with '-'.",
            file=sys.stderr,
        )
        return 2
    try:
        return args.run(args, extra) if takes_overrides else args.run(args)
    except (ValueError, OSError, ImportError) as err:
        print(f"frossl-plugin {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
