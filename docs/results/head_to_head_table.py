"""A head-to-head's tables from the runs.csv of the sweep folders its final seeds ran in.

    python head_to_head_table.py RUNS_CSV[=LABEL_REGEX] ... --versus LABEL \
        [--rename LABEL NAME ...] [--target online|knn=PERCENT] [--plots FOLDER]

For a comparison whose seeds ran in more than one folder (``frossl-plugin report`` reads one).
LABEL_REGEX keeps only the labels it matches in full. Jobs are pooled by method and the settings
they ran with (``ran_with``), whatever each folder labelled them; a label's seed found in two
files is an error, not a duplicate to average. Prints markdown: per label, the seeds, online
top-1 mean ± sample std with its 95 % Student-t interval and each seed's value, and kNN top-1
per seed; then ``--versus`` minus every other label, online and kNN, with the 95 % interval of
the difference and Welch's p-value (frossl_plugin.compare.statistics, which uses scipy.stats);
with ``--target``, per label the seeds that reached it and the epochs and training time to it;
with ``--plots``, accuracy against epoch and against training time, one band per label.
The 30-epoch head-to-head of docs/results.md, from the repository root:

    cd docs/results && python head_to_head_table.py mnist2k_budget30_final_runs.csv \
        mnist2k_budget30_final2_runs.csv --versus "FroSSL, lr 0.3" \
        --rename "frossl optimizer.lr=0.3" "FroSSL, lr 0.3" \
        --rename "simclr optimizer.lr=0.3" "SimCLR, lr 0.3" --rename byol "BYOL, lr 0.3" \
        --rename vicreg "VICReg, lr 0.3 (after the check)" \
        --rename "vicreg optimizer.lr=1.0" "VICReg, lr 1.0 (its trials' choice; seeds split)" \
        --rename "barlow_twins method_kwargs.lamb=0.0001" "Barlow Twins, lr 0.3, lamb 0.0001"
"""

import argparse
import math
from pathlib import Path

import pandas as pd

from frossl_plugin.compare.statistics import label_statistics, mean_std, pair_statistics


def load(arguments):
    """Every epoch of the finished jobs of ``arguments``, each job labelled by its group, with
    ``source`` (its file) and ``file`` (that file's position in ``arguments``)."""

    frames = []
    for position, argument in enumerate(arguments):
        path, *keep = argument.split("=", 1)
        runs = pd.read_csv(path)
        runs = runs[runs["finished"] & runs["superseded_by"].isna()]
        if keep:
            runs = runs[runs["label"].str.fullmatch(keep[0])]
        frames.append(runs.assign(source=path, file=position))
    epochs = pd.concat(frames, ignore_index=True).sort_values(["job", "epoch"])
    # a folder labels jobs by the overrides that vary within it, so the same configuration can
    # carry other labels in other folders: jobs are pooled by method and the settings they ran
    # with (the host's parsed config), and each group is named by its longest label
    group = epochs["method"] + " " + epochs["ran_with"].fillna("")
    epochs["label"] = epochs.groupby(group)["label"].transform(lambda labels: max(labels, key=len))
    if epochs.groupby("label")[["method", "ran_with"]].nunique().max().max() > 1:
        raise SystemExit("two configurations share a label; give their runs distinct overrides.")
    jobs = epochs.drop_duplicates(["job", "source"])
    twice = jobs[jobs.duplicated(["label", "seed"], keep=False)]
    if len(twice):
        pairs = sorted(set(zip(twice["label"], twice["seed"])))
        raise SystemExit(f"seeds found in more than one file: {pairs}; keep each seed once.")
    return epochs


def rename_labels(epochs: pd.DataFrame, renames) -> None:
    """Renames labels in place; ``renames``: (label, name) pairs, each label one of ``epochs``."""

    for label, name in renames:
        if label not in set(epochs["label"]):
            raise SystemExit(f"--rename: {label!r} is not a label of these runs.")
        epochs.loc[epochs["label"] == label, "label"] = name


def final_epochs(epochs: pd.DataFrame) -> pd.DataFrame:
    """The last epoch of every job, ordered by label and seed."""

    return epochs.groupby(["source", "job"]).tail(1).sort_values(["label", "seed"])


def number(value: float, digits: int = 1) -> str:
    return "-" if not math.isfinite(value) else f"{value:.{digits}f}"


def p_value(value: float) -> str:
    if not math.isfinite(value):
        return "-"
    return f"{value:.1e}" if value < 0.001 else f"{value:.3f}"


def interval(low: float, high: float) -> str:
    return "-" if not (math.isfinite(low) and math.isfinite(high)) else f"{low:.1f} to {high:.1f}"


def labels_markdown(finals: pd.DataFrame) -> str:
    lines = [
        "| label | seeds | online top-1 (%), mean ± std | 95 % interval | per seed | "
        "kNN top-1 (%), per seed |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for label, group in finals.groupby("label"):
        online = label_statistics(group["online_acc1"].tolist())
        seeds = ", ".join(str(s) for s in group["seed"])
        lines.append(
            f"| {label} | {seeds} | {number(online['mean'])} ± {number(online['std'])} | "
            f"{interval(online['ci_low'], online['ci_high'])} | "
            f"{', '.join(number(v) for v in group['online_acc1'])} | "
            f"{', '.join(number(v) for v in group['knn_acc1'])} |"
        )
    return "\n".join(lines)


def pairs_markdown(finals: pd.DataFrame, versus: str) -> str:
    groups = dict(tuple(finals.groupby("label")))
    if versus not in groups:
        raise SystemExit(f"--versus {versus!r} is not a label of these runs: {sorted(groups)}")
    lines = [
        f"| {versus} minus | online: difference | 95 % interval | p | kNN: difference | "
        "95 % interval | p |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for label in sorted(set(groups) - {versus}):
        cells = []
        for metric in ("online_acc1", "knn_acc1"):
            pair = pair_statistics(groups[versus][metric].tolist(), groups[label][metric].tolist())
            cells += [
                f"{pair['difference']:+.1f}" if math.isfinite(pair["difference"]) else "-",
                interval(pair["ci_low"], pair["ci_high"]),
                p_value(pair["p_value"]),
            ]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


METRICS = {"online": "online_acc1", "knn": "knn_acc1"}


def target_argument(text: str):
    """``online=80`` or ``knn=75``: (runs.csv column, target in %)."""

    metric, _, value = text.partition("=")
    try:
        return METRICS[metric], float(value)
    except (KeyError, ValueError):
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected METRIC=PERCENT with METRIC one of {', '.join(METRICS)}, "
            "e.g. online=80"
        ) from None


def mean_std_cell(values: pd.Series, digits: int = 1) -> str:
    mean, std = mean_std(values.tolist())
    if not math.isfinite(mean):
        return "-"
    return f"{number(mean, digits)} ± {number(math.nan if std is None else std, digits)}"


def target_markdown(epochs: pd.DataFrame, column: str, target: float) -> str:
    """Per label: how many seeds reached ``target``, and the epochs and the training time
    (runs.csv's ``training_time_s``, resumed parts summed) up to the first epoch at or above it;
    with the mean step time of the epochs after the first."""

    lines = [
        f"| label | seeds at {column} >= {target:g} % | epochs to target | "
        "training time to target (s) | mean step time (ms) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for label, group in epochs.groupby("label"):
        jobs = group.groupby(["source", "job"])
        reached = group[group[column] >= target].groupby(["source", "job"]).head(1)
        steps = jobs["step_time_s"].apply(lambda s: s.iloc[1:].mean() if len(s) > 1 else s.mean())
        lines.append(
            f"| {label} | {len(reached)} of {jobs.ngroups} | {mean_std_cell(reached['epoch'])} | "
            f"{mean_std_cell(reached['training_time_s'], 0)} | {number(1000 * steps.mean(), 0)} |"
        )
    return "\n".join(lines)


def write_plots(epochs: pd.DataFrame, folder: Path, target=None) -> list:
    """accuracy_vs_epoch.png and accuracy_vs_time.png, one band (min..max over seeds) per label;
    time is the seeds' mean training time at each epoch."""

    from frossl_plugin.plots import plot_bands

    panels = [("online_acc1", "online linear top-1 (%)"), ("knn_acc1", "kNN top-1 (%)")]
    by_epoch, by_time = {}, {}
    for label, group in epochs.groupby("label"):
        keys = ["training_time_s"] + [key for key, _ in panels]
        table = {key: group.pivot_table(key, "epoch", "job") for key in keys}
        common = table["training_time_s"].dropna().index  # the epochs every seed has
        x_time = table["training_time_s"].loc[common].mean(axis=1).tolist()
        by_epoch[label] = {
            key: (list(common), table[key].loc[common].T.values.tolist()) for key, _ in panels
        }
        by_time[label] = {key: (x_time, curves[1]) for key, curves in by_epoch[label].items()}
    folder.mkdir(parents=True, exist_ok=True)
    value, key = (target[1], target[0]) if target else (None, None)
    return [
        plot_bands(by_epoch, panels, folder / "accuracy_vs_epoch.png", "epoch", "", value, key),
        plot_bands(
            by_time,
            panels,
            folder / "accuracy_vs_time.png",
            "mean training time (s)",
            "",
            value,
            key,
        ),
    ]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", metavar="RUNS_CSV[=LABEL_REGEX]")
    parser.add_argument("--versus", required=True, metavar="LABEL")
    parser.add_argument(
        "--rename",
        action="append",
        nargs=2,
        default=[],
        metavar=("LABEL", "NAME"),
        help="the row name of a label",
    )
    parser.add_argument(
        "--target",
        type=target_argument,
        metavar="METRIC=PERCENT",
        help="also tabulate epochs and training time to this accuracy, e.g. online=80",
    )
    parser.add_argument(
        "--plots", type=Path, metavar="FOLDER", help="write accuracy against epoch and time here"
    )
    args = parser.parse_args(argv)
    epochs = load(args.runs)
    rename_labels(epochs, args.rename)
    finals = final_epochs(epochs)
    print(labels_markdown(finals))
    print()
    print(pairs_markdown(finals, args.versus))
    if args.target:
        print()
        print(target_markdown(epochs, *args.target))
    if args.plots:
        for path in write_plots(epochs, args.plots, args.target):
            print(f"wrote {path}")


if __name__ == "__main__":
    main()
