"""``frossl-plugin report``: a sweep folder's CSV, summary (mean ± std over seeds), overlap,
missing jobs and band plots, on synthetic job folders."""

import csv
import json
import statistics
from pathlib import Path
from typing import List

import pytest

from frossl_plugin.cli import main
from frossl_plugin.compare import report

EPOCHS = 4
SHARED = ["data.dataset=cifar10", "max_epochs=4"]  # the same in every job: left out of labels
LOSS_KEYS = {"frossl": "train_frossl_loss", "vicreg": "train_vicreg_loss"}
LOSS_KEYS["barlow_twins"] = "train_barlow_loss"
FIRST_LOSS = {"frossl": 0.3, "vicreg": 20.0, "barlow_twins": 200.0}


def online_curve(final: float, seed: int) -> list:
    """Online top-1 per epoch, rising to ``final``, its shape depending on the seed."""

    power = 0.5 + 0.4 * seed
    return [final * ((epoch / EPOCHS) ** power) for epoch in range(1, EPOCHS + 1)]


def epoch_records(
    method: str,
    final: float,
    seed: int,
    epochs: int = EPOCHS,
    memory=("cpu_peak_rss", "epoch_start"),
) -> list:
    online = online_curve(final, seed)
    records = []
    for epoch in range(1, epochs + 1):
        loss = FIRST_LOSS[method] * (1.0 - 0.1 * (epoch - 1))
        records.append(
            {
                "epoch": epoch,
                "wall_time_s": epoch * (10.0 + seed),
                "train_time_s": 8.0,
                "val_time_s": 1.0,
                "steps": 10,
                "samples": 640,
                "images_per_s": 500.0 + 10 * seed + (0 if epoch > 1 else -300),
                "step_time_s": (0.1 + 0.01 * seed) if epoch > 1 else 0.5,
                "peak_memory_mib": 100.0 + 10 * seed + epoch,
                "memory_kind": memory[0],
                "memory_since": memory[1],
                "world_size": 1,
                "metrics": {
                    "val_acc1": online[epoch - 1],
                    "val_acc5": 90.0,
                    "val_knn_acc1": online[epoch - 1] - 5.0,
                    "val_knn_acc5": 85.0,
                    f"{LOSS_KEYS[method]}_epoch": loss,
                },
            }
        )
    return records


def write_job(
    sweep: Path,
    name: str,
    method: str,
    seed: int,
    overrides: list,
    final: float,
    epochs: int = EPOCHS,
    finished: bool = True,
    label=None,
    day: int = 1,
    memory=("cpu_peak_rss", "epoch_start"),
    ran_with=None,
    planned_with=None,
    resolved=(),
) -> None:
    """One job folder: job.json, epoch_stats.jsonl, spectra and (``finished``) done.json.

    ``memory``: (memory_kind, memory_since) of the epoch records; ``ran_with`` and
    ``planned_with``: the settings in done.json and job.json, ``resolved`` their keys the host
    resolved from a placeholder.
    """

    directory = sweep / name
    (directory / "spectrum").mkdir(parents=True)
    info = {
        "name": name,
        "config_hash": f"hash-{name}",
        "method": method,
        "seed": seed,
        "label": label,
        "overrides": [f"preset={method}", f"seed={seed}", f"hydra.run.dir=out/{name}"]
        + SHARED
        + overrides,
        "started_at": f"2025-01-0{day}T10:00:00",
        "planned_with": planned_with,
        "resolved_keys": list(resolved),
    }
    (directory / "job.json").write_text(json.dumps(info))
    records = epoch_records(method, final, seed, epochs, memory)
    with (directory / "epoch_stats.jsonl").open("w") as handle:
        handle.writelines(json.dumps(record) + "\n" for record in records)
    with (directory / "spectrum" / "spectra.jsonl").open("w") as handle:
        for epoch in range(epochs + 1):
            for layer, rank in (("backbone", 50.0), ("projector", 20.0)):
                record = {"epoch": epoch, "layer": layer, "rankme": rank + epoch + seed}
                handle.write(json.dumps({**record, "renyi2": rank / 2}) + "\n")
    if finished:
        done = {"config_hash": info["config_hash"], "finished_at": f"2025-01-0{day}T12:00:00"}
        done.update(ran_with=ran_with, resolved_keys=list(resolved), planned_with=planned_with)
        done["disagreements"] = {
            key: {"planned": planned_with.get(key), "ran": ran_with.get(key)}
            for key in sorted(ran_with or {})
            if planned_with is not None and planned_with.get(key) != ran_with.get(key)
        }
        (directory / "done.json").write_text(json.dumps({**done, "wall_time_s": 100.0}))


# final online top-1 of the finished jobs, by label and seed
FINALS = {
    "frossl method_kwargs.center=false": {1: 60.0, 2: 62.0, 3: 61.0},
    "frossl method_kwargs.center=true": {1: 60.5, 2: 61.5},
    "vicreg": {1: 50.0, 2: 51.0},
    "my baseline": {1: 45.0},
}


@pytest.fixture
def sweep(tmp_path) -> Path:
    """3 derived labels x 2-3 seeds, a named label with one seed, an unfinished job, a planned
    job never started, two duplicates (an older run of frossl center=false seed 1, an older
    plan of vicreg seed 1) and two folders that are not jobs."""

    root = tmp_path / "sweep"
    root.mkdir()
    for seed, final in FINALS["frossl method_kwargs.center=false"].items():
        write_job(
            root,
            f"frossl_seed{seed}_aa",
            "frossl",
            seed,
            ["method_kwargs.center=false"],
            final,
            day=2,
        )
    # the same label and seed, finished a day earlier: superseded
    write_job(root, "frossl_seed1_old", "frossl", 1, ["method_kwargs.center=false"], 10.0)
    for seed, final in FINALS["frossl method_kwargs.center=true"].items():
        write_job(
            root, f"frossl_seed{seed}_bb", "frossl", seed, ["method_kwargs.center=true"], final
        )
    write_job(
        root,
        "frossl_seed3_bb",
        "frossl",
        3,
        ["method_kwargs.center=true"],
        70.0,
        epochs=2,
        finished=False,
    )
    for seed, final in FINALS["vicreg"].items():
        write_job(root, f"vicreg_seed{seed}_cc", "vicreg", seed, [], final)
    write_job(
        root,
        "barlow_seed1_dd",
        "barlow_twins",
        1,
        ["optimizer.lr=0.3", "+label=my baseline"],
        45.0,
        label="my baseline",
    )
    (root / ".submitit").mkdir()
    (root / "datasets" / "cifar10").mkdir(parents=True)
    planned = {
        name: {"overrides": json.loads((root / name / "job.json").read_text())["overrides"]}
        for name in ("frossl_seed1_aa", "vicreg_seed1_cc")
    }
    # planned by an earlier invocation, never started; vicreg_seed1_cc has its label and seed
    planned["vicreg_seed1_old"] = {"overrides": ["preset=vicreg", "seed=1"] + SHARED}
    planned["vicreg_seed3_cc"] = {
        "overrides": ["preset=vicreg", "seed=3"] + SHARED,
        "method": "vicreg",
        "seed": 3,
    }
    (root / "sweep_jobs.json").write_text(json.dumps({"jobs": planned}))
    return root


def table_rows(summary: str) -> dict:
    """The summary table's cells by label."""

    rows = {}
    for line in summary.split("\n## ")[0].splitlines():  # the first table, before any section
        if line.startswith("| ") and not line.startswith(("| label", "| ---")):
            cells = [cell.strip() for cell in line.strip("|").split("|")]
            rows[cells[0]] = cells
    return rows


def pm(values) -> str:
    mean = statistics.fmean(values)
    return f"{mean:.1f} ± " + (f"{statistics.stdev(values):.1f}" if len(values) > 1 else "-")


def expected_target() -> float:
    return 0.9 * max(statistics.fmean(finals.values()) for finals in FINALS.values())


def test_labels_drop_shared_keys_keep_varying_ones_and_a_given_label_wins(sweep):
    loaded = report.load_sweep(sweep)
    labels = {job.name: job.label for job in loaded.jobs}
    assert labels["frossl_seed2_aa"] == "frossl method_kwargs.center=false"
    assert labels["frossl_seed1_bb"] == "frossl method_kwargs.center=true"
    # vicreg has no method_kwargs.center, the named job's optimizer.lr is its own
    assert labels["vicreg_seed1_cc"] == labels["vicreg_seed3_cc"] == "vicreg"
    assert labels["barlow_seed1_dd"] == "my baseline"
    assert ".submitit" not in labels and "datasets" not in labels
    assert {job.name: job.superseded_by for job in loaded.jobs if job.superseded_by} == {
        "frossl_seed1_old": "frossl_seed1_aa",
        "vicreg_seed1_old": "vicreg_seed1_cc",
    }
    assert sorted(job.name for job in loaded.missing) == ["frossl_seed3_bb", "vicreg_seed3_cc"]
    assert len(loaded.finished) == 8


def test_parse_overrides_strips_prefixes():
    parsed = report.parse_overrides(["+a.b=1", "++c=x=y", "~d", "~e=2"])
    assert parsed == {"a.b": "1", "c": "x=y", "d": "~", "e": "2"}


def test_summary_means_stds_and_targets_match_the_data(sweep):
    written = report.write_report(sweep)
    assert sweep / "runs.csv" in written and sweep / "summary.md" in written
    summary = (sweep / "summary.md").read_text()
    target = expected_target()
    assert f"online top-1 >= {target:.2f} %" in summary
    assert "0.9 x the best label mean, frossl method_kwargs.center=false: 61.00 %" in summary
    assert "- jobs finished: 8 of 10" in summary
    rows = table_rows(summary)
    assert set(rows) == set(FINALS)
    for label, finals in FINALS.items():
        cells = rows[label]
        seeds = sorted(finals)
        assert cells[1] == f"{len(seeds)}: " + ", ".join(map(str, seeds))
        assert cells[2] == pm(list(finals.values()))
        assert cells[3] == pm([final - 5.0 for final in finals.values()])
        reached = []  # (epoch, wall time) of the first epoch at or above the target, per seed
        for seed, final in finals.items():
            curve = online_curve(final, seed)
            epoch = next((e for e, acc in enumerate(curve, 1) if acc >= target), None)
            if epoch:
                reached.append((epoch, epoch * (10.0 + seed)))
        count = f"({len(reached)}/{len(seeds)} reached)"
        if reached:
            assert cells[4] == f"{pm([e for e, _ in reached])} {count}"
            assert cells[5] == pm([t for _, t in reached])
        else:
            assert cells[4] == f"- {count}" and cells[5] == "-"
        step_ms = 1000 * statistics.fmean(0.1 + 0.01 * seed for seed in seeds)
        assert cells[6] == f"{step_ms:.1f}"
        assert cells[7] == f"{statistics.fmean(500.0 + 10 * seed for seed in seeds):.1f}"
        assert cells[8] == f"{100.0 + 10 * max(seeds) + EPOCHS:.0f}"
    # the data reach the target in different epochs per seed, and vicreg never
    assert rows["frossl method_kwargs.center=false"][4] != "-"
    assert rows["vicreg"][4] == "- (0/2 reached)"


def test_a_given_target_on_knn(sweep):
    report.write_report(sweep, target_acc=40.0, target_metric="knn")
    summary = (sweep / "summary.md").read_text()
    assert "kNN top-1 >= 40.00 % (given)" in summary
    cells = table_rows(summary)["vicreg"]
    # kNN = online - 5; seed 1: 50 * (e/4)**0.9 - 5 >= 40 first at epoch 4, seed 2 at epoch 4
    assert cells[4] == "4.0 ± 0.0 (2/2 reached)"
    assert cells[5] == pm([4 * 11.0, 4 * 12.0])
    statistics_section = summary.split("## Statistics")[1]
    assert "| vicreg | 2 | 45.5 | 0.7 |" in statistics_section  # kNN, the target's metric


def _markdown_rows(section: str, first_cell: str) -> List[List[str]]:
    rows = []
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells[0] not in (first_cell, "---"):
            rows.append(cells)
    return rows


def test_statistics_are_student_t_intervals_and_welch_tests_recomputed_from_runs_csv(sweep):
    """Recomputed independently: the final value of each job from runs.csv, then the interval
    and Welch's test written out with scipy.stats' t distribution."""

    import csv as csv_module
    import math as math_module
    import statistics as stdlib

    from scipy import stats

    report.write_report(sweep)
    summary = (sweep / "summary.md").read_text()
    section = summary.split("## Statistics")[1].split("## Missing jobs")[0]
    assert "Welch's two-sided t-test" in section and "95 %" in section
    finals = {}
    with (sweep / "runs.csv").open() as handle:
        rows = [
            row
            for row in csv_module.DictReader(handle)
            if row["finished"] == "True" and not row["superseded_by"]
        ]
    for job in {row["job"] for row in rows}:
        mine = [row for row in rows if row["job"] == job and row["online_acc1"] not in ("", "nan")]
        last = max(mine, key=lambda row: int(row["epoch"]))
        finals.setdefault(last["label"], []).append(float(last["online_acc1"]))
    label_part, pair_part = section.split("| first |")
    labels = {cells[0]: cells for cells in _markdown_rows(label_part, "label")}
    assert set(labels) == set(finals)
    for label, values in finals.items():
        cells = labels[label]
        assert int(cells[1]) == len(values) and float(cells[2]) == pytest.approx(
            stdlib.fmean(values), abs=0.05
        )
        if len(values) > 1:
            half = stats.t.ppf(0.975, len(values) - 1) * stdlib.stdev(values) / len(values) ** 0.5
            low, high = (float(x) for x in cells[4].split(" to "))
            assert low == pytest.approx(stdlib.fmean(values) - half, abs=0.05)
            assert high == pytest.approx(stdlib.fmean(values) + half, abs=0.05)
    pairs = _markdown_rows("| first |" + pair_part, "first")
    assert len(pairs) == math_module.comb(len(finals), 2)
    for first, second, difference, _, _, p_value, reading in pairs:
        a, b = finals[first], finals[second]
        assert float(difference) == pytest.approx(stdlib.fmean(a) - stdlib.fmean(b), abs=0.05)
        if len(a) > 1 and len(b) > 1:
            va, vb = stdlib.variance(a) / len(a), stdlib.variance(b) / len(b)
            df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
            t = (stdlib.fmean(a) - stdlib.fmean(b)) / math_module.sqrt(va + vb)
            assert float(p_value) == pytest.approx(2 * stats.t.sf(abs(t), df), rel=0.01)
            assert "little power" in reading  # 2-3 seeds per label here
        else:
            assert p_value == "-" and reading.startswith("not testable")
    assert "the test has little power" in section


def test_missing_jobs_section(sweep):
    report.write_report(sweep)
    missing = (sweep / "summary.md").read_text().split("## Missing jobs")[1]
    lines = [line for line in missing.splitlines() if line.startswith("- ")]
    assert lines == [
        "- frossl_seed3_bb (frossl method_kwargs.center=true, seed 3): unfinished "
        "(2 epochs recorded)",
        "- vicreg_seed3_cc (vicreg, seed 3): not started",
        "- frossl_seed1_old (frossl method_kwargs.center=false, seed 1): superseded by "
        "frossl_seed1_aa (same label and seed, finished or started later)",
        "- vicreg_seed1_old (vicreg, seed 1): superseded by vicreg_seed1_cc (same label and seed, "
        "finished or started later)",
    ]


def test_runs_csv_has_every_epoch_of_every_started_job(sweep):
    report.write_report(sweep)
    with (sweep / "runs.csv").open() as handle:
        reader = csv.DictReader(handle)
        rows = list(reader)
    assert reader.fieldnames == report.CSV_COLUMNS
    assert reader.fieldnames[:5] == ["job", "label", "method", "seed", "finished"]
    # 9 started jobs of 4 epochs (the superseded one included) and the unfinished one's 2
    assert len(rows) == 9 * EPOCHS + 2
    unfinished = [row for row in rows if row["job"] == "frossl_seed3_bb"]
    assert [row["finished"] for row in unfinished] == ["False", "False"]
    row = next(r for r in rows if r["job"] == "vicreg_seed2_cc" and r["epoch"] == "3")
    assert row["label"] == "vicreg" and row["method"] == "vicreg" and row["seed"] == "2"
    assert float(row["online_acc1"]) == pytest.approx(online_curve(51.0, 2)[2])
    assert float(row["knn_acc1"]) == pytest.approx(online_curve(51.0, 2)[2] - 5.0)
    assert float(row["train_loss"]) == pytest.approx(16.0)
    assert row["train_loss_metric"] == "train_vicreg_loss_epoch"
    assert float(row["rankme_backbone"]) == 55.0 and float(row["rankme_projector"]) == 25.0


def test_band_plots_are_written(sweep):
    pytest.importorskip("matplotlib", reason="the plots need matplotlib: pip install .[test]")
    written = report.write_report(sweep)
    for name in ("accuracy_vs_epoch.png", "accuracy_vs_time.png", "effective_rank.png"):
        path = sweep / name
        assert path in written
        assert path.stat().st_size > 1000 and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_band_plot_target_only_on_its_panel(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib", reason="the plots need matplotlib: pip install .[test]")
    import frossl_plugin.plots as plots

    figures = []
    monkeypatch.setattr(plots, "_save", lambda fig, path, title: figures.append(fig) or path)
    groups = {"a": {"x": ([1, 2], [[1.0, 2.0], [3.0, float("nan")]]), "y": ([1, 2], [[1, 2]])}}
    plots.plot_bands(groups, [("x", "x"), ("y", "y")], tmp_path / "p.png", "epoch", "", 2.0, "y")
    x_panel, y_panel = figures[0].axes
    assert [line.get_label() for line in x_panel.get_lines()] == ["a (n=2)"]
    assert [line.get_label() for line in y_panel.get_lines()] == ["a (n=1)", "target"]
    # the mean over seeds, NaN left out
    assert list(x_panel.get_lines()[0].get_ydata()) == [2.0, 2.0]
    plots.plt.close(figures[0])


def test_band_plot_has_one_legend_and_a_distinct_style_per_variant(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib", reason="the plots need matplotlib: pip install .[test]")
    import frossl_plugin.plots as plots

    figures = []
    monkeypatch.setattr(plots, "_save", lambda fig, path, title: figures.append(fig) or path)
    groups = {f"v{i}": {"x": ([1, 2], [[i, i + 1.0]]), "y": ([1, 2], [[i, i]])} for i in range(12)}
    plots.plot_bands(groups, [("x", "x"), ("y", "y")], tmp_path / "p.png", "epoch", "", 2.0, "y")
    figure = figures[0]
    assert all(ax.get_legend() is None for ax in figure.axes)
    (legend,) = figure.legends
    assert [text.get_text() for text in legend.get_texts()] == [
        f"v{i} (n=1)" for i in range(12)
    ] + ["target"]
    for ax in figure.axes:
        variants = [line for line in ax.get_lines() if line.get_label() != "target"]
        styles = {(line.get_color(), line.get_linestyle()) for line in variants}
        assert len(variants) == 12 and len(styles) == 12
    plots.plt.close(figure)


def test_report_of_a_half_finished_sweep(tmp_path):
    root = tmp_path / "sweep"
    root.mkdir()
    write_job(root, "frossl_seed1", "frossl", 1, [], 60.0)
    write_job(root, "frossl_seed2", "frossl", 2, [], 60.0, epochs=1, finished=False)
    with (root / "frossl_seed2" / "epoch_stats.jsonl").open("a") as handle:
        handle.write('{"epoch": 2, "wall')  # a record cut short while the job writes it
    report.write_report(root)
    summary = (root / "summary.md").read_text()
    assert table_rows(summary)["frossl"][2] == "60.0 ± -"
    assert "fewer than two labels have a finished job" in summary
    assert "- frossl_seed2 (frossl, seed 2): unfinished (1 epoch recorded)" in summary


def test_cli_writes_the_report_and_counts_missing_jobs(sweep, capsys):
    assert main(["report", str(sweep), "--target-fraction", "0.5"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("Wrote ") and str(sweep / "summary.md") in out[0]
    assert out[1] == "2 of 10 planned jobs have not finished (see summary.md)."
    assert f"online top-1 >= {0.5 * 61:.2f} %" in (sweep / "summary.md").read_text()


@pytest.mark.parametrize("make", ["missing", "empty", "planned only"])
def test_cli_error_on_a_folder_without_jobs(tmp_path, capsys, make):
    folder = tmp_path / "sweep"
    if make != "missing":
        (folder / "datasets").mkdir(parents=True)
    if make == "planned only":
        (folder / "sweep_jobs.json").write_text(json.dumps({"jobs": {"a": {}, "b": {}}}))
    assert main(["report", str(folder)]) == 2
    out = capsys.readouterr().err  # errors go to stderr
    assert out.startswith("frossl-plugin report: error: ")
    assert repr(str(folder)) in out and "each holding a job.json" in out
    if make == "planned only":
        assert "2 planned in sweep_jobs.json, none started" in out


def test_a_given_label_shared_by_two_methods_keeps_them_apart(tmp_path):
    for method, final in (("frossl", 50.0), ("vicreg", 60.0)):
        for seed in (1, 2):
            write_job(tmp_path, f"{method}_s{seed}", method, seed, [], final, label="batch64")
    labels = {job.label for job in report.load_sweep(tmp_path).finished}
    assert labels == {"frossl batch64", "vicreg batch64"}


def test_a_given_label_is_followed_by_what_varies_between_its_own_jobs(tmp_path):
    weights = {"frossl_w1": "1.0", "frossl_w14": "1.4"}
    for name, weight in weights.items():
        override = [f"method_kwargs.invariance_weight={weight}"]
        write_job(tmp_path, name, "frossl", 1, override, 50.0, label="frossl 4 views")
    write_job(tmp_path, "frossl_two", "frossl", 1, [], 40.0)
    write_job(tmp_path, "vicreg_two", "vicreg", 1, [], 45.0)
    labels = {job.name: job.label for job in report.load_sweep(tmp_path).jobs}
    assert labels == {
        "frossl_w1": "frossl 4 views method_kwargs.invariance_weight=1.0",
        "frossl_w14": "frossl 4 views method_kwargs.invariance_weight=1.4",
        "frossl_two": "frossl",
        "vicreg_two": "vicreg",
    }


def frossl_settings(width: int, lr: float = 0.075) -> dict:
    """FroSSL's settings as sweep.run_settings records them, at projector width ``width``."""

    return {
        "method_kwargs.center": False,
        "method_kwargs.proj_output_dim": width,
        "optimizer.lr": lr,
        "data.num_large_crops": 2,
        "data.num_small_crops": 0,
        "augmentations.crop_size": [32],
    }


RESOLVED_WIDTH = ["method_kwargs.proj_output_dim"]  # FroSSL's auto


def test_the_summary_shows_what_each_label_ran_with(tmp_path):
    for seed in (1, 2):
        write_job(
            tmp_path,
            f"frossl_b64_s{seed}",
            "frossl",
            seed,
            ["optimizer.batch_size=64"],
            50.0,
            ran_with=frossl_settings(128),
            resolved=RESOLVED_WIDTH,
        )
    write_job(
        tmp_path,
        "frossl_b128_s1",
        "frossl",
        1,
        ["optimizer.batch_size=128"],
        55.0,
        ran_with=frossl_settings(256, lr=0.15),
        resolved=RESOLVED_WIDTH,
    )
    vicreg = {"method_kwargs.proj_output_dim": 2048, "method_kwargs.sim_loss_weight": 25.0}
    vicreg.update(
        {key: value for key, value in frossl_settings(0).items() if "method_kwargs" not in key}
    )
    write_job(
        tmp_path, "vicreg_b64_s1", "vicreg", 1, ["optimizer.batch_size=64"], 45.0, ran_with=vicreg
    )
    report.write_report(tmp_path)
    summary = (tmp_path / "summary.md").read_text()

    assert "| peak memory (MiB) | ran with |" in summary
    rows = table_rows(summary)
    # the resolved width, and the lr that differs from another label's
    assert rows["frossl optimizer.batch_size=64"][9] == "proj_output_dim=128 lr=0.075"
    assert rows["frossl optimizer.batch_size=128"][9] == "proj_output_dim=256 lr=0.15"
    # VICReg's own method_kwargs are compared with VICReg labels only
    assert rows["vicreg optimizer.batch_size=64"][9] == "lr=0.075"
    assert "## Settings not as planned" not in summary
    with (tmp_path / "runs.csv").open() as handle:
        row = next(r for r in csv.DictReader(handle) if r["job"] == "frossl_b128_s1")
    assert json.loads(row["ran_with"]) == frossl_settings(256, lr=0.15)
    assert row["ran_with_source"] == "job"


def test_jobs_of_one_label_that_ran_with_different_widths_are_kept_apart(tmp_path):
    """The same command before and after a change of auto's rule: two folders (two hashes),
    one label from the overrides, two widths."""

    write_job(
        tmp_path,
        "frossl_seed1_old",
        "frossl",
        1,
        [],
        50.0,
        day=1,
        ran_with=frossl_settings(128),
        resolved=RESOLVED_WIDTH,
    )
    write_job(
        tmp_path,
        "frossl_seed1_new",
        "frossl",
        1,
        [],
        40.0,
        day=2,
        ran_with=frossl_settings(64),
        resolved=RESOLVED_WIDTH,
    )
    loaded = report.load_sweep(tmp_path)
    labels = {job.name: job.label for job in loaded.jobs}
    assert labels == {
        "frossl_seed1_old": "frossl (ran with proj_output_dim=128)",
        "frossl_seed1_new": "frossl (ran with proj_output_dim=64)",
    }
    assert len(loaded.finished) == 2  # neither replaces the other
    report.write_report(tmp_path)
    rows = table_rows((tmp_path / "summary.md").read_text())
    assert rows["frossl (ran with proj_output_dim=128)"][2] == "50.0 ± -"
    assert rows["frossl (ran with proj_output_dim=64)"][9] == "proj_output_dim=64"


def test_settings_other_than_planned_or_not_recorded_are_flagged(tmp_path):
    write_job(
        tmp_path,
        "frossl_seed1",
        "frossl",
        1,
        [],
        50.0,
        ran_with=frossl_settings(64),
        planned_with=frossl_settings(128),
        resolved=RESOLVED_WIDTH,
    )
    write_job(
        tmp_path,
        "frossl_seed2",
        "frossl",
        2,
        ["label=other"],
        50.0,
        label="other",
        planned_with=frossl_settings(128),
        resolved=RESOLVED_WIDTH,
    )
    report.write_report(tmp_path)
    summary = (tmp_path / "summary.md").read_text()
    rows = table_rows(summary)
    assert rows["frossl"][9] == "proj_output_dim=64 (not as planned, see below)"
    assert rows["other"][9] == "proj_output_dim=128 (planned)"
    flags = summary.split("## Settings not as planned or not recorded")[1].split("## Statistics")[0]
    assert "- frossl_seed1 (frossl, seed 1): ran with proj_output_dim=64 (planned 128)" in flags
    assert "- frossl_seed2 (other, seed 2): no record of the settings it ran with" in flags


@pytest.mark.parametrize(
    "memory", [("cpu_process_peak_rss", "process_start"), ("cpu_peak_rss", None)]
)
def test_a_process_high_water_mark_is_not_reported_as_the_jobs_own_peak(tmp_path, memory):
    """The basic launcher runs every job in one process: a peak since the process started is
    an earlier job's as often as not. ``cpu_peak_rss`` without ``memory_since``: records
    written before the peak was reset per epoch."""

    for method, seed in (("frossl", 1), ("vicreg", 1)):
        write_job(tmp_path, f"{method}_s{seed}", method, seed, [], 50.0, memory=memory)
    report.write_report(tmp_path)
    summary = (tmp_path / "summary.md").read_text()
    for cells in table_rows(summary).values():
        assert cells[8] == f"{100.0 + 10 + EPOCHS:.0f} (process high-water mark)"
    note = summary.split("Peak memory, ")[1].split("Ran with:")[0]
    assert (
        "'process high-water mark': the training process'" in note and "not the job's own" in note
    )


def test_a_jobs_own_peak_carries_no_tag_but_mixed_kinds_do(tmp_path):
    write_job(tmp_path, "frossl_s1", "frossl", 1, [], 50.0)
    write_job(tmp_path, "vicreg_s1", "vicreg", 1, [], 50.0)
    report.write_report(tmp_path)
    summary = (tmp_path / "summary.md").read_text()
    assert table_rows(summary)["frossl"][8] == f"{100.0 + 10 + EPOCHS:.0f}"
    assert "during each epoch of the job" in summary.split("Peak memory, ")[1]
    write_job(tmp_path, "vicreg_s2", "vicreg", 2, [], 50.0, memory=("cuda_max_allocated", None))
    report.write_report(tmp_path)
    rows = table_rows((tmp_path / "summary.md").read_text())
    assert rows["frossl"][8] == f"{100.0 + 10 + EPOCHS:.0f} (RSS)"
    assert (
        rows["vicreg"][8] == f"{100.0 + 10 + EPOCHS:.0f} (RSS) / {100.0 + 20 + EPOCHS:.0f} (CUDA)"
    )


# --- a job stopped and resumed: its parts joined ----------------------------------------------


def part_record(epoch: int, part: int, resumed_from: int, wall: float, took: float, acc: float):
    return {
        "epoch": epoch,
        "part": part,
        "resumed_from_epoch": resumed_from,
        "wall_time_s": wall,
        "epoch_time_s": took,
        "metrics": {"val_acc1": acc},
    }


# part 0 recorded epochs 1-3 and was stopped before epoch 3's checkpoint; part 1 continued from
# epoch 2's and was stopped during epoch 5; part 2 continued from epoch 4's (its wall time, as
# every part's, starts again at 0)
RESUMED = [
    part_record(1, 0, 0, 10.0, 10.0, 20.0),
    part_record(2, 0, 0, 14.0, 4.0, 30.0),
    part_record(3, 0, 0, 18.0, 4.0, 99.0),  # trained again by part 1
    part_record(3, 1, 2, 7.0, 7.0, 40.0),
    part_record(4, 1, 2, 12.0, 5.0, 50.0),
    part_record(5, 2, 4, 9.0, 9.0, 60.0),
    part_record(6, 2, 4, 14.0, 5.0, 70.0),
]
RESUMED_TIMES = {1: 10.0, 2: 14.0, 3: 21.0, 4: 26.0, 5: 35.0, 6: 40.0}  # training time summed


def test_join_parts_keeps_one_record_per_epoch_and_sums_training_time():
    joined = report.join_parts(RESUMED)
    assert [r["epoch"] for r in joined] == [1, 2, 3, 4, 5, 6]
    assert [r["part"] for r in joined] == [0, 0, 1, 1, 2, 2]  # epoch 3: the part continued
    assert joined[2]["metrics"]["val_acc1"] == 40.0
    assert {r["epoch"]: r["training_time_s"] for r in joined} == pytest.approx(RESUMED_TIMES)


def test_join_parts_drops_what_a_part_resumed_from_an_earlier_epoch_trained_again():
    """A part that resumed from an earlier checkpoint (the last one was cut off) or started
    afresh continues from there: the records of the epochs after it are another branch."""

    records = [
        part_record(1, 0, 0, 5.0, 5.0, 1.0),
        part_record(2, 0, 0, 10.0, 5.0, 2.0),
        part_record(3, 0, 0, 15.0, 5.0, 3.0),
        part_record(2, 1, 1, 6.0, 6.0, 4.0),  # epoch 2's checkpoint was cut off
        part_record(1, 2, 0, 8.0, 8.0, 5.0),  # no checkpoint left at all: a fresh start
    ]
    joined = report.join_parts(records)
    assert [(r["epoch"], r["part"]) for r in joined] == [(1, 2)]
    assert joined[0]["training_time_s"] == 8.0
    joined = report.join_parts(records[:4])
    assert [(r["epoch"], r["part"]) for r in joined] == [(1, 0), (2, 1)]
    assert [r["training_time_s"] for r in joined] == [5.0, 11.0]


def test_join_parts_reads_records_written_before_parts_were_recorded():
    """Earlier records have neither part nor epoch_time_s: the later record of an epoch wins and
    an epoch's time is the growth of wall_time_s, or all of it where the wall time started
    again (a resumed part)."""

    old = [
        {"epoch": 1, "wall_time_s": 10.0},
        {"epoch": 2, "wall_time_s": 20.0},
        {"epoch": 2, "wall_time_s": 12.0},  # resumed from epoch 1, trained epoch 2 again
        {"epoch": 3, "wall_time_s": 22.0},
        {"epoch": 4, "wall_time_s": 30.0},  # resumed from epoch 3: its own part
    ]
    joined = report.join_parts(old)
    assert [r["epoch"] for r in joined] == [1, 2, 3, 4]
    assert [r["wall_time_s"] for r in joined] == [10.0, 12.0, 22.0, 30.0]
    assert [r["training_time_s"] for r in joined] == [10.0, 22.0, 32.0, 40.0]
    assert report.join_parts([]) == []


def test_the_report_shows_a_resumed_job_as_one_curve_timed_by_its_training(tmp_path):
    root = tmp_path / "sweep"
    root.mkdir()
    write_job(root, "frossl_seed1", "frossl", 1, [], 60.0)
    with (root / "frossl_seed1" / "epoch_stats.jsonl").open("w") as handle:
        handle.writelines(json.dumps(record) + "\n" for record in RESUMED)
    report.write_report(root, target_acc=45.0)
    with (root / "runs.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [int(row["epoch"]) for row in rows] == [1, 2, 3, 4, 5, 6]
    assert [float(row["training_time_s"]) for row in rows] == [
        RESUMED_TIMES[e] for e in range(1, 7)
    ]
    assert [row["part"] for row in rows] == ["0", "0", "1", "1", "2", "2"]
    cells = table_rows((root / "summary.md").read_text())["frossl"]
    # 45 % first at epoch 4 (not epoch 3's 99 %, which part 1 trained again), after 26 s of
    # training, not part 1's wall time of 12 s nor the 14 + 18 + 12 s the parts' clocks show
    assert cells[4] == "4.0 ± - (1/1 reached)" and cells[5] == "26.0 ± -"
    assert cells[2] == "70.0 ± -"
    assert "summed over its parts" in (root / "summary.md").read_text()
