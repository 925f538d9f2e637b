"""One-GPU check, under 8 minutes: everything goes under one output folder.

Parts, each a subprocess with its own time limit, its output in ``OUT/<part>.log``:

1. ``loss_speed``: ``benchmarks/loss_speed.py`` on CUDA (bf16 autocast, syncs per call);
2. ``throughput``: ``benchmarks/pretrain_throughput.py --out OUT/throughput --quick --budget-s
   170`` (that script's own CLI; it cuts any run at 170 s, inside this part's 200-s limit, and
   marks rows it had no time for as skipped): host pretraining images/s of FroSSL, Barlow Twins
   and VICReg (ResNet-18, 32 px, synthetic data, the host's torchvision and DALI loaders);
3. ``step_overhead``: ``benchmarks/step_overhead.py`` on CUDA in bf16 (FroSSL / baselines, and
   FroSSL with 4 and 8 full-size views);
4. ``compare``: ``frossl-plugin compare`` of FroSSL, Barlow Twins and VICReg, 2 seeds each, on
   the demo digits (written by ``frossl-plugin demo-data``, no download).

``OUT/index.md`` lists every part with its command, exit code, duration and files, followed by
the Markdown tables the parts wrote. ``--smoke`` runs the same parts with tiny settings on the
CPU, to check the script itself on a machine without a GPU.

Usage::

    SOLO_LEARN_PATH=<solo-learn> python benchmarks/gpu_check.py OUT
"""

import argparse
import datetime
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import List, Optional

HERE = Path(__file__).resolve().parent


def parts(out: Path, smoke: bool) -> List[dict]:
    """name, command and time limit (s) of each part; the GPU limits add up to under 8 min."""

    python = sys.executable
    if smoke:
        loss = "--device cpu --quick --repeats 2 --warmup 1"
        throughput = "--quick --budget-s 60"
        step = "--device cpu --batch-size 4 --repeats 1 --warmup 0 --no-equal-projector"
        compare = (
            "--methods frossl,barlow_twins --seeds 1 --epochs 1 optimizer.batch_size=32 "
            "++limit_train_batches=2 data.num_workers=0 spectrum_monitor.num_samples=64 "
            "knn_eval.enabled=false ++limit_val_batches=2"
        )
    else:
        loss = "--device cuda --repeats 20"
        throughput = "--quick --budget-s 170"
        step = "--device cuda --precision bf16 --batch-size 256 --repeats 20 --warmup 5 --views 4,8"
        compare = (
            "--methods frossl,barlow_twins,vicreg --seeds 1,2 --epochs 5 optimizer.batch_size=128 "
            "data.num_workers=4 precision=bf16-mixed spectrum_monitor.num_samples=360"
        )
    digits = out / "digits"
    cli = [python, "-m", "frossl_plugin.cli"]
    return [
        {
            "name": "loss_speed",
            "command": [python, str(HERE / "loss_speed.py"), *loss.split()]
            + ["--out", str(out / "loss_speed.md")],
            "limit": 60,
        },
        {
            "name": "throughput",
            "command": [python, str(HERE / "pretrain_throughput.py")]
            + ["--out", str(out / "throughput"), *throughput.split()],
            "limit": 200,
        },
        {
            "name": "step_overhead",
            "command": [python, str(HERE / "step_overhead.py"), *step.split()]
            + ["--out", str(out / "step_overhead.md")],
            "limit": 45,
        },
        {"name": "demo_data", "command": cli + ["demo-data", str(digits)], "limit": 20},
        {
            "name": "compare",
            "command": cli
            + ["compare", "--data", str(digits), "augmentations=demo_digits"]
            + ["--out", str(out / "compare"), *compare.split()],
            "limit": 130,
        },
    ]


def run_part(part: dict, out: Path, scale: float) -> dict:
    log = out / f"{part['name']}.log"
    limit = part["limit"] * scale
    start = time.perf_counter()
    with log.open("w") as handle:
        handle.write("$ " + shlex.join(part["command"]) + "\n")
        handle.flush()
        try:
            result = subprocess.run(
                part["command"], stdout=handle, stderr=subprocess.STDOUT, timeout=limit, cwd=out
            )
            code = result.returncode
        except subprocess.TimeoutExpired:
            code = "timeout"
    return {**part, "code": code, "seconds": time.perf_counter() - start, "log": log}


def machine() -> str:
    lines = [f"{platform.platform()}; Python {platform.python_version()}"]
    try:
        lines.append(
            subprocess.run(
                ["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv"],
                capture_output=True,
                text=True,
                timeout=20,
            ).stdout.strip()
        )
    except (OSError, subprocess.TimeoutExpired):
        lines.append("nvidia-smi not available")
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", help="output folder")
    parser.add_argument("--smoke", action="store_true", help="tiny CPU run of every part")
    parser.add_argument("--only", help="comma-separated parts to run (default: all)")
    parser.add_argument(
        "--time-scale", type=float, default=1.0, help="multiply every part's time limit"
    )
    args = parser.parse_args(argv)

    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    if "SOLO_LEARN_PATH" not in os.environ:
        print("note: SOLO_LEARN_PATH is not set; the parts look for an importable solo")
    selected = parts(out, args.smoke)
    if args.only:
        names = set(args.only.split(","))
        unknown = names - {p["name"] for p in selected}
        if unknown:
            raise SystemExit(f"--only: unknown parts {sorted(unknown)}")
        selected = [p for p in selected if p["name"] in names]
    if args.smoke:
        args.time_scale *= 10  # a shared CPU is slow; the limits are sized for one GPU

    began = time.perf_counter()
    results = []
    for part in selected:
        if part["name"] == "throughput" and not (HERE / "pretrain_throughput.py").is_file():
            print("throughput: benchmarks/pretrain_throughput.py is missing; running it anyway")
        result = run_part(part, out, args.time_scale)
        results.append(result)
        print(f"{part['name']}: exit {result['code']} in {result['seconds']:.0f} s", flush=True)

    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# GPU check",
        "",
        f"- date: {when}",
        f"- total: {time.perf_counter() - began:.0f} s",
        f"- mode: {'CPU smoke' if args.smoke else 'GPU'}",
        "",
        "```",
        machine(),
        "```",
        "",
        "| part | exit | seconds | log |",
        "| --- | --- | --- | --- |",
    ]
    for r in results:
        lines.append(f"| {r['name']} | {r['code']} | {r['seconds']:.0f} | {r['log'].name} |")
    lines.append("")
    for name in ("loss_speed.md", "step_overhead.md", "compare/summary.md"):
        path = out / name
        if path.is_file():
            lines += [f"## {name}", "", path.read_text(), ""]
    throughput = sorted((out / "throughput").glob("*.md")) if (out / "throughput").is_dir() else []
    for path in throughput:
        lines += [f"## throughput/{path.name}", "", path.read_text(), ""]
    (out / "index.md").write_text("\n".join(lines) + "\n")
    print(f"index: {out / 'index.md'}")
    return 0 if all(r["code"] == 0 for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
