"""``frossl-plugin compare``: settings, configs, summary arithmetic, and a real CPU comparison
through the unmodified host on the demo digits."""

import argparse
import contextlib
import csv
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from helpers import HOST_PATH, host_env, requires_host, write_tiny_image_folder

from frossl_plugin.compare import command, report, runner
from frossl_plugin.compare.command import _validate, add_compare, parse_devices
from frossl_plugin.compare.method_settings import DEFAULT_SETTINGS, method_settings
from frossl_plugin.compare.run_config import (
    SharedSettings,
    compose_shared,
    config_yaml,
    method_config,
    parse_method_overrides,
)
from frossl_plugin.host import checkout

# --- method settings --------------------------------------------------------------------------


@requires_host
def test_host_recommended_settings_are_read_from_the_host_config():
    from omegaconf import OmegaConf

    settings = method_settings(HOST_PATH, "cifar10", "barlow_twins")
    host_file = OmegaConf.load(HOST_PATH / "scripts/pretrain/cifar/barlow.yaml")
    assert settings["source"] == "host scripts/pretrain/cifar/barlow.yaml"
    assert settings["method_kwargs"] == OmegaConf.to_container(host_file.method_kwargs)
    byol = method_settings(HOST_PATH, "cifar100", "byol")
    assert byol["momentum"] == OmegaConf.to_container(
        OmegaConf.load(HOST_PATH / "scripts/pretrain/cifar/byol.yaml").momentum
    )


@requires_host
def test_host_cifar_recipe_where_the_host_has_none_for_the_dataset():
    folder = method_settings(HOST_PATH, "custom", "vicreg")
    assert folder["source"] == (
        "host scripts/pretrain/cifar/vicreg.yaml (the host has no custom recipe for vicreg)"
    )
    assert (
        folder["method_kwargs"] == method_settings(HOST_PATH, "cifar10", "vicreg")["method_kwargs"]
    )
    # the host's own image-folder recipe wins where it has one
    assert method_settings(HOST_PATH, "custom", "byol")["source"].startswith(
        "host scripts/pretrain/custom/"
    )


def test_documented_defaults_where_the_host_has_none():
    settings = method_settings(None, "stl10", "vicreg")
    assert settings["method_kwargs"] == DEFAULT_SETTINGS["vicreg"]["method_kwargs"]
    assert settings["source"].startswith("plugin default")
    with pytest.raises(ValueError, match="No settings known for method 'nosuch'"):
        method_settings(None, "stl10", "nosuch")


@pytest.mark.parametrize(
    "text, devices", [("[0,1]", [0, 1]), ("0,1", [0, 1]), ("2", [0, 1]), ("[2]", [2]), ("1", [0])]
)
def test_devices_become_the_list_the_host_counts(text, devices):
    assert parse_devices(text) == devices


@pytest.mark.parametrize("text", ["auto", "[0, a]", "0", "-1", "[]", "[true]"])
def test_bad_devices_are_refused(text):
    with pytest.raises(argparse.ArgumentTypeError, match=f"--devices {re.escape(repr(text))}"):
        parse_devices(text)


def _compare_args(*argv):
    parser = argparse.ArgumentParser()
    add_compare(parser.add_subparsers())
    args = parser.parse_args(["compare", *argv])
    return args, [m for m in args.methods.split(",") if m]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--data", "cifar10", "--epochs", "2", "--val-subset", "100"], "--val-subset 100 applies"),
        (["--data", "folder", "--epochs", "2", "--limit-val-batches", "2"], "use --val-subset N"),
        (["--data", "cifar10", "--epochs", "0"], "--epochs must be >= 1, but found 0"),
        (["--data", "cifar10", "--epochs", "2", "--methods", "frossl,frossl"], "a method twice"),
    ],
)
def test_contradictory_options_are_refused(argv, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        _validate(*_compare_args(*argv))


def test_limit_val_batches_on_a_folder_is_allowed_without_knn():
    _validate(
        *_compare_args("--data", "folder", "--epochs", "2", "--limit-val-batches", "2", "--no-knn")
    )


def test_method_override_parsing():
    parsed = parse_method_overrides(
        ["barlow_twins:method_kwargs.scale_loss=0.05", "vicreg:optimizer.lr=0.2"]
    )
    assert parsed == {
        "barlow_twins": [("method_kwargs.scale_loss", 0.05)],
        "vicreg": [("optimizer.lr", 0.2)],
    }
    for bad in ["barlow_twins", "barlow_twins:scale_loss", ":x=1"]:
        with pytest.raises(ValueError, match="METHOD:KEY=VALUE"):
            parse_method_overrides([bad])


# --- configs ----------------------------------------------------------------------------------


def test_methods_share_everything_but_their_own_settings(tmp_path, demo_data):
    shared = SharedSettings(
        data=str(demo_data),
        epochs=3,
        batch_size=32,
        num_workers=0,
        augmentations="demo_digits",
        limit_train_batches=2,
    )
    cfg, base, _ = compose_shared(shared, tmp_path)
    assert base == "frossl_custom"
    assert cfg.data.dataset == "custom" and cfg.data.eval_crop_size == 32
    assert cfg.data.train_path == str(demo_data.resolve() / "train")
    assert cfg.epoch_stats.enabled and cfg.spectrum_monitor.enabled
    configs = {}
    for method in ("frossl", "barlow_twins", "vicreg"):
        method_cfg, _ = method_config(cfg, method, None, [], base)
        text = config_yaml(method_cfg, f"{method} run")
        configs[method] = yaml.safe_load(text)
    barlow_defaults = DEFAULT_SETTINGS["barlow_twins"]["method_kwargs"]
    assert configs["barlow_twins"]["method_kwargs"] == barlow_defaults
    assert configs["frossl"]["method_kwargs"]["invariance_weight"] == 1.0
    own = {"method", "method_kwargs", "momentum"}
    for method, config in configs.items():
        assert config["method"] == method
        assert config["hydra"]["callbacks"]["frossl_plugin"]["_target_"].endswith(
            "FroSSLPluginCallback"
        )
        for key in set(config) - own:
            assert config[key] == configs["frossl"][key], (method, key)
    assert configs["frossl"]["max_epochs"] == 3 and configs["frossl"]["limit_train_batches"] == 2


@pytest.mark.parametrize("epochs, override, warmup", [(3, None, 0), (50, None, 5), (3, "2", 2)])
def test_warmup_scales_with_the_epochs_unless_overridden(
    tmp_path, demo_data, epochs, override, warmup
):
    overrides = [f"scheduler.warmup_epochs={override}"] if override else []
    shared = SharedSettings(data=str(demo_data), epochs=epochs, overrides=overrides)
    cfg, _, _ = compose_shared(shared, tmp_path)
    assert cfg.scheduler.warmup_epochs == warmup


def test_folder_without_val_is_refused(tmp_path):
    (tmp_path / "train" / "a").mkdir(parents=True)
    with pytest.raises(ValueError, match=r"has train/ but none of \['val'"):
        compose_shared(SharedSettings(data=str(tmp_path), epochs=1), tmp_path)


# --- summary arithmetic -----------------------------------------------------------------------


def _rows(method, accs, times, step_times):
    return [
        {
            "method": method,
            "epoch": i + 1,
            "online_acc1": a,
            "knn_acc1": a - 5,
            "wall_time_s": float(t),
            "step_time_s": s,
            "images_per_s": 100.0 / s,
            "peak_memory_mib": 10.0 * (i + 1),
            "memory_kind": "cpu_peak_rss",
            "rankme_projector": 3.0,
        }
        for i, (a, t, s) in enumerate(zip(accs, times, step_times))
    ]


def test_summary_target_epochs_time_and_ratios():
    rows = {
        "frossl": _rows("frossl", [20, 50, 70, 80], [10, 20, 30, 40], [9.0, 1.0, 1.0, 1.0]),
        "barlow_twins": _rows(
            "barlow_twins", [10, 30, 60, 75], [12, 24, 36, 48], [9.0, 1.2, 1.2, 1.2]
        ),
    }
    summary = report.summarize(rows, target=None, target_fraction=0.75)
    assert summary["target"] == pytest.approx(60.0)  # 0.75 x best final (80)
    frossl, barlow = summary["methods"]["frossl"], summary["methods"]["barlow_twins"]
    assert (frossl["epochs_to_target"], frossl["time_to_target_s"]) == (3, 30)
    assert (barlow["epochs_to_target"], barlow["time_to_target_s"]) == (3, 36)
    assert frossl["mean_step_time_s"] == pytest.approx(1.0)  # first epoch left out
    assert barlow["mean_step_time_s"] == pytest.approx(1.2)
    assert frossl["peak_memory_mib"] == 40.0
    fixed = report.summarize(rows, target=65.0, target_fraction=0.75)
    assert fixed["methods"]["frossl"]["epochs_to_target"] == 3
    assert fixed["methods"]["barlow_twins"]["epochs_to_target"] == 4
    unreachable = report.summarize(rows, target=99.0, target_fraction=0.9)
    assert unreachable["methods"]["frossl"]["epochs_to_target"] is None
    table = report.summary_markdown(fixed, {"data": "x"}, {})
    barlow_row = [line for line in table.splitlines() if line.startswith("| barlow_twins")][0]
    cells = [cell.strip() for cell in barlow_row.strip("|").split("|")]
    assert cells[4] == "4" and cells[5] == "48.0" and cells[6] == "1200.0"
    assert cells[9:] == ["1.33", "1.60", "1.20"]  # 4/3, 48/30, 1.2/1.0
    assert "target: online linear top-1 >= 65.00 %" in table


def test_loss_metric_lookup():
    assert report.loss_metric_of("barlow_twins", {"train_barlow_loss_epoch": 1.0}) == (
        "train_barlow_loss_epoch"
    )
    metrics = {"train_class_loss_epoch": 1.0, "train_acc1_epoch": 1.0, "train_swav_loss_epoch": 2}
    assert report.loss_metric_of("swav", metrics) == "train_swav_loss_epoch"


# --- a real comparison through the host ---------------------------------------------------------


def _small_digits(demo_data: Path, root: Path, train_per_class: int, val_per_class: int) -> Path:
    for split, count in (("train", train_per_class), ("val", val_per_class)):
        for folder in sorted((demo_data / split).iterdir()):
            target = root / split / folder.name
            target.mkdir(parents=True)
            for image in sorted(folder.glob("*.png"))[:count]:
                shutil.copy(image, target / image.name)
    return root


def _compare(args, cwd):
    return subprocess.run(
        [sys.executable, "-m", "frossl_plugin.cli", "compare", *args],
        cwd=cwd,
        env=host_env(),
        capture_output=True,
        text=True,
        timeout=1500,
    )


@requires_host
@pytest.mark.slow
def test_compare_frossl_and_barlow_twins_on_digits(tmp_path, demo_data):
    from PIL import Image

    data = _small_digits(demo_data, tmp_path / "digits", train_per_class=12, val_per_class=8)
    out = tmp_path / "cmp"
    args = [
        "--methods",
        "frossl,barlow_twins",
        "--data",
        str(data),
        "--epochs",
        "2",
        "--out",
        str(out),
        "--host",
        str(HOST_PATH),
        "--batch-size",
        "32",
        "--limit-train-batches",
        "2",
        "--num-workers",
        "0",
        "--augmentations",
        "demo_digits",
        "--spectrum-samples",
        "48",
    ]
    result = _compare(args, tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == (
        f"compare: results in {out.resolve()}: epochs.csv, summary.md, accuracy_vs_epoch.png, "
        "accuracy_vs_time.png, spectra/frossl.png, spectra/barlow_twins.png, effective_rank.png"
    )

    with (out / "epochs.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["method"], int(r["epoch"])) for r in rows] == [
        ("frossl", 1),
        ("frossl", 2),
        ("barlow_twins", 1),
        ("barlow_twins", 2),
    ]
    for row in rows:
        for key in ("online_acc1", "knn_acc1"):
            assert 0.0 <= float(row[key]) <= 100.0, (key, row)
        assert int(row["steps"]) == 2 and int(row["samples"]) == 64
        assert float(row["images_per_s"]) == pytest.approx(64 / float(row["train_time_s"]))
        assert float(row["peak_memory_mib"]) > 100 and row["memory_kind"] == "cpu_peak_rss"
        assert math.isfinite(float(row["train_loss"]))
        assert (
            row["train_loss_metric"]
            == {"frossl": "train_frossl_loss_epoch", "barlow_twins": "train_barlow_loss_epoch"}[
                row["method"]
            ]
        )
        assert 1.0 <= float(row["rankme_projector"]) <= 48
        assert 1.0 <= float(row["rankme_backbone"]) <= 48
    for method in ("frossl", "barlow_twins"):
        times = [float(r["wall_time_s"]) for r in rows if r["method"] == method]
        assert times[0] < times[1]
        spectra = (out / method / "spectrum" / "spectra.jsonl").read_text().splitlines()
        assert len(spectra) == 6  # epochs 0, 1, 2 x backbone, projector

    summary = (out / "summary.md").read_text()
    assert "- notes: FroSSL: method_kwargs.proj_output_dim=1024 is more than 8 x the 32" in summary
    finals = {r["method"]: float(r["online_acc1"]) for r in rows if r["epoch"] == "2"}
    target = 0.9 * max(finals.values())
    assert f"target: online linear top-1 >= {target:.2f} %" in summary
    frossl_row = [line for line in summary.splitlines() if line.startswith("| frossl")][0]
    cells = [cell.strip() for cell in frossl_row.strip("|").split("|")]
    assert cells[2] == f"{finals['frossl']:.1f}"
    assert cells[-1] == "1.00"  # step time / FroSSL of FroSSL itself
    assert (
        "| barlow_twins | host scripts/pretrain/cifar/barlow.yaml (the host has no custom"
        in summary
    )

    for name in ("accuracy_vs_epoch", "accuracy_vs_time", "effective_rank"):
        with Image.open(out / f"{name}.png") as image:
            assert image.format == "PNG" and image.size[0] > 300
    for method in ("frossl", "barlow_twins"):
        assert (out / "spectra" / f"{method}.png").stat().st_size > 0

    # resumable: finished methods are not retrained
    logs = {m: (out / m / "train.log").stat().st_mtime_ns for m in ("frossl", "barlow_twins")}
    again = _compare(args, tmp_path)
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
    assert {m: (out / m / "train.log").stat().st_mtime_ns for m in logs} == logs
    with (out / "epochs.csv").open() as handle:
        assert list(csv.DictReader(handle)) == rows
    # other settings in the same folder are refused rather than mixed
    epochs_at = args.index("--epochs") + 1
    changed = _compare(args[:epochs_at] + ["3"] + args[epochs_at + 1 :], tmp_path)
    assert changed.returncode == 2 and "other settings" in changed.stdout


# --- optional dependencies --------------------------------------------------------------------


def _hide_matplotlib(monkeypatch):
    """Makes ``import matplotlib`` (and so frossl_plugin.plots) fail in this process."""

    for name in [n for n in sys.modules if n == "matplotlib" or n.startswith("matplotlib.")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.delitem(sys.modules, "frossl_plugin.plots", raising=False)


def _fake_epoch_stats(directory: Path, losses) -> None:
    """``epoch_stats.jsonl`` as the host run would write it, one record per loss."""

    directory.mkdir(parents=True, exist_ok=True)
    with (directory / runner.STATS_FILE).open("w") as handle:
        for epoch, loss in enumerate(losses, start=1):
            record = {
                "epoch": epoch,
                "wall_time_s": 2.0 * epoch,
                "train_time_s": 1.5,
                "val_time_s": 0.5,
                "steps": 2,
                "samples": 32,
                "images_per_s": 32 / 1.5,
                "step_time_s": 0.75,
                "peak_memory_mib": 500.0,
                "memory_kind": "cpu_peak_rss",
                "metrics": {"val_acc1": 20.0 * epoch, "train_frossl_loss_epoch": loss},
            }
            handle.write(json.dumps(record) + "\n")


@pytest.mark.parametrize("matplotlib_installed", [False, True])
def test_missing_matplotlib_is_said_before_training_and_only_written_files_are_listed(
    tmp_path, monkeypatch, capsys, matplotlib_installed
):
    if matplotlib_installed:
        pytest.importorskip("matplotlib", reason="the plots need matplotlib: pip install .[test]")
    else:
        _hide_matplotlib(monkeypatch)
    data = write_tiny_image_folder(tmp_path / "data", classes=2, size=8)
    fake_host = tmp_path / "host"
    fake_host.mkdir()
    monkeypatch.setattr(checkout, "find_host", lambda path=None: fake_host)
    monkeypatch.setattr(command, "_check_methods", lambda methods, host_root: None)
    # FroSSL's advice comes from its method module, which imports the host
    monkeypatch.setattr(command, "_frossl_collapse_risk", lambda cfg: None)
    said_before_training = []

    def fake_run_all(runs, host_root, epochs, force=False):
        said_before_training.append(capsys.readouterr().out)
        for run in runs:
            _fake_epoch_stats(run.directory, [0.3, 0.2])
        return {run.method: "done" for run in runs}

    monkeypatch.setattr(runner, "run_all", fake_run_all)
    out = tmp_path / "cmp"
    parser = argparse.ArgumentParser()
    add_compare(parser.add_subparsers())
    args = parser.parse_args(
        ["compare", "--methods", "frossl", "--data", str(data), "--epochs", "2", "--out", str(out)]
    )
    assert args.run(args) == 0
    final = capsys.readouterr().out.strip().splitlines()[-1]

    (before,) = said_before_training
    notice = [line for line in before.splitlines() if "matplotlib" in line]
    written = re.fullmatch(r"compare: results in (.+?): (.+?)( \(no plots.*\))?", final)
    assert written, final
    names = written.group(2).split(", ")
    assert all((out / name).is_file() for name in names)
    if matplotlib_installed:
        assert notice == []
        # no spectra were recorded, so no effective_rank.png and no spectra/ are listed
        assert names == [
            "epochs.csv",
            "summary.md",
            "accuracy_vs_epoch.png",
            "accuracy_vs_time.png",
        ]
    else:
        assert notice == [
            "compare: matplotlib is not installed, so no plots will be written "
            f"({report.PLOT_FILES}); to get them: pip install 'frossl-plugin[compare]' (from the "
            "package index), or pip install '.[compare]' in a frossl-plugin checkout"
        ]
        assert names == ["epochs.csv", "summary.md"]
        assert ".png" not in final and "matplotlib is not installed" in final
        assert not list(out.glob("*.png"))


def test_optional_dependency_notices_name_what_is_missing(monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm", None)
    _hide_matplotlib(monkeypatch)
    notices = report.optional_dependency_notices()
    assert len(notices) == 2
    assert notices[0].startswith("compare: matplotlib is not installed, so no plots")
    assert notices[1].startswith("compare: tqdm is not installed, so progress is one printed line")
    assert all("pip install '.[compare]'" in notice for notice in notices)


# --- plots ------------------------------------------------------------------------------------


def _same(values, expected):
    return len(values) == len(expected) and all(
        (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b) for a, b in zip(values, expected)
    )


@pytest.mark.parametrize(
    "values, expected",
    [
        ([200.0, 100.0, 50.0], [1.0, 0.5, 0.25]),
        ([0.3, 0.15, 0.6], [1.0, 0.5, 2.0]),
        # the first finite non-zero value is the reference; non-finite values become NaN
        ([0.0, math.nan, 0.4, 0.1], [0.0, math.nan, 1.0, 0.25]),
        ([math.inf, 2.0, 1.0], [math.nan, 1.0, 0.5]),
        # a negative loss keeps its direction: a falling loss falls from -1
        ([-0.5, -1.0, -1.5], [-1.0, -2.0, -3.0]),
    ],
)
def test_loss_relative_to_its_first_epoch(values, expected):
    assert _same(report.relative_to_first(values), expected)


@pytest.mark.parametrize("values", [[], [0.0, 0.0], [math.nan, 0.0, math.inf], [None]])
def test_loss_without_a_finite_nonzero_value_has_no_line(values):
    assert report.relative_to_first(values) is None


@pytest.mark.parametrize("target_key, panel", [("online_acc1", 0), ("knn_acc1", 1), (None, None)])
def test_target_line_only_on_the_panel_of_its_metric(target_key, panel):
    pytest.importorskip("matplotlib", reason="the plots need matplotlib: pip install .[test]")
    from frossl_plugin.plots import curves_figure, plt

    columns = {"epoch": [1, 2], "online_acc1": [40, 60], "knn_acc1": [30, 50], "x_acc1": [1, 2]}
    series = {"frossl": columns, "barlow_twins": columns}
    # every key ends in acc1: the target goes only on the panel of target_key
    panels = [("online_acc1", "online"), ("knn_acc1", "kNN"), ("x_acc1", "another top-1")]
    fig = curves_figure(series, "epoch", panels, target=50.0, target_key=target_key)
    try:
        with_target = [
            index
            for index, ax in enumerate(fig.axes)
            if any(line.get_label() == "target" for line in ax.get_lines())
        ]
        assert with_target == ([] if panel is None else [panel])
        assert [len(ax.get_lines()) for ax in fig.axes] == [
            2 + (index == panel) for index in range(3)
        ]
    finally:
        plt.close(fig)


@pytest.mark.parametrize("target_metric", ["online_acc1", "knn_acc1"])
def test_plots_get_relative_losses_and_the_target_metric(tmp_path, monkeypatch, target_metric):
    pytest.importorskip("matplotlib", reason="the plots need matplotlib: pip install .[test]")
    import frossl_plugin.plots

    calls = []
    real = frossl_plugin.plots.plot_curves

    def spy(series, x_key, panels, path, title="", target=None, target_key=None):
        calls.append((series, [key for key, _ in panels], target, target_key))
        return real(series, x_key, panels, path, title, target, target_key)

    monkeypatch.setattr(frossl_plugin.plots, "plot_curves", spy)
    losses = {"frossl": [0.3, 0.27, 0.24], "barlow_twins": [200.0, 150.0, 100.0], "x": [0.0] * 3}
    rows = {}
    for method, values in losses.items():
        _fake_epoch_stats(tmp_path / method, values)
        rows[method] = report.method_rows(method, tmp_path / method)
    written = report.write_plots(rows, {}, tmp_path, 40.0, target_metric)
    assert written == [tmp_path / "accuracy_vs_epoch.png", tmp_path / "accuracy_vs_time.png"]
    (series, keys, target, key), (_, time_keys, _, time_key) = calls
    assert keys == ["online_acc1", "knn_acc1", report.RELATIVE_LOSS]
    assert (target, key, time_key) == (40.0, target_metric, target_metric)
    assert series["frossl"][report.RELATIVE_LOSS] == pytest.approx([1.0, 0.9, 0.8])
    assert series["barlow_twins"][report.RELATIVE_LOSS] == pytest.approx([1.0, 0.75, 0.5])
    assert report.RELATIVE_LOSS not in series["x"]  # all-zero loss: no line


# --- stopping with SIGINT / SIGTERM -----------------------------------------------------------


def _live_group_members(pgid: int):
    """Pids of process group ``pgid`` that are still running (Linux /proc). Zombies are dead
    processes whose exit status nobody collected yet (an orphan's is collected by PID 1, which
    in some containers never does), so they do not count."""

    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # exited meanwhile
            continue
        state, _, group = text[text.rindex(")") + 2 :].split()[:3]
        if int(group) == pgid and state not in ("Z", "X"):
            members.append(int(stat.parent.name))
    return members


def _wait_for(condition, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def _group_is_gone(pgid: int) -> bool:
    return not _live_group_members(pgid)


needs_proc = pytest.mark.skipif(
    not Path("/proc/self/stat").is_file(), reason="reads process groups from Linux /proc"
)


# A parent that exits on SIGTERM, with a "worker" in its process group that ignores SIGTERM.
STUBBORN_WORKER = """\
import signal, subprocess, sys, time

if sys.argv[1] == "worker":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    open(sys.argv[2], "w").close()
else:
    subprocess.Popen([sys.executable, sys.argv[0], "worker", sys.argv[2]])
time.sleep(600)
"""


@needs_proc
def test_stopping_a_process_group_terminates_then_kills(tmp_path):
    script, ready = tmp_path / "stubborn.py", tmp_path / "worker_ready"
    script.write_text(STUBBORN_WORKER)
    process = subprocess.Popen(
        [sys.executable, str(script), "parent", str(ready)], start_new_session=True
    )
    try:
        _wait_for(ready.is_file, 30, "the worker to start")
        assert len(_live_group_members(process.pid)) == 2
        start = time.monotonic()
        runner.stop_process_group(process, grace_s=1.0)
        assert process.returncode == -signal.SIGTERM  # the parent took the polite signal
        _wait_for(lambda: _group_is_gone(process.pid), 10, "the worker to be killed")
        assert time.monotonic() - start < 10
    finally:  # whatever the test left running
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def test_stop_signals_are_caught_only_while_active():
    before = {signum: signal.getsignal(signum) for signum in runner.STOP_SIGNALS}
    with runner.catch_stop_signals() as request:
        assert request.signum is None
        os.kill(os.getpid(), signal.SIGTERM)
        _wait_for(lambda: request.signum is not None, 5, "the signal to be recorded")
        os.kill(os.getpid(), signal.SIGINT)  # the first one is kept
        time.sleep(0.1)
    assert request.signum == signal.SIGTERM
    assert {signum: signal.getsignal(signum) for signum in runner.STOP_SIGNALS} == before


# A stand-in for the host's main_pretrain.py: one record per epoch in epoch_stats.jsonl, each
# followed by a sleep read from its config, and a "data-loader worker" in its process group.
FAKE_MAIN_PRETRAIN = """\
import json, os, subprocess, sys, time
from pathlib import Path

config = Path(sys.argv[sys.argv.index("--config-path") + 1]) / "pretrain.yaml"
settings = dict(line.split(": ") for line in config.read_text().splitlines())
worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
Path("pids.json").write_text(json.dumps({"main": os.getpid(), "worker": worker.pid}))
for epoch in range(1, int(settings["epochs"]) + 1):
    with open("epoch_stats.jsonl", "a") as handle:
        handle.write(json.dumps({"epoch": epoch, "run": os.getpid(), "metrics": {}}) + "\\n")
    time.sleep(float(settings["seconds_per_epoch"]))
worker.kill()
worker.wait()
"""

# Runs runner.run_all on two methods, in its own process (signals go to its main thread).
RUN_ALL_DRIVER = """\
import json, sys
from pathlib import Path
from frossl_plugin.compare.runner import MethodRun, Stopped, run_all

host, out, slow_seconds = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
runs = [
    MethodRun(name, out / name, f"epochs: 2\\nseconds_per_epoch: {seconds}", "test")
    for name, seconds in (("first", "0"), ("second", slow_seconds))
]
try:
    status = run_all(runs, host, epochs=2, poll_s=0.1, grace_s=2.0)
except Stopped as stop:
    print(stop.message())
    sys.exit(stop.exit_code)
print(json.dumps(status))
"""


def _stop_and_check(command, signum, group_of, done_path, timeout_s, env=None):
    """Starts ``command`` (a comparison), sends it ``signum`` once ``group_of()`` returns the
    process group of its second method, and checks the exit code, that the group is gone and
    that the first method's done.json is untouched. Returns the output."""

    process = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    pgid = None
    try:
        pgid = _wait_for(group_of, timeout_s, "the second method's processes")
        done_before = (done_path.read_bytes(), done_path.stat().st_mtime_ns)
        process.send_signal(signum)
        output, _ = process.communicate(timeout=120)
        assert process.returncode == 128 + signum, output
        _wait_for(lambda: _group_is_gone(pgid), 10, f"process group {pgid} to be gone")
        assert (done_path.read_bytes(), done_path.stat().st_mtime_ns) == done_before
    finally:  # after a failure, leave nothing running
        if process.poll() is None:
            process.terminate()  # it stops its own host process first
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        if pgid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
    return output


STOP_SIGNALS = [pytest.param(signum, id=signum.name) for signum in runner.STOP_SIGNALS]


@needs_proc
@pytest.mark.parametrize("signum", STOP_SIGNALS)
def test_a_stopped_run_all_kills_its_host_process_and_resumes(tmp_path, signum):
    host, out = tmp_path / "host", tmp_path / "out"
    host.mkdir()
    (host / "main_pretrain.py").write_text(FAKE_MAIN_PRETRAIN)
    driver = [sys.executable, "-c", RUN_ALL_DRIVER, str(host), str(out)]

    def second_group():
        pids = out / "second" / "pids.json"
        if not pids.is_file() or not (out / "second" / "epoch_stats.jsonl").is_file():
            return None
        main = json.loads(pids.read_text())["main"]
        return main if len(_live_group_members(main)) == 2 else None

    output = _stop_and_check(driver + ["60"], signum, second_group, out / "first" / "done.json", 60)
    name = signal.Signals(signum).name
    assert output.strip().splitlines()[-1] == (
        f"compare: stopped by {name}: stopped second and its host processes after 1/2 epochs "
        "(it restarts from scratch next time); finished methods kept: first; not finished: "
        "second. Rerun the same command to resume."
    )
    assert not (out / "second" / "done.json").exists()

    again = subprocess.run(driver + ["0"], capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stdout + again.stderr
    assert json.loads(again.stdout.strip().splitlines()[-1]) == {
        "first": "skipped",
        "second": "done",
    }
    records = runner.read_jsonl(out / "second" / "epoch_stats.jsonl")
    assert [r["epoch"] for r in records] == [1, 2]  # cleared, not appended to
    assert len({r["run"] for r in records}) == 1


def _host_process_group(method_dir: Path):
    """The process group of the host's main_pretrain.py training in ``method_dir`` once it has
    started a data-loader worker (two live members), else None."""

    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            argv = cmdline.read_bytes().split(b"\0")
        except OSError:
            continue
        if (
            any(arg.endswith(b"main_pretrain.py") for arg in argv)
            and str(method_dir).encode() in argv
        ):
            pid = int(cmdline.parent.name)
            return pid if len(_live_group_members(pid)) >= 2 else None
    return None


@requires_host
@pytest.mark.host
@pytest.mark.slow
@needs_proc
@pytest.mark.parametrize("signum", STOP_SIGNALS)
def test_compare_stopped_by_a_signal_leaves_nothing_running_and_resumes(tmp_path, signum):
    data = write_tiny_image_folder(tmp_path / "data", classes=4, train_per_class=16, size=32)
    out = tmp_path / "cmp"
    args = [
        "--methods",
        "frossl,barlow_twins",
        "--data",
        str(data),
        "--epochs",
        "1",
        "--out",
        str(out),
        "--host",
        str(HOST_PATH),
        "--batch-size",
        "16",
        "--limit-train-batches",
        "2",
        "--num-workers",
        "1",  # a data-loader worker process, which must be stopped too
        "--no-knn",
        "--spectrum-every",
        "0",
    ]
    # barlow_twins runs long enough to be stopped while it trains
    long_second = args + ["--method-override", "barlow_twins:max_epochs=100"]
    command = [sys.executable, "-m", "frossl_plugin.cli", "compare"]
    stopped_run = _stop_and_check(
        command + long_second,
        signum,
        lambda: _host_process_group(out / "barlow_twins"),
        out / "frossl" / "done.json",
        300,
        env=host_env(),
    )
    last = stopped_run.strip().splitlines()[-1]
    assert last.startswith(
        f"compare: stopped by {signal.Signals(signum).name}: stopped barlow_twins and its host "
        "processes after 0/1 epochs"
    ), stopped_run[-3000:]
    assert last.endswith(
        "finished methods kept: frossl; not finished: barlow_twins. Rerun the same command to "
        "resume."
    )
    assert not (out / "barlow_twins" / "done.json").exists()
    frossl_log = (out / "frossl" / "train.log").stat().st_mtime_ns

    # rerun (without the long override, which only a finished run would have to keep)
    again = subprocess.run(
        command + args, env=host_env(), capture_output=True, text=True, timeout=600
    )
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert (out / "frossl" / "train.log").stat().st_mtime_ns == frossl_log  # skipped
    assert (out / "barlow_twins" / "done.json").is_file()
    records = runner.read_jsonl(out / "barlow_twins" / runner.STATS_FILE)
    assert [record["epoch"] for record in records] == [1]
    with (out / "epochs.csv").open() as handle:
        methods = [row["method"] for row in csv.DictReader(handle)]
    assert methods == ["frossl", "barlow_twins"]
