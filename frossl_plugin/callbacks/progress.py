"""One line per epoch on stderr when the progress bar is off, as in comparison sweeps: which job
of the sweep this is, its epoch, and the time it has left."""

import json
import sys
import time
from pathlib import Path
from typing import Optional

from lightning.pytorch import Callback, LightningModule, Trainer

# written by frossl_plugin.compare.sweep into the job's folder and the sweep folder
JOB_FILE, PLAN_FILE, DONE_FILE = "job.json", "sweep_jobs.json", "done.json"


def _read(path: Path) -> Optional[dict]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def sweep_position(job_dir: Path) -> Optional[str]:
    """``job 3 of 12 (5 finished), frossl_seed1_ab12cd34`` for a job folder of a comparison
    sweep, or None outside one."""

    job, plan = _read(job_dir / JOB_FILE), _read(job_dir.parent / PLAN_FILE)
    if not job or not plan or job_dir.name not in plan.get("jobs", {}):
        return None
    names = list(plan["jobs"])
    finished = sum((job_dir.parent / name / DONE_FILE).is_file() for name in names)
    return (
        f"job {names.index(job_dir.name) + 1} of {len(names)} ({finished} finished), "
        f"{job_dir.name}"
    )


def format_duration(seconds: float) -> str:
    """``45 s``, ``12.5 min`` or ``3.2 h``."""

    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


class EpochProgress(Callback):
    """Prints, after every training epoch and only when the trainer has no progress bar, the
    epoch, its duration and an estimate of the time left (epochs left x the mean epoch time of
    this process), with the job's place in its sweep when it is a sweep job."""

    def __init__(self):
        super().__init__()
        self._where: Optional[str] = None
        self._start = 0.0
        self._first_epoch = 0
        self._epoch_start = 0.0

    def _active(self, trainer: Trainer) -> bool:
        return trainer.is_global_zero and trainer.progress_bar_callback is None

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not self._active(trainer):
            return
        self._where = sweep_position(Path.cwd())
        self._start = time.perf_counter()
        self._first_epoch = trainer.current_epoch
        resumed = f", resumed after epoch {trainer.current_epoch}" if trainer.current_epoch else ""
        self._print(f"training for {trainer.max_epochs} epochs{resumed}")

    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._epoch_start = time.perf_counter()

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not self._active(trainer) or trainer.sanity_checking:
            return
        now = time.perf_counter()
        done = trainer.current_epoch + 1
        mean = (now - self._start) / max(done - self._first_epoch, 1)
        left = max(trainer.max_epochs - done, 0) * mean
        self._print(
            f"epoch {done}/{trainer.max_epochs} in {format_duration(now - self._epoch_start)}; "
            f"about {format_duration(left)} left"
        )

    def _print(self, message: str) -> None:
        where = f"[{self._where}] " if self._where else ""
        print(f"frossl-plugin: {where}{message}", file=sys.stderr, flush=True)
