"""compare --tune: an equal budget for every method, chosen on a held-out selection split, and the
protocol's other defaults (warm-up at every budget, the small-input stem for small images)."""

import json
import shlex
import subprocess
import sys

import pytest
from helpers import HOST_PATH, host_env, requires_host
from test_compare import tiny_run

from frossl_plugin.cli import main
from frossl_plugin.compare.command import warmup_epochs
from frossl_plugin.compare.image_folder import class_images


def _commands(printed: str):
    return [
        shlex.split(line.removeprefix("compare: "))
        for line in printed.splitlines()
        if line.startswith("compare: ") and "main_pretrain.py" in line
    ]


def _value(command, key):
    return next(item.split("=", 1)[1] for item in command if item.startswith(key + "="))


@pytest.mark.parametrize("epochs, warmup", [(1, 0), (2, 1), (4, 1), (10, 1), (40, 4), (400, 10)])
def test_every_budget_of_two_epochs_or_more_warms_up(epochs, warmup):
    assert warmup_epochs(epochs) == warmup


@requires_host
def test_small_images_get_the_small_input_stem_for_every_method(tmp_path, demo_data, capsys):
    argv = ["compare", "--methods", "frossl,vicreg", "--epochs", "4", "--data", str(demo_data)]
    assert main(argv + ["--out", str(tmp_path / "o"), "--dry-run"]) == 0
    printed = capsys.readouterr().out
    (command,) = _commands(printed)
    assert "backbone.name=resnet18_small_input" in command and "preset=frossl,vicreg" in command
    assert "scheduler.warmup_epochs=1" in command
    assert "backbone resnet18_small_input" in printed
    # the user's own backbone wins, and is the one the data line names
    argv += ["--out", str(tmp_path / "o"), "--dry-run", "++backbone.name=resnet18"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    (command,) = _commands(printed)
    assert [item for item in command if "backbone.name" in item] == ["++backbone.name=resnet18"]
    assert "backbone resnet18\n" in printed


@requires_host
def test_tuning_runs_every_method_on_the_selection_split_with_equal_trials(
    tmp_path, demo_data, capsys
):
    argv = ["compare", "--methods", "frossl,vicreg", "--epochs", "4", "--data", str(demo_data)]
    argv += ["--out", str(tmp_path / "o"), "--dry-run", "--tune", "optimizer.lr=0.1,0.3"]
    argv += ["--tune-method", "frossl:method_kwargs.invariance_weight=0.5,1"]
    argv += ["--tune-method", "vicreg:method_kwargs.sim_loss_weight=15,25"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "4 trials per method" in printed
    frossl, vicreg = _commands(printed)
    for command, axis in (
        (frossl, "method_kwargs.invariance_weight=0.5,1"),
        (vicreg, "method_kwargs.sim_loss_weight=15,25"),
    ):
        assert "optimizer.lr=0.1,0.3" in command and axis in command and "seed=0" in command
        assert _value(command, "hydra.sweep.dir") == str(tmp_path / "o" / "tune")
        train, selection = _value(command, "data.train_path"), _value(command, "data.val_path")
        assert train.endswith("/train") and selection.endswith("/selection")
    # the selection split comes from the training images, never from the reported validation
    chosen = {
        p.resolve()
        for images in class_images(
            tmp_path / "o" / "datasets" / selection.split("/")[-2] / "selection"
        ).values()
        for p in images
    }
    validation = {
        p.resolve() for images in class_images(demo_data / "val").values() for p in images
    }
    assert chosen and not chosen & validation
    assert "then each method's best trial, over the seeds" in printed

    unequal = argv[:-2]  # vicreg without its own axis: 2 trials against frossl's 4
    assert main(unequal) == 2
    assert "unequal tuning budgets {'frossl': 4, 'vicreg': 2}" in capsys.readouterr().err
    assert (
        main(
            [
                "compare",
                "--epochs",
                "1",
                "--data",
                "cifar10",
                "--tune",
                "optimizer.lr=0.1,0.3",
                "--dry-run",
            ]
        )
        == 2
    )
    assert "needs an image folder" in capsys.readouterr().err


@requires_host
def test_tune_only_writes_the_selection_and_runs_no_seeds(tmp_path, demo_data, monkeypatch, capsys):
    from frossl_plugin.compare import command, report, tuning

    launched = []
    monkeypatch.setattr(
        command, "launch", lambda cmd, host, dry_run=False: launched.append(cmd) or 0
    )
    monkeypatch.setattr(report, "write_report", lambda *args, **kwargs: [])
    scores = {  # the final score of each trial's seed 0 (the default --tune-seed)
        ("frossl", ("optimizer.lr=0.1",)): {0: 40.0},
        ("frossl", ("optimizer.lr=0.3",)): {0: 55.0},
    }
    monkeypatch.setattr(tuning, "trial_seed_scores", lambda tune_dir, grid, metric: scores)
    out = tmp_path / "o"
    argv = ["compare", "--methods", "frossl", "--epochs", "4", "--data", str(demo_data)]
    argv += ["--out", str(out), "--tune", "optimizer.lr=0.1,0.3", "--tune-only"]
    assert main(argv) == 0
    assert len(launched) == 1 and _value(launched[0], "hydra.sweep.dir") == str(out / "tune")
    record = json.loads((out / "tune" / "selection.json").read_text())
    assert record["methods"]["frossl"]["chosen"] == ["optimizer.lr=0.3"]
    assert "--tune-only: selection in" in capsys.readouterr().out
    assert not (out / "sweep_jobs.json").exists()

    # a second call for another method into the same folder keeps the first one's choice
    scores[("vicreg", ("optimizer.lr=0.1",))] = {0: 30.0}
    assert main(["compare", "--methods", "vicreg", *argv[3:]]) == 0
    record = json.loads((out / "tune" / "selection.json").read_text())
    assert record["methods"]["frossl"]["chosen"] == ["optimizer.lr=0.3"]
    assert record["methods"]["vicreg"]["chosen"] == ["optimizer.lr=0.1"]

    assert main([*argv, "--tune-seed", "0,x"]) == 2
    assert "--tune-seed '0,x': expected comma-separated integer seeds" in capsys.readouterr().err
    assert main(argv[:-3] + ["--tune-only"]) == 2  # nothing to tune
    assert "--tune-only without --tune or --tune-method" in capsys.readouterr().err


@requires_host
@pytest.mark.host
@pytest.mark.slow
def test_a_tuned_comparison_chooses_on_the_selection_split_and_reports_it(tmp_path, demo_data):
    out = tmp_path / "cmp"
    command = [
        sys.executable, "-m", "frossl_plugin.cli", "compare",
        "--methods", "frossl,vicreg", "--seeds", "1", "--epochs", "1",
        "--data", str(demo_data), "--out", str(out), "--host", str(HOST_PATH),
        "--tune", "optimizer.lr=0.1,0.3",
        *[o for o in tiny_run(demo_data, out)[2:-1] if "max_epochs" not in o],
    ]  # fmt: skip
    done = subprocess.run(
        command, cwd=tmp_path, env=host_env(), capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 0, done.stdout[-2000:] + "\n...\n" + done.stderr[-2500:]
    record = json.loads((out / "tune" / "selection.json").read_text())
    for method in ("frossl", "vicreg"):
        entry = record["methods"][method]
        assert [row["overrides"] for row in entry["trials"]] == [
            ["optimizer.lr=0.1"],
            ["optimizer.lr=0.3"],
        ]
        best = max(entry["trials"], key=lambda row: row["score"])
        assert entry["chosen"] == best["overrides"]
        # the final run of the method used its chosen trial
        finals = [json.loads(p.read_text()) for p in out.glob(f"{method}_seed1_*/job.json")]
        assert len(finals) == 1 and entry["chosen"][0] in finals[0]["overrides"]
    tune_jobs = list((out / "tune").glob("*/job.json"))
    assert len(tune_jobs) == 4  # 2 trials x 2 methods
    summary = (out / "summary.md").read_text()
    assert "## Tuning" in summary and "- budget: 2 trial configuration(s) per method" in summary
    assert "selection split; the reported validation split is never used to choose" in summary
