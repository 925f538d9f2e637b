"""frossl-plugin results: the run after a marker, its final accuracies and files."""

import os
import time

from frossl_plugin.cli import main
from frossl_plugin.run_results import final_metrics, run_outputs

METRICS = """epoch,step,train_frossl_loss,val_acc1,val_knn_acc1
0,10,3.5,,
0,11,,41.0,45.5
1,21,2.5,,
1,22,,77.25,80.0
2,33,1.5,,
"""


def write(path, text, mtime):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    os.utime(path, (mtime, mtime))
    return path


def make_runs(tmp_path):
    """An older run (version_0) and the run after the marker (version_1)."""

    now = time.time()
    write(tmp_path / "logs/version_0/metrics.csv", "epoch,val_acc1\n0,99.0\n", now - 100)
    write(tmp_path / "ckpt/frossl/old/old-ep=0.ckpt", "x", now - 100)
    marker = write(tmp_path / "marker", "", now - 50)
    metrics = write(tmp_path / "logs/version_1/metrics.csv", METRICS, now - 10)
    checkpoint = write(tmp_path / "ckpt/frossl/new/new-ep=2.ckpt", "x", now - 5)
    return marker, metrics, checkpoint


def test_final_metrics_takes_the_last_value_of_each_column(tmp_path):
    _, metrics, _ = make_runs(tmp_path)
    last = final_metrics(metrics)
    assert last["val_acc1"] == 77.25
    assert last["val_knn_acc1"] == 80.0
    assert last["train_frossl_loss"] == 1.5
    assert last["epoch"] == 2


def test_run_outputs_ignore_runs_before_the_marker(tmp_path):
    marker, metrics, checkpoint = make_runs(tmp_path)
    outputs = run_outputs(tmp_path / "logs", tmp_path / "ckpt", marker.stat().st_mtime)
    assert outputs["metrics_file"] == metrics
    assert outputs["checkpoint"] == checkpoint
    assert outputs["metrics"]["val_acc1"] == 77.25


def test_results_command_prints_accuracies_and_paths(tmp_path, capsys):
    marker, metrics, checkpoint = make_runs(tmp_path)
    args = ["results", "--since", str(marker), "--logs", str(tmp_path / "logs")]
    code = main(args + ["--checkpoints", str(tmp_path / "ckpt"), "--label", "pretraining"])
    out = capsys.readouterr().out
    assert code == 0
    assert "pretraining: online linear top-1 77.2 %, kNN top-1 80.0 %" in out
    assert f"metrics:    {metrics.resolve()}" in out
    assert f"checkpoint: {checkpoint.resolve()}" in out


def test_results_command_fails_when_the_run_wrote_nothing(tmp_path, capsys):
    marker, _, _ = make_runs(tmp_path)
    later = write(tmp_path / "later_marker", "", time.time())
    args = ["results", "--since", str(later), "--logs", str(tmp_path / "logs")]
    assert main(args + ["--checkpoints", str(tmp_path / "ckpt")]) == 1
    out = capsys.readouterr().out
    assert "run: no accuracy logged" in out and "checkpoint: none written" in out
    assert main(["results", "--since", str(tmp_path / "nope"), "--checkpoints", "x"]) == 2
