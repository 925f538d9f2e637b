"""PNG plots of spectra and comparisons (needs matplotlib, the ``compare`` extra:
``pip install 'frossl-plugin[compare]'``, or ``pip install '.[compare]'`` in a checkout)."""

from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import matplotlib
import numpy as np

matplotlib.use("Agg")  # files only, no display

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402


def _save(fig, path, title: Optional[str]) -> Path:
    """Titles, lays out, writes and closes ``fig``; returns the PNG's path."""

    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100, bbox_inches="tight")  # "tight" keeps a legend outside the panels
    plt.close(fig)
    return path


def plot_spectra(records: List[dict], path, title: str = "") -> Path:
    """Normalised covariance spectra (eigenvalue / sum, log scale, largest first) per epoch, one
    panel per layer, plus RankMe over epochs; written to ``path``.

    Args:
        records (List[dict]): records of a ``spectra.jsonl`` (``epoch``, ``layer``,
            ``eigenvalues``, ``rankme``).
        path: PNG file to write.
        title (str): figure title (e.g. the method).
    """

    layers = sorted({r["layer"] for r in records}, key=lambda name: name != "backbone")
    fig, axes = plt.subplots(1, len(layers) + 1, figsize=(5 * (len(layers) + 1), 4), squeeze=False)
    epochs = sorted({r["epoch"] for r in records})
    cmap = plt.get_cmap("viridis")
    for ax, layer in zip(axes[0], layers):
        for record in (r for r in records if r["layer"] == layer):
            values = [v for v in record["eigenvalues"]]
            total = sum(values)
            if total <= 0:
                continue
            shown = [v / total for v in values if v / total > 1e-12]
            colour = cmap(epochs.index(record["epoch"]) / max(len(epochs) - 1, 1))
            ax.semilogy(
                range(1, len(shown) + 1), shown, color=colour, label=f"epoch {record['epoch']}"
            )
        ax.set_title(f"{layer} covariance spectrum")
        ax.set_xlabel("eigenvalue index")
        ax.set_ylabel("eigenvalue / sum")
        if len(epochs) <= 8:
            ax.legend(fontsize=7)
    ax = axes[0][-1]
    for layer in layers:
        points = sorted((r["epoch"], r["rankme"]) for r in records if r["layer"] == layer)
        ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=layer)
    ax.set_title("RankMe effective rank")
    ax.set_xlabel("epoch (0 = before training)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(fontsize=7)
    return _save(fig, path, title)


BAND_NOTE = "line: mean over seeds; band: min..max over seeds"


def plot_bands(
    groups: Dict[str, Dict[str, Tuple[Sequence[float], Sequence[Sequence[float]]]]],
    panels: Sequence[tuple],
    path,
    x_label: str,
    title: str = "",
    target: Optional[float] = None,
    target_key: Optional[str] = None,
) -> Path:
    """One panel per ``(y_key, y_label)`` in ``panels``; per group (a variant), the mean over its
    seeds as a line and the min..max over its seeds as a shaded band; written to ``path``. One
    legend for all panels, below them; a group has the same colour (and, past 20 groups, line
    style) in every panel.

    Args:
        groups: ``{label: {y_key: (x, per_seed)}}``: ``x`` the x positions, ``per_seed`` one
            list of y values per seed, aligned with ``x``. NaN values are left out of the mean
            and the band; a missing ``y_key`` draws nothing for that group.
        panels: ``[(y_key, y_label), ...]``.
        path: PNG file to write.
        x_label (str): x axis label.
        title (str): figure title; the band's meaning is added below it.
        target (Optional[float]): dashed horizontal line, only on the panel of ``target_key``.
        target_key (Optional[str]): the ``y_key`` that ``target`` belongs to.
    """

    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4.2), squeeze=False)
    palette = 10 if len(groups) <= 10 else 20
    colours = plt.get_cmap(f"tab{palette}")
    styles = ("-", "--", ":", "-.")
    for ax, (y_key, y_label) in zip(axes[0], panels):
        for index, (label, curves) in enumerate(groups.items()):
            if y_key not in curves or not len(curves[y_key][0]):
                continue
            x, per_seed = curves[y_key]
            values = np.array(per_seed, dtype=float).reshape(len(per_seed), len(x))
            shown = ~np.all(np.isnan(values), axis=0)  # epochs with at least one value
            if not shown.any():
                continue
            x, values = np.asarray(x, dtype=float)[shown], values[:, shown]
            colour = colours(index % palette)
            ax.plot(
                x,
                np.nanmean(values, axis=0),
                marker="o",
                markersize=3,
                color=colour,
                linestyle=styles[index // palette % len(styles)],
                label=f"{label} (n={len(per_seed)})",
            )
            ax.fill_between(
                x,
                np.nanmin(values, axis=0),
                np.nanmax(values, axis=0),
                color=colour,
                alpha=0.2,
                linewidth=0,
            )
        if target is not None and y_key == target_key:
            ax.axhline(target, color="grey", linestyle="--", linewidth=1, label="target")
        ax.set_xlabel(x_label)
        if x_label.startswith("epoch"):
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(y_label)
        ax.grid(alpha=0.3)
    entries = {}
    for ax in axes[0]:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            entries.setdefault(label, handle)
    if entries:
        fig.legend(
            list(entries.values()),
            list(entries),
            loc="upper center",
            bbox_to_anchor=(0.5, 0.0),
            ncol=min(3, len(entries)),
            fontsize=8,
            frameon=False,
        )
    return _save(fig, path, f"{title}\n({BAND_NOTE})" if title else BAND_NOTE)
