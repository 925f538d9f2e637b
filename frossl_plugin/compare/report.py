"""The outputs of a comparison: per-epoch CSV, Markdown summary and PNG plots."""

import csv
import math
import os
import platform
import statistics
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from frossl_plugin import install_hint
from frossl_plugin.compare.method_settings import FROSSL, LOSS_METRICS
from frossl_plugin.compare.runner import STATS_FILE, read_jsonl

CSV_COLUMNS = [
    "method",
    "epoch",
    "wall_time_s",
    "train_time_s",
    "val_time_s",
    "steps",
    "samples",
    "images_per_s",
    "step_time_s",
    "peak_memory_mib",
    "memory_kind",
    "online_acc1",
    "online_acc5",
    "knn_acc1",
    "knn_acc5",
    "train_loss",
    "train_loss_metric",
    "rankme_backbone",
    "rankme_projector",
    "renyi2_backbone",
    "renyi2_projector",
]
NAN = float("nan")
PLOT_FILES = "accuracy_vs_epoch.png, accuracy_vs_time.png, effective_rank.png, spectra/<method>.png"
RELATIVE_LOSS = "train_loss_relative"  # plotted column: loss / |first-epoch loss|


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
    try:
        import tqdm  # noqa: F401
    except ImportError:
        notices.append(
            "compare: tqdm is not installed, so progress is one printed line per epoch instead "
            f"of a progress bar; for the bar: {install_hint('compare')}"
        )
    return notices


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
    with_loss = [key for key in candidates if "loss" in key]
    chosen = with_loss or candidates
    return chosen[0] if chosen else None


def method_rows(method: str, directory: Path) -> List[dict]:
    """One CSV row per epoch of one method's run folder."""

    spectra = {}
    spectra_path = directory / "spectrum" / "spectra.jsonl"
    for record in read_jsonl(spectra_path):
        spectra[(record["epoch"], record["layer"])] = record
    rows = []
    for record in read_jsonl(directory / STATS_FILE):
        metrics = record["metrics"]
        loss_key = loss_metric_of(method, metrics)
        row = {key: record.get(key) for key in CSV_COLUMNS if key in record}
        row.update(
            {
                "method": method,
                "online_acc1": metrics.get("val_acc1", NAN),
                "online_acc5": metrics.get("val_acc5", NAN),
                "knn_acc1": metrics.get("val_knn_acc1", NAN),
                "knn_acc5": metrics.get("val_knn_acc5", NAN),
                "train_loss": metrics.get(loss_key, NAN) if loss_key else NAN,
                "train_loss_metric": loss_key or "",
            }
        )
        for layer in ("backbone", "projector"):
            spectrum = spectra.get((record["epoch"], layer), {})
            row[f"rankme_{layer}"] = spectrum.get("rankme", NAN)
            row[f"renyi2_{layer}"] = spectrum.get("renyi2", NAN)
        rows.append(row)
    return rows


def write_csv(rows: List[dict], path: Path) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        for row in rows:
            writer.writerow({key: row.get(key, "") for key in CSV_COLUMNS})
    return path


def _valid(value) -> bool:
    return isinstance(value, (int, float)) and not math.isnan(value)


def first_reaching(rows: List[dict], key: str, target: float) -> Optional[dict]:
    """The first row whose ``key`` is >= ``target``."""

    for row in rows:
        if _valid(row.get(key)) and row[key] >= target:
            return row
    return None


def mean_step_time(rows: List[dict]) -> float:
    """Mean of the per-epoch step times, leaving out the first epoch (warm-up) when there are
    more."""

    times = [row["step_time_s"] for row in rows if _valid(row.get("step_time_s"))]
    if len(times) > 1:
        times = times[1:]
    return statistics.fmean(times) if times else NAN


def summarize(
    rows_by_method: Dict[str, List[dict]],
    target: Optional[float],
    target_fraction: float,
    metric: str = "online_acc1",
) -> dict:
    """Per-method summary numbers and the target used."""

    finals = {m: rows[-1].get(metric, NAN) for m, rows in rows_by_method.items() if rows}
    valid_finals = [value for value in finals.values() if _valid(value)]
    if target is None:
        target = target_fraction * max(valid_finals) if valid_finals else NAN
    summary = {}
    for method, rows in rows_by_method.items():
        if not rows:
            continue
        reached = first_reaching(rows, metric, target) if _valid(target) else None
        summary[method] = {
            "final_online_acc1": rows[-1].get("online_acc1", NAN),
            "final_knn_acc1": rows[-1].get("knn_acc1", NAN),
            "best_online_acc1": max(
                (r["online_acc1"] for r in rows if _valid(r.get("online_acc1"))), default=NAN
            ),
            "epochs": rows[-1]["epoch"],
            "epochs_to_target": reached["epoch"] if reached else None,
            "time_to_target_s": reached["wall_time_s"] if reached else None,
            "total_time_s": rows[-1]["wall_time_s"],
            "mean_step_time_s": mean_step_time(rows),
            "images_per_s": statistics.fmean(
                [r["images_per_s"] for r in rows[1:] or rows if _valid(r.get("images_per_s"))]
            ),
            "peak_memory_mib": max(r["peak_memory_mib"] for r in rows),
            "memory_kind": rows[-1]["memory_kind"],
            "final_rankme_projector": rows[-1].get("rankme_projector", NAN),
        }
    return {"target": target, "metric": metric, "methods": summary}


def _fmt(value, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, int):
        return str(value)
    return f"{value:.{digits}f}"


def _ratio(value, reference) -> str:
    if value is None or reference is None or not _valid(value) or not _valid(reference):
        return "-"
    if reference == 0:
        return "-"
    return f"{value / reference:.2f}"


def summary_markdown(summary: dict, context: Dict[str, str], sources: Dict[str, str]) -> str:
    """The Markdown summary table with its context lines."""

    methods = summary["methods"]
    reference = methods.get(FROSSL)
    metric_name = "online linear top-1" if summary["metric"] == "online_acc1" else "kNN top-1"
    lines = ["# FroSSL against baselines", ""]
    lines += [f"- {key}: {value}" for key, value in context.items()]
    lines.append(f"- target: {metric_name} >= {_fmt(summary['target'], 2)} %")
    lines += [
        "",
        "| method | settings | final online acc1 (%) | final kNN acc1 (%) | epochs to target "
        "| wall time to target (s) | mean step time (ms) | images/s | peak memory (MiB) "
        "| epochs to target / FroSSL | time to target / FroSSL | step time / FroSSL |",
        "|" + " --- |" * 12,
    ]
    for method, s in methods.items():
        ref = reference or {}
        lines.append(
            "| "
            + " | ".join(
                [
                    method,
                    sources.get(method, ""),
                    _fmt(s["final_online_acc1"]),
                    _fmt(s["final_knn_acc1"]),
                    _fmt(s["epochs_to_target"])
                    + ("" if s["epochs_to_target"] else " (not reached)"),
                    _fmt(s["time_to_target_s"]),
                    _fmt(s["mean_step_time_s"] * 1000),
                    _fmt(s["images_per_s"]),
                    _fmt(s["peak_memory_mib"], 0),
                    _ratio(s["epochs_to_target"], ref.get("epochs_to_target")),
                    _ratio(s["time_to_target_s"], ref.get("time_to_target_s")),
                    _ratio(s["mean_step_time_s"], ref.get("mean_step_time_s")),
                ]
            )
            + " |"
        )
    kinds = sorted({s["memory_kind"] for s in methods.values()})
    lines += [
        "",
        "Epochs and wall time to target are those of the first epoch whose accuracy reaches the "
        "target; wall time counts from the start of the run (validation and checkpoints "
        "included). Mean step time is training time per step (data loading included), averaged "
        "over epochs after the first. Peak memory: "
        + ", ".join(kinds)
        + " (cuda_max_allocated = torch.cuda.max_memory_allocated; cpu_peak_rss = peak resident "
        "set size of the training process). Online accuracy is the host's online linear "
        "classifier, kNN the host's online weighted kNN (k from knn_eval.k) on the validation "
        "split.",
    ]
    return "\n".join(lines) + "\n"


def machine_description() -> str:
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
    one axis, starting at 1 (or -1 for a negative loss: the absolute value keeps the direction
    of the trend). Non-finite values become NaN (not plotted).

    Returns:
        Optional[List[float]]: the relative values, or None when no value is finite and
        non-zero (nothing to plot).
    """

    reference = next((value for value in values if _finite(value) and value != 0), None)
    if reference is None:
        return None
    return [value / abs(reference) if _finite(value) else NAN for value in values]


def write_plots(
    rows_by_method: Dict[str, List[dict]],
    run_dirs: Dict[str, Path],
    out: Path,
    target: Optional[float],
    target_metric: str = "online_acc1",
) -> List[Path]:
    """accuracy_vs_epoch.png, accuracy_vs_time.png, effective_rank.png and
    spectra/<method>.png.

    Args:
        target (Optional[float]): the target accuracy, drawn only on the panel of
            ``target_metric`` (``online_acc1`` or ``knn_acc1``).

    Returns:
        List[Path]: the files written; empty when matplotlib is missing.
    """

    try:
        from frossl_plugin.plots import plot_curves, plot_spectra
    except ImportError:
        print(f"compare: no plots, matplotlib is not installed ({install_hint('compare')})")
        return []
    from frossl_plugin.callbacks.spectrum_monitor import read_spectrum_records

    series = {}
    for method, rows in rows_by_method.items():
        columns = {key: [row.get(key, NAN) for row in rows] for key in CSV_COLUMNS}
        relative = relative_to_first(columns["train_loss"])
        if relative is not None:  # otherwise no loss line for this method
            columns[RELATIVE_LOSS] = relative
        series[method] = columns
    accuracy = [("online_acc1", "online linear top-1 (%)"), ("knn_acc1", "kNN top-1 (%)")]
    written = [
        plot_curves(
            series,
            "epoch",
            accuracy + [(RELATIVE_LOSS, "training loss / |first-epoch loss|")],
            out / "accuracy_vs_epoch.png",
            "accuracy against epoch",
            target,
            target_metric,
        ),
        plot_curves(
            series,
            "wall_time_s",
            accuracy,
            out / "accuracy_vs_time.png",
            "accuracy against wall-clock time",
            target,
            target_metric,
        ),
    ]
    spectra_dir = out / "spectra"
    rank_series = {}
    for method, directory in run_dirs.items():
        path = directory / "spectrum" / "spectra.jsonl"
        records = read_spectrum_records(path) if path.is_file() else []
        if not records:
            continue
        spectra_dir.mkdir(exist_ok=True)
        written.append(plot_spectra(records, spectra_dir / f"{method}.png", title=method))
        columns = {}
        for layer in ("backbone", "projector"):
            points = sorted((r["epoch"], r["rankme"]) for r in records if r["layer"] == layer)
            columns["epoch_" + layer] = [p[0] for p in points]
            columns["rankme_" + layer] = [p[1] for p in points]
        rank_series[method] = columns
    if rank_series:
        from matplotlib.ticker import MaxNLocator

        from frossl_plugin.plots import plt

        fig, axes = plt.subplots(1, 2, figsize=(11, 4))
        for ax, layer in zip(axes, ("backbone", "projector")):
            for method, columns in rank_series.items():
                if columns["epoch_" + layer]:
                    ax.plot(
                        columns["epoch_" + layer],
                        columns["rankme_" + layer],
                        marker="o",
                        label=method,
                    )
            ax.set_title(f"RankMe effective rank, {layer}")
            ax.set_xlabel("epoch (0 = before training)")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(out / "effective_rank.png", dpi=100)
        plt.close(fig)
        written.append(out / "effective_rank.png")
    return written
