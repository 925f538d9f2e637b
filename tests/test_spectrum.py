"""Spectrum / effective-rank numbers against direct numpy and scipy computations, and the
Lightning callbacks that record them (on a tiny model; the host runs are in test_compare.py)."""

import json
import math

import lightning
import numpy as np
import pytest
import torch
from helpers import quiet_cpu_trainer
from scipy.stats import entropy

from frossl_plugin.spectrum import (
    centered_singular_values,
    covariance_eigenvalues,
    rankme,
    renyi2_entropy,
    spectrum_stats,
)


def numpy_reference(matrix: np.ndarray) -> dict:
    """Covariance eigenvalues (np.cov + eigvalsh), RankMe (scipy entropy of the normalised
    singular values of the centred matrix) and order-2 Renyi entropy, computed directly."""

    cov = np.atleast_2d(np.cov(matrix, rowvar=False))  # (D, D), divides by N - 1
    eigenvalues = np.sort(np.linalg.eigvalsh(cov))[::-1]
    eigenvalues = np.clip(eigenvalues, 0.0, None)
    centred = matrix - matrix.mean(axis=0, keepdims=True)
    singular = np.linalg.svd(centred, compute_uv=False)
    q = eigenvalues / eigenvalues.sum()
    return {
        "eigenvalues": eigenvalues,
        "rankme": float(np.exp(entropy(singular / singular.sum()))),
        "renyi2": float(-np.log(np.sum(q**2))),
    }


def low_rank(n: int, d: int, rank: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, rank)) @ rng.standard_normal((rank, d))


def with_singular_values(n: int, d: int, singular: np.ndarray, seed: int = 0) -> np.ndarray:
    """An N x D matrix whose centred copy has exactly the given singular values (and zero
    column means): left singular vectors orthonormal and orthogonal to the all-ones vector."""

    rng = np.random.default_rng(seed)
    k = len(singular)
    basis = np.concatenate([np.ones((n, 1)), rng.standard_normal((n, k))], axis=1)
    q, _ = np.linalg.qr(basis)
    u = q[:, 1 : k + 1]  # (N, k), orthogonal to ones
    v, _ = np.linalg.qr(rng.standard_normal((d, k)))  # (D, k)
    return (u * singular) @ v.T + rng.standard_normal(d)  # shifted rows: centring removes it


@pytest.mark.parametrize(
    "matrix",
    [
        np.random.default_rng(0).standard_normal((64, 16)),  # N > D, full rank
        np.random.default_rng(1).standard_normal((12, 40)),  # N < D (rank N - 1 after centring)
        low_rank(50, 20, 3, seed=2),  # rank deficient, N > D
        low_rank(10, 30, 4, seed=3),  # rank deficient, N < D
        np.random.default_rng(4).standard_normal((30, 8)) * np.array([10, 5, 1, 1, 0.1, 0, 0, 0]),
    ],
    ids=["n_gt_d", "n_lt_d", "rank3_n_gt_d", "rank4_n_lt_d", "scaled_zero_columns"],
)
def test_spectrum_stats_match_numpy_and_scipy(matrix):
    stats = spectrum_stats(torch.from_numpy(matrix).float())
    stats64 = spectrum_stats(torch.from_numpy(matrix))
    reference = numpy_reference(matrix)
    r = min(matrix.shape)
    assert len(stats64["eigenvalues"]) == r
    np.testing.assert_allclose(
        stats64["eigenvalues"], reference["eigenvalues"][:r], rtol=1e-9, atol=1e-10
    )
    assert stats64["rankme"] == pytest.approx(reference["rankme"], rel=1e-6)
    assert stats64["renyi2"] == pytest.approx(reference["renyi2"], rel=1e-9)
    # float32 input: same numbers up to float32 rounding of the input
    assert stats["rankme"] == pytest.approx(reference["rankme"], rel=1e-3)
    assert stats["renyi2"] == pytest.approx(reference["renyi2"], rel=1e-3)
    assert (stats["num_samples"], stats["dim"]) == matrix.shape


@pytest.mark.parametrize("rank", [1, 2, 5])
def test_equal_singular_values_give_the_rank(rank):
    matrix = with_singular_values(40, 12, np.full(rank, 3.0))
    stats = spectrum_stats(torch.from_numpy(matrix))
    assert stats["rankme"] == pytest.approx(rank, rel=1e-9)
    assert stats["renyi2"] == pytest.approx(math.log(rank), abs=1e-9)
    expected = [9.0 / 39] * rank + [0.0] * (12 - rank)  # s^2 / (N - 1)
    np.testing.assert_allclose(stats["eigenvalues"], expected, atol=1e-12)


def test_known_singular_values_closed_form():
    singular = np.array([4.0, 2.0, 1.0, 1.0])
    matrix = with_singular_values(25, 9, singular)
    p = singular / singular.sum()
    q = singular**2 / (singular**2).sum()
    stats = spectrum_stats(torch.from_numpy(matrix))
    assert stats["rankme"] == pytest.approx(math.exp(-(p * np.log(p)).sum()), rel=1e-9)
    assert stats["renyi2"] == pytest.approx(-math.log((q**2).sum()), rel=1e-9)


def test_invariant_to_sample_order_and_translation():
    matrix = torch.randn(30, 10, dtype=torch.float64)
    base = spectrum_stats(matrix)
    moved = spectrum_stats(matrix[torch.randperm(30)] + torch.randn(10, dtype=torch.float64))
    np.testing.assert_allclose(moved["eigenvalues"], base["eigenvalues"], rtol=1e-9)
    assert moved["rankme"] == pytest.approx(base["rankme"], rel=1e-9)


def test_fully_collapsed_embeddings():
    collapsed = torch.ones(16, 8) * torch.randn(8)  # every row the same
    stats = spectrum_stats(collapsed)
    assert stats["rankme"] == 0.0
    assert math.isnan(stats["renyi2"])
    assert max(stats["eigenvalues"]) == pytest.approx(0.0, abs=1e-12)


def test_building_blocks_match_numpy_and_scipy():
    matrix = np.random.default_rng(7).standard_normal((20, 6)) @ np.diag([5, 3, 2, 1, 0.5, 0.1])
    reference = numpy_reference(matrix)
    reference_singular = np.linalg.svd(matrix - matrix.mean(axis=0), compute_uv=False)

    singular = centered_singular_values(torch.from_numpy(matrix))
    np.testing.assert_allclose(singular.numpy(), reference_singular, rtol=1e-10)
    eigenvalues = covariance_eigenvalues(singular, 20)
    np.testing.assert_allclose(eigenvalues.numpy(), reference["eigenvalues"], rtol=1e-9)
    assert float(rankme(singular)) == pytest.approx(reference["rankme"], rel=1e-9)
    assert float(renyi2_entropy(eigenvalues)) == pytest.approx(reference["renyi2"], rel=1e-9)


@pytest.mark.parametrize(
    "bad",
    [
        torch.randn(5),
        torch.randn(2, 3, 4),
        torch.randn(1, 4),
        torch.tensor([[1.0, float("nan")]] * 3),
    ],
    ids=["1d", "3d", "one_sample", "nan"],
)
def test_bad_embeddings_raise(bad):
    with pytest.raises(ValueError):
        spectrum_stats(bad)


# --- the callbacks, on a tiny Lightning model -----------------------------------------------


class TinyMethod(lightning.LightningModule):
    """Host-like outputs: forward returns ``feats`` (backbone) and ``z`` (projector)."""

    def __init__(self):
        super().__init__()
        self.backbone = torch.nn.Sequential(
            torch.nn.Flatten(), torch.nn.Linear(12, 6), torch.nn.BatchNorm1d(6)
        )
        self.projector = torch.nn.Linear(6, 4)
        self.eval_modes_seen = []

    def forward(self, x):
        self.eval_modes_seen.append(self.training)
        feats = self.backbone(x)
        return {"feats": feats, "z": self.projector(feats)}

    def training_step(self, batch, batch_idx):
        x, _ = batch
        z = self(x)["z"]
        loss = (z - z.mean(0)).square().mean()
        self.log("train_tiny_loss", loss, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_acc1", 100.0 * (self(x)["z"].argmax(1) == y).float().mean())

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def _loaders():
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(48, 3, 2, 2, generator=generator)  # (N, C, H, W)
    targets = torch.randint(0, 4, (48,), generator=generator)
    dataset = torch.utils.data.TensorDataset(images, targets)
    train = torch.utils.data.DataLoader(dataset, batch_size=16, shuffle=True)
    val = torch.utils.data.DataLoader(dataset, batch_size=16)
    return dataset, train, val


def test_spectrum_monitor_and_epoch_stats_on_a_tiny_model(tmp_path):
    from frossl_plugin.callbacks.epoch_stats import EpochStats
    from frossl_plugin.callbacks.spectrum_monitor import SpectrumMonitor, read_spectrum_records

    torch.manual_seed(0)
    dataset, train, val = _loaders()
    model = TinyMethod()
    monitor = SpectrumMonitor(frequency=2, num_samples=20, directory=str(tmp_path / "spec"))
    stats = EpochStats(path=str(tmp_path / "stats.jsonl"))
    trainer = quiet_cpu_trainer(max_epochs=3, callbacks=[monitor, stats])
    trainer.fit(model, train, val)

    records = read_spectrum_records(tmp_path / "spec" / "spectra.jsonl")
    # epoch 0 (before training), epoch 2 (frequency) and epoch 3 (the last)
    assert sorted({r["epoch"] for r in records}) == [0, 2, 3]
    assert {r["layer"] for r in records} == {"backbone", "projector"}
    assert all(r["num_samples"] == 20 and r["source"] == "validation" for r in records)

    # the last records equal a direct computation on the same 20 held-out images
    indices = torch.randperm(48, generator=torch.Generator().manual_seed(0))[:20].sort().values
    model.eval()
    with torch.no_grad():
        out = model(dataset.tensors[0][indices])
    for layer, key in (("backbone", "feats"), ("projector", "z")):
        last = [r for r in records if r["epoch"] == 3 and r["layer"] == layer][0]
        reference = numpy_reference(out[key].double().numpy())
        assert last["rankme"] == pytest.approx(reference["rankme"], rel=1e-4)
        assert last["renyi2"] == pytest.approx(reference["renyi2"], rel=1e-4)
        np.testing.assert_allclose(
            last["eigenvalues"],
            reference["eigenvalues"][: len(last["eigenvalues"])],
            rtol=1e-4,
            atol=1e-7,
        )
    assert (tmp_path / "spec" / "spectra.png").stat().st_size > 0

    lines = [json.loads(line) for line in (tmp_path / "stats.jsonl").read_text().splitlines()]
    assert [line["epoch"] for line in lines] == [1, 2, 3]
    for line in lines:
        assert line["steps"] == 3 and line["samples"] == 48
        assert line["images_per_s"] == pytest.approx(48 / line["train_time_s"])
        assert line["step_time_s"] == pytest.approx(line["train_time_s"] / 3)
        assert line["memory_kind"] == "cpu_peak_rss" and line["peak_memory_mib"] > 0
        assert 0 <= line["metrics"]["val_acc1"] <= 100
        assert "train_tiny_loss_epoch" in line["metrics"]
    assert lines[0]["wall_time_s"] < lines[1]["wall_time_s"] < lines[2]["wall_time_s"]
    # logged spectra reach the per-epoch metrics on measured epochs only
    assert "spectrum_rankme_projector" in lines[1]["metrics"]
    assert lines[1]["metrics"]["spectrum_rankme_projector"] == pytest.approx(
        [r for r in records if r["epoch"] == 2 and r["layer"] == "projector"][0]["rankme"],
        rel=1e-5,
    )


def test_monitor_restores_training_mode(tmp_path):
    from frossl_plugin.callbacks.spectrum_monitor import SpectrumMonitor

    _, train, val = _loaders()
    model = TinyMethod()
    trainer = quiet_cpu_trainer(max_epochs=1, limit_train_batches=1)
    trainer.fit(model, train, val)
    monitor = SpectrumMonitor(num_samples=10, directory=str(tmp_path))
    model.train()
    model.backbone[2].eval()  # a submodule deliberately in eval mode stays so
    model.eval_modes_seen.clear()
    embeddings = monitor.embed(trainer, model)
    assert set(model.eval_modes_seen) == {False}
    assert model.training and model.projector.training and not model.backbone[2].training
    assert embeddings["backbone"].shape == (10, 6) and embeddings["projector"].shape == (10, 4)


@pytest.mark.parametrize(
    "kwargs", [{"frequency": 0}, {"num_samples": 1}, {"batch_size": 0}, {"frequency": 1.5}]
)
def test_monitor_rejects_bad_settings(kwargs):
    from frossl_plugin.callbacks.spectrum_monitor import SpectrumMonitor

    with pytest.raises(ValueError):
        SpectrumMonitor(**kwargs)


def test_config_switches_callbacks_on_through_the_entry_point(tmp_path):
    from importlib.metadata import entry_points

    from omegaconf import OmegaConf

    from frossl_plugin.callbacks import from_config
    from frossl_plugin.callbacks.epoch_stats import EpochStats
    from frossl_plugin.callbacks.spectrum_monitor import SpectrumMonitor

    points = entry_points(group=from_config.ENTRY_POINT_GROUP)
    if not any(point.name == "frossl_plugin" for point in points):
        pytest.skip("the plugin is not installed (pip install -e .), so its entry point is absent")
    trainer_kwargs = dict(logger=False, enable_checkpointing=False, accelerator="cpu", devices=1)
    try:
        assert from_config.activate(OmegaConf.create({"method": "x"})) == []
        assert not [
            c
            for c in lightning.Trainer(**trainer_kwargs).callbacks
            if isinstance(c, (SpectrumMonitor, EpochStats))
        ]
        cfg = OmegaConf.create(
            {
                "method": "barlow_twins",
                "epoch_stats": {"enabled": True, "path": str(tmp_path / "s.jsonl")},
                "spectrum_monitor": {"enabled": True, "frequency": 3, "num_samples": 64},
            }
        )
        assert from_config.activate(cfg) == ["epoch_stats", "spectrum_monitor"]
        callbacks = lightning.Trainer(**trainer_kwargs).callbacks
        monitors = [c for c in callbacks if isinstance(c, SpectrumMonitor)]
        stats = [c for c in callbacks if isinstance(c, EpochStats)]
        assert len(monitors) == 1 and len(stats) == 1
        assert (monitors[0].frequency, monitors[0].num_samples) == (3, 64)
        assert monitors[0].title == "barlow_twins"
        assert str(stats[0].path) == str(tmp_path / "s.jsonl")
        with pytest.raises(ValueError, match="Unknown spectrum_monitor keys"):
            from_config.activate(OmegaConf.create({"spectrum_monitor": {"every": 2}}))
        with pytest.raises(ValueError, match="enabled must be true or false"):
            from_config.activate(OmegaConf.create({"epoch_stats": {"enabled": "yes"}}))
    finally:
        from_config.deactivate()
    assert from_config.trainer_callbacks() == []
