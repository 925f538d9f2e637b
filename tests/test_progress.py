"""The per-epoch progress line of runs without a progress bar (comparison sweeps)."""

import json

import pytest
import torch
from helpers import quiet_cpu_trainer
from lightning.pytorch import LightningModule
from torch.utils.data import DataLoader, TensorDataset

from frossl_plugin.callbacks.progress import EpochProgress, format_duration, sweep_position


class TinyModule(LightningModule):
    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(4, 1)

    def training_step(self, batch, batch_idx):
        return self.layer(batch[0]).pow(2).mean()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


def _fit(progress_bar: bool, epochs: int = 3) -> None:
    trainer = quiet_cpu_trainer(
        max_epochs=epochs,
        enable_progress_bar=progress_bar,
        callbacks=[EpochProgress()],
    )
    trainer.fit(TinyModule(), DataLoader(TensorDataset(torch.randn(4, 4)), batch_size=2))


def _sweep(root, names, finished=()):
    plan = {"jobs": {name: {"method": "frossl"} for name in names}}
    (root / "sweep_jobs.json").write_text(json.dumps(plan))
    for name in names:
        (root / name).mkdir()
        (root / name / "job.json").write_text(json.dumps({"name": name}))
    for name in finished:
        (root / name / "done.json").write_text("{}")


def test_without_a_progress_bar_every_epoch_prints_its_line_and_the_time_left(
    tmp_path, monkeypatch, capfd
):
    _sweep(tmp_path, ["a_seed1", "b_seed1", "c_seed1"], finished=["a_seed1"])
    monkeypatch.chdir(tmp_path / "b_seed1")
    _fit(progress_bar=False)
    lines = [line for line in capfd.readouterr().err.splitlines() if "frossl-plugin:" in line]
    prefix = "frossl-plugin: [job 2 of 3 (1 finished), b_seed1] "
    assert lines[0] == prefix + "training for 3 epochs"
    assert [line.split(" in ")[0] for line in lines[1:]] == [
        prefix + f"epoch {epoch}/3" for epoch in (1, 2, 3)
    ]
    assert lines[-1].endswith("about 0 s left")


def test_with_the_progress_bar_nothing_is_printed(capfd):
    _fit(progress_bar=True, epochs=1)
    assert "frossl-plugin:" not in capfd.readouterr().err


def test_outside_a_sweep_there_is_no_job_position(tmp_path):
    assert sweep_position(tmp_path) is None
    (tmp_path / "job.json").write_text("{}")
    assert sweep_position(tmp_path) is None  # no plan beside it


@pytest.mark.parametrize(
    "seconds, text", [(5, "5 s"), (89, "89 s"), (750, "12.5 min"), (11520, "3.2 h")]
)
def test_durations_read_as_seconds_minutes_or_hours(seconds, text):
    assert format_duration(seconds) == text
