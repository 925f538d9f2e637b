"""The budget study's tables (docs/results.md, "How many epochs") from the runs.csv of its sweeps.

    python docs/results/budget_table.py BUDGET=RUNS_CSV[=LABEL_REGEX] ... [--trials BUDGET=RUNS_CSV]

BUDGET is the epochs the runs of RUNS_CSV were trained for; LABEL_REGEX keeps only the labels it
matches in full (e.g. each method's chosen trial of a grid). Prints markdown tables: final
online / kNN top-1 per method and budget; for runs of 30 epochs or more (those of ``--trials``
too), online / kNN top-1 at every tenth epoch; with ``--trials``, the learning-rate trials of
that sweep: final online / kNN per method and lr, the best online in bold (the selection rule of
``compare``).
The tables of docs/results.md, from the repository root:

    cd docs/results && python budget_table.py \
        "4=mnist2k_tune_runs.csv=(frossl|simclr) optimizer.lr=1.0|(vicreg|byol) optimizer.lr=0.3" \
        10=mnist2k_budget10_runs.csv "10=mnist2k_barlow_study_runs.csv=.*lamb=0.0001" \
        "30=mnist2k_budget30_runs.csv=(frossl|simclr) optimizer.lr=1.0|.*views|[vb].*lr=0.3" \
        60=mnist2k_budget60_runs.csv --trials 30=mnist2k_budget30_runs.csv
"""

import sys

import pandas as pd


def cell(online: float, knn: float) -> str:
    return "-" if pd.isna(online) else f"{online:.1f} / {knn:.1f}"


def markdown(frame: pd.DataFrame, first: str) -> str:
    lines = ["| " + " | ".join([first] + [str(c) for c in frame.columns]) + " |"]
    lines.append("|" + " --- |" * (len(frame.columns) + 1))
    lines += ["| " + " | ".join([str(i)] + list(row)) + " |" for i, row in frame.iterrows()]
    return "\n".join(lines)


def load(arguments):
    frames = []
    for argument in arguments:
        budget, path, *keep = argument.split("=", 2)
        runs = pd.read_csv(path)
        runs = runs[runs["finished"] & runs["superseded_by"].isna()]
        if keep:
            runs = runs[runs["label"].str.fullmatch(keep[0])]
        frames.append(runs.assign(budget=int(budget)))
    runs = pd.concat(frames, ignore_index=True)
    runs["cell"] = [cell(o, k) for o, k in zip(runs["online_acc1"], runs["knn_acc1"])]
    views = runs["label"].str.extract(r"(\d+) full-size views", expand=False)
    runs["arm"] = runs["method"] + views.apply(
        lambda v: f", {v} views" if isinstance(v, str) else ""
    )
    runs["family"] = runs["arm"]
    # an arm with several labels in one budget (e.g. two learning rates) is shown by its labels
    labels = runs.groupby(["arm", "budget"])["label"].transform("nunique")
    runs.loc[labels > 1, "arm"] = runs["label"]
    return runs


def lr_trials(runs: pd.DataFrame) -> pd.DataFrame:
    """Final online / kNN per family (method, views) and ``optimizer.lr`` of its labels."""

    last = runs.sort_values("epoch").groupby("job").tail(1)
    last = last.assign(lr=last["label"].str.extract(r"optimizer\.lr=([\d.]+)", expand=False))
    last = last.dropna(subset=["lr"])
    best = last.groupby("family")["online_acc1"].transform("max")
    bold = "**" + last["cell"] + "**"
    last = last.assign(cell=last["cell"].where(last["online_acc1"] < best, bold))
    grid = last.pivot(index="family", columns="lr", values="cell").fillna("-")
    grid.columns = [f"lr {c}" for c in grid.columns]
    return grid


def main(arguments):
    trials = []
    if "--trials" in arguments:
        at = arguments.index("--trials")
        arguments, trials = arguments[:at] + arguments[at + 2 :], arguments[at + 1 : at + 2]
    runs = load(arguments)
    last = runs.sort_values("epoch").groupby(["arm", "budget", "job"]).tail(1)
    finals = last.pivot(index="arm", columns="budget", values="cell").fillna("-")
    finals.columns = [f"{c} epochs" for c in finals.columns]
    print(markdown(finals, "method"))
    grid = load(trials) if trials else runs.iloc[:0]
    long = pd.concat([runs[~runs["job"].isin(grid["job"])], grid], ignore_index=True)
    long = long[(long["budget"] >= 30) & (long["epoch"] % 10 == 0)]
    long = long.assign(run=long["arm"] + ", " + long["budget"].astype(str) + "-epoch run")
    within = long.pivot(index="run", columns="epoch", values="cell").fillna("")
    within.columns = [f"epoch {c}" for c in within.columns]
    print()
    print(markdown(within, "run"))
    if trials:
        print()
        print(markdown(lr_trials(grid), "method"))


if __name__ == "__main__":
    main(sys.argv[1:])
