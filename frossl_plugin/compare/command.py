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
from typing import List, Optional

from frossl_plugin.compare.image_folder import prepare_image_folder

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


def data_overrides(args: argparse.Namespace, out: Path) -> List[str]:
    """Data paths, the augmentations and the crop sizes of every job."""

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
        print(f"compare: data {args.data}: {folder.description}; crop {crop} px", flush=True)
        overrides = [
            f"data.train_path={folder.train}",
            f"data.val_path={folder.val}",
            # part of every job's identity: images added or changed later give new jobs, and a
            # job never resumes a checkpoint trained on other images (the host ignores the key)
            f"++data.content_digest={folder.content}",
        ]
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
    for notice in report.optional_dependency_notices():  # before minutes of training
        print(notice, flush=True)
    host = find_host(args.host)
    out = Path(args.out).expanduser().resolve()
    command = [
        sys.executable,
        str(host / "main_pretrain.py"),
        "-m",
        "--config-name=compare",
        f"seed={','.join(seeds)}",  # first: it varies slowest, so a stopped sweep has every
        f"preset={','.join(methods)}",  # method at its first seeds
        f"max_epochs={args.epochs}",
        f"scheduler.warmup_epochs={min(10, args.epochs // 10)}",
        f"hydra.sweep.dir={out}",
        *data_overrides(args, out),
        *overrides,
    ]
    print("compare: " + shlex.join(command), flush=True)
    if args.dry_run:
        return 0
    env = dict(os.environ, SOLO_LEARN_PATH=str(host))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(host), env.get("PYTHONPATH")]))
    # its own process group: a stop signal reaches the sweep and every job it started
    sweep = subprocess.Popen(command, cwd=host, env=env, start_new_session=True)
    forward = lambda signum, frame: os.killpg(sweep.pid, signum)  # noqa: E731
    previous = {
        signum: signal.signal(signum, forward) for signum in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        code = sweep.wait()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if (out / "sweep_jobs.json").is_file():
        written = report.write_report(
            out, args.target_acc, args.target_fraction, args.target_metric
        )
        print(f"compare: report in {out}: " + ", ".join(p.name for p in written), flush=True)
    return code if code >= 0 else 128 - code
