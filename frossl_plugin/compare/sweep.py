"""The jobs of a comparison sweep, on both sides of Hydra's launcher.

The sweeper (``hydra/sweeper=frossl_resumable``, hydra_plugins/frossl_plugin/frossl_sweeper.py)
composes every job's config before launching, names its folder
``<method>_seed<seed>_<config hash>`` and skips jobs whose folder holds ``done.json`` for the
same config. The hash is that of the config the job will run with, as the host resolves it
(:func:`resolve_task`: the host's ``parse_cfg`` and the method's ``add_and_assert_specific_cfg``,
which turn FroSSL's ``proj_output_dim: auto`` into a width), so that a change of such a rule
gives new folders. Inside each job, the plugin's Hydra callback calls :func:`start_job` and
:func:`finish_job`, which write ``job.json``, ``resolved_config.yaml`` and, once the job trained
to its last epoch, ``done.json`` with the settings the host ran with (read from its
``args.json``). An unfinished job keeps what it wrote: run again, the host's ``auto_resume``
(compare.yaml enables it) continues it from the last checkpoint in its own folder.
Imports only the standard library and OmegaConf at the top.
"""

import datetime
import hashlib
import json
import math
import os
import signal
import socket
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, NamedTuple, Optional, Sequence, Tuple

from omegaconf import DictConfig, OmegaConf

SWEEPER_TARGET = "hydra_plugins.frossl_plugin.frossl_sweeper.ResumableSweeper"
JOB_FILE = "job.json"
DONE_FILE = "done.json"
PLAN_FILE = "sweep_jobs.json"
RESOLVED_CONFIG = "resolved_config.yaml"
# "host:pid:start time" of the process that launched the sweep; jobs on this machine stop
# when it is gone (joblib workers and submitit_local processes would otherwise train on)
OWNER_ENV = "FROSSL_SWEEP_OWNER"
OWNER_POLL_S = 2.0
STOP_GRACE_S = 30.0
# sections the host's parse_cfg adds only when one of its optional dependencies imports (DALI,
# UMAP): left out of a job's identity unless its config sets them, so that installing one does
# not rename every job
OPTIONAL_HOST_SECTIONS = ("dali", "auto_umap")
# where the host's Checkpointer writes the parsed config: <checkpoint.dir>/<method>/<version>/
HOST_ARGS_FILE = "args.json"
# the host's Checkpointer names the checkpoint of epoch e (0-based) "<name>-<version>-ep=<e>.ckpt"
HOST_CHECKPOINT = "*-ep={epoch}.ckpt"


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def task_config(config: DictConfig) -> DictConfig:
    """``config`` without its ``hydra`` section: what the host's script receives."""

    task = OmegaConf.masked_copy(config, [key for key in config if key != "hydra"])
    return task


def composed_hash(config: DictConfig) -> str:
    """Hash of the job's task config as composed (interpolations unresolved): a job's identity
    where the host cannot resolve its config."""

    text = OmegaConf.to_yaml(task_config(config), resolve=False, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


@dataclass
class Resolution:
    """A job's task config before and after the host resolved it."""

    composed: Optional[dict]  # interpolations resolved, before the host; None: unresolvable
    resolved: Optional[dict]  # as the host will run it; None: not resolved, see ``note``
    note: Optional[str] = None  # why ``resolved`` is None


def _describe(err: BaseException) -> str:
    where = traceback.extract_tb(err.__traceback__)
    place = f" at {Path(where[-1].filename).name}:{where[-1].lineno}" if where else ""
    return f"{type(err).__name__}{place}: {err}" if str(err) else f"{type(err).__name__}{place}"


def resolve_task(config: DictConfig) -> Resolution:
    """The task config of ``config`` as the host's ``main_pretrain.py`` will run it.

    A copy goes through the host's own path: ``solo.args.pretrain.parse_cfg`` (defaults, the
    number of large and small crops, the lr scaled by the batch and devices; for an image folder
    it counts the classes of ``data.train_path``), then
    ``METHODS[cfg.method].add_and_assert_specific_cfg`` (the method's defaults and resolution:
    FroSSL's ``proj_output_dim: auto`` becomes a width there), with FroSSL registered first.
    ``OPTIONAL_HOST_SECTIONS`` the config does not set are left out. ``config`` is not changed.

    Returns:
        Resolution: ``resolved`` None, with the reason in ``note``, when the host cannot be
        imported or fails on the config.
    """

    task = task_config(config)
    try:
        composed = OmegaConf.to_container(task, resolve=True)
    except Exception as err:
        return Resolution(None, None, f"its interpolations do not resolve ({_describe(err)})")
    try:
        from frossl_plugin.host import install

        install()  # FroSSL into METHODS
        from solo.args.pretrain import parse_cfg
        from solo.methods import METHODS
    except Exception as err:
        return Resolution(composed, None, f"the host cannot be imported ({_describe(err)})")
    method = composed.get("method")
    try:
        cfg = OmegaConf.create(composed)  # a copy: the host changes it
        OmegaConf.set_struct(cfg, False)  # as main_pretrain.py does: the host adds keys
        cfg = parse_cfg(cfg)
        if method not in METHODS:
            raise ValueError(f"method {method!r} is not among the host's {sorted(METHODS)}")
        cfg = METHODS[method].add_and_assert_specific_cfg(cfg)
        resolved = OmegaConf.to_container(cfg, resolve=True)
    except Exception as err:
        note = f"the host's parse_cfg or {method}.add_and_assert_specific_cfg failed on it"
        return Resolution(composed, None, f"{note} ({_describe(err)})")
    for key in OPTIONAL_HOST_SECTIONS:
        if key not in composed:
            resolved.pop(key, None)
    return Resolution(composed, resolved)


def resolved_hash(resolved: dict) -> str:
    """Hash of a task config as the host resolved it (:func:`resolve_task`)."""

    text = OmegaConf.to_yaml(OmegaConf.create(resolved), resolve=False, sort_keys=True)
    return hashlib.sha256(f"resolved by the host\n{text}".encode()).hexdigest()[:12]


def config_hash(config: DictConfig, resolution: Optional[Resolution] = None) -> str:
    """A job's identity: the hash of its task config as the host resolves it, so that the same
    command and rules always give the same hash (whatever the launcher) and a change of what
    the host makes of it (FroSSL's ``proj_output_dim: auto``, the lr scaling) a new one. Where
    the host cannot resolve it, the hash of the composed config (:func:`composed_hash`).

    Args:
        config (DictConfig): the job's composed config (its ``hydra`` section is left out).
        resolution (Optional[Resolution]): ``resolve_task(config)``, if already computed.
    """

    resolution = resolution or resolve_task(config)
    if resolution.resolved is None:
        return composed_hash(config)
    return resolved_hash(resolution.resolved)


def run_settings(cfg: Optional[dict]) -> Optional[Dict[str, Any]]:
    """The settings of a task config that the report shows and checks, by dotted key: every
    ``method_kwargs.<key>``, the target network's ``momentum.base_tau`` and ``momentum.final_tau``
    (methods with one, such as BYOL), ``optimizer.lr``, ``data.num_large_crops``,
    ``data.num_small_crops`` and ``augmentations.crop_size`` (one per pipeline); None for None.
    """

    if cfg is None:
        return None
    settings: Dict[str, Any] = {}
    for key, value in sorted((cfg.get("method_kwargs") or {}).items()):
        settings[f"method_kwargs.{key}"] = value
    for key in ("base_tau", "final_tau"):
        if key in (cfg.get("momentum") or {}):
            settings[f"momentum.{key}"] = cfg["momentum"][key]
    if "lr" in (cfg.get("optimizer") or {}):
        settings["optimizer.lr"] = cfg["optimizer"]["lr"]
    for key in ("num_large_crops", "num_small_crops"):
        if key in (cfg.get("data") or {}):
            settings[f"data.{key}"] = cfg["data"][key]
    pipelines = [item for item in cfg.get("augmentations") or [] if isinstance(item, dict)]
    if pipelines:
        settings["augmentations.crop_size"] = [item.get("crop_size") for item in pipelines]
    return settings


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        numbers = all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in (a, b))
        return numbers and math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    return a == b


def settings_disagreements(
    planned: Optional[Dict[str, Any]], ran: Optional[Dict[str, Any]]
) -> Dict[str, Dict[str, Any]]:
    """``{key: {"planned": ..., "ran": ...}}`` for every setting whose values differ; empty
    when either side is unknown (None)."""

    if planned is None or ran is None:
        return {}
    return {
        key: {"planned": planned.get(key), "ran": ran.get(key)}
        for key in sorted(set(planned) | set(ran))
        if not _same(planned.get(key), ran.get(key))
    }


def resolved_keys(
    composed: Optional[Dict[str, Any]], resolved: Optional[Dict[str, Any]]
) -> List[str]:
    """The settings the host resolved from a placeholder: composed as a string (FroSSL's
    ``proj_output_dim: auto``) and run with another value."""

    if composed is None or resolved is None:
        return []
    return sorted(
        key
        for key, value in composed.items()
        if isinstance(value, str) and key in resolved and resolved[key] != value
    )


def job_name(config: DictConfig, digest: str) -> str:
    return f"{config.get('method', 'job')}_seed{config.get('seed', 'none')}_{digest[:8]}"


def read_json(path: Path) -> Optional[dict]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _write_json(path: Path, record: dict) -> None:
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(record, indent=1) + "\n")
    temporary.replace(path)  # atomic: a reader never sees half a file


def is_finished(job_dir: Path, digest: str) -> bool:
    done = read_json(job_dir / DONE_FILE)
    return bool(done) and done.get("config_hash") == digest


def checkpoint_dir_problem(
    config: DictConfig, job_dir: Path, cwd: Optional[Path] = None
) -> Optional[str]:
    """Why the checkpoints of the job in ``job_dir`` would not be in its own folder; None when
    they are.

    The host's ``auto_resume`` resumes from the newest matching checkpoint under
    ``checkpoint.dir/<method>``, and :func:`trained_to_end` looks for the last epoch's there: in
    a sweep that folder must be the job's own, so that a job resumes from its own checkpoints
    only (the plugin's resumer also compares the whole config, see frossl_plugin/host/resume.py).
    A relative ``checkpoint.dir`` is relative to the job's working directory, its folder under
    ``hydra.job.chdir: true`` (compare.yaml).

    Args:
        config (DictConfig): the job's config, with its ``hydra`` section.
        job_dir (Path): the job's folder.
        cwd (Optional[Path]): the job's working directory; None: ``job_dir`` when
            ``hydra.job.chdir`` is true, else the current directory.
    """

    directory = OmegaConf.select(
        config, "checkpoint.dir", default="trained_models", throw_on_resolution_failure=False
    )
    if directory is None:
        return None  # not resolvable before the job runs: start_job checks it again
    path = Path(str(directory)).expanduser()
    if not path.is_absolute():
        if cwd is None:
            chdir = OmegaConf.select(config, "hydra.job.chdir", default=False)
            cwd = job_dir if chdir else Path.cwd()
        path = cwd / path
    path, job = path.resolve(), job_dir.resolve()
    if path == job or path.is_relative_to(job):
        return None
    return (
        f"checkpoint.dir={str(directory)!r} puts the checkpoints of job {job_dir.name} in "
        f"{path}, outside its folder {job}; expected a folder inside the job's own (a relative "
        "path such as compare.yaml's 'trained_models', with hydra.job.chdir=true), so that an "
        "unfinished job resumes from its own checkpoints only"
    )


def trained_to_end(config: DictConfig, work_dir: Path) -> Tuple[bool, str]:
    """Whether the job whose working directory is ``work_dir`` (its folder) trained to its last
    epoch, and if not, why not.

    That the host's script returned is not enough: a fit can end before ``max_epochs`` without
    an error (Lightning's ``max_time``; a SIGTERM, under Lightning versions whose fit returns
    after one). Evidence, each where it applies, all of which must agree:

    - the job's epoch records (``epoch_stats``), its parts joined
      (:func:`frossl_plugin.compare.report.join_parts`), reach epoch ``max_epochs``;
    - where checkpoints are enabled and the host saves the last epoch's
      (``checkpoint.frequency`` divides ``max_epochs - 1``), a complete checkpoint of that epoch
      is under ``checkpoint.dir/<method>``.

    With neither to look at, the job does not count as finished.

    Returns:
        Tuple[bool, str]: (finished, why not: empty when finished).
    """

    from frossl_plugin.compare.report import join_parts, read_jsonl
    from frossl_plugin.host.resume import is_complete_checkpoint

    max_epochs = OmegaConf.select(config, "max_epochs", default=None)
    if not isinstance(max_epochs, int) or isinstance(max_epochs, bool) or max_epochs < 1:
        return False, f"max_epochs={max_epochs!r} is not a number of epochs to check against"
    looked = False
    if OmegaConf.select(config, "epoch_stats.enabled", default=False):
        looked = True
        path = work_dir / str(OmegaConf.select(config, "epoch_stats.path") or "epoch_stats.jsonl")
        try:
            records = join_parts(read_jsonl(path))
        except ValueError as err:
            return False, f"its epoch records cannot be read ({err})"
        last = records[-1]["epoch"] if records else 0
        if last < max_epochs:
            return False, f"its epoch records ({path.name}) end at epoch {last} of {max_epochs}"
    frequency = OmegaConf.select(config, "checkpoint.frequency", default=1) or 1
    saves_last = isinstance(frequency, int) and (max_epochs - 1) % frequency == 0
    if OmegaConf.select(config, "checkpoint.enabled", default=False) and saves_last:
        looked = True
        directory = OmegaConf.select(config, "checkpoint.dir", default="trained_models")
        directory = work_dir / str(directory) / str(config.get("method"))
        pattern = HOST_CHECKPOINT.format(epoch=max_epochs - 1)
        # <method>/<version>/, or <method>/ itself where the host's logger has no version
        found = [*directory.glob(f"*/{pattern}"), *directory.glob(pattern)]
        if not any(is_complete_checkpoint(path) for path in found):
            return False, f"no complete checkpoint of epoch {max_epochs} in {directory}"
    if not looked:
        return False, (
            "neither epoch_stats nor checkpoints of its last epoch are enabled, so nothing shows "
            "that it trained to the end"
        )
    return True, ""


# --- the sweeper's side --------------------------------------------------------------------


class PlannedJob:
    """A job of the sweep: its overrides, identity (:func:`config_hash` of the config the host
    will run), folder name and the settings it is planned to run with."""

    def __init__(self, overrides: Sequence[str], config: DictConfig, sweep_dir: Path):
        self.overrides = list(overrides)
        self.resolution = resolve_task(config)
        self.digest = config_hash(config, self.resolution)
        self.name = job_name(config, self.digest)
        self.method = str(config.get("method"))
        self.seed = config.get("seed")
        self.label = config.get("label")  # as job.json records it, for jobs never started
        self.planned_with = run_settings(self.resolution.resolved)
        composed = run_settings(self.resolution.composed)
        self.resolved_keys = resolved_keys(composed, self.planned_with)
        self.finished = is_finished(sweep_dir / self.name, self.digest)

    @property
    def identity(self) -> str:
        """``resolved`` (hash of the config as the host resolves it) or ``composed``."""
        return "composed" if self.resolution.resolved is None else "resolved"

    def launch_overrides(self) -> List[str]:
        return self.overrides + [f"hydra.sweep.subdir={self.name}"]


def record_plan(sweep_dir: Path, jobs: List[PlannedJob]) -> None:
    """Adds the jobs to ``sweep_jobs.json``, the list the report checks for missing jobs."""

    plan = read_json(sweep_dir / PLAN_FILE) or {"jobs": {}}
    for job in jobs:
        plan["jobs"][job.name] = {
            "overrides": job.overrides,
            "method": job.method,
            "seed": job.seed,
            "label": job.label,
            "config_hash": job.digest,
            "identity": job.identity,
            "identity_note": job.resolution.note,
            "planned_with": job.planned_with,
            "resolved_keys": job.resolved_keys,
        }
    sweep_dir.mkdir(parents=True, exist_ok=True)
    _write_json(sweep_dir / PLAN_FILE, plan)


def owner_id(pid: Optional[int] = None) -> Optional[str]:
    """``host:pid:start time`` of a process (this one by default); None without /proc."""

    pid = os.getpid() if pid is None else pid
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    start_time = stat.rsplit(")", 1)[1].split()[19]  # field 22: start time in clock ticks
    return f"{socket.gethostname()}:{pid}:{start_time}"


class StopSignals:
    """Records SIGINT/SIGTERM during a sweep and turns them into exceptions at once.

    Python drops an exception raised in a finalizer, and a signal handler can run inside one
    (between two jobs, a DataLoader shuts its workers down in ``__del__``), so a stop could be
    lost and the sweep train on. Until the sweeper calls :meth:`stopping`, a received signal is
    therefore raised again every ``redeliver_s`` seconds, and :meth:`raise_if_received` turns a
    signal whose exception was dropped into the stop it asked for.
    """

    def __init__(self, redeliver_s: float = 2.0):
        self.received: List[int] = []
        self.redeliver_s = redeliver_s
        self._previous = {}
        self._active = False
        self._timer: Optional[threading.Timer] = None

    def _handle(self, signum, frame):
        self.received.append(signum)
        if not self._active:
            return
        if self._timer is None:
            self._timer = threading.Timer(self.redeliver_s, self._redeliver, args=(signum,))
            self._timer.daemon = True
            self._timer.start()
        self._raise(signum)

    @staticmethod
    def _raise(signum: int):
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        raise SystemExit(128 + signum)

    def _redeliver(self, signum: int):
        self._timer = None
        if self._active:
            os.kill(os.getpid(), signum)  # runs _handle again, in the main thread

    def raise_if_received(self):
        """Raises the stop of the first signal received, if any."""

        if self.received:
            self._raise(self.received[0])

    def stopping(self):
        """The stop reached the sweeper: no more redelivery, no more exceptions."""

        self._active = False
        if self._timer is not None:
            self._timer.cancel()

    def __enter__(self):
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._previous[signum] = signal.signal(signum, self._handle)
        self._active = True
        return self

    def __exit__(self, *exc_info):
        self.stopping()
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        return False

    @property
    def exit_code(self) -> int:
        return 128 + self.received[0]


# --- the job's side (called by the plugin's Hydra callback) ---------------------------------


def is_sweep_job(config: DictConfig) -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    hydra = HydraConfig.get() if HydraConfig.initialized() else None
    if hydra is None or hydra.mode != RunMode.MULTIRUN:
        return False
    return OmegaConf.select(config, "hydra.sweeper._target_") == SWEEPER_TARGET


def repeatable_config(task: DictConfig, job_dir: Path) -> str:
    """The job's resolved config as a stand-alone Hydra config with the plugin's callback."""

    document = {
        "defaults": ["_self_"],
        "hydra": {
            "output_subdir": None,
            "run": {"dir": "."},
            "callbacks": {
                "frossl_plugin": {"_target_": "frossl_plugin.hydra_callback.FroSSLPluginCallback"}
            },
        },
        **OmegaConf.to_container(task, resolve=True),
    }
    header = (
        f"# Resolved config of sweep job {job_dir.name}. Repeat it from a solo-learn checkout:\n"
        f"# python main_pretrain.py --config-path {job_dir} --config-name {RESOLVED_CONFIG}\n"
    )
    return header + OmegaConf.to_yaml(OmegaConf.create(document))


def start_job(config: DictConfig) -> None:
    """Writes ``job.json`` and ``resolved_config.yaml`` and, under a local parallel launcher,
    stops this job when the sweep's process is gone.

    What an earlier, unfinished attempt of the job wrote (checkpoints, epoch records, spectra,
    logs) is kept: the host's ``auto_resume`` continues from its last checkpoint, and the
    report joins the attempts' records. Only a ``done.json`` is removed (the job is not
    finished while it runs), and ``job.json`` keeps the first attempt's start.

    Raises:
        ValueError: for several devices outside SLURM, or a ``checkpoint.dir`` outside the job's
            folder (:func:`checkpoint_dir_problem`).
    """

    devices = config.get("devices")
    several = isinstance(devices, (list, tuple)) or OmegaConf.is_list(devices)
    if (several and len(devices) > 1) and "SLURM_NTASKS" not in os.environ:
        raise ValueError(
            f"devices={list(devices)} in a sweep job on this machine: Lightning's DDP launcher "
            "starts the other ranks by rerunning the command line, which here is the whole "
            "multirun. Run several-device jobs through hydra/launcher=submitit_slurm with "
            "hydra.launcher.tasks_per_node equal to the device count, or one at a time without "
            "-m (each job's resolved_config.yaml can be run by hand)."
        )
    job_dir = Path(config.hydra.runtime.output_dir)
    problem = checkpoint_dir_problem(config, job_dir, cwd=Path.cwd())
    if problem:
        raise ValueError(problem)
    (job_dir / DONE_FILE).unlink(missing_ok=True)
    planned = planned_entry(job_dir)
    # the sweeper's identity of this job; recomputed only for a job it did not plan
    digest = planned.get("config_hash") or config_hash(config)
    earlier = read_json(job_dir / JOB_FILE) or {}
    if earlier.get("config_hash") != digest:
        earlier = {}
    now, now_s = _now(), time.time()
    _write_json(
        job_dir / JOB_FILE,
        {
            "name": job_dir.name,
            "config_hash": digest,
            "method": str(config.get("method")),
            "seed": config.get("seed"),
            "label": config.get("label"),
            "overrides": list(config.hydra.overrides.task),
            "planned_with": planned.get("planned_with"),
            "resolved_keys": planned.get("resolved_keys") or [],
            # the first attempt's start, and how often and when last the job was started
            "started_at": earlier.get("started_at") or now,
            "started_at_s": earlier.get("started_at_s") or now_s,
            "starts": int(earlier.get("starts") or 1) + 1 if earlier else 1,
            "last_started_at": now,
            "pid": os.getpid(),
        },
    )
    (job_dir / RESOLVED_CONFIG).write_text(repeatable_config(task_config(config), job_dir))
    watch_owner(os.environ.get(OWNER_ENV))


def planned_entry(job_dir: Path) -> dict:
    """The sweep's ``sweep_jobs.json`` entry of the job in ``job_dir`` ({} if none)."""

    plan = read_json(job_dir.parent / PLAN_FILE) or {}
    entry = (plan.get("jobs") or {}).get(job_dir.name)
    return entry if isinstance(entry, dict) else {}


def _resolve_interpolations(args: dict) -> dict:
    try:
        return OmegaConf.to_container(OmegaConf.create(args), resolve=True)
    except Exception:
        return args  # as written: an interpolation that needs Hydra's runtime stays text


class HostArgs(NamedTuple):
    """The config a job's host ran with, as its ``args.json`` holds it."""

    config: Optional[dict]  # None: not found, see ``note``
    path: Optional[Path]
    note: Optional[str]


def host_args(config: DictConfig, since: Optional[float] = None) -> HostArgs:
    """The config the host ran with: the ``args.json`` its Checkpointer wrote into
    ``<checkpoint.dir>/<method>/<version>/`` (relative to the job's working directory) during
    this run, i.e. modified at or after ``since`` (seconds since the epoch). Outside the job's
    folder (an absolute ``checkpoint.dir`` that jobs share), only when it is the only one.
    """

    directory = Path(str(OmegaConf.select(config, "checkpoint.dir", default="trained_models")))
    directory = directory.absolute() / str(config.get("method"))
    found = [
        path
        for path in directory.glob(f"*/{HOST_ARGS_FILE}")
        if since is None or path.stat().st_mtime >= since - 1.0
    ]
    if not found:
        enabled = OmegaConf.select(config, "checkpoint.enabled", default=None)
        why = " (checkpoint.enabled is false)" if enabled is False else ""
        return HostArgs(None, None, f"the host wrote no {HOST_ARGS_FILE} under {directory}{why}")
    inside = directory.is_relative_to(Path(config.hydra.runtime.output_dir).absolute())
    if len(found) > 1 and not inside:
        names = ", ".join(sorted(str(path) for path in found))
        return HostArgs(None, None, f"several {HOST_ARGS_FILE} written during the job: {names}")
    path = max(found, key=lambda item: item.stat().st_mtime)
    args = read_json(path)
    if not isinstance(args, dict):
        return HostArgs(None, path, f"{path} is not a JSON object")
    return HostArgs(_resolve_interpolations(args), path, None)


def finish_job(config: DictConfig, job_return: Any) -> None:
    """Writes ``done.json`` when the job completed and trained to its last epoch
    (:func:`trained_to_end`), with the settings the host ran with (:func:`run_settings` of its
    ``args.json``) and, where they differ from those the sweep planned, the differences (also
    printed). A job that returned before its last epoch is left unfinished, with a message: the
    next run of the sweep resumes it."""

    from hydra.core.utils import JobStatus

    if getattr(job_return, "status", None) != JobStatus.COMPLETED:
        return
    job_dir = Path(config.hydra.runtime.output_dir)
    finished, why_not = trained_to_end(config, Path.cwd())
    if not finished:
        print(
            f"frossl-plugin: job {job_dir.name} returned before the end of its training "
            f"({why_not}); it is not marked finished, and running the sweep again resumes it.",
            file=sys.stderr,
            flush=True,
        )
        return
    started = read_json(job_dir / JOB_FILE) or {}
    ran, source, note = host_args(config, started.get("started_at_s"))
    ran_with = run_settings(ran)
    planned_with = started.get("planned_with")
    disagreements = settings_disagreements(planned_with, ran_with)
    if disagreements:
        print(
            f"frossl-plugin: job {job_dir.name} ran with settings other than the sweep planned "
            f"(its folder name and hash follow the plan): {json.dumps(disagreements)}",
            flush=True,
        )
    _write_json(
        job_dir / DONE_FILE,
        {
            "config_hash": started.get("config_hash") or config_hash(config),
            "started_at": started.get("started_at"),
            "finished_at": _now(),
            "ran_with": ran_with,
            "ran_with_source": os.path.relpath(source, job_dir) if source else None,
            "ran_with_note": note,
            "planned_with": planned_with,
            "resolved_keys": started.get("resolved_keys") or [],
            "disagreements": disagreements,
        },
    )


def watch_owner(owner: Optional[str], poll_s: float = OWNER_POLL_S) -> Optional[threading.Thread]:
    """Stops this process (SIGTERM, then exit 143) once the process ``owner`` names is gone.

    Only for an owner on this machine other than this process: a SLURM job, or the basic
    launcher's in-process job, is left alone.
    """

    if not owner or owner.count(":") != 2:
        return None
    host, pid, _ = owner.split(":")
    if host != socket.gethostname() or int(pid) == os.getpid():
        return None

    def watch():
        while owner_id(int(pid)) == owner:
            time.sleep(poll_s)
        print(f"frossl-plugin: the sweep's process {pid} is gone; stopping this job", flush=True)
        os.kill(os.getpid(), signal.SIGTERM)  # Lightning stops after the current batch
        time.sleep(STOP_GRACE_S)
        os._exit(143)

    thread = threading.Thread(target=watch, name="frossl-sweep-owner", daemon=True)
    thread.start()
    return thread
