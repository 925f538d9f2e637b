"""Runs FroSSL training steps under Lightning, on CPU, with 1 or more ``ddp`` processes.

Run as a script (Lightning's CPU ``ddp`` launcher starts the other ranks by re-running this
command line). Every rank writes ``<out>/rank<r>.pt``. Used by tests/test_ddp.py.

- ``--mode toy``: a 2-layer MLP encoder without normalization layers trained with
  ``frossl_loss_func`` and SGD; each rank saves its per-step loss and sample indexes, the
  (already all-reduced) gradients of the first step and the final weights. With
  ``gather_across_devices`` these must equal a single-process run on the global batch.
  ``--center 1`` trains with ``center=True``: each feature is then centred over the global batch.
- ``--mode method``: the FroSSL solo-learn method with a tiny CNN backbone; each rank saves the
  loss FroSSL computed and the embeddings it was computed from, so the test can recompute the
  loss on the global batch.
"""

import argparse
import sys
from pathlib import Path

import lightning.pytorch as pl
import torch
import torch.nn as nn
from torch.utils.data import DataLoader, DistributedSampler

sys.path.insert(0, str(Path(__file__).resolve().parent))
from method_cfg import TwoViewDataset, method_cfg  # noqa: E402

NUM_STEPS = 2
IN_DIM, HIDDEN_DIM, OUT_DIM = 12, 16, 8
IMAGE_SIZE, NUM_CLASSES = 8, 5


class ToyFroSSL(pl.LightningModule):
    def __init__(self, gather: bool, center: bool = False):
        super().__init__()
        self.gather, self.center = gather, center
        self.encoder = nn.Sequential(
            nn.Linear(IN_DIM, HIDDEN_DIM), nn.Tanh(), nn.Linear(HIDDEN_DIM, OUT_DIM)
        )
        self.losses, self.first_grads, self.indexes = [], None, []

    def training_step(self, batch, batch_idx):
        from frossl_plugin.losses.frossl import frossl_loss_func

        indexes, (x1, x2), _ = batch
        self.indexes.append(indexes.clone())
        z = torch.stack([self.encoder(x1), self.encoder(x2)])  # (2, N_local, OUT_DIM)
        loss, _, _ = frossl_loss_func(z, gather_across_devices=self.gather, center=self.center)
        self.losses.append(loss.detach().clone())
        return loss

    def on_before_optimizer_step(self, optimizer):
        # DDP has all-reduced (averaged) the gradients by now
        if self.first_grads is None:
            self.first_grads = {
                name: param.grad.detach().clone() for name, param in self.named_parameters()
            }

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.5)


class TinyCNN(nn.Module):
    """Conv-ReLU-pool backbone with ``num_features``, as the host expects of non-ResNets."""

    num_features = 8

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, self.num_features, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )

    def forward(self, x):
        return self.body(x)


def build_method(gather: bool, center: bool = False):
    """FroSSL with the tiny CNN, recording what its loss function sees and returns."""

    import frossl_plugin.methods.frossl as frossl_method
    from frossl_plugin.host.backbones import install_timm_backbone_table

    install_timm_backbone_table()["ddp_test_tiny_cnn"] = lambda method, **kwargs: TinyCNN()
    records = []
    loss_func = frossl_method.frossl_loss_func

    def recording_loss_func(z, **kwargs):
        out = loss_func(z, **kwargs)
        records.append({"z": [view.detach().clone() for view in z], "loss": out[0].detach()})
        return out

    frossl_method.frossl_loss_func = recording_loss_func
    cfg = method_cfg(
        "frossl",
        "ddp_test_tiny_cnn",
        method_kwargs={
            "proj_hidden_dim": 16,
            "proj_output_dim": 8,
            "gather_across_devices": gather,
            "center": center,
        },
        optimizer="sgd",
        lr=0.1,
        num_classes=NUM_CLASSES,
    )
    cfg.performance = {"disable_channel_last": True}
    model = frossl_method.FroSSL(cfg)
    model.records = records
    return model


class UnshuffledShards(pl.LightningDataModule):
    """Rank ``r`` of ``W`` gets samples ``r, r + W, ...`` in order, so that step ``k`` of a
    ``W``-process run sees exactly the global batch of step ``k`` of a single-process run
    (Lightning's own distributed sampler would shuffle)."""

    def __init__(self, dataset, global_batch: int):
        super().__init__()
        self.dataset, self.global_batch = dataset, global_batch

    def train_dataloader(self):
        world_size, rank = self.trainer.world_size, self.trainer.global_rank
        sampler = DistributedSampler(self.dataset, world_size, rank, shuffle=False)
        return DataLoader(self.dataset, self.global_batch // world_size, sampler=sampler)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mode", choices=("toy", "method"), required=True)
    parser.add_argument("--devices", type=int, required=True)
    parser.add_argument("--gather", type=int, choices=(0, 1), required=True)
    parser.add_argument("--center", type=int, choices=(0, 1), default=0)
    parser.add_argument("--global-batch", type=int, default=16)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    if args.global_batch % args.devices:
        raise ValueError(f"--global-batch {args.global_batch} must divide by {args.devices}")

    pl.seed_everything(0, workers=True)
    if args.mode == "toy":
        model = ToyFroSSL(gather=bool(args.gather), center=bool(args.center))
        dataset = TwoViewDataset(NUM_STEPS * args.global_batch, (IN_DIM,), NUM_CLASSES)
    else:
        model = build_method(gather=bool(args.gather), center=bool(args.center))
        dataset = TwoViewDataset(
            NUM_STEPS * args.global_batch, (3, IMAGE_SIZE, IMAGE_SIZE), NUM_CLASSES
        )
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=args.devices,
        strategy="ddp" if args.devices > 1 else "auto",
        max_steps=NUM_STEPS,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        use_distributed_sampler=False,
    )
    trainer.fit(model, datamodule=UnshuffledShards(dataset, args.global_batch))

    rank = trainer.global_rank
    result = {"world_size": trainer.world_size, "rank": rank}
    if args.mode == "toy":
        result.update(
            losses=torch.stack(model.losses),
            indexes=model.indexes,
            first_grads=model.first_grads,
            weights={k: v.detach().clone() for k, v in model.named_parameters()},
        )
    else:
        result.update(records=model.records)
    args.out.mkdir(parents=True, exist_ok=True)
    torch.save(result, args.out / f"rank{rank}.pt")


if __name__ == "__main__":
    main()
