"""Helpers shared by the tests: finding the host (solo-learn), running its scripts, small
on-disk datasets and the benchmark modules. Fixtures live in conftest.py.

Tests that need the host are marked ``host``; they run when ``SOLO_LEARN_PATH`` points at a
solo-learn checkout or ``solo`` is importable, and skip otherwise.
"""

import os
import subprocess
import sys
from pathlib import Path
from typing import List, Optional

import pytest

HOST_SKIP_REASON = (
    "needs solo-learn: git clone https://github.com/vturrisi/solo-learn (known-good commit "
    "9187ea3) and export SOLO_LEARN_PATH=<that folder>"
)


def quiet_cpu_trainer(**kwargs):
    """A Lightning Trainer on one CPU device without logger, checkpoints, progress bar or model
    summary; ``kwargs`` add to or override these."""

    from lightning.pytorch import Trainer

    settings = dict(
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    return Trainer(**{**settings, **kwargs})


def find_host() -> Optional[Path]:
    """The solo-learn checkout to test against, or None. Puts it on sys.path."""

    from frossl_plugin.host.checkout import find_host as find_checkout

    try:
        root = find_checkout()
    except ValueError as err:
        if os.environ.get("SOLO_LEARN_PATH"):
            raise pytest.UsageError(str(err)) from err
        return None  # no host, or an installed solo without the scripts
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    return root


HOST_PATH = find_host()

requires_host = pytest.mark.skipif(HOST_PATH is None, reason=HOST_SKIP_REASON)


BENCHMARKS_DIR = Path(__file__).resolve().parent.parent / "benchmarks"


def load_benchmark_module(name: str):
    """Imports ``benchmarks/<name>.py`` (scripts, not part of the installed package)."""

    import importlib.util

    spec = importlib.util.spec_from_file_location(name, BENCHMARKS_DIR / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def host_env() -> dict:
    """Environment for a subprocess that runs one of the host's scripts on CPU."""

    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HOST_PATH), env.get("PYTHONPATH")]))
    env["CUDA_VISIBLE_DEVICES"] = ""
    env.setdefault("WANDB_MODE", "disabled")
    return env


def run_host_script(
    script: str, args: List[str], cwd: Path, timeout: int = 600, env: Optional[dict] = None
):
    """Runs ``python <host>/<script> <args>`` in ``cwd`` (environment: ``env`` or
    :func:`host_env`); returns the CompletedProcess."""

    return subprocess.run(
        [sys.executable, str(HOST_PATH / script), *args],
        cwd=cwd,
        env=env or host_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def two_step_cpu_overrides(demo_data: Path) -> List[str]:
    """Host overrides for one epoch of two training and two validation steps on ``demo_data``
    (batch 16, no loader workers, no kNN monitor, CPU)."""

    return [
        f"data.train_path={demo_data / 'train'}",
        f"data.val_path={demo_data / 'val'}",
        "data.num_workers=0",
        "optimizer.batch_size=16",
        "max_epochs=1",
        "++limit_train_batches=2",
        "++limit_val_batches=2",
        "knn_eval.enabled=false",
        "accelerator=cpu",
    ]


def quick_demo_overrides(demo_data: Path, checkpoint_dir: Path) -> List[str]:
    """Overrides for a two-step CPU run of ``frossl_demo.yaml`` on ``demo_data``."""

    return [
        "--config-name=frossl_demo.yaml",
        *two_step_cpu_overrides(demo_data),
        f"checkpoint.dir={checkpoint_dir}",
    ]


def write_tiny_image_folder(
    root: Path, classes: int = 5, train_per_class: int = 8, val_per_class: int = 4, size: int = 32
) -> Path:
    """Random-noise RGB PNGs in ``root/{train,val}/<class>/``; returns ``root``."""

    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, count in (("train", train_per_class), ("val", val_per_class)):
        for label in range(classes):
            folder = root / split / f"class{label}"
            folder.mkdir(parents=True, exist_ok=True)
            for index in range(count):
                pixels = rng.integers(0, 256, size=(size, size, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(folder / f"{index}.png")
    return root
