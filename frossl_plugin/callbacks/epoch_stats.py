"""Per-epoch timing, throughput, peak memory and logged metrics of a Lightning run."""

import json
import resource
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import torch
from lightning.pytorch import Callback, LightningModule, Trainer


def batch_num_samples(batch: Any) -> int:
    """Samples in one training batch of the host.

    The host's pretraining batches are ``[indexes, [crop_1, ..., crop_C], targets]``; each sample
    counts once, whatever its number of crops. A plain tensor counts its first dimension.
    """

    if isinstance(batch, torch.Tensor):
        return int(batch.size(0))
    if isinstance(batch, (list, tuple)) and batch:
        for item in batch:
            if isinstance(item, torch.Tensor) and item.dim() >= 1:
                return int(item.size(0))
            if isinstance(item, (list, tuple)) and item and isinstance(item[0], torch.Tensor):
                return int(item[0].size(0))
    if isinstance(batch, dict) and batch:
        return batch_num_samples(list(batch.values()))
    raise ValueError(f"Cannot tell the number of samples of a batch of type {type(batch)}.")


PROC_CLEAR_REFS = Path("/proc/self/clear_refs")
PROC_STATUS = Path("/proc/self/status")


def peak_rss_mib() -> Optional[float]:
    """This process' peak resident set size (``VmHWM`` of /proc/self/status) in MiB; None where
    it cannot be read (no /proc)."""

    try:
        lines = PROC_STATUS.read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        if line.startswith("VmHWM:"):
            parts = line.split()
            if len(parts) >= 2 and parts[1].isdigit():
                return int(parts[1]) / 1024  # kB
    return None


def reset_peak_rss() -> bool:
    """Resets this process' peak resident set size to its current size (Linux: ``5`` written
    to /proc/self/clear_refs, see ``man 5 proc``). False where that is not possible (no /proc,
    not permitted, or no ``VmHWM`` to read afterwards)."""

    try:
        with PROC_CLEAR_REFS.open("w") as handle:
            handle.write("5")
    except OSError:
        return False
    return peak_rss_mib() is not None


def process_peak_rss_mib() -> float:
    """The process' peak resident set size since it started (``getrusage``), in MiB."""

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024  # bytes there, else KiB


def read_records(path: Path) -> List[dict]:
    """The whole JSON records of a JSON-lines file, in order; [] when it does not exist. A line
    that is not a JSON object (one cut off while it was written) is left out."""

    try:
        text = path.read_text()
    except OSError:
        return []
    records = []
    for line in text.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


def drop_cut_off_tail(path: Path) -> bool:
    """Removes a last line without its newline from ``path``: the record a run was writing when
    it was killed. The next record would otherwise be appended to it, making one line that is
    not JSON. Returns whether something was removed."""

    try:
        with path.open("rb+") as handle:
            data = handle.read()
            if not data or data.endswith(b"\n"):
                return False
            handle.truncate(data.rfind(b"\n") + 1)
    except OSError:
        return False
    return True


def _scalar_metrics(metrics: Dict[str, Any]) -> Dict[str, float]:
    scalars = {}
    for key, value in metrics.items():
        if isinstance(value, torch.Tensor) and value.numel() == 1:
            scalars[key] = float(value)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            scalars[key] = float(value)
    return dict(sorted(scalars.items()))


class EpochStats(Callback):
    """Appends one JSON line per training epoch to ``path`` (global rank 0 only).

    A run stopped and resumed from a checkpoint (the host's ``auto_resume``) goes on appending
    to the same file: each fit is a *part* of the run. Each line holds:

    - ``epoch``: epochs completed (1 for the first);
    - ``part``: which fit of the run wrote it (0 for the first; the next fit with records in
      ``path`` counts on), and ``resumed_from_epoch``: the epochs completed when that fit started
      (0 for a fresh start). An epoch can appear twice, when a part stopped after writing its
      record but before the checkpoint of that epoch: the next part trains it again, and its
      record is the one of the run (``frossl_plugin.compare.report.join_parts``);
    - ``wall_time_s``: seconds since this part's fit started (sanity check, training, validation
      and checkpointing included), measured at the end of the epoch; it starts again at 0 in a
      resumed part;
    - ``epoch_time_s``: seconds since the previous record of this part, or since this part's fit
      started for its first record: summed over the epochs of a run, the time spent training it,
      without the time it was stopped;
    - ``train_time_s``: seconds of the training batches of the epoch (from the epoch start to
      the start of its validation, or to its end when it has none); ``val_time_s``;
    - ``steps``, ``samples`` (summed over processes), ``images_per_s`` = samples /
      train_time_s, and ``step_time_s`` = train_time_s / steps (data loading included);
    - ``peak_memory_mib`` with ``memory_kind`` and ``memory_since``: the job's own peak of the
      epoch (``memory_since: epoch_start``), on CUDA ``torch.cuda.max_memory_allocated``
      (``cuda_max_allocated``, reset with ``torch.cuda.reset_peak_memory_stats``), else the
      training process' peak resident set size (``cpu_peak_rss``: ``VmHWM``, reset at the fit's
      and each epoch's start through /proc/self/clear_refs; main process only, data-loader
      workers excluded; memory that an earlier job in the same process still holds counts).
      Where the peak cannot be reset (no /proc, not permitted), the process' peak since it
      started (``cpu_process_peak_rss``, ``memory_since: process_start``), which with several
      jobs in one process (Hydra's basic launcher) may be an earlier job's;
    - ``metrics``: every scalar in ``trainer.callback_metrics`` at the end of the epoch (online
      ``val_acc1``, ``val_knn_acc1``, ``train_<method>_loss_epoch``, ...).

    On CUDA the callback synchronizes the device twice per epoch (at the end of the training
    batches and at the end of the epoch), never per step.

    The record of an epoch is written before the checkpoint of that epoch (see :meth:`setup`),
    and a line cut off by a kill is removed when the next part starts, so a run stopped at any
    moment and resumed has one record for every epoch of its checkpoints.

    Args:
        path (str): JSON-lines file; relative paths are relative to the working directory.
    """

    def __init__(self, path: str = "epoch_stats.jsonl"):
        super().__init__()
        self.path = Path(path)
        self._fit_start: Optional[float] = None
        self._last_record: Optional[float] = None  # perf_counter time of this part's last record
        self._part = 0
        self._resumed_from: Optional[int] = None  # epochs completed when this fit started
        self._epoch_start = 0.0
        self._train_end: Optional[float] = None
        self._val_start: Optional[float] = None
        self._val_time = 0.0
        self._steps = 0
        self._samples = 0
        self._rss_resets = False  # the process' peak RSS can be reset (Linux /proc)

    @staticmethod
    def _now(pl_module: LightningModule) -> float:
        if pl_module.device.type == "cuda":
            torch.cuda.synchronize(pl_module.device)
        return time.perf_counter()

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        """Moves the plugin's callbacks, this one among them, in their order, to the front of
        ``trainer.callbacks``.

        Lightning calls the callbacks' ``on_train_epoch_end`` in list order, and the host's
        ``main_pretrain.py`` puts its Checkpointer into the list before the callbacks of the
        plugin's entry point. Behind it, a run stopped after the checkpoint of epoch k was
        written but before this record was would resume after epoch k without ever having its
        record. In front, a stop between the two leaves a record whose checkpoint is missing:
        the resumed run trains that epoch again and writes it anew, which the report resolves
        (the later record wins). The plugin's other callbacks move along, in their order, so
        that this record still holds what the SpectrumMonitor before it logged for the epoch
        and the spectra are written before the checkpoint too. A new list is assigned, not the
        old one reordered: Lightning is iterating over the old one while it calls this hook.
        """

        def ours(callback: Callback) -> bool:
            return type(callback).__module__.split(".")[0] == __name__.split(".")[0]

        plugin = [callback for callback in trainer.callbacks if ours(callback)]
        others = [callback for callback in trainer.callbacks if not ours(callback)]
        if trainer.callbacks != plugin + others:
            trainer.callbacks = plugin + others

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._fit_start = time.perf_counter()
        self._last_record = None
        self._resumed_from = None
        # this job's peak, not an earlier job's of the same process
        self._rss_resets = pl_module.device.type != "cuda" and reset_peak_rss()
        if trainer.is_global_zero:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            drop_cut_off_tail(self.path)  # a record cut off when an earlier part was killed
            earlier = read_records(self.path)
            parts = [r["part"] for r in earlier if isinstance(r.get("part"), int)]
            # records without ``part`` (written before it existed) count as one part
            self._part = max(parts) + 1 if parts else int(bool(earlier))

    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self._resumed_from is None:
            self._resumed_from = trainer.current_epoch  # > 0 after loading a checkpoint
        if pl_module.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(pl_module.device)
        elif self._rss_resets:
            self._rss_resets = reset_peak_rss()
        self._epoch_start = self._now(pl_module)
        self._train_end = None
        self._val_time = 0.0
        self._steps = 0
        self._samples = 0

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, idx: int
    ) -> None:
        self._steps += 1
        self._samples += batch_num_samples(batch)

    def on_validation_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.sanity_checking:
            return
        self._val_start = self._now(pl_module)
        if self._train_end is None:
            self._train_end = self._val_start

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.sanity_checking or self._val_start is None:
            return
        self._val_time += self._now(pl_module) - self._val_start
        self._val_start = None

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        now = self._now(pl_module)
        if not trainer.is_global_zero:
            return
        train_end = self._train_end if self._train_end is not None else now
        train_time = max(train_end - self._epoch_start, 1e-9)
        samples = self._samples * trainer.world_size
        peak_mib = peak_rss_mib() if self._rss_resets else None
        memory_kind, memory_since = "cpu_peak_rss", "epoch_start"
        if pl_module.device.type == "cuda":
            memory_kind = "cuda_max_allocated"
            peak_mib = torch.cuda.max_memory_allocated(pl_module.device) / 2**20
        elif peak_mib is None:
            memory_kind, memory_since = "cpu_process_peak_rss", "process_start"
            peak_mib = process_peak_rss_mib()
        fit_start = self._fit_start if self._fit_start is not None else self._epoch_start
        record = {
            "epoch": trainer.current_epoch + 1,
            "part": self._part,
            "resumed_from_epoch": self._resumed_from or 0,
            "wall_time_s": now - fit_start,
            "epoch_time_s": now
            - (self._last_record if self._last_record is not None else fit_start),
            "train_time_s": train_time,
            "val_time_s": self._val_time,
            "steps": self._steps,
            "samples": samples,
            "images_per_s": samples / train_time,
            "step_time_s": train_time / max(self._steps, 1),
            "peak_memory_mib": peak_mib,
            "memory_kind": memory_kind,
            "memory_since": memory_since,
            "world_size": trainer.world_size,
            "metrics": _scalar_metrics(trainer.callback_metrics),
        }
        with self.path.open("a") as handle:
            handle.write(json.dumps(record) + "\n")
        self._last_record = now
