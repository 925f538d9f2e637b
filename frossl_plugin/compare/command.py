"""``frossl-plugin compare``: the front door to a comparison sweep.

It turns ``--methods``, ``--seeds``, ``--epochs`` and ``--data`` into a Hydra multirun of the
host's unmodified ``main_pretrain.py`` with ``--config-name compare`` (configs/compare.yaml),
passes every other argument through as a Hydra override, and then writes the report.
"""

import argparse
import os
import shlex
import signal
import subprocess
import sys
from pathlib import Path
from typing import List, Optional, Sequence

from frossl_plugin.compare.image_folder import prepare_image_folder
from frossl_plugin.compare.tuning import bare_key, method_axes, trial_grid

TORCHVISION_DATA = {
    "cifar10": "cifar_symmetric",
    "cifar100": "cifar_symmetric",
    "stl10": "stl10_symmetric_weak",
}
IMAGE_FOLDER_AUGMENTATIONS = "cifar_symmetric"  # compare.yaml's default
# --views N > 2: FroSSL gets two large crops plus N - 2 extra views (the host's two-view
# baselines take exactly 2), in the second pipeline of these files (num_crops set to N - 2).
# full (the default, as the paper's multiview runs): at the first crop size S, written [S, S] so
# that the unmodified host counts them as small crops and crops them at S x S; small: plain
# smaller crops at 2/3 of S (the paper's STL-10 ratio, 96:64 px), cheaper but not distributed
# as the first two. Either way the online linear and kNN monitors see the two large crops only.
MULTIVIEW_AUGMENTATIONS = {
    "full": {
        "cifar_symmetric": "cifar_symmetric_4views",
        "stl10_symmetric_weak": "stl10_symmetric_weak_4views",
    },
    "small": {
        "cifar_symmetric": "cifar_symmetric_small_views",
        "stl10_symmetric_weak": "stl10_symmetric_weak_small_views",
    },
}
EXTRA_VIEWS = tuple(MULTIVIEW_AUGMENTATIONS)
SMALL_CROP_RATIO = 2 / 3
# image folders of at most this side get the host's CIFAR stem (3x3 stride-1, no max-pool) for
# every method; larger ones keep the ImageNet stem, as the host gives STL-10's 96 px
SMALL_INPUT_MAX_SIDE = 64
SMALL_INPUT_BACKBONE = "resnet18_small_input"
DESCRIPTION = """\
Sweep FroSSL and the host's baselines over seeds with Hydra, then write the report.

The sweep is a Hydra multirun of the host's unmodified main_pretrain.py with --config-name
compare (configs/compare.yaml), made from --methods, --seeds, --epochs and --data.
"""
EPILOG = """\
Any other argument is a Hydra override for every job, e.g. optimizer.batch_size=64,128
(a sweep axis), method_kwargs.center=true, hydra/launcher=joblib, or hydra/launcher=submitit_slurm
hydra.launcher.partition=gpu. Rerunning the same command skips finished jobs. Ctrl-C or SIGTERM
stops every job (exit 130 or 143), keeps finished ones and reports what there is.
"""


def add_compare(commands) -> None:
    parser = commands.add_parser(
        "compare",
        help="sweep FroSSL and host baselines over seeds with Hydra, then report",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--methods", default="frossl,barlow_twins,vicreg", help="preset names")
    parser.add_argument("--seeds", default="1,2,3", help="comma-separated seeds (1,2,3)")
    parser.add_argument("--epochs", type=int, required=True, help="pretraining epochs per job")
    parser.add_argument(
        "--data",
        required=True,
        help="cifar10, cifar100, stl10 (downloaded to --data-root), a folder with train/ and "
        "val/ class subfolders, or a folder of class subfolders (split with --val-fraction)",
    )
    parser.add_argument("--out", default="frossl_compare", help="sweep folder (frossl_compare)")
    parser.add_argument("--host", help="solo-learn checkout (default $SOLO_LEARN_PATH or solo)")
    parser.add_argument("--data-root", help="download folder of cifar10/100, stl10 (OUT/datasets)")
    parser.add_argument("--crop-size", type=int, help="image folder: crop size (its image size)")
    parser.add_argument(
        "--views",
        type=int,
        default=2,
        help="views per image (2); more gives frossl N - 2 extra views (frossl only), see "
        "--extra-views",
    )
    parser.add_argument(
        "--extra-views",
        choices=EXTRA_VIEWS,
        help="with --views N > 2: full (default) at the crop size, as the paper's multiview runs, "
        "or small, crops at 2/3 of it",
    )
    parser.add_argument(
        "--tune",
        action="append",
        default=[],
        metavar="KEY=V1,V2",
        help="tune every method over these values (repeatable), e.g. optimizer.lr=0.1,0.3,1.0 "
        "(++KEY for a key the config does not set); scored on a selection split held out from "
        "the training images (image folders)",
    )
    parser.add_argument(
        "--tune-method",
        action="append",
        default=[],
        metavar="METHOD:KEY=V1,V2",
        help="one method's own axis (repeatable); every method must get as many trials",
    )
    parser.add_argument(
        "--selection-fraction", type=float, default=0.1, help="training share held out to tune"
    )
    parser.add_argument(
        "--tune-seed",
        default="0",
        help="seed(s) of the tuning runs, comma-separated (0); a trial scores the mean over them",
    )
    parser.add_argument("--tune-epochs", type=int, help="epochs of a tuning run (--epochs)")
    parser.add_argument(
        "--tune-only",
        action="store_true",
        help="stop after tuning: write OUT/tune/selection.json and its report, run no seeds",
    )
    parser.add_argument("--val-fraction", type=float, default=0.1, help="split share held out")
    parser.add_argument("--val-subset", type=int, help="validate on about N images, per class")
    parser.add_argument("--target-acc", type=float, help="report: target accuracy in %%")
    parser.add_argument("--target-fraction", type=float, default=0.9, help="report: default target")
    parser.add_argument("--target-metric", choices=("online", "knn"), default="online")
    parser.add_argument("--dry-run", action="store_true", help="print the sweep command only")
    parser.set_defaults(run=run_compare, takes_overrides=True)  # the rest: Hydra overrides


def _csv(text: str, what: str) -> List[str]:
    items = [item.strip() for item in text.split(",") if item.strip()]
    if not items or len(set(items)) != len(items):
        raise ValueError(f"--{what} {text!r}: expected distinct comma-separated values.")
    return items


def _seed_list(text: str, what: str) -> List[int]:
    items = _csv(text, what)
    if not all(item.isdigit() for item in items):
        raise ValueError(f"--{what} {text!r}: expected comma-separated integer seeds, e.g. 0,1,2.")
    return [int(item) for item in items]


def override_value(overrides: Sequence[str], key: str) -> Optional[str]:
    """The value the last of ``overrides`` gives ``key`` (``key=``, ``+key=`` or ``++key=``)."""

    values = [o.split("=", 1)[1] for o in overrides if bare_key(o.split("=", 1)[0]) == key]
    return values[-1] if values else None


def data_overrides(args: argparse.Namespace, out: Path, user: Sequence[str] = ()) -> List[str]:
    """Data paths, the augmentations, the crop sizes and, for small images, the small-input
    backbone of every job; ``user`` are the user's overrides (a ``backbone.name`` there wins)."""

    if args.data in TORCHVISION_DATA:
        root = Path(args.data_root or out / "datasets").expanduser().resolve()
        augmentations, crop = TORCHVISION_DATA[args.data], args.crop_size
        overrides = [
            f"data.dataset={args.data}",
            f"data.train_path={root}",
            f"data.val_path={root}",
        ]
    else:  # one split for every job: the seed of the split is not the seed of the run
        folder = prepare_image_folder(
            Path(args.data), out / "datasets", args.val_fraction, args.val_subset, seed=0
        )
        augmentations = IMAGE_FOLDER_AUGMENTATIONS
        crop = args.crop_size or min(folder.image_side, 224)
        users_stem = override_value(user, "backbone.name")  # wins over the default
        stem = users_stem or (SMALL_INPUT_BACKBONE if crop <= SMALL_INPUT_MAX_SIDE else "resnet18")
        print(
            f"compare: data {args.data}: {folder.description}; crop {crop} px; backbone {stem}",
            flush=True,
        )
        overrides = [
            f"data.train_path={folder.train}",
            f"data.val_path={folder.val}",
            # part of every job's identity: images added or changed later give new jobs, and a
            # job never resumes a checkpoint trained on other images (the host ignores the key)
            f"++data.content_digest={folder.content}",
        ]
        if not users_stem and stem == SMALL_INPUT_BACKBONE:
            overrides.append(f"backbone.name={stem}")
    extra = extra_views(args)
    if extra:
        augmentations = MULTIVIEW_AUGMENTATIONS[extra][augmentations]
        overrides.append(f"augmentations.1.num_crops={args.views - 2}")
        overrides.append(f"label='{multiview_label(args.methods, args.views, extra)}'")
    if augmentations != IMAGE_FOLDER_AUGMENTATIONS:
        overrides.append(f"augmentations={augmentations}")
    if crop:
        overrides.append(f"augmentations.0.crop_size={crop}")
        if extra == "full":
            overrides.append(f"augmentations.1.crop_size=[{crop},{crop}]")
        elif extra == "small":
            overrides.append(f"augmentations.1.crop_size={round(crop * SMALL_CROP_RATIO)}")
    return overrides


def extra_views(args: argparse.Namespace) -> Optional[str]:
    """``full`` or ``small`` for a multiview run (``--views`` > 2), else None."""

    if args.views <= 2:
        return None
    return getattr(args, "extra_views", None) or "full"


def multiview_label(methods: str, views: int, extra: str) -> str:
    """The report's label of a multiview run: which views, e.g. ``frossl 4 full-size views`` or
    ``frossl 4 views (2 small)``."""

    if extra == "full":
        return f"{methods} {views} full-size views"
    return f"{methods} {views} views ({views - 2} small)"


def run_compare(args: argparse.Namespace, overrides: List[str]) -> int:
    from frossl_plugin.compare import report
    from frossl_plugin.host.checkout import find_host

    methods, seeds = _csv(args.methods, "methods"), _csv(args.seeds, "seeds")
    if args.epochs < 1:
        raise ValueError(f"--epochs must be >= 1, but found {args.epochs}.")
    if args.views < 2:
        raise ValueError(f"--views must be >= 2, but found {args.views}.")
    if args.extra_views is not None and args.views <= 2:
        raise ValueError(
            f"--extra-views {args.extra_views} with --views {args.views}: there are no extra "
            "views; expected --views N > 2 (FroSSL with N - 2 views on top of the two large crops)."
        )
    if args.views > 2 and methods != ["frossl"]:
        raise ValueError(
            f"--views {args.views} with --methods {args.methods}: only frossl takes more than 2 "
            "views; the host's baselines take exactly 2. Compare them with a second command "
            "into the same --out, with --methods frossl --views N."
        )
    tuning = bool(args.tune or args.tune_method)
    tune_seeds = _seed_list(args.tune_seed, "tune-seed")
    if tuning and args.data in TORCHVISION_DATA:
        raise ValueError(
            f"--tune with --data {args.data}: tuning is scored on a split held out from the "
            "training images, which needs an image folder; write the dataset as one "
            "(train/ and val/ class folders) and pass its path."
        )
    if args.tune_only and not tuning:
        raise ValueError(
            "--tune-only without --tune or --tune-method: there is nothing to tune; expected at "
            "least one axis, e.g. --tune optimizer.lr=0.1,0.3."
        )
    grid = trial_grid(methods, args.tune, args.tune_method) if tuning else None
    for notice in report.optional_dependency_notices():  # before minutes of training
        print(notice, flush=True)
    host = find_host(args.host)
    out = Path(args.out).expanduser().resolve()
    data = data_overrides(args, out, overrides)

    def sweep(seeds_, methods_, epochs, folder, data_, extra) -> List[str]:
        return [
            sys.executable,
            str(host / "main_pretrain.py"),
            "-m",
            "--config-name=compare",
            f"seed={','.join(map(str, seeds_))}",  # first: it varies slowest, so a stopped
            f"preset={','.join(methods_)}",  # sweep has every method at its first seeds
            f"max_epochs={epochs}",
            f"scheduler.warmup_epochs={warmup_epochs(epochs)}",
            f"hydra.sweep.dir={folder}",
            *data_,
            *extra,
        ]

    if not tuning:
        code = launch(sweep(seeds, methods, args.epochs, out, data, overrides), host, args.dry_run)
    else:
        code = run_tuned(args, grid, methods, seeds, tune_seeds, out, data, overrides, sweep, host)
    if not args.dry_run and (out / "sweep_jobs.json").is_file():
        written = report.write_report(
            out, args.target_acc, args.target_fraction, args.target_metric
        )
        print(f"compare: report in {out}: " + ", ".join(p.name for p in written), flush=True)
    return code


def warmup_epochs(epochs: int) -> int:
    """Warm-up epochs of a comparison run: a tenth of the epochs, at most 10, and at least one
    whenever there are two or more (LARS without warm-up is unstable at short budgets)."""

    return max(1, min(10, epochs // 10)) if epochs >= 2 else 0


def launch(command: List[str], host: Path, dry_run: bool = False) -> int:
    """Runs one sweep command in its own process group (a stop signal reaches the sweep and
    every job it started) and returns its exit code (128 + signal when a signal ended it)."""

    print("compare: " + shlex.join(command), flush=True)
    if dry_run:
        return 0
    env = dict(os.environ, SOLO_LEARN_PATH=str(host))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(host), env.get("PYTHONPATH")]))
    process = subprocess.Popen(command, cwd=host, env=env, start_new_session=True)
    forward = lambda signum, frame: os.killpg(process.pid, signum)  # noqa: E731
    previous = {
        signum: signal.signal(signum, forward) for signum in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        code = process.wait()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return code if code >= 0 else 128 - code


def _with_paths(data: List[str], train: Path, val: Path) -> List[str]:
    replaced = {
        "data.train_path": f"data.train_path={train}",
        "data.val_path": f"data.val_path={val}",
    }
    return [replaced.get(item.split("=", 1)[0], item) for item in data]


def run_tuned(args, grid, methods, seeds, tune_seeds, out, data, overrides, sweep, host) -> int:
    """Tunes every method with the same number of trials on a selection split carved from the
    training images (OUT/tune), then runs each method's best trial over the seeds into OUT."""

    from frossl_plugin.compare import report
    from frossl_plugin.compare.image_folder import carve_selection
    from frossl_plugin.compare.tuning import (
        SELECTION_SETTINGS,
        choose,
        mean_scores,
        merge_selection,
        read_selection,
        trial_seed_scores,
        write_selection,
    )

    train = Path(
        next(item for item in data if item.startswith("data.train_path=")).split("=", 1)[1]
    )
    split = carve_selection(train, out / "datasets", args.selection_fraction, seed=0)
    print(f"compare: tuning on a selection split: {split.description}", flush=True)
    tune_data = _with_paths(data, split.train, split.selection)
    tune_dir, epochs = out / "tune", args.tune_epochs or args.epochs
    own = {  # each method's own axes, as Hydra sweep overrides
        method: [f"{key}={','.join(values)}" for key, values in axes]
        for method, axes in method_axes(methods, args.tune_method).items()
    }
    print(
        f"compare: {len(grid[methods[0]])} trials per method, seed(s) "
        f"{', '.join(map(str, tune_seeds))}",
        flush=True,
    )
    for method in methods:
        extra = [*args.tune, *own[method], *overrides]
        code = launch(
            sweep(tune_seeds, [method], epochs, tune_dir, tune_data, extra),
            host,
            args.dry_run,
        )
        if code:
            return code
    if args.dry_run:
        then = (
            "stop (--tune-only)"
            if args.tune_only
            else f"each method's best trial, over the seeds, into {out}"
        )
        print(f"compare: then {then}")
        return 0
    metric = report.TARGET_METRICS[args.target_metric][0]
    report.write_report(tune_dir, None, args.target_fraction, args.target_metric)
    by_seed = trial_seed_scores(tune_dir, grid, metric)
    chosen = choose(grid, mean_scores(by_seed, tune_seeds))
    for method, entry in chosen.items():
        for row in entry["trials"]:
            found = by_seed.get((method, tuple(row["overrides"])), {})
            row["seed_scores"] = {str(seed): found.get(seed) for seed in tune_seeds}
    unscored = [method for method, entry in chosen.items() if entry["chosen"] is None]
    if unscored:
        raise ValueError(f"no tuning trial of {unscored} finished with a score; see {tune_dir}.")
    record = {
        "methods": chosen,
        "seeds": tune_seeds,
        "epochs": epochs,
        "metric": report.TARGET_METRICS[args.target_metric][1],
        "split": split.description,
    }
    record, dropped = merge_selection(read_selection(out), record)
    if dropped:
        print(
            f"compare: the earlier selection of {dropped} in {tune_dir} was tuned with other "
            f"settings ({', '.join(SELECTION_SETTINGS)}) and is replaced; their trials stay.",
            flush=True,
        )
    write_selection(tune_dir, record)
    for method in methods:
        print(f"compare: {method}: chosen {' '.join(chosen[method]['chosen']) or '(defaults)'}")
    if args.tune_only:
        print(f"compare: --tune-only: selection in {tune_dir / 'selection.json'}", flush=True)
        return 0
    for method in methods:
        extra = [*chosen[method]["chosen"], *overrides]
        code = launch(sweep(seeds, [method], args.epochs, out, data, extra), host)
        if code:
            return code
    return 0
