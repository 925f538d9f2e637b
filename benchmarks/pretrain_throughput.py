"""Pretraining throughput of FroSSL through the host's main_pretrain.py, side by side.

Each row is one run of the unmodified host's ``main_pretrain.py`` (in a subprocess of this
script) on synthetic data written to ``--out``: random-pixel CIFAR-10 files in torchvision's
format (32 px), and an ImageNet-style folder of JPEGs (224-px views). A Lightning callback added
to the host's Trainer times a window of steps after a warm-up and counts, over a few more steps,
the synchronizing device-to-host operations (``torch.cuda.set_sync_debug_mode``).

Rows: FroSSL with the default CIFAR config (frossl.yaml) and the fast one (frossl_fast.yaml);
Barlow Twins and VICReg on the fast settings with the same projector; the ImageNet-style fast
config with the host's torchvision loader and with its DALI loader; and (full mode) a timm
ResNet-18 with ``small_input`` eager and with ``torch_compile``. Goals printed as ratios:
fast >= 2x default (ResNet-18, 32 px), FroSSL >= 0.98x Barlow Twins.

With a GPU this is the real measurement. It starts no run after ``--budget-s`` (360 s by
default) and no run may exceed 180 s, so it ends within about 6 minutes; rows it could not run
are marked skipped. Without a GPU it runs a reduced CPU mode (tiny batches, a few steps, DALI
CPU-only) that exercises the same code paths; its numbers say nothing about GPU speed.

Usage:
    SOLO_LEARN_PATH=<solo-learn checkout> python benchmarks/pretrain_throughput.py --out DIR
        [--quick] [--budget-s S]

Writes DIR/pretrain_throughput.md (and .json) and prints the table; exits with 1 if a row did
not finish.
"""

import argparse
import contextlib
import inspect
import json
import os
import pickle
import runpy
import subprocess
import sys
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, Dict, List, Optional

NUM_CLASSES = 10
SYNC_MARKER = "synchronizing"

# (default batch, warm-up steps, timed steps, sync-counting steps, per-run timeout s)
GPU_FULL = {"cifar_batch": 256, "imagenet_batch": 128, "warmup": 15, "timed": 40, "sync": 5}
GPU_QUICK = {"cifar_batch": 256, "imagenet_batch": 128, "warmup": 10, "timed": 20, "sync": 3}
CPU_MODE = {"cifar_batch": 8, "imagenet_batch": 4, "warmup": 1, "timed": 2, "sync": 0}

PROJECTOR = {"proj_hidden_dim": 2048, "proj_output_dim": 1024}
BASELINE_KWARGS = {
    "barlow_twins": {**PROJECTOR, "lamb": 0.0051, "scale_loss": 0.1},
    "vicreg": {
        **PROJECTOR,
        "sim_loss_weight": 25.0,
        "var_loss_weight": 25.0,
        "cov_loss_weight": 1.0,
    },
}


# --------------------------------------------------------------------------------------------
# synthetic data
# --------------------------------------------------------------------------------------------


def write_synthetic_cifar10(root: Path, train_images: int, test_images: int = 500) -> Path:
    """Random-pixel CIFAR-10 in torchvision's on-disk format (``cifar-10-batches-py``).

    The md5 sums cannot match torchvision's, so the worker disables torchvision's integrity
    check (no download is attempted either way).
    """

    import numpy as np

    folder = root / "cifar-10-batches-py"
    if (folder / "test_batch").is_file():
        return root
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    per_batch = -(-train_images // 5)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for name in names:
        count = test_images if name == "test_batch" else per_batch
        entry = {
            "data": rng.integers(0, 256, size=(count, 3072), dtype=np.uint8),
            "labels": (np.arange(count) % NUM_CLASSES).tolist(),
        }
        with open(folder / name, "wb") as f:
            pickle.dump(entry, f)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": [f"class{i}" for i in range(NUM_CLASSES)]}, f)
    return root


def _write_jpegs(args) -> None:
    import numpy as np
    from PIL import Image

    folder, start, count, size = args
    rng = np.random.default_rng(start)
    for index in range(start, start + count):
        # smooth random images (like photos, unlike pure noise) so JPEG decoding cost is typical
        small = rng.integers(0, 256, size=(size // 8, size // 8, 3), dtype=np.uint8)
        image = Image.fromarray(small).resize((size, size), Image.BILINEAR)
        image.save(Path(folder) / f"{index}.jpg", quality=90)


def write_synthetic_image_folder(root: Path, images: int, size: int) -> Path:
    """An ImageNet-style folder ``root/class<k>/<i>.jpg`` of ``size``-px JPEGs."""

    if root.is_dir() and sum(1 for _ in root.rglob("*.jpg")) >= images:
        return root
    per_class = -(-images // NUM_CLASSES)
    jobs = []
    for label in range(NUM_CLASSES):
        folder = root / f"class{label}"
        folder.mkdir(parents=True, exist_ok=True)
        for start in range(0, per_class, 256):
            jobs.append((str(folder), label * per_class + start, min(256, per_class - start), size))
    with ProcessPoolExecutor(max_workers=min(16, os.cpu_count() or 1)) as pool:
        list(pool.map(_write_jpegs, jobs))
    return root


# --------------------------------------------------------------------------------------------
# the worker: one host run with a throughput meter in its Trainer
# --------------------------------------------------------------------------------------------


def _make_meter(spec: Dict[str, Any]):
    import lightning.pytorch as pl
    import torch

    class ThroughputMeter(pl.Callback):
        """Times steps ``[warmup, warmup + timed)`` and counts syncs in the next ``sync``."""

        def __init__(self):
            self.warmup, self.timed, self.sync = spec["warmup"], spec["timed"], spec["sync"]
            self.cuda = torch.cuda.is_available()
            self.start = self.result = None
            self.sync_warnings = None
            self.sync_context = None

        def _synchronize(self):
            if self.cuda:
                torch.cuda.synchronize()

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            step = trainer.global_step
            if step == self.warmup and self.start is None:
                self._synchronize()
                if self.cuda:
                    torch.cuda.reset_peak_memory_stats()
                self.start = time.perf_counter()
            sync_start = self.warmup + self.timed
            if self.cuda and self.sync and step == sync_start and self.sync_context is None:
                self.sync_context = warnings.catch_warnings(record=True)
                self.sync_warnings = self.sync_context.__enter__()
                warnings.simplefilter("always")
                torch.cuda.set_sync_debug_mode("warn")

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            step = trainer.global_step  # already incremented for this batch
            if step == self.warmup + self.timed and self.result is None:
                self._synchronize()
                elapsed = time.perf_counter() - self.start
                images = self.timed * pl_module.batch_size * trainer.world_size
                self.result = {
                    "images_per_s": images / elapsed,
                    "step_ms": 1000 * elapsed / self.timed,
                    "peak_mem_gib": (
                        torch.cuda.max_memory_allocated() / 2**30 if self.cuda else None
                    ),
                    "syncs_per_step": None,
                }
                if not (self.cuda and self.sync):
                    self._finish(trainer)
            elif self.sync_context is not None and step == self.warmup + self.timed + self.sync:
                torch.cuda.set_sync_debug_mode("default")
                self.sync_context.__exit__(None, None, None)
                count = sum(SYNC_MARKER in str(w.message) for w in self.sync_warnings)
                self.result["syncs_per_step"] = count / self.sync
                self._finish(trainer)

        def _finish(self, trainer):
            if trainer.global_rank == 0:
                Path(spec["result_path"]).write_text(json.dumps(self.result))
            trainer.should_stop = True

    return ThroughputMeter()


def run_worker(spec: Dict[str, Any]) -> None:
    """Runs the host's main_pretrain.py as ``__main__`` with ``spec["argv"]``, its Trainer
    extended by the throughput meter."""

    host = Path(spec["host"])
    sys.path.insert(0, str(host))
    import lightning.pytorch as pl
    import torch
    import torchvision.datasets.cifar as tv_cifar

    # synthetic CIFAR files cannot match torchvision's md5 sums; nothing is downloaded
    tv_cifar.check_integrity = lambda *args, **kwargs: True

    cpu_dali = contextlib.ExitStack()  # held until the host's run ends
    if not torch.cuda.is_available():
        try:
            from dali_cpu import cpu_only_dali  # benchmarks/dali_cpu.py

            cpu_dali.enter_context(cpu_only_dali())  # DALI rows run CPU-only in CPU mode
        except ImportError:
            pass  # without DALI the DALI row fails with the host's own message

    meter = _make_meter(spec)
    host_trainer = pl.Trainer

    class MeteredTrainer(host_trainer):
        def __init__(self, *args, callbacks=None, **kwargs):
            super().__init__(*args, callbacks=[*(callbacks or []), meter], **kwargs)

    # the host keeps only the cfg keys named in Trainer.__init__'s signature
    MeteredTrainer.__init__.__signature__ = inspect.signature(host_trainer.__init__)
    # main_pretrain.py does ``from lightning.pytorch import Trainer`` when it runs
    pl.Trainer = MeteredTrainer
    script = host / "main_pretrain.py"
    sys.argv = [str(script), *spec["argv"]]
    with cpu_dali:
        runpy.run_path(str(script), run_name="__main__")


# --------------------------------------------------------------------------------------------
# the driver
# --------------------------------------------------------------------------------------------


def find_host() -> Path:
    from frossl_plugin.host.checkout import find_host as find_checkout

    try:
        return find_checkout()
    except ValueError as err:
        raise SystemExit(f"pretrain_throughput.py needs solo-learn's scripts: {err}") from err


def _kwargs_override(key: str, values: Dict[str, Any], replace: bool = True) -> List[str]:
    """Hydra overrides setting ``key`` to the dict ``values`` (deleting what was there)."""

    items = ", ".join(
        f"{k}: {str(v).lower() if isinstance(v, bool) else v}" for k, v in values.items()
    )
    return ([f"~{key}"] if replace else []) + [f"+{key}={{{items}}}"]


def build_runs(data: Path, mode: Dict[str, Any], gpu: bool, quick: bool) -> List[Dict[str, Any]]:
    """The rows: name, config and overrides for each host run."""

    cifar = data / "cifar"
    folder = data / "imagenet_style"
    common = [
        "checkpoint.enabled=false",
        "auto_resume.enabled=false",
        "wandb.enabled=false",
        "knn_eval.enabled=false",
        "++limit_val_batches=0",
        "++num_sanity_val_steps=0",
        "++enable_progress_bar=false",
        f"++max_steps={mode['warmup'] + mode['timed'] + mode['sync'] + 1}",
        "devices=[0]" if gpu else "devices='1'",
        "strategy=auto",
        "accelerator=gpu" if gpu else "accelerator=cpu",
    ]
    cifar_common = common + [
        f"data.train_path={cifar}",
        f"data.val_path={cifar}",
        f"optimizer.batch_size={mode['cifar_batch']}",
    ]
    if not gpu:
        cifar_common += ["data.num_workers=1"]
    imagenet_common = common + [
        "data.dataset=custom",
        f"data.train_path={folder}",
        "data.val_path=null",
        f"optimizer.batch_size={mode['imagenet_batch']}",
    ]
    if not gpu:  # small views and CPU DALI: the same code paths at CPU cost
        imagenet_common += [
            "data.num_workers=1",
            "dali.device=cpu",
            "augmentations.0.crop_size=64",
            "augmentations.1.crop_size=64",
        ]

    runs = [
        ("frossl default", "frossl", "frossl.yaml", cifar_common, "cifar"),
        ("frossl fast", "frossl", "frossl_fast.yaml", cifar_common, "cifar"),
    ]
    for method, kwargs in BASELINE_KWARGS.items():
        overrides = cifar_common + [f"method={method}"]
        overrides += _kwargs_override("method_kwargs", kwargs)
        runs.append((f"{method} fast", method, "frossl_fast.yaml", overrides, "cifar"))
    runs += [
        (
            "frossl imagenet-style torchvision",
            "frossl",
            "frossl_imagenet100_fast.yaml",
            imagenet_common + ["data.format=image_folder"],
            "imagenet",
        ),
        (
            "frossl imagenet-style dali",
            "frossl",
            "frossl_imagenet100_fast.yaml",
            imagenet_common + ["data.format=dali"],
            "imagenet",
        ),
    ]
    if not quick:
        timm = ["backbone.name=timm/resnet18"]
        eager = _kwargs_override("backbone.kwargs", {"small_input": True}, replace=False)
        compiled = _kwargs_override(
            "backbone.kwargs", {"small_input": True, "torch_compile": True}, replace=False
        )
        runs += [
            (
                "frossl fast timm/resnet18",
                "frossl",
                "frossl_fast.yaml",
                cifar_common + timm + eager,
                "cifar",
            ),
            (
                "frossl fast timm/resnet18 compiled",
                "frossl",
                "frossl_fast.yaml",
                cifar_common + timm + compiled,
                "cifar",
            ),
        ]
    if not gpu:  # CPU mode: fp32 throughout
        runs = [
            (name, *rest, overrides + ["precision=32"], kind)
            for name, *rest, overrides, kind in runs
        ]
    return [
        {"name": name, "method": method, "config": config, "overrides": overrides, "kind": kind}
        for name, method, config, overrides, kind in runs
    ]


def describe(run: Dict[str, Any], gpu: bool, mode: Dict[str, Any]) -> Dict[str, str]:
    overrides = run["overrides"]

    def last(prefix, default):
        values = [o.split("=", 1)[1] for o in overrides if o.startswith(prefix)]
        return values[-1] if values else default

    config_precision = {"frossl.yaml": "32"}.get(run["config"], "bf16-mixed")
    backbone = "timm/resnet18 (small_input)" if "timm" in run["name"] else "resnet18"
    if "compiled" in run["name"]:
        backbone += " compiled"
    size = 32 if run["kind"] == "cifar" else (224 if gpu else 64)
    return {
        "precision": last("precision=", config_precision),
        "loader": {"dali": "DALI"}.get(last("data.format=", ""), "torchvision"),
        "backbone": backbone + (" (CIFAR stem)" if backbone == "resnet18" and size == 32 else ""),
        "px": str(size),
        "batch": str(mode["cifar_batch"] if run["kind"] == "cifar" else mode["imagenet_batch"]),
    }


def run_one(run, host: Path, out: Path, mode, timeout: float) -> Dict[str, Any]:
    run_dir = out / "runs" / run["name"].replace(" ", "_").replace("/", "_")
    run_dir.mkdir(parents=True, exist_ok=True)
    result_path = run_dir / "result.json"
    result_path.unlink(missing_ok=True)
    spec = {
        "host": str(host),
        "argv": [f"--config-name={run['config']}", *run["overrides"]],
        "result_path": str(result_path),
        **{k: mode[k] for k in ("warmup", "timed", "sync")},
    }
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(host), env.get("PYTHONPATH")]))
    env.setdefault("WANDB_MODE", "disabled")
    started = time.perf_counter()
    status = "ok"
    with open(run_dir / "log.txt", "w") as log:
        try:
            completed = subprocess.run(
                [sys.executable, __file__, "--worker", json.dumps(spec)],
                cwd=run_dir,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                timeout=timeout,
            )
            if completed.returncode != 0 and not result_path.is_file():
                status = f"failed (exit {completed.returncode}, see {run_dir / 'log.txt'})"
        except subprocess.TimeoutExpired:
            status = f"timed out after {timeout:.0f} s"
    result = json.loads(result_path.read_text()) if result_path.is_file() else {}
    if not result and status == "ok":
        status = f"no result (see {run_dir / 'log.txt'})"
    return {**run, **result, "status": status, "wall_s": time.perf_counter() - started}


def _fmt(value, digits=1):
    return "n/a" if value is None else f"{value:,.{digits}f}"


def ratio_lines(rows: List[Dict[str, Any]], gpu: bool) -> List[str]:
    speed = {row["name"]: row.get("images_per_s") for row in rows}
    goals = [
        ("fast / default (ResNet-18, 32 px)", "frossl fast", "frossl default", 2.0),
        ("FroSSL / Barlow Twins (fast settings)", "frossl fast", "barlow_twins fast", 0.98),
        ("FroSSL / VICReg (fast settings)", "frossl fast", "vicreg fast", None),
        (
            "DALI / torchvision loader (ImageNet-style)",
            "frossl imagenet-style dali",
            "frossl imagenet-style torchvision",
            None,
        ),
        (
            "torch_compile / eager (timm ResNet-18)",
            "frossl fast timm/resnet18 compiled",
            "frossl fast timm/resnet18",
            None,
        ),
    ]
    lines = []
    for label, numerator, denominator, goal in goals:
        a, b = speed.get(numerator), speed.get(denominator)
        if a is None or b is None:
            if numerator in speed or denominator in speed:
                lines.append(f"- {label}: n/a (a run did not finish)")
            continue
        value = a / b
        if goal is None:
            verdict = ""
        elif not gpu:
            verdict = f" (goal >= {goal:g}; CPU mode, not a GPU measurement)"
        else:
            verdict = f" (goal >= {goal:g}: {'met' if value >= goal else 'NOT met'})"
        lines.append(f"- {label}: {value:.3f}x{verdict}")
    return lines


def markdown(rows, gpu: bool, quick: bool, mode, header: Dict[str, str]) -> str:
    lines = [
        "# FroSSL pretraining throughput",
        "",
        *[f"- {key}: {value}" for key, value in header.items()],
        f"- mode: {'GPU' if gpu else 'CPU (reduced; code paths only, not a GPU measurement)'}"
        f"{', quick' if quick else ''}; {mode['warmup']} warm-up steps, {mode['timed']} timed "
        f"steps, syncs counted over {mode['sync']} further steps",
        "",
        "| run | method | backbone | px | precision | loader | batch | images/s | ms/step "
        "| peak GPU mem (GiB) | D2H syncs/step | status |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        d = row["description"]
        lines.append(
            f"| {row['name']} | {row['method']} | {d['backbone']} | {d['px']} | {d['precision']} "
            f"| {d['loader']} | {d['batch']} | {_fmt(row.get('images_per_s'))} "
            f"| {_fmt(row.get('step_ms'))} | {_fmt(row.get('peak_mem_gib'), 2)} "
            f"| {_fmt(row.get('syncs_per_step'), 1)} | {row['status']} |"
        )
    lines += ["", "Ratios:", *ratio_lines(rows, gpu), ""]
    return "\n".join(lines)


def machine_header(gpu: bool) -> Dict[str, str]:
    import platform

    import torch

    header = {
        "date (UTC)": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "CPU cores": str(os.cpu_count()),
    }
    if gpu:
        header["GPU"] = torch.cuda.get_device_name(0)
    try:
        import nvidia.dali

        header["DALI"] = nvidia.dali.__version__
    except ImportError:
        header["DALI"] = "not installed (DALI row fails)"
    return header


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, help="folder for data, logs and the table")
    parser.add_argument("--quick", action="store_true", help="fewer steps, no compile rows")
    parser.add_argument("--cpu", action="store_true", help="reduced CPU mode even with a GPU")
    parser.add_argument(
        "--budget-s",
        type=float,
        default=None,
        help="stop starting runs after this many seconds (GPU 360, CPU mode 1200)",
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        run_worker(json.loads(args.worker))
        return 0
    if args.out is None:
        parser.error("--out is required")

    import torch

    started = time.perf_counter()
    gpu = torch.cuda.is_available() and not args.cpu
    mode = (GPU_QUICK if args.quick else GPU_FULL) if gpu else CPU_MODE
    budget_s = args.budget_s if args.budget_s is not None else (360.0 if gpu else 1200.0)
    host = find_host()
    out = args.out.resolve()
    data = out / "data"
    steps = mode["warmup"] + mode["timed"] + mode["sync"] + 2
    write_synthetic_cifar10(data / "cifar", steps * mode["cifar_batch"])
    write_synthetic_image_folder(
        data / "imagenet_style", steps * mode["imagenet_batch"], 256 if gpu else 80
    )
    print(f"synthetic data ready in {time.perf_counter() - started:.0f} s", flush=True)

    rows = []
    for run in build_runs(data, mode, gpu, args.quick):
        run["description"] = describe(run, gpu, mode)
        remaining = budget_s - (time.perf_counter() - started)
        if remaining < 20:
            rows.append({**run, "status": "skipped (time budget)"})
            continue
        row = run_one(run, host, out, mode, timeout=min(remaining, 180 if gpu else 600))
        rows.append(row)
        print(
            f"{row['name']:<40} {_fmt(row.get('images_per_s')):>10} images/s  "
            f"{row['status']}  ({row['wall_s']:.0f} s)",
            flush=True,
        )

    table = markdown(rows, gpu, args.quick, mode, machine_header(gpu))
    (out / "pretrain_throughput.md").write_text(table)
    serializable = [{k: v for k, v in row.items() if k != "overrides"} for row in rows]
    (out / "pretrain_throughput.json").write_text(json.dumps(serializable, indent=2))
    print()
    print(table)
    print(f"total {time.perf_counter() - started:.0f} s; table in {out / 'pretrain_throughput.md'}")
    return 0 if all(row["status"] == "ok" for row in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
