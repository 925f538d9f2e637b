"""The report of a sweep (a Hydra multirun folder, one sub-folder per job, several seeds per
variant): per-epoch CSV, Markdown summary with mean ± std over seeds, and band plots."""

import argparse
import csv
import datetime
import itertools
import json
import math
import os
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from frossl_plugin import install_hint
from frossl_plugin.compare.statistics import mean_std
from frossl_plugin.compare.sweep import DONE_FILE, JOB_FILE
from frossl_plugin.compare.sweep import PLAN_FILE as PLANNED_FILE
from frossl_plugin.compare.sweep import is_finished

STATS_FILE, SPECTRA_FILE = "epoch_stats.jsonl", "spectrum/spectra.jsonl"
# ran_with: the job's settings (JSON) as the host ran them ("job") or as the sweep planned
# them ("plan"), see ran_with_source
# superseded_by: a later job of the same label and seed; the summary counts the finished jobs
# without one
JOB_COLUMNS = ["job", "label", "method", "seed", "finished", "superseded_by", "ran_with"]
JOB_COLUMNS += ["ran_with_source"]
# training_time_s: the time spent training up to the end of the epoch, summed over the job's
# parts (join_parts); wall_time_s, epoch_time_s, part and resumed_from_epoch as recorded
EPOCH_COLUMNS = (
    "epoch training_time_s wall_time_s epoch_time_s part resumed_from_epoch train_time_s "
    "val_time_s steps samples images_per_s step_time_s "
    "peak_memory_mib memory_kind memory_since online_acc1 online_acc5 knn_acc1 knn_acc5 "
    "train_loss train_loss_metric rankme_backbone rankme_projector renyi2_backbone "
    "renyi2_projector"
).split()
# what peak_memory_mib is, by the record's memory_kind and memory_since (EpochStats)
CUDA_PEAK = "torch.cuda.max_memory_allocated during each epoch of the job"
EPOCH_RSS_PEAK = (
    "the training process' peak resident memory (CPU) during each epoch of the job (reset at "
    "the epoch's start; memory an earlier job of the same process still holds counts)"
)
PROCESS_RSS_PEAK = (
    "the training process' peak resident memory (CPU) since the process started, a process "
    "high-water mark, not the job's own: jobs that share a process (the basic launcher runs "
    "them all in one) show the largest peak of any job before them"
)
CSV_COLUMNS = JOB_COLUMNS + EPOCH_COLUMNS
# the logged training loss of each method (``<name>_epoch`` is its epoch mean)
LOSS_METRICS = {
    "frossl": "train_frossl_loss",
    "barlow_twins": "train_barlow_loss",
    "vicreg": "train_vicreg_loss",
    "simclr": "train_nce_loss",
    "byol": "train_neg_cos_sim",
    "mocov2plus": "train_nce_loss",
    "simsiam": "train_neg_cos_sim",
}
# CSV column -> logged metric: the host's online linear classifier and online kNN
ACCURACY_METRICS = {"online_acc1": "val_acc1", "online_acc5": "val_acc5"}
ACCURACY_METRICS.update(knn_acc1="val_knn_acc1", knn_acc5="val_knn_acc5")
TARGET_METRICS = {"online": ("online_acc1", "online top-1"), "knn": ("knn_acc1", "kNN top-1")}
NAN = float("nan")
PLOT_FILES = "accuracy_vs_epoch.png, accuracy_vs_time.png, effective_rank.png"
LAYERS = ("backbone", "projector")


@dataclass(frozen=True)
class MemoryKind:
    """What the ``peak_memory_mib`` of an epoch record measures."""

    job_own: bool  # the job's own peak, not the process' since it started
    tag: str  # after a value in the summary where needed
    note: str


def memory_kind(row: dict) -> MemoryKind:
    """The :class:`MemoryKind` of an epoch record. Records from before ``memory_since`` existed
    carry ``cpu_peak_rss`` without it: the process' high-water mark."""

    kind, since = row.get("memory_kind"), row.get("memory_since")
    if kind == "cuda_max_allocated":
        return MemoryKind(True, "CUDA", CUDA_PEAK)
    if kind == "cpu_peak_rss" and since == "epoch_start":
        return MemoryKind(True, "RSS", EPOCH_RSS_PEAK)
    if kind in ("cpu_peak_rss", "cpu_process_peak_rss"):
        return MemoryKind(False, "process high-water mark", PROCESS_RSS_PEAK)
    name = str(kind or "unknown")
    return MemoryKind(False, name, "a kind of measurement this report does not know")


def plots_available() -> bool:
    """True when the plots can be drawn (matplotlib imports)."""

    try:
        import frossl_plugin.plots  # noqa: F401  (imports matplotlib)
    except ImportError:
        return False
    return True


def optional_dependency_notices() -> List[str]:
    """One line per missing optional dependency of ``compare``: what will be missing and how to
    install it. Meant to be printed before any training starts."""

    notices = []
    if not plots_available():
        notices.append(
            f"compare: matplotlib is not installed, so no plots will be written ({PLOT_FILES}); "
            f"to get them: {install_hint('compare')}"
        )
    return notices


def machine_description() -> str:
    """Platform, processor, torch threads, GPUs, torch version and load of this machine."""

    import torch

    parts = [platform.platform(), f"{platform.processor() or platform.machine()}"]
    parts.append(f"{torch.get_num_threads()} torch threads")
    if torch.cuda.is_available():
        count = torch.cuda.device_count()
        parts.append(", ".join(torch.cuda.get_device_name(i) for i in range(count)))
    else:
        parts.append("no GPU")
    parts.append(f"torch {torch.__version__}")
    if hasattr(os, "getloadavg"):
        parts.append("load average %.1f %.1f %.1f" % os.getloadavg())
    return "; ".join(parts)


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def relative_to_first(values: Sequence[float]) -> Optional[List[float]]:
    """``values`` divided by the absolute value of the first finite non-zero one, so that losses
    of very different scales (FroSSL about 0.3, Barlow Twins about 200) show their own trend on
    one axis, starting at 1 (or -1 for a negative loss). Non-finite values become NaN.

    Returns:
        Optional[List[float]]: the relative values, or None when no value is finite and non-zero.
    """

    reference = next((value for value in values if _finite(value) and value != 0), None)
    if reference is None:
        return None
    return [value / abs(reference) if _finite(value) else NAN for value in values]


def read_jsonl(path: Path) -> List[dict]:
    """The records of a JSON-lines file; [] when it does not exist. A last line cut short (the
    job is still writing it) is left out.

    Raises:
        ValueError: if a line other than the last is not JSON.
    """

    if not path.is_file():
        return []
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    records = []
    for number, line in enumerate(lines, 1):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as err:
            if number < len(lines):
                raise ValueError(f"{path}: line {number} is not a JSON record ({err}).") from err
    return records


def _epoch_time(record: dict, previous: Optional[dict]) -> float:
    """The seconds ``record``'s epoch took: its ``epoch_time_s``, or for a record written before
    that field existed, the growth of ``wall_time_s`` since ``previous`` (the record before it
    in the file), or its whole ``wall_time_s`` where a new part started (the epoch does not
    follow the previous one, or the wall time started again)."""

    if _finite(record.get("epoch_time_s")):
        return float(record["epoch_time_s"])
    wall = record.get("wall_time_s")
    if not _finite(wall):
        return NAN
    if previous is None or not _finite(previous.get("wall_time_s")):
        return float(wall)
    follows = record.get("epoch") == previous.get("epoch", NAN) + 1
    if follows and wall >= previous["wall_time_s"]:
        return float(wall - previous["wall_time_s"])
    return float(wall)


def join_parts(records: Sequence[dict]) -> List[dict]:
    """The epoch records of one run stopped and resumed, possibly several times (EpochStats
    appends each part's records to the same file), joined into one curve: one record per epoch,
    in epoch order, each with ``training_time_s``, the time spent training up to the end of that
    epoch summed over the kept epochs, not counting the time the run was stopped.

    A part that starts (``part`` changes) from ``resumed_from_epoch`` r continues from the
    checkpoint of epoch r: the records of earlier parts after epoch r belong to training it
    did again and are dropped. Where an epoch still appears twice (records written before
    ``part`` existed), the later record is kept: a part stopped after writing the record of an
    epoch but before its checkpoint was continued from the epoch before, and the next part
    trained that epoch again. The time of a dropped record is not counted.

    Args:
        records: the records of an ``epoch_stats.jsonl`` in file order (each with ``epoch``).

    Returns:
        List[dict]: copies of the kept records, with ``training_time_s`` added.
    """

    kept: Dict[Any, dict] = {}
    part, previous = object(), None
    for record in records:
        if not isinstance(record.get("epoch"), int):
            continue
        record = {**record, "_epoch_time": _epoch_time(record, previous)}
        previous = record
        if "resumed_from_epoch" in record and record.get("part") != part:
            start = record["resumed_from_epoch"]
            kept = {epoch: r for epoch, r in kept.items() if epoch <= start}
        part = record.get("part")
        kept.pop(record["epoch"], None)
        kept[record["epoch"]] = record
    joined, total = [], 0.0
    for epoch in sorted(kept):
        record = dict(kept[epoch])
        total += record.pop("_epoch_time")
        record["training_time_s"] = total
        joined.append(record)
    return joined


def _read_json(path: Path) -> dict:
    try:
        value = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: expected a JSON object ({err}).") from err
    if not isinstance(value, dict):
        raise ValueError(f"{path}: expected a JSON object, not {type(value).__name__}.")
    return value


def parse_overrides(overrides: Sequence[str]) -> Dict[str, str]:
    """``["+a.b=1", "~c"]`` -> ``{"a.b": "1", "c": "~"}`` (prefixes ``+``, ``++``, ``~`` dropped;
    a deletion without a value is ``"~"``)."""

    parsed = {}
    for item in overrides:
        key, has_value, value = item.partition("=")
        parsed[key.lstrip("+~")] = value if has_value else "~"
    return parsed


def loss_metric_of(method: str, metrics: Dict[str, float]) -> Optional[str]:
    """The logged training-loss key of ``method`` (epoch mean), by table or by name."""

    known = LOSS_METRICS.get(method)
    if known and f"{known}_epoch" in metrics:
        return f"{known}_epoch"
    skip = ("train_class_loss", "train_acc")
    candidates = [
        key
        for key in metrics
        if key.startswith("train_") and key.endswith("_epoch") and not key.startswith(skip)
    ]
    chosen = [key for key in candidates if "loss" in key] or candidates
    return chosen[0] if chosen else None


@dataclass
class Job:
    """One job of a sweep: planned (``directory`` None), started, or finished."""

    name: str
    method: str
    seed: Optional[int]
    overrides: Dict[str, str]
    label: str = ""  # given in job.json, else derived from the sweep's overrides
    directory: Optional[Path] = None
    finished: bool = False
    last_time: str = ""  # finished_at, else started_at
    rows: List[dict] = field(default_factory=list)
    spectra: Dict[tuple, dict] = field(default_factory=dict)  # (epoch, layer) -> record
    superseded_by: Optional[str] = None
    # the settings (sweep.run_settings) the job ran with, by its done.json ("job", read from
    # the host's args.json), else as the sweep planned them ("plan"); None: neither is known
    ran_with: Optional[Dict[str, Any]] = None
    ran_with_source: str = ""
    ran_with_note: str = ""  # why a finished job recorded no settings
    resolved_keys: List[str] = field(default_factory=list)  # placeholders the host resolved
    disagreements: Dict[str, dict] = field(default_factory=dict)  # planned vs ran, by key


def job_rows(job: Job) -> List[dict]:
    """One CSV row per epoch of ``job``, its parts joined (:func:`join_parts`)."""

    rows = []
    for record in join_parts(read_jsonl(job.directory / STATS_FILE)):
        metrics = record.get("metrics", {})
        loss_key = loss_metric_of(job.method, metrics)
        row = {key: record.get(key) for key in EPOCH_COLUMNS if key in record}
        row.update({column: metrics.get(key, NAN) for column, key in ACCURACY_METRICS.items()})
        row["train_loss"] = metrics.get(loss_key, NAN) if loss_key else NAN
        row["train_loss_metric"] = loss_key or ""
        for layer in LAYERS:
            spectrum = job.spectra.get((record["epoch"], layer), {})
            row[f"rankme_{layer}"] = spectrum.get("rankme", NAN)
            row[f"renyi2_{layer}"] = spectrum.get("renyi2", NAN)
        rows.append(row)
    return rows


def _new_job(name: str, info: dict) -> Job:
    """A job from its job.json or its sweep_jobs.json entry ``info``."""

    overrides = parse_overrides(info.get("overrides") or [])
    seed = info.get("seed", overrides.get("seed"))
    method = info.get("method") or overrides.get("preset", "unknown")
    seed = int(seed) if str(seed).lstrip("-").isdigit() else None
    job = Job(info.get("name") or name, method, seed, overrides, info.get("label") or "")
    if isinstance(info.get("planned_with"), dict):
        job.ran_with, job.ran_with_source = info["planned_with"], "plan"
    job.resolved_keys = list(info.get("resolved_keys") or [])
    return job


def _load_job(job_file: Path) -> Job:
    directory = job_file.parent
    info = _read_json(job_file)
    job = _new_job(directory.name, info)
    done = _read_json(directory / DONE_FILE) if (directory / DONE_FILE).is_file() else {}
    # the sweeper's own test: done.json for this config (an earlier config's does not count)
    job.finished = is_finished(directory, info.get("config_hash"))
    # a job started again (resumed) counts from its last start
    job.last_time = (
        done.get("finished_at") or info.get("last_started_at") or info.get("started_at") or ""
    )
    if job.finished and isinstance(done.get("ran_with"), dict):
        job.ran_with, job.ran_with_source = done["ran_with"], "job"
        job.disagreements = done.get("disagreements") or {}
        job.resolved_keys = list(done.get("resolved_keys") or job.resolved_keys)
    elif job.finished:
        job.ran_with_note = done.get("ran_with_note") or "its done.json records no settings"
    job.directory = directory
    job.spectra = {(r["epoch"], r["layer"]): r for r in read_jsonl(directory / SPECTRA_FILE)}
    job.rows = job_rows(job)
    return job


def derive_labels(jobs: Sequence[Job]) -> None:
    """Sets the ``label`` of each job without a given one to its method followed by the overrides
    whose value differs between jobs (``seed``, ``preset``, ``label`` and ``hydra.*`` left out).
    A given label is followed by the overrides that differ between the jobs that share it, and
    gets the method in front when jobs of several methods share it."""

    def kept(key: str) -> bool:
        return key not in ("seed", "preset", "label", "hydra") and not key.startswith("hydra.")

    def varying(group: Sequence[Job]) -> List[str]:
        keys = {key for job in group for key in job.overrides if kept(key)}
        return sorted(key for key in keys if len({job.overrides.get(key) for job in group}) > 1)

    given: Dict[str, List[Job]] = {}
    for job in jobs:
        if job.label:
            given.setdefault(job.label, []).append(job)
    varying_in = {label: varying(group) for label, group in given.items()}
    varying_in[""] = varying(jobs)
    for job in jobs:
        pairs = [
            f"{key}={job.overrides[key]}" for key in varying_in[job.label] if key in job.overrides
        ]
        if not job.label:
            job.label = " ".join([job.overrides.get("preset", job.method)] + pairs)
            continue
        several_methods = len({other.method for other in given[job.label]}) > 1
        job.label = " ".join(([job.method] if several_methods else []) + [job.label] + pairs)


def setting_text(value: Any) -> str:
    """A setting's value as the summary and labels show it."""

    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return ",".join(setting_text(item) for item in value)
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    return str(value)


def _short_keys(jobs: Sequence[Job]) -> Dict[str, str]:
    """Setting key -> the name the summary shows: its last part (``proj_output_dim``), or the
    whole key where two keys of the sweep share that last part."""

    keys = {key for job in jobs for key in (job.ran_with or {})}
    last = [key.rsplit(".", 1)[-1] for key in keys]
    return {
        key: key.rsplit(".", 1)[-1] if last.count(key.rsplit(".", 1)[-1]) == 1 else key
        for key in keys
    }


def split_by_settings(jobs: Sequence[Job]) -> None:
    """Keeps apart the jobs of one label and method that ran with different settings (FroSSL's
    ``proj_output_dim: auto`` resolved by two rules, or at two batches the label does not
    name): their label gets ``(ran with <key>=<value> ...)`` of the settings that differ. Jobs
    whose settings are unknown keep their label."""

    short = _short_keys(jobs)
    groups: Dict[tuple, List[Job]] = {}
    for job in jobs:
        if job.ran_with is not None:
            groups.setdefault((job.label, job.method), []).append(job)
    for group in groups.values():
        keys = sorted({key for job in group for key in job.ran_with})
        differ = [
            key for key in keys if len({setting_text(job.ran_with.get(key)) for job in group}) > 1
        ]
        if not differ:
            continue
        for job in group:
            pairs = " ".join(f"{short[k]}={setting_text(job.ran_with.get(k))}" for k in differ)
            job.label = f"{job.label} (ran with {pairs})"


def _label_seed(job: Job) -> tuple:
    return job.label, -1 if job.seed is None else job.seed


def _timestamp(text: str) -> float:
    try:
        return datetime.datetime.fromisoformat(text).timestamp()
    except (TypeError, ValueError):
        return 0.0


@dataclass
class Sweep:
    """The jobs of a sweep folder, planned and started."""

    directory: Path
    jobs: List[Job]

    @property
    def finished(self) -> List[Job]:
        """Finished jobs that no later job of the same label and seed replaces."""
        return [job for job in self.jobs if job.finished and not job.superseded_by]

    @property
    def missing(self) -> List[Job]:
        """Planned or started jobs without a done.json (superseded ones left out)."""
        return [job for job in self.jobs if not job.finished and not job.superseded_by]


def load_sweep(sweep_dir) -> Sweep:
    """Reads every job folder (one with a job.json) of ``sweep_dir`` and the planned jobs of its
    sweep_jobs.json, derives the labels (jobs of one label that ran with different settings get
    them in their label, :func:`split_by_settings`) and marks duplicates of a label and seed as
    superseded by the one that finished (else started) last; a planned job never started is
    superseded by a started one of its label and seed.

    Raises:
        ValueError: if ``sweep_dir`` is not a folder or holds no job folder.
    """

    directory = Path(sweep_dir)
    expected = "a sweep folder with one sub-folder per job, each holding a job.json"
    if not directory.is_dir():
        raise ValueError(f"{str(directory)!r} is not a folder; expected {expected}.")
    jobs = {job.name: job for job in map(_load_job, sorted(directory.glob(f"*/{JOB_FILE}")))}
    planned_path = directory / PLANNED_FILE
    planned = _read_json(planned_path).get("jobs", {}) if planned_path.is_file() else {}
    if not jobs:
        note = f" ({len(planned)} planned in {PLANNED_FILE}, none started)" if planned else ""
        raise ValueError(f"No job found in {str(directory)!r}{note}; expected {expected}.")
    for name, entry in planned.items():
        jobs.setdefault(name, _new_job(name, entry))
    sweep = Sweep(directory, sorted(jobs.values(), key=lambda job: job.name))
    derive_labels(sweep.jobs)
    split_by_settings(sweep.jobs)
    # a planned job that never started counts as older than any started one
    for _, same in itertools.groupby(sorted(sweep.jobs, key=_label_seed), key=_label_seed):
        same = sorted(same, key=lambda j: (j.directory is not None, _timestamp(j.last_time)))
        for job in same[:-1]:
            job.superseded_by = same[-1].name
    return sweep


def _last(rows: List[dict], key: str) -> float:
    return next((row[key] for row in reversed(rows) if _finite(row.get(key))), NAN)


def _mean(values: Sequence[float]) -> float:
    return mean_std(values)[0]


def _first_reaching(rows: List[dict], key: str, target: float) -> Optional[dict]:
    return next((r for r in rows if _finite(r.get(key)) and r[key] >= target), None)


def _after_first(rows: List[dict], key: str) -> float:
    """Mean of ``key`` over the epochs after the first (warm-up), or over all with one epoch."""
    return _mean([row.get(key) for row in (rows[1:] or rows)])


def _fmt(value, digits: int = 1) -> str:
    return f"{value:.{digits}f}" if _finite(value) else "-"


def _pm(values: Sequence[float], digits: int = 1) -> str:
    mean, std = mean_std(values)
    return "-" if not _finite(mean) else f"{mean:.{digits}f} ± {_fmt(std, digits)}"


def _by_label(jobs: Sequence[Job]) -> Dict[str, List[Job]]:
    return {
        label: list(group)
        for label, group in itertools.groupby(sorted(jobs, key=_label_seed), key=lambda j: j.label)
    }


def ran_with_cells(groups: Dict[str, List[Job]]) -> Dict[str, str]:
    """Per label, the settings its jobs ran with that differ from another label's (a method's
    own ``method_kwargs``: from another label of the same method) or that the host resolved
    from a placeholder (FroSSL's ``proj_output_dim: auto``), as ``key=value`` pairs;
    ``(planned)`` where the jobs recorded none and the sweep's planned values are shown."""

    jobs_of = {
        label: [job for job in jobs if job.ran_with is not None] for label, jobs in groups.items()
    }
    short = _short_keys([job for jobs in groups.values() for job in jobs])
    values: Dict[str, Dict[str, set]] = {}
    order: Dict[str, int] = {}
    for label, jobs in jobs_of.items():
        values[label] = {}
        for job in jobs:
            for key, value in job.ran_with.items():
                order.setdefault(key, len(order))
                values[label].setdefault(key, set()).add(setting_text(value))
    methods = {label: {job.method for job in jobs} for label, jobs in groups.items()}
    cells = {}
    for label, jobs in groups.items():
        if not jobs_of[label]:
            cells[label] = "not recorded"
            continue
        resolved = {key for job in jobs_of[label] for key in job.resolved_keys}
        shown = []
        for key in sorted(values[label], key=order.get):
            others = [
                other
                for other in groups
                if other != label
                and key in values[other]
                and (not key.startswith("method_kwargs.") or methods[other] & methods[label])
            ]
            if key in resolved or any(values[o][key] != values[label][key] for o in others):
                shown.append(f"{short[key]}={'/'.join(sorted(values[label][key]))}")
        cell = " ".join(shown) or "-"
        sources = {job.ran_with_source for job in jobs_of[label]}
        if sources == {"plan"}:
            cell += " (planned)"
        elif "plan" in sources or len(jobs_of[label]) < len(jobs):
            cell += " (partly planned or not recorded)"
        if any(job.disagreements for job in jobs):
            cell += " (not as planned, see below)"
        cells[label] = cell
    return cells


def memory_cell(jobs: Sequence[Job], tagged) -> str:
    """The largest peak memory over the epochs and seeds of ``jobs``, one value per kind of
    measurement, each followed by its tag where ``tagged(kind)``."""

    peaks: Dict[MemoryKind, float] = {}
    for row in (row for job in jobs for row in job.rows if _finite(row.get("peak_memory_mib"))):
        kind, value = memory_kind(row), row["peak_memory_mib"]
        peaks[kind] = max(peaks[kind], value) if kind in peaks else value
    if not peaks:
        return "-"
    return " / ".join(
        _fmt(peak, 0) + (f" ({kind.tag})" if tagged(kind) else "") for kind, peak in peaks.items()
    )


def _settings_flags(sweep: Sweep) -> List[str]:
    """Lines on finished jobs that ran with settings other than planned, or recorded none."""

    short = _short_keys(sweep.jobs)
    lines = []
    for job in sweep.finished:
        where = f"{job.name} ({job.label}, seed {job.seed})"
        if job.disagreements:
            differences = ", ".join(
                f"{short.get(key, key)}={setting_text(pair.get('ran'))} (planned "
                f"{setting_text(pair.get('planned'))})"
                for key, pair in sorted(job.disagreements.items())
            )
            lines.append(f"- {where}: ran with {differences}")
        if job.ran_with_source != "job":
            shown = "the planned settings are shown" if job.ran_with else "none is shown"
            why = job.ran_with_note or "its done.json records no settings"
            lines.append(f"- {where}: no record of the settings it ran with ({why}); {shown}")
    return lines


def _number(value: float, digits: int = 1) -> str:
    return f"{value:.{digits}f}" if _finite(value) else "-"


def statistics_markdown(finals: Dict[str, List[float]], name: str) -> List[str]:
    """The summary's statistics of the final ``name`` of every label: a 95 % Student-t interval
    per label, and for every pair the difference of means, its 95 % Welch interval and Welch's
    t-test (frossl_plugin/compare/statistics.py, scipy.stats on pandas tables)."""

    import pandas as pd

    from frossl_plugin.compare import statistics as tests

    table = pd.DataFrame(
        [(label, value) for label, values in finals.items() for value in values],
        columns=["label", "value"],
    )
    lines = [
        "## Statistics",
        "",
        f"Final {name} over seeds. Per label: mean, sample std, 95 % Student-t interval of the "
        f"mean, range. Per pair: difference of means (first minus second), its 95 % interval "
        f"and p-value from {tests.TEST_NAME}.",
        "",
        "| label | n | mean | std | 95 % interval | range |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    labels = tests.label_table(table) if len(table) else pd.DataFrame()
    for label, row in labels.iterrows():
        interval = f"{_number(row['ci_low'])} to {_number(row['ci_high'])}"
        spread = f"{_number(row['min'])}-{_number(row['max'])}"
        lines.append(
            f"| {label} | {int(row['n'])} | {_number(row['mean'])} | {_number(row['std'])} | "
            f"{interval} | {spread} |"
        )
    lines += [
        "",
        "| first | second | difference | 95 % interval | Welch df | p | reading |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    pairs = tests.pair_table(table) if len(table) else pd.DataFrame()
    for _, pair in pairs.iterrows():
        reading = tests.verdict(pair.to_dict(), pair["a"], pair["b"])
        p_value = f"{pair['p_value']:.3g}" if _finite(pair["p_value"]) else "-"
        lines.append(
            f"| {pair['a']} | {pair['b']} | {_number(pair['difference'])} | "
            f"{_number(pair['ci_low'])} to {_number(pair['ci_high'])} | "
            f"{_number(pair['df'])} | {p_value} | {reading} |"
        )
    if len(labels) < 2:
        lines.append("| - | - | - | - | - | - | fewer than two labels have a finished job |")
    fewest = int(labels["n"].min()) if len(labels) else 0
    if 0 < fewest < tests.FEW_SEEDS:
        lines += [
            "",
            f"With {fewest} seed(s) on a label the test has little power: a difference it does "
            "not detect may still be real, and the intervals are wide.",
        ]
    return lines


def summary_markdown(sweep: Sweep, target: float, target_source: str, metric: str) -> str:
    """The Markdown summary: context, one row per label over its finished jobs, the jobs that
    ran with settings other than planned, the statistics of the labels' final ``metric``
    (``online_acc1`` or ``knn_acc1``), the tuning (when the sweep was tuned) and the missing
    jobs."""

    groups = _by_label(sweep.finished)
    kinds = {memory_kind(row) for job in sweep.finished for row in job.rows}

    def tagged(kind: MemoryKind) -> bool:  # a process high-water mark, or kinds to tell apart
        return not kind.job_own or len(kinds) > 1

    settings = ran_with_cells(groups)
    name = dict(TARGET_METRICS.values())[metric]
    lines = ["# Sweep report", ""]
    lines += [
        f"- sweep: {sweep.directory.resolve()}",
        f"- date: {datetime.datetime.now().isoformat(timespec='seconds')}",
        f"- machine (of this report): {machine_description()}",
        f"- jobs finished: {len(sweep.finished)} of {len(sweep.finished) + len(sweep.missing)}",
        f"- target: {name} >= {_fmt(target, 2)} % ({target_source})",
        "",
        "| label | seeds | final online top-1 (%) | final kNN top-1 (%) | epochs to target "
        "| wall time to target (s) | mean step time (ms) | images/s | peak memory (MiB) "
        "| ran with |",
        "|" + " --- |" * 10,
    ]
    finals = {}
    for label, jobs in groups.items():
        reached = [_first_reaching(j.rows, metric, target) for j in jobs] if _finite(target) else []
        reached = [row for row in reached if row]
        finals[label] = [_last(job.rows, metric) for job in jobs]
        seeds = ", ".join(str(job.seed) for job in jobs)
        cells = [
            label,
            f"{len(jobs)}: {seeds}",
            _pm([_last(j.rows, "online_acc1") for j in jobs]),
            _pm([_last(j.rows, "knn_acc1") for j in jobs]),
            f"{_pm([r['epoch'] for r in reached])} ({len(reached)}/{len(jobs)} reached)",
            _pm([r["training_time_s"] for r in reached]),
            _fmt(1000 * _mean([_after_first(j.rows, "step_time_s") for j in jobs])),
            _fmt(_mean([_after_first(j.rows, "images_per_s") for j in jobs])),
            memory_cell(jobs, tagged),
            settings[label],
        ]
        lines.append("| " + " | ".join(cells) + " |")
    memory = "; ".join(
        (f"'{kind.tag}': " if tagged(kind) else "") + kind.note
        for kind in sorted(kinds, key=lambda kind: (not kind.job_own, kind.tag))
    )
    lines += [
        "",
        "Mean ± sample std over the seeds of a label (std '-' with one seed). Final accuracy: "
        "the last recorded value of each seed. Epochs and wall time to target: the first epoch "
        "whose accuracy reaches the target, over the seeds that reached it; wall time is the "
        "time spent training up to that epoch, from the start of the job's fit, summed over "
        "its parts where it was stopped and resumed (the time it was stopped, and epochs a "
        "resumed part trained again, are not counted). Step time and images/s: epochs after "
        "the first, averaged "
        "over seeds. Peak memory, the largest over epochs and seeds: "
        f"{memory or 'none recorded'}. Ran with: the settings the jobs ran with, from the "
        "config the host parsed (its args.json), that differ from another label's (a method's "
        "own method_kwargs: from another label of the same method) or that the host resolved "
        "from a placeholder (FroSSL's proj_output_dim: auto); jobs of one label that ran with "
        "different settings get them in their label. runs.csv has every epoch of every job "
        "once (a resumed job's parts joined), unfinished and superseded ones included.",
    ]
    flags = _settings_flags(sweep)
    if flags:
        lines += ["", "## Settings not as planned or not recorded", ""] + flags
    lines += [""] + statistics_markdown(finals, name)
    from frossl_plugin.compare.tuning import read_selection, selection_markdown

    selection = read_selection(sweep.directory)
    if selection:
        lines += [""] + selection_markdown(selection)
    lines += ["", "## Missing jobs", ""]
    for job in sweep.missing:
        epochs = f"{len(job.rows)} epoch" + ("s" if len(job.rows) != 1 else "")
        why = f"unfinished ({epochs} recorded)" if job.directory else "not started"
        lines.append(f"- {job.name} ({job.label}, seed {job.seed}): {why}")
    for job in (job for job in sweep.jobs if job.superseded_by):
        lines.append(
            f"- {job.name} ({job.label}, seed {job.seed}): superseded by "
            f"{job.superseded_by} (same label and seed, finished or started later)"
        )
    if lines[-1] == "":
        lines.append("None: every planned job finished.")
    return "\n".join(lines) + "\n"


def write_csv(sweep: Sweep, path: Path) -> Path:
    """``path``: one row per recorded epoch of every started job, with its job columns."""

    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        for job in (job for job in sweep.jobs if job.directory):
            ran_with = json.dumps(job.ran_with) if job.ran_with is not None else ""
            values = (job.name, job.label, job.method, job.seed, job.finished)
            values += (job.superseded_by or "", ran_with, job.ran_with_source)
            head = dict(zip(JOB_COLUMNS, values))
            for row in job.rows:
                writer.writerow({**head, **{key: row.get(key, "") for key in EPOCH_COLUMNS}})
    return path


def _seed_curves(jobs: Sequence[Job], values_of) -> tuple:
    """(epochs that every job has, one list of values per job) of ``values_of(job)``, a
    ``{epoch: value}`` dict."""

    per_job = [values_of(job) for job in jobs]
    epochs = sorted(set.intersection(*(set(values) for values in per_job)))
    return epochs, [[values[epoch] for epoch in epochs] for values in per_job]


def _column(key: str):
    return lambda job: {row["epoch"]: row.get(key, NAN) for row in job.rows}


def _rankme(layer: str):
    return lambda job: {
        e: r.get("rankme", NAN) for (e, name), r in job.spectra.items() if name == layer
    }


def _relative_loss(job: Job) -> Dict[int, float]:
    relative = relative_to_first([row.get("train_loss", NAN) for row in job.rows])
    return {row["epoch"]: value for row, value in zip(job.rows, relative or [NAN] * len(job.rows))}


def write_plots(sweep: Sweep, out: Path, target: float, metric: str) -> List[Path]:
    """accuracy_vs_epoch.png, accuracy_vs_time.png and effective_rank.png of the finished jobs,
    one band per label; the target drawn on the panel of ``metric`` only.

    Returns:
        List[Path]: the files written; empty when matplotlib is missing.
    """

    if not plots_available():
        print(f"report: no plots, matplotlib is not installed ({install_hint('compare')})")
        return []
    from frossl_plugin.plots import plot_bands

    accuracy = [("online_acc1", "online linear top-1 (%)"), ("knn_acc1", "kNN top-1 (%)")]
    loss = ("train_loss", "training loss / |first-epoch loss|")
    ranks = [(layer, f"RankMe effective rank, {layer}") for layer in LAYERS]
    by_epoch, by_time, by_rank = {}, {}, {}
    for label, jobs in _by_label(sweep.finished).items():
        by_epoch[label] = {key: _seed_curves(jobs, _column(key)) for key, _ in accuracy}
        by_epoch[label]["train_loss"] = _seed_curves(jobs, _relative_loss)
        # x: the training time of each epoch averaged over seeds (all curves have the same
        # epochs), summed over the parts of a resumed job
        wall = [_mean(times) for times in zip(*_seed_curves(jobs, _column("training_time_s"))[1])]
        by_time[label] = {key: (wall, by_epoch[label][key][1]) for key, _ in accuracy}
        by_rank[label] = {layer: _seed_curves(jobs, _rankme(layer)) for layer in LAYERS}
    target = target if _finite(target) else None
    figures = [
        (by_epoch, accuracy + [loss], "accuracy_vs_epoch.png", "epoch", "accuracy against epoch"),
        (
            by_time,
            accuracy,
            "accuracy_vs_time.png",
            "mean training time (s)",
            "accuracy against time",
        ),
    ]
    if any(curves[layer][0] for curves in by_rank.values() for layer in LAYERS):
        figures.append((by_rank, ranks, "effective_rank.png", "epoch (0 = before training)", ""))
    return [
        plot_bands(groups, panels, out / name, x_label, title, target, metric)
        for groups, panels, name, x_label, title in figures
    ]


def _write_report(sweep: Sweep, target_acc, target_fraction: float, target_metric: str):
    if target_metric not in TARGET_METRICS:
        raise ValueError(
            f"target_metric {target_metric!r}: expected one of {list(TARGET_METRICS)}."
        )
    metric, name = TARGET_METRICS[target_metric]
    if target_acc is not None:
        target, source = float(target_acc), "given"
    else:
        means = {
            label: mean_std([_last(j.rows, metric) for j in jobs])[0]
            for label, jobs in _by_label(sweep.finished).items()
        }
        means = {label: mean for label, mean in means.items() if _finite(mean)}
        best = max(means, key=means.get, default=None)
        target = target_fraction * means[best] if best else NAN
        source = f"no finished job has a final {name}"
        if best:
            source = f"{target_fraction:g} x the best label mean, {best}: {means[best]:.2f} %"
    summary = sweep.directory / "summary.md"
    summary.write_text(summary_markdown(sweep, target, source, metric))
    written = [write_csv(sweep, sweep.directory / "runs.csv"), summary]
    return written + write_plots(sweep, sweep.directory, target, metric)


def write_report(
    sweep_dir,
    target_acc: Optional[float] = None,
    target_fraction: float = 0.9,
    target_metric: str = "online",
) -> List[Path]:
    """Writes runs.csv, summary.md and (with matplotlib) the band plots into ``sweep_dir``.

    Args:
        sweep_dir: the sweep folder (one sub-folder with a job.json per job).
        target_acc (Optional[float]): target accuracy in %; None: ``target_fraction`` x the best
            label mean of the final ``target_metric``.
        target_fraction (float): share of the best label mean used when ``target_acc`` is None.
        target_metric (str): ``online`` (online linear top-1) or ``knn`` (kNN top-1).

    Returns:
        List[Path]: the files written.

    Raises:
        ValueError: if ``sweep_dir`` holds no job or ``target_metric`` is unknown.
    """

    return _write_report(load_sweep(sweep_dir), target_acc, target_fraction, target_metric)


def _run_report(args: argparse.Namespace) -> int:
    sweep = load_sweep(args.sweep_dir)
    written = _write_report(sweep, args.target_acc, args.target_fraction, args.target_metric)
    print("Wrote " + ", ".join(str(path) for path in written))
    if sweep.missing:
        total = len(sweep.missing) + len(sweep.finished)
        print(f"{len(sweep.missing)} of {total} planned jobs have not finished (see summary.md).")
    return 0


def add_report(commands) -> None:
    """Adds the ``report`` subcommand to the ``frossl-plugin`` subparsers ``commands``."""

    parser = commands.add_parser(
        "report",
        help="summarize a sweep: mean ± std over seeds per variant, CSV and band plots",
        description="Reads SWEEP_DIR (a Hydra multirun folder: one sub-folder per job with "
        "job.json, epoch_stats.jsonl and, when finished, done.json) and writes there runs.csv, "
        f"summary.md and, with matplotlib, {PLOT_FILES}. Works on an unfinished sweep. The "
        "target accuracy is --target-acc, else F x the best variant's mean final top-1 of "
        "--target-metric: online linear classifier or kNN.",
    )
    parser.add_argument("sweep_dir", metavar="SWEEP_DIR", help="the sweep folder")
    parser.add_argument("--target-acc", type=float, metavar="X", help="target top-1 in %%")
    parser.add_argument(
        "--target-fraction", type=float, default=0.9, metavar="F", help="share of the best (0.9)"
    )
    parser.add_argument(
        "--target-metric", choices=sorted(TARGET_METRICS), default="online", help="(online)"
    )
    parser.set_defaults(run=_run_report)
