"""The tuning trials of several sweeps, pooled per method, and the configuration each one selects.

    python trials_table.py RUNS_CSV[=LABEL_REGEX] ... [--rename LABEL NAME ...]

For a tuning budget spread over more than one sweep folder (``frossl-plugin report`` reads one),
e.g. a learning-rate grid and then each method's own knob at the chosen learning rate. Every
RUNS_CSV must come from ``--tune-only`` sweeps on the same selection split (same images, same
seed). Jobs are pooled as in head_to_head_table.py (by method and the settings they ran with);
a trial found in two files is an error. Prints markdown: per method, its number of trials and
each trial's final online / kNN top-1 on the selection split, best first; the best online, the
rule of ``compare``, in bold; on a tie, the trial of the file given first wins, as ``compare``
keeps the first trial in grid order. Exits with an error when the methods had different numbers
of trials. The table of docs/results.md ("Each method's own knob"), from the repository root:

    cd docs/results && python trials_table.py mnist2k_budget30_runs.csv=".*lr=(0.3|1.0)" \
        mnist2k_ownknob30_runs.csv
"""

import argparse

from head_to_head_table import final_epochs, load, number, rename_labels


def trials_markdown(finals) -> str:
    lines = [
        "| method | trials | trial | online top-1 (%) | kNN top-1 (%) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for method, group in finals.groupby("method"):
        group = group.sort_values(["online_acc1", "file"], ascending=[False, True], kind="stable")
        for rank, (_, row) in enumerate(group.iterrows()):
            online = number(row["online_acc1"])
            lines.append(
                f"| {method if rank == 0 else ''} | {len(group) if rank == 0 else ''} | "
                f"{row['label']} | {f'**{online}**' if rank == 0 else online} | "
                f"{number(row['knn_acc1'])} |"
            )
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", metavar="RUNS_CSV[=LABEL_REGEX]")
    parser.add_argument("--rename", action="append", nargs=2, default=[], metavar=("LABEL", "NAME"))
    args = parser.parse_args(argv)
    epochs = load(args.runs)
    rename_labels(epochs, args.rename)
    finals = final_epochs(epochs)
    print(trials_markdown(finals))
    counts = finals.groupby("method").size()
    if counts.nunique() > 1:
        raise SystemExit(f"unequal tuning budget, trials per method: {counts.to_dict()}")


if __name__ == "__main__":
    main()
