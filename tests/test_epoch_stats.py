"""Per-epoch records of ``EpochStats``: peak memory is each job's own, also when several fits
(Hydra's basic launcher runs every job of a sweep in one process) share one process."""

import json
import sys
from pathlib import Path

import pytest
import torch
from helpers import quiet_cpu_trainer
from lightning.pytorch import Callback, LightningModule, Trainer
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
    trainer = quiet_cpu_trainer(max_epochs=1, callbacks=[EpochStats(str(path))])
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


# --- a run stopped and resumed: parts, epoch times, order against the checkpointer ----------


def trainer(path: Path, epochs: int, callbacks=()) -> Trainer:
    return quiet_cpu_trainer(max_epochs=epochs, callbacks=[*callbacks, EpochStats(str(path))])


def records(path: Path) -> list:
    return [json.loads(line) for line in path.read_text().splitlines()]


def data() -> DataLoader:
    return DataLoader(TensorDataset(torch.randn(4, 8)), batch_size=2)


def test_a_resumed_fit_appends_its_records_as_the_next_part(tmp_path):
    path = tmp_path / "stats.jsonl"
    first = trainer(path, epochs=2)
    first.fit(TinyModule(), data())
    first.save_checkpoint(tmp_path / "last.ckpt")
    trainer(path, epochs=4).fit(TinyModule(), data(), ckpt_path=str(tmp_path / "last.ckpt"))

    lines = records(path)
    assert [(r["epoch"], r["part"], r["resumed_from_epoch"]) for r in lines] == [
        (1, 0, 0),
        (2, 0, 0),
        (3, 1, 2),
        (4, 1, 2),
    ]
    for record in lines:
        assert record["epoch_time_s"] > 0
    # wall_time_s starts again in the resumed part; epoch_time_s is the time since the last
    # record of the part (its fit's start for the first)
    assert lines[2]["wall_time_s"] == pytest.approx(lines[2]["epoch_time_s"])
    assert lines[2]["wall_time_s"] < lines[1]["wall_time_s"] + lines[2]["epoch_time_s"]
    for before, after in ((lines[0], lines[1]), (lines[2], lines[3])):
        assert after["epoch_time_s"] == pytest.approx(after["wall_time_s"] - before["wall_time_s"])


def test_a_fit_after_records_without_parts_is_the_next_part(tmp_path):
    path = tmp_path / "stats.jsonl"
    path.write_text(json.dumps({"epoch": 1, "wall_time_s": 2.0}) + "\n")  # an earlier version's
    trainer(path, epochs=1).fit(TinyModule(), data())
    assert [record.get("part") for record in records(path)] == [None, 1]


class CheckpointerProbe(Callback):
    """Listed before the plugin's callbacks, as the host's Checkpointer is: records, at its
    on_train_epoch_end (where the host saves the epoch's checkpoint), the epochs recorded."""

    def __init__(self, path: Path):
        self.path = path
        self.seen = []

    def on_train_epoch_end(self, trainer, pl_module):
        recorded = [r["epoch"] for r in records(self.path)] if self.path.exists() else []
        self.seen.append((trainer.current_epoch + 1, recorded))


def test_the_record_of_an_epoch_is_written_before_the_checkpointer_saves_it(tmp_path):
    """The host's main_pretrain.py lists its Checkpointer before the callbacks of the plugin's
    entry point; EpochStats moves the plugin's callbacks, in their order, to the front, so that
    a stop between the two never leaves a checkpoint of an epoch without its record."""

    from frossl_plugin.callbacks import from_config

    path = tmp_path / "stats.jsonl"
    probe = CheckpointerProbe(path)
    from_config.activate(
        {"epoch_stats": {"enabled": True, "path": str(path)}, "random_state": {"enabled": True}}
    )
    try:
        # the factory's EpochStats comes after the probe
        run = quiet_cpu_trainer(max_epochs=2, callbacks=[probe])
    finally:
        from_config.deactivate()
    names = [type(callback).__name__ for callback in run.callbacks]
    assert names.index("CheckpointerProbe") < names.index("EpochStats")
    run.fit(TinyModule(), data())
    names = [type(callback).__name__ for callback in run.callbacks]
    assert names[:3] == ["RandomStateCheckpoint", "EpochStats", "CheckpointerProbe"]
    assert probe.seen == [(1, [1]), (2, [1, 2])]


def test_a_record_cut_off_by_a_kill_is_removed_when_the_next_part_starts(tmp_path):
    path = tmp_path / "stats.jsonl"
    whole = json.dumps({"epoch": 1, "part": 0, "resumed_from_epoch": 0, "wall_time_s": 1.0})
    path.write_text(whole + "\n" + whole[: len(whole) // 2])  # killed while writing epoch 2
    trainer(path, epochs=1).fit(TinyModule(), data())
    lines = path.read_text().splitlines()
    assert lines[0] == whole and len(lines) == 2
    assert json.loads(lines[1])["part"] == 1
