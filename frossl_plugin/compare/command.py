"""``frossl-plugin compare``: FroSSL against the host's methods on the same data and budget."""

import argparse
import datetime
import shlex
import sys
import warnings
from pathlib import Path
from typing import List, Optional

import yaml

from frossl_plugin.compare.method_settings import FROSSL

HELP = "train FroSSL and host baselines alike and compare accuracy, speed and spectra"
DESCRIPTION = """\
Trains each method with the host's unmodified main_pretrain.py, one subprocess per method (cwd
OUT/<method>), with the same backbone, augmentations, batch size, epochs, seed, data and
evaluation; only method, method_kwargs (and momentum) differ. Writes OUT/epochs.csv,
OUT/summary.md and, with matplotlib, OUT/accuracy_vs_epoch.png, OUT/accuracy_vs_time.png,
OUT/effective_rank.png and OUT/spectra/<method>.png. Rerunning skips finished methods.
Ctrl-C (SIGINT) or SIGTERM stops the running method with its data-loader workers and exits
with 130 or 143; rerunning the same command resumes (the stopped method restarts).

CPU smoke test:  frossl-plugin compare --methods frossl,barlow_twins --data DIR --epochs 2
    --batch-size 64 --limit-train-batches 4 --num-workers 2 --out cmp
Two GPUs (DDP):  ... --devices 2 --strategy ddp --precision 16-mixed
"""


def parse_devices(text: str) -> List[int]:
    """``"[0,1]"`` or ``"0,1"`` -> ``[0, 1]``; a count ``"2"`` -> ``[0, 1]`` (the host takes the
    number of devices as ``len(devices)``, so it must be a list)."""

    value = yaml.safe_load(f"[{text.strip().strip('[]')}]")
    if not value or not all(
        isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value
    ):
        raise argparse.ArgumentTypeError(
            f"--devices {text!r}: expected device ids like [0,1] or a count like 2."
        )
    if len(value) == 1 and not text.strip().startswith("["):
        if value[0] < 1:
            raise argparse.ArgumentTypeError(f"--devices {text!r}: a count must be >= 1.")
        return list(range(value[0]))
    return value


def _number(text: str) -> float:
    value = float(text)
    return int(value) if value.is_integer() and "." not in text else value


def add_compare(commands) -> None:
    parser = commands.add_parser(
        "compare",
        help=HELP,
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--methods",
        default="frossl,barlow_twins,vicreg",
        help="comma-separated solo.methods.METHODS names (frossl,barlow_twins,vicreg)",
    )
    parser.add_argument(
        "--data",
        required=True,
        help="cifar10, cifar100, stl10 (downloaded to --data-root), an image folder with train/ "
        "and val/ (or valid/, validation/, test/) class subfolders, or a folder of class "
        "subfolders (split with --val-fraction)",
    )
    parser.add_argument("--epochs", type=int, required=True, help="pretraining epochs per method")
    parser.add_argument("--out", default="frossl_compare", help="output folder (frossl_compare)")
    parser.add_argument("--host", help="solo-learn checkout (default $SOLO_LEARN_PATH or solo)")
    parser.add_argument("--batch-size", type=int, help="per-device batch size")
    parser.add_argument("--backbone", help="backbone.name (resnet18)")
    parser.add_argument("--seed", type=int, default=5, help="seed of every run (5)")
    parser.add_argument("--crop-size", type=int, help="crop size (image folder: its image size)")
    parser.add_argument(
        "--augmentations",
        help="plugin augmentation config (image folder: cifar_symmetric; demo digits: demo_digits)",
    )
    parser.add_argument("--data-root", help="download folder of cifar10/100, stl10 (OUT/datasets)")
    parser.add_argument("--num-workers", type=int, help="data-loader workers")
    parser.add_argument("--accelerator", help="Lightning accelerator (auto)")
    parser.add_argument(
        "--devices",
        type=parse_devices,
        help='device ids, "[0,1]", or a count, "2" (= [0,1]); the host wants a list',
    )
    parser.add_argument("--strategy", help="Lightning strategy (auto; ddp for several GPUs)")
    parser.add_argument("--precision", help="Lightning precision (32; 16-mixed, bf16-mixed)")
    parser.add_argument("--num-nodes", type=int, help="Lightning num_nodes")
    parser.add_argument("--limit-train-batches", type=_number, help="training batches per epoch")
    parser.add_argument("--limit-val-batches", type=_number, help="validation batches per epoch")
    parser.add_argument(
        "--val-fraction",
        type=float,
        default=0.1,
        help="folder of class subfolders: share of each class held out for validation (0.1)",
    )
    parser.add_argument(
        "--val-subset",
        type=int,
        help="image folder: validate on about this many images, equally many per class",
    )
    parser.add_argument("--no-knn", action="store_true", help="disable the online kNN")
    parser.add_argument(
        "--spectrum-every", type=int, default=1, help="spectrum every K epochs, 0 = off (1)"
    )
    parser.add_argument(
        "--spectrum-samples", type=int, default=512, help="held-out images of the spectrum (512)"
    )
    parser.add_argument(
        "--target-acc", type=float, help="target accuracy in %% (default: fraction x best final)"
    )
    parser.add_argument(
        "--target-fraction",
        type=float,
        default=0.9,
        help="default target = this x the best final accuracy of all methods (0.9)",
    )
    parser.add_argument(
        "--target-metric",
        choices=("online", "knn"),
        default="online",
        help="accuracy the target applies to (online linear)",
    )
    parser.add_argument(
        "--override",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="Hydra override of the shared config, for every method (repeatable)",
    )
    parser.add_argument(
        "--method-override",
        action="append",
        default=[],
        metavar="METHOD:KEY=VALUE",
        help="setting of one method, e.g. barlow_twins:method_kwargs.scale_loss=0.05",
    )
    parser.add_argument("--force", action="store_true", help="retrain finished methods too")
    parser.add_argument(
        "--dry-run", action="store_true", help="write the configs and print the commands only"
    )
    parser.set_defaults(run=run_compare)


def _validate(args: argparse.Namespace, methods) -> None:
    if not methods:
        raise ValueError(f"--methods {args.methods!r} names no method.")
    if len(set(methods)) != len(methods):
        raise ValueError(f"--methods {args.methods!r} names a method twice.")
    if args.epochs < 1:
        raise ValueError(f"--epochs must be >= 1, but found {args.epochs}.")
    if not 0.0 < args.target_fraction <= 1.0:
        raise ValueError(f"--target-fraction must be in (0, 1], found {args.target_fraction}.")
    if args.spectrum_every < 0 or args.spectrum_samples < 2:
        raise ValueError(
            f"--spectrum-every must be >= 0 and --spectrum-samples >= 2, found "
            f"{args.spectrum_every} and {args.spectrum_samples}."
        )
    from frossl_plugin.compare.run_config import dataset_of

    if dataset_of(args.data) != "custom" and args.val_subset is not None:
        raise ValueError(
            f"--val-subset {args.val_subset} applies to image folders; {args.data} is validated "
            "on its whole test split (use --limit-val-batches there)."
        )
    if dataset_of(args.data) == "custom" and args.limit_val_batches is not None and not args.no_knn:
        raise ValueError(
            f"--limit-val-batches {args.limit_val_batches} on an image folder keeps only its first "
            "classes (the host does not shuffle validation), and the host's online kNN then fails; "
            "use --val-subset N (a class-balanced validation subset) instead, or add --no-knn."
        )


def _check_methods(methods, host_root: Path) -> None:
    """Every method must be in the host's registry (FroSSL registered by the plugin)."""

    sys.path.insert(0, str(host_root))
    try:
        with warnings.catch_warnings():  # the host's import-time deprecation warnings
            warnings.simplefilter("ignore")
            from frossl_plugin import register

            register()
            from solo.methods import METHODS
    finally:
        sys.path.remove(str(host_root))
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"Unknown methods {unknown}; solo.methods.METHODS has {sorted(METHODS)}.")


def run_compare(args: argparse.Namespace) -> int:
    from frossl_plugin.compare import report
    from frossl_plugin.compare.run_config import (
        SharedSettings,
        compose_shared,
        config_yaml,
        method_config,
        parse_method_overrides,
    )
    from frossl_plugin.compare.runner import MethodRun, Stopped, run_all
    from frossl_plugin.host.checkout import find_host

    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    _validate(args, methods)
    for notice in report.optional_dependency_notices():  # before minutes of training
        print(notice, flush=True)
    host_root = find_host(args.host)
    _check_methods(methods, host_root)
    out = Path(args.out).expanduser().resolve()
    out.mkdir(parents=True, exist_ok=True)

    shared = SharedSettings(
        data=args.data,
        epochs=args.epochs,
        batch_size=args.batch_size,
        backbone=args.backbone,
        seed=args.seed,
        crop_size=args.crop_size,
        augmentations=args.augmentations,
        data_root=args.data_root,
        num_workers=args.num_workers,
        accelerator=args.accelerator,
        devices=args.devices,
        strategy=args.strategy,
        precision=args.precision,
        num_nodes=args.num_nodes,
        limit_train_batches=args.limit_train_batches,
        limit_val_batches=args.limit_val_batches,
        val_fraction=args.val_fraction,
        val_subset=args.val_subset,
        knn=not args.no_knn,
        spectrum_every=args.spectrum_every,
        spectrum_samples=args.spectrum_samples,
        overrides=list(args.override),
    )
    shared_cfg, base_name, data_description = compose_shared(shared, out)
    per_method = parse_method_overrides(args.method_override)
    stray = sorted(set(per_method) - set(methods))
    if stray:
        raise ValueError(f"--method-override names methods not in --methods: {stray}.")

    runs, sources, notes = [], {}, []
    for method in methods:
        cfg, source = method_config(
            shared_cfg, method, host_root, per_method.get(method, []), base_name
        )
        directory = out / method
        header = (
            f"{method} run of a FroSSL comparison. Repeat it with (cwd = this folder):\n"
            f"python <solo-learn>/main_pretrain.py --config-path {directory} --config-name "
            f"pretrain.yaml\nmethod settings: {source}"
        )
        runs.append(MethodRun(method, directory, config_yaml(cfg, header), source))
        sources[method] = source
        note = _frossl_collapse_risk(cfg) if method == FROSSL else None
        if note:
            notes.append(note)
            print(f"compare: note: {note}")

    if args.dry_run:
        for run in runs:
            if not run.done_path.is_file():
                run.directory.mkdir(parents=True, exist_ok=True)
                (run.directory / "pretrain.yaml").write_text(run.config_text)
            print(f"{run.method}: {run.settings_source}")
            print("  " + shlex.join(run.command(host_root)))
        return 0

    try:
        status = run_all(runs, host_root, args.epochs, force=args.force)
    except Stopped as stop:  # SIGINT / SIGTERM: the host process is stopped, done.json kept
        print(stop.message(), flush=True)
        return stop.exit_code

    rows_by_method = {}
    for run in runs:
        if status[run.method] in ("done", "skipped"):
            rows_by_method[run.method] = report.method_rows(run.method, run.directory)
    all_rows = [row for rows in rows_by_method.values() for row in rows]
    written = [report.write_csv(all_rows, out / "epochs.csv")]
    metric = "online_acc1" if args.target_metric == "online" else "knn_acc1"
    summary = report.summarize(rows_by_method, args.target_acc, args.target_fraction, metric)
    context = {
        "command": "frossl-plugin compare " + shlex.join(sys.argv[2:] if len(sys.argv) > 2 else []),
        "date (UTC)": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M"),
        "machine": report.machine_description(),
        "data": data_description,
        "shared settings": _shared_line(shared_cfg),
        **({"notes": " ".join(notes)} if notes else {}),
        "target source": (
            "--target-acc"
            if args.target_acc is not None
            else f"{args.target_fraction} x best final accuracy"
        ),
    }
    (out / "summary.md").write_text(report.summary_markdown(summary, context, sources))
    written.append(out / "summary.md")
    target = summary["target"] if report._valid(summary["target"]) else None
    plots = report.plots_available()
    if plots:  # if not, the notice at the start said so
        run_dirs = {run.method: run.directory for run in runs}
        written += report.write_plots(rows_by_method, run_dirs, out, target, metric)
    names = ", ".join(str(path.relative_to(out)) for path in written)
    missing = "" if plots else " (no plots: matplotlib is not installed)"
    print(f"compare: results in {out}: {names}{missing}")
    failed = [method for method, state in status.items() if state == "failed"]
    if failed:
        print(f"compare: failed methods {failed}; see their train.log")
        return 1
    if FROSSL not in methods:
        print("compare: FroSSL was not among --methods, so the table has no ratios.")
    return 0


def _frossl_collapse_risk(cfg) -> Optional[str]:
    from frossl_plugin.methods.frossl import collapse_risk

    return collapse_risk(
        cfg.optimizer.batch_size,
        cfg.method_kwargs.proj_output_dim,
        world_size=len(cfg.devices) * cfg.get("num_nodes", 1),  # as the host counts devices
        gather_across_devices=cfg.method_kwargs.get("gather_across_devices", False),
    )


def _shared_line(cfg) -> str:
    crops = ", ".join(f"{aug.num_crops} x {aug.crop_size} px" for aug in cfg.augmentations)
    line = (
        f"backbone {cfg.backbone.name}, batch {cfg.optimizer.batch_size} per device, "
        f"{cfg.max_epochs} epochs, seed {cfg.seed}, crops {crops}, "
        f"optimizer {cfg.optimizer.name} lr {cfg.optimizer.lr}, devices {cfg.devices}, "
        f"precision {cfg.precision}"
    )
    for key in ("limit_train_batches", "limit_val_batches"):
        if key in cfg:
            line += f", {key} {cfg[key]}"
    return line
