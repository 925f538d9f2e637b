"""Runs one host pretraining per method, in subprocesses, with a progress bar and resume.

SIGINT and SIGTERM stop a comparison cleanly: the running host process and its process group
(its data-loader workers) are terminated, then killed after a grace period; finished methods
keep their ``done.json``, and the next run clears and retrains the interrupted one.
"""

import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterator, List, Optional

CONFIG_NAME = "pretrain.yaml"
STATS_FILE = "epoch_stats.jsonl"
DONE_FILE = "done.json"
LOG_FILE = "train.log"
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
STOP_GRACE_S = 5.0  # seconds a stopped host process gets to exit before it is killed


def config_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def read_jsonl(path: Path) -> List[dict]:
    if not path.is_file():
        return []
    with path.open() as handle:
        return [json.loads(line) for line in handle if line.strip()]


@dataclass
class MethodRun:
    """One method of a comparison: its folder, its config text and where its settings came
    from."""

    method: str
    directory: Path
    config_text: str
    settings_source: str

    @property
    def done_path(self) -> Path:
        return self.directory / DONE_FILE

    def is_done(self) -> bool:
        """True when a finished run with the same config is in the folder.

        Raises:
            ValueError: if the finished run used another config.
        """

        if not self.done_path.is_file():
            return False
        done = json.loads(self.done_path.read_text())
        if done.get("config_hash") != config_hash(self.config_text):
            raise ValueError(
                f"{str(self.directory)!r} holds a finished {self.method} run with other settings; "
                "pass --force to retrain, or choose another --out."
            )
        return True

    def prepare(self) -> None:
        """Clears an unfinished earlier attempt and writes the config."""

        if self.directory.exists():
            if any(self.directory.iterdir()) and not (self.directory / CONFIG_NAME).is_file():
                raise ValueError(
                    f"{str(self.directory)!r} exists and was not written by a comparison; "
                    "choose another --out."
                )
            shutil.rmtree(self.directory)
        self.directory.mkdir(parents=True)
        (self.directory / CONFIG_NAME).write_text(self.config_text)

    def command(self, host_root: Path) -> List[str]:
        return [
            sys.executable,
            str(host_root / "main_pretrain.py"),
            "--config-path",
            str(self.directory.resolve()),
            "--config-name",
            CONFIG_NAME,
        ]


def host_env(host_root: Path) -> Dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(host_root), env.get("PYTHONPATH")]))
    env.setdefault("WANDB_MODE", "disabled")
    return env


def _tail(path: Path, lines: int = 30) -> str:
    if not path.is_file():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def _progress(total: int):
    try:
        from tqdm import tqdm
    except ImportError:  # a plain fallback
        return None
    return tqdm(total=total, unit="epoch", desc="compare", dynamic_ncols=True)


class Stopped(Exception):
    """A comparison stopped by SIGINT or SIGTERM (see :func:`run_all`)."""

    def __init__(
        self,
        signum: int,
        method: Optional[str],
        epochs_seen: int,
        epochs: int,
        finished: List[str],
        remaining: List[str],
    ):
        self.signum = signum
        self.method = method  # the method that was training, or None between methods
        self.epochs_seen = epochs_seen
        self.epochs = epochs
        self.finished = finished  # methods with a done.json, untouched
        self.remaining = remaining  # methods not finished, the stopped one included
        super().__init__(self.message())

    @property
    def signal_name(self) -> str:
        return signal.Signals(self.signum).name

    @property
    def exit_code(self) -> int:
        """128 + the signal number, the shell's convention (130 for SIGINT, 143 for SIGTERM)."""

        return 128 + self.signum

    def message(self) -> str:
        if self.method is not None:
            what = (
                f"stopped {self.method} and its host processes after {self.epochs_seen}/"
                f"{self.epochs} epochs (it restarts from scratch next time)"
            )
        else:
            what = "no method was training"
        kept = ", ".join(self.finished) if self.finished else "none"
        left = ", ".join(self.remaining) if self.remaining else "none"
        return (
            f"compare: stopped by {self.signal_name}: {what}; finished methods kept: {kept}; "
            f"not finished: {left}. Rerun the same command to resume."
        )


class _StopRequest:
    """The first stop signal received, or None."""

    signum: Optional[int] = None


@contextlib.contextmanager
def catch_stop_signals() -> Iterator[_StopRequest]:
    """While active, SIGINT and SIGTERM only record themselves in the yielded request (checked
    by the caller at safe points); the previous handlers are restored on exit. Outside the main
    thread, where Python cannot install signal handlers, nothing is installed."""

    request = _StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield request
        return

    def record(signum, frame):
        if request.signum is None:
            request.signum = signum

    previous = {signum: signal.signal(signum, record) for signum in STOP_SIGNALS}
    try:
        yield request
    finally:
        for signum, handler in previous.items():
            # None: a handler not installed from Python; the default is the closest match
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)


def _signal_group(pgid: int, signum: int) -> None:
    try:
        os.killpg(pgid, signum)
    except ProcessLookupError:  # the whole group has exited already
        pass


def stop_process_group(process: subprocess.Popen, grace_s: float = STOP_GRACE_S) -> None:
    """Stops ``process`` and everything in its process group (it must have been started with
    ``start_new_session=True``, so its group id is its pid): SIGTERM to the group, up to
    ``grace_s`` seconds for the process to exit, then SIGKILL to whatever is left in the group
    (the process or its data-loader workers). Reaps ``process``."""

    pgid = process.pid
    if process.poll() is None:
        _signal_group(pgid, signal.SIGTERM)
        try:
            process.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            pass
    _signal_group(pgid, signal.SIGKILL)
    process.wait()


def _write_done(run: MethodRun, seconds: float) -> None:
    """``done.json``, written whole or not at all (a stop signal cannot leave half of it)."""

    record = {
        "config_hash": config_hash(run.config_text),
        "seconds": seconds,
        "settings_source": run.settings_source,
    }
    partial = run.done_path.with_name(DONE_FILE + ".partial")
    partial.write_text(json.dumps(record))
    os.replace(partial, run.done_path)


def run_all(
    runs: List[MethodRun],
    host_root: Path,
    epochs: int,
    force: bool = False,
    poll_s: float = 1.0,
    grace_s: float = STOP_GRACE_S,
) -> Dict[str, str]:
    """Trains every method not finished yet, one subprocess at a time.

    Each host process runs in its own session and process group. On SIGINT or SIGTERM (caught
    while this runs; the previous handlers are restored afterwards) the running one is stopped
    with :func:`stop_process_group`, its folder is left without ``done.json`` (so the next run
    clears and retrains it), and :class:`Stopped` is raised. Any other exception also stops the
    running host process before it propagates.

    Returns:
        Dict[str, str]: method -> ``"done"``, ``"skipped"`` (finished before) or ``"failed"``.

    Raises:
        Stopped: on SIGINT or SIGTERM.
    """

    status: Dict[str, str] = {}
    pending = []
    for run in runs:
        if force and run.done_path.is_file():
            run.done_path.unlink()
        if run.is_done():
            status[run.method] = "skipped"
        else:
            pending.append(run)

    def stopped(method: Optional[str], seen: int) -> Stopped:
        finished = [r.method for r in runs if status.get(r.method) in ("done", "skipped")]
        remaining = [r.method for r in runs if r.method not in finished]
        return Stopped(stop.signum, method, seen, epochs, finished, remaining)

    bar = _progress(len(runs) * epochs)
    completed = (len(runs) - len(pending)) * epochs
    if bar is not None:
        bar.update(completed)
    try:
        with catch_stop_signals() as stop:
            for run in pending:
                if stop.signum is not None:  # arrived between two methods
                    raise stopped(None, 0)
                _run_one(run, host_root, epochs, status, bar, poll_s, grace_s, stop, stopped)
            if stop.signum is not None:  # arrived as the last method ended: honoured too
                raise stopped(None, 0)
    finally:
        if bar is not None:
            bar.close()
    return status


def _run_one(run, host_root, epochs, status, bar, poll_s, grace_s, stop, stopped) -> None:
    """Trains one method in a host subprocess; records its status (and done.json)."""

    run.prepare()
    stats_path = run.directory / STATS_FILE
    start = time.perf_counter()
    seen = 0
    with (run.directory / LOG_FILE).open("w") as log:
        process = subprocess.Popen(
            run.command(host_root),
            cwd=run.directory,
            env=host_env(host_root),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stopped with its workers
        )
        try:
            while True:
                returncode = process.poll()
                records = read_jsonl(stats_path)
                if len(records) > seen:
                    last = records[-1]["metrics"]
                    if bar is not None:
                        bar.update(len(records) - seen)
                        acc = last.get("val_acc1")
                        bar.set_postfix_str(
                            f"{run.method} epoch {len(records)}"
                            + (f" acc1 {acc:.1f}" if acc is not None else "")
                        )
                    else:
                        print(f"compare: {run.method} epoch {len(records)}/{epochs}", flush=True)
                    seen = len(records)
                if returncode is not None:
                    break
                if stop.signum is not None:
                    raise stopped(run.method, seen)
                time.sleep(poll_s)
        except BaseException:
            stop_process_group(process, grace_s)
            raise
    if returncode == 0 and seen >= epochs:
        status[run.method] = "done"
        _write_done(run, time.perf_counter() - start)
    else:
        status[run.method] = "failed"
        message = (
            f"compare: {run.method} failed (exit code {returncode}, {seen}/{epochs} epochs); "
            f"log {run.directory / LOG_FILE}:\n{_tail(run.directory / LOG_FILE)}"
        )
        if bar is not None:
            bar.write(message)
        else:
            print(message, flush=True)
