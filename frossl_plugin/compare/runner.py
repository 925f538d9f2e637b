"""Runs one host pretraining per method, in subprocesses, with a progress bar and resume."""

import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional

CONFIG_NAME = "pretrain.yaml"
STATS_FILE = "epoch_stats.jsonl"
DONE_FILE = "done.json"
LOG_FILE = "train.log"


def find_host(path: Optional[str] = None) -> Path:
    """The solo-learn checkout to run: ``path``, else ``$SOLO_LEARN_PATH``, else the folder above
    an importable ``solo`` package.

    Raises:
        ValueError: if none holds ``main_pretrain.py`` next to ``solo/``.
    """

    candidates = []
    if path:
        candidates.append(("--host", Path(path).expanduser()))
    elif os.environ.get("SOLO_LEARN_PATH"):
        candidates.append(("SOLO_LEARN_PATH", Path(os.environ["SOLO_LEARN_PATH"]).expanduser()))
    else:
        spec = importlib.util.find_spec("solo")
        if spec is not None and spec.origin:
            candidates.append(("importable solo", Path(spec.origin).resolve().parent.parent))
    for origin, root in candidates:
        root = root.resolve()
        if (root / "main_pretrain.py").is_file() and (root / "solo").is_dir():
            return root
        raise ValueError(
            f"{origin} points at {str(root)!r}, which is not a solo-learn checkout "
            "(no main_pretrain.py next to solo/)."
        )
    raise ValueError(
        "solo-learn not found: pass --host PATH, or export SOLO_LEARN_PATH=<solo-learn checkout> "
        "(git clone https://github.com/vturrisi/solo-learn)."
    )


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


def run_all(
    runs: List[MethodRun], host_root: Path, epochs: int, force: bool = False, poll_s: float = 1.0
) -> Dict[str, str]:
    """Trains every method not finished yet, one subprocess at a time.

    Returns:
        Dict[str, str]: method -> ``"done"``, ``"skipped"`` (finished before) or ``"failed"``.
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
    bar = _progress(len(runs) * epochs)
    completed = (len(runs) - len(pending)) * epochs
    if bar is not None:
        bar.update(completed)
    for run in pending:
        run.prepare()
        stats_path = run.directory / STATS_FILE
        start = time.perf_counter()
        with (run.directory / LOG_FILE).open("w") as log:
            process = subprocess.Popen(
                run.command(host_root),
                cwd=run.directory,
                env=host_env(host_root),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            seen = 0
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
                time.sleep(poll_s)
        if returncode == 0 and seen >= epochs:
            status[run.method] = "done"
            run.done_path.write_text(
                json.dumps(
                    {
                        "config_hash": config_hash(run.config_text),
                        "seconds": time.perf_counter() - start,
                        "settings_source": run.settings_source,
                    }
                )
            )
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
    if bar is not None:
        bar.close()
    return status
