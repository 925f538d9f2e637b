"""What one run of a host script produced: its final accuracies, metrics file and checkpoint.

Lightning numbers its log folders (``lightning_logs/version_<n>``) and the host names its
checkpoint folders at random, so a run is found by time: the newest log folder and checkpoint
written since a marker file that was touched before the run started.
"""

import csv
import math
from pathlib import Path
from typing import Dict, Optional

ACCURACY_COLUMNS = {"val_acc1": "top-1", "val_knn_acc1": "kNN top-1"}
METRICS_FILE = "metrics.csv"


def final_metrics(metrics_csv: Path) -> Dict[str, float]:
    """The last finite value of every column of a Lightning ``metrics.csv``."""

    last: Dict[str, float] = {}
    with Path(metrics_csv).open(newline="") as handle:
        for row in csv.DictReader(handle):
            for key, text in row.items():
                try:
                    value = float(text)
                except (TypeError, ValueError):
                    continue
                if math.isfinite(value):
                    last[key] = value
    return last


def newest_since(paths, since: float) -> Optional[Path]:
    """The most recently modified of ``paths`` that changed at or after ``since``, or None."""

    recent = [path for path in paths if path.stat().st_mtime >= since]
    return max(recent, key=lambda path: path.stat().st_mtime, default=None)


def run_outputs(logs_dir: Path, checkpoints_dir: Path, since: float) -> dict:
    """Finds the metrics file and checkpoint of the run that started at ``since``.

    Returns:
        dict: ``metrics_file`` and ``checkpoint`` (Path or None) and ``metrics``
        (``{column: final value}``, empty when there is no metrics file).
    """

    metrics_file = newest_since(Path(logs_dir).glob(f"version_*/{METRICS_FILE}"), since)
    checkpoint = newest_since(Path(checkpoints_dir).rglob("*.ckpt"), since)
    return {
        "metrics_file": metrics_file,
        "checkpoint": checkpoint,
        "metrics": final_metrics(metrics_file) if metrics_file else {},
    }


def describe_run(label: str, accuracy_name: str, outputs: dict) -> str:
    """A few lines for a person: accuracies in %, then where the files are."""

    metrics = outputs["metrics"]
    accuracies = [
        f"{accuracy_name} {name} {metrics[column]:.1f} %"
        if column == "val_acc1"
        else f"{name} {metrics[column]:.1f} %"
        for column, name in ACCURACY_COLUMNS.items()
        if column in metrics
    ]
    lines = [f"{label}: " + (", ".join(accuracies) if accuracies else "no accuracy logged")]
    metrics_file = outputs["metrics_file"]
    lines.append(
        f"  metrics:    {metrics_file.resolve()}"
        if metrics_file
        else f"  metrics:    no {METRICS_FILE} (a CSV logger writes it; this run used another)"
    )
    checkpoint = outputs["checkpoint"]
    lines.append(f"  checkpoint: {checkpoint.resolve() if checkpoint else 'none written'}")
    return "\n".join(lines)
