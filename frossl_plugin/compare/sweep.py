"""The jobs of a comparison sweep, on both sides of Hydra's launcher.

The sweeper (``hydra/sweeper=frossl_resumable``, hydra_plugins/frossl_plugin/frossl_sweeper.py)
composes every job's config before launching, names its folder
``<method>_seed<seed>_<config hash>`` and skips jobs whose folder holds ``done.json`` for the
same config. Inside each job, the plugin's Hydra callback calls :func:`start_job` and
:func:`finish_job`, which write ``job.json``, ``resolved_config.yaml`` and, once the job
completed, ``done.json``. Imports only the standard library and OmegaConf at the top.
"""

import datetime
import hashlib
import json
import os
import shutil
import signal
import socket
import threading
import time
from pathlib import Path
from typing import Any, List, Optional, Sequence

from omegaconf import DictConfig, OmegaConf

SWEEPER_TARGET = "hydra_plugins.frossl_plugin.frossl_sweeper.ResumableSweeper"
JOB_FILE = "job.json"
DONE_FILE = "done.json"
PLAN_FILE = "sweep_jobs.json"
RESOLVED_CONFIG = "resolved_config.yaml"
# what an unfinished attempt leaves behind; removed when the job reruns
ATTEMPT_OUTPUTS = ("epoch_stats.jsonl", "spectrum", "trained_models", "lightning_logs", DONE_FILE)
# "host:pid:start time" of the process that launched the sweep; jobs on this machine stop
# when it is gone (joblib workers and submitit_local processes would otherwise train on)
OWNER_ENV = "FROSSL_SWEEP_OWNER"
OWNER_POLL_S = 2.0
STOP_GRACE_S = 30.0


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def task_config(config: DictConfig) -> DictConfig:
    """``config`` without its ``hydra`` section: what the host's script receives."""

    task = OmegaConf.masked_copy(config, [key for key in config if key != "hydra"])
    return task


def config_hash(config: DictConfig) -> str:
    """Hash of the job's task config as composed (interpolations unresolved)."""

    text = OmegaConf.to_yaml(task_config(config), resolve=False, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


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


# --- the sweeper's side --------------------------------------------------------------------


class PlannedJob:
    def __init__(self, overrides: Sequence[str], config: DictConfig, sweep_dir: Path):
        self.overrides = list(overrides)
        self.digest = config_hash(config)
        self.name = job_name(config, self.digest)
        self.method = str(config.get("method"))
        self.seed = config.get("seed")
        self.label = config.get("label")  # as job.json records it, for jobs never started
        self.finished = is_finished(sweep_dir / self.name, self.digest)

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
    """Records SIGINT/SIGTERM during a sweep and turns them into exceptions at once."""

    def __init__(self):
        self.received: List[int] = []
        self._previous = {}

    def _handle(self, signum, frame):
        self.received.append(signum)
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        raise SystemExit(128 + signum)

    def __enter__(self):
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc_info):
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
    """Clears what an earlier, unfinished attempt left, writes ``job.json`` and
    ``resolved_config.yaml`` and, under a local parallel launcher, stops this job when the
    sweep's process is gone."""

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
    for name in ATTEMPT_OUTPUTS:
        path = job_dir / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    _write_json(
        job_dir / JOB_FILE,
        {
            "name": job_dir.name,
            "config_hash": config_hash(config),
            "method": str(config.get("method")),
            "seed": config.get("seed"),
            "label": config.get("label"),
            "overrides": list(config.hydra.overrides.task),
            "started_at": _now(),
            "pid": os.getpid(),
        },
    )
    (job_dir / RESOLVED_CONFIG).write_text(repeatable_config(task_config(config), job_dir))
    watch_owner(os.environ.get(OWNER_ENV))


def finish_job(config: DictConfig, job_return: Any) -> None:
    """Writes ``done.json`` when the job completed."""

    from hydra.core.utils import JobStatus

    if getattr(job_return, "status", None) != JobStatus.COMPLETED:
        return
    job_dir = Path(config.hydra.runtime.output_dir)
    started = read_json(job_dir / JOB_FILE) or {}
    _write_json(
        job_dir / DONE_FILE,
        {
            "config_hash": config_hash(config),
            "started_at": started.get("started_at"),
            "finished_at": _now(),
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
