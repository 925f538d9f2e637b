"""The ``frossl-plugin export-upstream`` subcommand."""

import argparse


def _run_export_upstream(args: argparse.Namespace) -> int:
    from frossl_plugin.upstream.export import export_frossl, export_plugin_api

    export = export_plugin_api if args.plugin_api else export_frossl
    result = export(args.path, message_dir=args.message_dir)
    print(f"Wrote into {result.root}:")
    for relative in result.added:
        print(f"  new       {relative}")
    for relative in result.modified:
        print(f"  modified  {relative}")
    print(f"Commit message:          {result.commit_message}")
    print(f"Pull-request description: {result.pr_description}")
    print(
        f"Review with 'git -C {result.root} diff', then commit with "
        f"'git -C {result.root} add -A && git -C {result.root} commit -F {result.commit_message}'."
    )
    return 0


def add_export_upstream(commands) -> None:
    parser = commands.add_parser(
        "export-upstream",
        help="write FroSSL (or, with --plugin-api, method plugins) into a solo-learn checkout",
        description="Write a pull request into PATH, a solo-learn git checkout without local "
        "changes: FroSSL in the host's layout (loss, method, registrations, configs, tests, "
        "docs, README), generated from this package's source; or, with --plugin-api, the host "
        "change that registers methods from installed packages' 'solo.methods' entry points. "
        "Nothing is committed; the commit message and pull-request description are written to "
        "PATH's git directory (or --message-dir).",
    )
    parser.add_argument("path", metavar="PATH", help="clean solo-learn git checkout")
    parser.add_argument(
        "--plugin-api",
        action="store_true",
        help="export the entry-point plugin API instead of FroSSL",
    )
    parser.add_argument(
        "--message-dir",
        metavar="DIR",
        default=None,
        help="where to write the commit message and PR description (PATH's git directory)",
    )
    parser.set_defaults(run=_run_export_upstream)
