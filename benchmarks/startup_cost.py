"""What the plugin's start-up hook adds to every Python start (goal: < 2 ms).

The hook is ``frossl_plugin_hook.pth`` in site-packages, which imports
``frossl_plugin._import_hook`` whenever any Python program starts. The figure is the time the
interpreter itself reports (``python -X importtime -c pass``) for importing the plugin's modules
at start-up, median over the runs; the whole ``python -c pass`` wall clock is printed beside it
for scale (it varies by milliseconds from run to run on a busy machine, so a with/without
wall-clock difference would mostly measure noise).

Usage: python benchmarks/startup_cost.py [--runs 30] [--markdown FILE]
"""

import argparse
import platform
import statistics
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

GOAL_MS = 2.0


def importtime_ms() -> float:
    """Cumulative start-up import time of frossl_plugin modules in one ``python -c pass``."""

    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "pass"],
        capture_output=True,
        text=True,
        check=True,
    )
    total_us = 0
    for line in result.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        self_us, _, name = (part.strip() for part in line[len("import time:") :].split("|"))
        if name.split(".")[0] == "frossl_plugin" and self_us.isdigit():
            total_us += int(self_us)
    return total_us / 1000.0


def wall_ms() -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    return (time.perf_counter() - start) * 1000.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--markdown", type=Path, help="also write the table to this file")
    args = parser.parse_args()

    hook = Path(sysconfig.get_paths()["purelib"]) / "frossl_plugin_hook.pth"
    if not hook.is_file():
        sys.exit(f"{hook} is not installed (editable installs skip it): pip install . first")

    importtimes = [importtime_ms() for _ in range(args.runs)]
    walls = [wall_ms() for _ in range(args.runs)]

    importtime = statistics.median(importtimes)
    rows = [
        ("start-up import time of the hook (-X importtime)", f"{importtime:.3f} ms"),
        ("whole `python -c pass`, for scale", f"{statistics.median(walls):.1f} ms"),
        ("goal", f"< {GOAL_MS} ms: {'met' if importtime < GOAL_MS else 'NOT met'}"),
    ]
    header = (
        f"Machine: {platform.machine()}, {platform.processor() or 'unknown CPU'}, "
        f"Python {platform.python_version()}; medians of {args.runs} runs each."
    )
    table = "\n".join(
        [
            header,
            "",
            "| measure | value |",
            "| --- | --- |",
            *(f"| {name} | {value} |" for name, value in rows),
        ]
    )
    print(table)
    if args.markdown:
        args.markdown.write_text(table + "\n")


if __name__ == "__main__":
    main()
