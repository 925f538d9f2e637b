"""Per-epoch records of ``EpochStats``: peak memory is each job's own, also when several fits
(Hydra's basic launcher runs every job of a sweep in one process) share one process."""

import json
import sys
from pathlib import Path

import pytest
import torch
from lightning.pytorch import LightningModule, Trainer
from torch.utils.data import DataLoader, TensorDataset

from frossl_plugin.callbacks import epoch_stats
from frossl_plugin.callbacks.epoch_stats import EpochStats

BUFFER_MIB = 400


class TinyModule(LightningModule):
    """A linear layer; with ``buffer_mib``, each training step also fills (so that it is
    resident) and frees a buffer of that size."""

    def __init__(self, buffer_mib: int = 0):
        super().__init__()
        self.layer = torch.nn.Linear(8, 1)
        self.buffer_mib = buffer_mib

    def training_step(self, batch, batch_idx):
        if self.buffer_mib:
            buffer = torch.ones(self.buffer_mib * 2**20 // 4)  # float32, every page written
            assert float(buffer[:: 4096 // 4].sum()) > 0
            del buffer
        return self.layer(batch[0]).pow(2).mean()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


def fit(path: Path, buffer_mib: int = 0) -> dict:
    """Two training steps on the CPU; returns the epoch record."""

    data = DataLoader(TensorDataset(torch.randn(4, 8)), batch_size=2)
    trainer = Trainer(
        accelerator="cpu",
        devices=1,
        max_epochs=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[EpochStats(str(path))],
    )
    trainer.fit(TinyModule(buffer_mib), data)
    (record,) = [json.loads(line) for line in path.read_text().splitlines()]
    return record


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="resets the peak through /proc")
def test_a_later_fit_in_the_same_process_records_its_own_peak(tmp_path):
    if not epoch_stats.reset_peak_rss():
        pytest.skip("/proc/self/clear_refs cannot be written here")
    first = fit(tmp_path / "first.jsonl", buffer_mib=BUFFER_MIB)
    second = fit(tmp_path / "second.jsonl")

    for record in (first, second):
        assert record["memory_kind"] == "cpu_peak_rss" and record["memory_since"] == "epoch_start"
    assert first["peak_memory_mib"] > BUFFER_MIB
    # the buffer is gone: the second job's peak is its own, not the first's
    assert second["peak_memory_mib"] < first["peak_memory_mib"] - BUFFER_MIB / 2


def test_without_a_resettable_peak_the_record_says_it_is_the_process_high_water_mark(
    tmp_path, monkeypatch
):
    monkeypatch.setattr(epoch_stats, "PROC_CLEAR_REFS", tmp_path / "missing" / "clear_refs")
    record = fit(tmp_path / "stats.jsonl")
    assert record["memory_kind"] == "cpu_process_peak_rss"
    assert record["memory_since"] == "process_start"
    assert record["peak_memory_mib"] == pytest.approx(epoch_stats.process_peak_rss_mib(), rel=0.5)


def test_peak_rss_reads_vmhwm(tmp_path, monkeypatch):
    status = tmp_path / "status"
    status.write_text("Name:\tpython\nVmPeak:\t 9000 kB\nVmHWM:\t    2048 kB\nVmRSS:\t 1024 kB\n")
    monkeypatch.setattr(epoch_stats, "PROC_STATUS", status)
    assert epoch_stats.peak_rss_mib() == 2.0
    monkeypatch.setattr(epoch_stats, "PROC_STATUS", tmp_path / "none")
    assert epoch_stats.peak_rss_mib() is None
