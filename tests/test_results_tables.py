"""docs/results/head_to_head_table.py and trials_table.py: a head-to-head's statistics and a
tuning budget's trials from several runs.csv files."""

import importlib.util
from pathlib import Path

import pandas as pd
import pytest
from scipy import stats

RESULTS = Path(__file__).resolve().parents[1] / "docs" / "results"


def load_script(name, monkeypatch):
    monkeypatch.syspath_prepend(str(RESULTS))  # trials_table imports head_to_head_table
    spec = importlib.util.spec_from_file_location(name, RESULTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def table(monkeypatch):
    return load_script("head_to_head_table", monkeypatch)


@pytest.fixture
def trials(monkeypatch):
    return load_script("trials_table", monkeypatch)


def write_runs(path, rows):
    """rows: (label, seed, online, knn[, ran_with]); each job gets a first epoch below its last."""

    records = []
    for label, seed, online, knn, *ran_with in rows:
        job = f"{label.replace(' ', '_')}_seed{seed}"
        for epoch, scale in ((1, 0.5), (2, 1.0)):
            records.append(
                dict(
                    job=job,
                    label=label,
                    method=label.split()[0],
                    seed=seed,
                    finished=True,
                    superseded_by=None,
                    ran_with=(ran_with or [label])[0],
                    epoch=epoch,
                    training_time_s=100.0 * epoch * seed,
                    step_time_s=0.5 * seed,
                    online_acc1=online * scale,
                    knn_acc1=knn * scale,
                )
            )
    pd.DataFrame(records).to_csv(path, index=False)
    return str(path)


def test_seeds_from_two_files_are_pooled_and_tested_as_scipy_does(table, tmp_path, capsys):
    a = write_runs(
        tmp_path / "a.csv",
        [("frossl x", 1, 86.0, 85.0), ("frossl x", 2, 84.0, 80.0), ("vicreg y", 1, 60.0, 58.0)],
    )
    b = write_runs(
        tmp_path / "b.csv",
        [("frossl x", 3, 88.0, 83.0), ("vicreg y", 2, 70.0, 66.0), ("vicreg y", 3, 65.0, 61.0)],
    )
    table.main([a, b, "--versus", "frossl x"])
    out = capsys.readouterr().out
    assert (
        "| frossl x | 1, 2, 3 | 86.0 ± 2.0 | 81.0 to 91.0 | 86.0, 84.0, 88.0 | 85.0, 80.0, 83.0 |"
        in out
    )
    online = stats.ttest_ind([86.0, 84.0, 88.0], [60.0, 70.0, 65.0], equal_var=False)
    knn = stats.ttest_ind([85.0, 80.0, 83.0], [58.0, 66.0, 61.0], equal_var=False)
    low, high = online.confidence_interval(0.95)
    row = next(line for line in out.splitlines() if line.startswith("| vicreg y | +"))
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert cells[1] == "+21.0" and cells[2] == f"{low:.1f} to {high:.1f}"
    assert cells[3] == f"{online.pvalue:.3f}" and cells[6] == f"{knn.pvalue:.3f}"


def test_a_seed_in_two_files_and_an_unknown_label_are_refused(table, tmp_path):
    a = write_runs(tmp_path / "a.csv", [("frossl x", 1, 86.0, 85.0)])
    b = write_runs(tmp_path / "b.csv", [("frossl x", 1, 84.0, 80.0)])
    with pytest.raises(SystemExit, match=r"more than one file: \[\('frossl x', 1\)\]"):
        table.main([a, b, "--versus", "frossl x"])
    with pytest.raises(SystemExit, match="'byol' is not a label"):
        table.main([a, "--versus", "byol"])


def test_a_configuration_labelled_otherwise_in_another_folder_is_pooled(table, tmp_path, capsys):
    # a folder names jobs by the overrides that vary within it: "simclr" there is "simclr lr" here
    a = write_runs(
        tmp_path / "a.csv",
        [("simclr lr", 1, 80.0, 70.0, "lr 0.075"), ("vicreg lr", 1, 60.0, 50.0, "lr 0.25")],
    )
    b = write_runs(
        tmp_path / "b.csv",
        [("simclr", 2, 82.0, 72.0, "lr 0.075"), ("vicreg", 2, 40.0, 30.0, "lr 0.075")],
    )
    table.main([a, b, "--versus", "simclr lr", "--rename", "vicreg", "vicreg, lr 0.3"])
    out = capsys.readouterr().out
    assert "| simclr lr | 1, 2 | 81.0 ± 1.4 |" in out
    assert "| vicreg lr | 1 | 60.0 ± - |" in out and "| vicreg, lr 0.3 | 2 | 40.0 ± - |" in out
    with pytest.raises(SystemExit, match="'byol' is not a label"):
        table.main([a, "--versus", "simclr lr", "--rename", "byol", "BYOL"])


def test_epochs_and_time_to_a_target_and_the_plots(table, tmp_path, capsys):
    # epoch 1 holds half of each final value; training time is 100 s x epoch x seed
    a = write_runs(
        tmp_path / "a.csv",
        [("frossl x", 1, 86.0, 85.0), ("frossl x", 2, 84.0, 80.0), ("vicreg y", 1, 60.0, 58.0)],
    )
    b = write_runs(
        tmp_path / "b.csv",
        [("frossl x", 3, 88.0, 83.0), ("vicreg y", 2, 70.0, 66.0), ("vicreg y", 3, 75.0, 61.0)],
    )
    table.main([a, b, "--versus", "frossl x", "--target", "online=40", "--plots", str(tmp_path)])
    out = capsys.readouterr().out
    # frossl x reaches 40 % at epoch 1 on every seed (43, 42, 44): 100, 200, 300 s
    assert "| frossl x | 3 of 3 | 1.0 ± 0.0 | 200 ± 100 | 1000 |" in out
    # vicreg y at epoch 2 (30, 35, 37.5 at epoch 1): 200, 400, 600 s
    assert "| vicreg y | 3 of 3 | 2.0 ± 0.0 | 400 ± 200 | 1000 |" in out
    assert (tmp_path / "accuracy_vs_epoch.png").stat().st_size > 0
    assert (tmp_path / "accuracy_vs_time.png").stat().st_size > 0
    table.main([a, b, "--versus", "frossl x", "--target", "knn=80"])
    out = capsys.readouterr().out
    assert "| frossl x | 3 of 3 | 2.0 ± 0.0 | 400 ± 200 | 1000 |" in out
    assert "| vicreg y | 0 of 3 | - | - | 1000 |" in out
    with pytest.raises(SystemExit):
        table.main([a, "--versus", "frossl x", "--target", "top5=80"])


def test_trials_of_two_sweeps_are_pooled_per_method_and_the_best_online_is_marked(
    trials, tmp_path, capsys
):
    lr = write_runs(
        tmp_path / "lr.csv",
        [("frossl lr=0.3", 0, 82.5, 83.4), ("frossl lr=1.0", 0, 69.1, 63.8)]
        + [("byol lr=0.3", 0, 53.8, 34.4), ("byol lr=1.0", 0, 42.5, 35.9)],
    )
    knob = write_runs(
        tmp_path / "knob.csv",
        [("frossl w=0.5", 0, 80.0, 81.0), ("byol tau=0.98", 0, 60.0, 40.0)],
    )
    trials.main([lr, knob])
    lines = capsys.readouterr().out.splitlines()
    assert lines[2:5] == [
        "| byol | 3 | byol tau=0.98 | **60.0** | 40.0 |",
        "|  |  | byol lr=0.3 | 53.8 | 34.4 |",
        "|  |  | byol lr=1.0 | 42.5 | 35.9 |",
    ]
    assert lines[5] == "| frossl | 3 | frossl lr=0.3 | **82.5** | 83.4 |"
    with pytest.raises(SystemExit, match=r"unequal tuning budget.*'byol': 2, 'frossl': 3"):
        trials.main([lr, knob + "=frossl.*"])


def test_a_tied_trial_goes_to_the_file_given_first(trials, tmp_path, capsys):
    first = write_runs(tmp_path / "first.csv", [("barlow lamb=1e-4", 0, 50.6, 39.4)])
    later = write_runs(tmp_path / "later.csv", [("barlow lamb=3e-5", 0, 50.6, 44.4)])
    for order in ([first, later], [later, first]):
        trials.main(order)
        best = capsys.readouterr().out.splitlines()[2]
        expected = "1e-4" if order[0] == first else "3e-5"
        assert best.startswith(f"| barlow | 2 | barlow lamb={expected} | **50.6** |")
