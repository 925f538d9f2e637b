"""A head-to-head's tables from the runs.csv of the sweep folders its final seeds ran in.

    python head_to_head_table.py RUNS_CSV[=LABEL_REGEX] ... --versus LABEL \
        [--rename LABEL NAME ...]

For a comparison whose seeds ran in more than one folder (``frossl-plugin report`` reads one).
LABEL_REGEX keeps only the labels it matches in full. Jobs are pooled by method and the settings
they ran with (``ran_with``), whatever each folder labelled them; a label's seed found in two
files is an error, not a duplicate to average. Prints markdown: per label, the seeds, online
top-1 mean ± sample std with its 95 % Student-t interval and each seed's value, and kNN top-1
per seed; then ``--versus`` minus every other label, online and kNN, with the 95 % interval of
the difference and Welch's p-value (frossl_plugin.compare.statistics, which uses scipy.stats).
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

import pandas as pd

from frossl_plugin.compare.statistics import label_statistics, pair_statistics


def load(arguments):
    frames = []
    for argument in arguments:
        path, *keep = argument.split("=", 1)
        runs = pd.read_csv(path)
        runs = runs[runs["finished"] & runs["superseded_by"].isna()]
        if keep:
            runs = runs[runs["label"].str.fullmatch(keep[0])]
        last = runs.sort_values("epoch").groupby("job").tail(1)
        frames.append(last.assign(source=path))
    finals = pd.concat(frames, ignore_index=True)
    # a folder labels jobs by the overrides that vary within it, so the same configuration can
    # carry other labels in other folders: jobs are pooled by method and the settings they ran
    # with (the host's parsed config), and each group is named by its longest label
    group = finals["method"] + " " + finals["ran_with"].fillna("")
    finals["label"] = finals.groupby(group)["label"].transform(lambda labels: max(labels, key=len))
    if finals.groupby("label")[["method", "ran_with"]].nunique().max().max() > 1:
        raise SystemExit("two configurations share a label; give their runs distinct overrides.")
    twice = finals[finals.duplicated(["label", "seed"], keep=False)]
    if len(twice):
        pairs = sorted(set(zip(twice["label"], twice["seed"])))
        raise SystemExit(f"seeds found in more than one file: {pairs}; keep each seed once.")
    return finals.sort_values(["label", "seed"])


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
    args = parser.parse_args(argv)
    finals = load(args.runs)
    for label, name in args.rename:
        if label not in set(finals["label"]):
            raise SystemExit(f"--rename: {label!r} is not a label of these runs.")
        finals.loc[finals["label"] == label, "label"] = name
    print(labels_markdown(finals))
    print()
    print(pairs_markdown(finals, args.versus))


if __name__ == "__main__":
    main()
