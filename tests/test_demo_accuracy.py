"""The main job learns: the demo's full pretraining, through the unmodified host, reaches a floor.

The floors sit well below what the README reports over seeds (CPU results differ between
machines by a few points) and far above chance (10 % on the ten digits), so a run that learns
nothing fails.
"""

import pytest
from helpers import requires_host, run_host_script

from frossl_plugin.run_results import run_outputs

pytestmark = [requires_host, pytest.mark.host, pytest.mark.slow]

# docs/results.md: over seeds 1, 2, 3 and 5 the demo gave 88-92 % online linear and 90-94 % kNN
# top-1 after 3 epochs on one machine (another machine saw 86 / 90 %); the margin is ~15 points
ONLINE_FLOOR = 70.0
KNN_FLOOR = 75.0
CHANCE = 10.0


def test_demo_pretraining_reaches_the_accuracy_floor(demo_data, tmp_path):
    marker = tmp_path / "started"
    marker.touch()
    result = run_host_script(
        "main_pretrain.py",
        [
            "--config-name=frossl_demo.yaml",
            "accelerator=cpu",
            f"data.train_path={demo_data / 'train'}",
            f"data.val_path={demo_data / 'val'}",
        ],
        cwd=tmp_path,
        timeout=1500,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    outputs = run_outputs(
        tmp_path / "lightning_logs", tmp_path / "trained_models" / "demo" / "frossl", 0.0
    )
    assert outputs["checkpoint"] is not None
    metrics = outputs["metrics"]
    assert metrics["epoch"] == 2  # the demo's 3 epochs ran
    assert metrics["val_acc1"] >= ONLINE_FLOOR > CHANCE
    assert metrics["val_knn_acc1"] >= KNN_FLOOR > CHANCE
