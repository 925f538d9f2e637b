import pytest
import torch
from solo.methods import FroSSL

from .utils import gen_base_cfg, gen_batch, gen_trainer, prepare_dummy_dataloaders


def test_frossl():
    method_kwargs = {
        "proj_hidden_dim": 2048,
        "proj_output_dim": 1024,
        "invariance_weight": 1.0,
    }

    cfg = gen_base_cfg("frossl", batch_size=2, num_classes=100)
    cfg.method_kwargs = method_kwargs
    model = FroSSL(cfg)

    # test arguments
    model.add_and_assert_specific_cfg(cfg)
    assert cfg.method_kwargs.gather_across_devices is False
    assert cfg.method_kwargs.center is False

    # test parameters
    assert model.learnable_params is not None

    # test forward
    batch, _ = gen_batch(cfg.optimizer.batch_size, cfg.data.num_classes, "imagenet100")
    out = model(batch[1][0])
    assert (
        "logits" in out
        and isinstance(out["logits"], torch.Tensor)
        and out["logits"].size() == (cfg.optimizer.batch_size, cfg.data.num_classes)
    )
    assert (
        "feats" in out
        and isinstance(out["feats"], torch.Tensor)
        and out["feats"].size() == (cfg.optimizer.batch_size, model.features_dim)
    )
    assert (
        "z" in out
        and isinstance(out["z"], torch.Tensor)
        and out["z"].size() == (cfg.optimizer.batch_size, method_kwargs["proj_output_dim"])
    )

    # small crops are views of the loss as well
    multicrop_out = model.multicrop_forward(batch[1][0])
    assert (
        "z" in multicrop_out
        and isinstance(multicrop_out["z"], torch.Tensor)
        and multicrop_out["z"].size()
        == (cfg.optimizer.batch_size, method_kwargs["proj_output_dim"])
    )

    # imagenet
    model = FroSSL(cfg)

    trainer = gen_trainer(cfg)
    train_dl, val_dl = prepare_dummy_dataloaders(
        "imagenet100",
        num_large_crops=cfg.data.num_large_crops,
        num_small_crops=0,
        num_classes=cfg.data.num_classes,
        batch_size=cfg.optimizer.batch_size,
    )
    trainer.fit(model, train_dl, val_dl)
    # the loss and its two terms are logged
    for name in ("train_frossl_loss", "train_frossl_invariance", "train_frossl_regularization"):
        assert name in trainer.callback_metrics

    # cifar
    cfg.data.dataset = "cifar10"
    cfg.data.num_classes = 10
    model = FroSSL(cfg)

    trainer = gen_trainer(cfg)
    train_dl, val_dl = prepare_dummy_dataloaders(
        "cifar10",
        num_large_crops=cfg.data.num_large_crops,
        num_small_crops=0,
        num_classes=cfg.data.num_classes,
        batch_size=cfg.optimizer.batch_size,
    )
    trainer.fit(model, train_dl, val_dl)

    # more than two large crops (every crop is a view)
    cfg.data.num_large_crops = 4
    model = FroSSL(cfg)

    trainer = gen_trainer(cfg)
    train_dl, val_dl = prepare_dummy_dataloaders(
        "cifar10",
        num_large_crops=cfg.data.num_large_crops,
        num_small_crops=0,
        num_classes=cfg.data.num_classes,
        batch_size=cfg.optimizer.batch_size,
    )
    trainer.fit(model, train_dl, val_dl)

    # multicrop
    cfg.data.num_large_crops = 2
    cfg.data.num_small_crops = 2
    model = FroSSL(cfg)

    trainer = gen_trainer(cfg)
    train_dl, val_dl = prepare_dummy_dataloaders(
        "cifar10",
        num_large_crops=cfg.data.num_large_crops,
        num_small_crops=cfg.data.num_small_crops,
        num_classes=cfg.data.num_classes,
        batch_size=cfg.optimizer.batch_size,
    )
    trainer.fit(model, train_dl, val_dl)


def test_frossl_invalid_cfg():
    cfg = gen_base_cfg("frossl", batch_size=2, num_classes=10)
    cfg.method_kwargs = {"invariance_weight": -1.0}
    with pytest.raises(ValueError):
        FroSSL(cfg)

    cfg.method_kwargs = {"proj_output_dim": 0}
    with pytest.raises(ValueError):
        FroSSL(cfg)

    cfg.method_kwargs = {"unknown_key": 1}
    with pytest.raises(ValueError):
        FroSSL(cfg)

    cfg.method_kwargs = {"center": "yes"}
    with pytest.raises(ValueError):
        FroSSL(cfg)


def test_frossl_auto_proj_output_dim():
    # auto, the default: the paper's 1024 from a batch of 256, else 4 x the batch / the views
    for batch_size, small_crops, expected in ((2, 0, 4), (256, 6, 1024), (8, 2, 8), (255, 0, 510)):
        cfg = gen_base_cfg("frossl", batch_size=batch_size, num_classes=10)
        cfg.data.num_small_crops = small_crops
        cfg.method_kwargs = {}
        model = FroSSL(cfg)
        assert cfg.method_kwargs.proj_output_dim == expected
        assert model.projector[-1].out_features == expected

    cfg.method_kwargs = {"proj_output_dim": "wide"}
    with pytest.raises(ValueError):
        FroSSL(cfg)
