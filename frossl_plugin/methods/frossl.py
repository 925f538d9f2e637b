"""FroSSL as a solo-learn method (https://arxiv.org/abs/2310.02903)."""

from typing import Any, Dict, List, Optional, Sequence

import omegaconf
import torch
import torch.nn as nn
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from solo.methods.base import BaseMethod
from solo.utils.misc import omegaconf_select

from frossl_plugin.losses.frossl import check_frossl_settings, frossl_loss_func

_DEFAULT_METHOD_KWARGS = {
    "proj_hidden_dim": 2048,
    "proj_output_dim": "auto",
    "invariance_weight": 1.0,
    "gather_across_devices": False,
    "center": False,
}

# Projector width D over the batch N that the loss sees, above which training is at risk of
# collapse: the invariance term grows like D / N against a regularizer bounded by log(min(N, D)).
# On MNIST-5k at batch 64 and 128 (README), online top-1 after 4 epochs fell from about 76 % at
# D = 2 N to 36-50 % at 4 N (uncentred; 70 % centred) and 15-31 % at 16 N. The paper's own
# configs run at 4 N (CIFAR, batch 256) and 8 N (ImageNet-100, 128 per device): no warning there.
COLLAPSE_RISK_RATIO = 8

# proj_output_dim: auto, the width the paper used (1024 for CIFAR, STL-10 and ImageNet-100 at
# batches of 128-256), capped so that V views x D <= AUTO_VIEW_DIMS_PER_SAMPLE x the batch N the
# loss sees: D = 2 N for 2 views, N for 4, N / 2 for 8. Summed over views the invariance term
# grows like V D / N against a regularizer that grows like V. On MNIST-5k at batch 64 and 128
# (README, "FroSSL at small batches") D = 2 N was the best two-view width tried, and 4 views at
# D = 2 N collapsed.
PAPER_PROJ_OUTPUT_DIM = 1024
AUTO_VIEW_DIMS_PER_SAMPLE = 4


def loss_batch_size(cfg: omegaconf.DictConfig) -> int:
    """The batch FroSSL's loss sees: the per-device ``optimizer.batch_size``, times the number of
    processes (counted as the host counts them for its lr scaling) with
    ``gather_across_devices``."""

    batch_size = cfg.optimizer.batch_size
    if not cfg.method_kwargs.gather_across_devices:
        return batch_size
    return batch_size * len(cfg.devices) * omegaconf_select(cfg, "num_nodes", 1)


def num_views(cfg: omegaconf.DictConfig) -> int:
    """Views of the loss: every crop, large and small (2 where the host has not counted them)."""

    return omegaconf_select(cfg, "data.num_large_crops", 2) + omegaconf_select(
        cfg, "data.num_small_crops", 0
    )


def auto_proj_output_dim(batch_size: int, views: int = 2) -> int:
    """``proj_output_dim: auto`` for a loss batch of ``batch_size`` and ``views`` views."""

    return max(1, min(PAPER_PROJ_OUTPUT_DIM, AUTO_VIEW_DIMS_PER_SAMPLE * batch_size // views))


def collapse_risk(
    batch_size: int,
    proj_output_dim: int,
    world_size: int = 1,
    gather_across_devices: bool = False,
    views: int = 2,
) -> Optional[str]:
    """A warning text when ``proj_output_dim`` exceeds ``COLLAPSE_RISK_RATIO`` x the batch the
    loss sees: the per-device ``batch_size``, times ``world_size`` with ``gather_across_devices``.
    ``views`` only sets the auto width that the text suggests.
    """

    seen = batch_size * world_size if gather_across_devices else batch_size
    if proj_output_dim <= COLLAPSE_RISK_RATIO * seen:
        return None
    return (
        f"FroSSL: method_kwargs.proj_output_dim={proj_output_dim} is more than "
        f"{COLLAPSE_RISK_RATIO} x the {seen} samples its loss sees per step (the "
        "per-device batch, or the global one with gather_across_devices). The invariance term "
        "grows with D / N, and at D = 16 N training has been seen to collapse (train_frossl_loss "
        "and train_frossl_regularization near 0). Use a larger batch, gather_across_devices=true "
        "under DDP, or method_kwargs.proj_output_dim=auto "
        f"(here {auto_proj_output_dim(seen, views)}); "
        "if the width must stay, method_kwargs.center=true held up better at 4 N and 16 N."
    )


class FroSSL(BaseMethod):
    # every crop is a view of the loss, so any number of large crops works (read by hosts whose
    # main_pretrain.py otherwise requires exactly 2 large crops)
    supports_any_num_large_crops: bool = True

    def __init__(self, cfg: omegaconf.DictConfig):
        """Implements FroSSL (https://arxiv.org/abs/2310.02903).

        Every crop, large and small, is a view of the loss: small crops are projected too.

        Extra cfg settings:
            method_kwargs:
                proj_hidden_dim (int): neurons in the two hidden projector layers (2048).
                proj_output_dim (int or "auto"): dimension D of the projected embeddings
                    ("auto": 1024, the paper's, capped at 4 x the batch the loss sees / the
                    number of views: 2 N for two views).
                invariance_weight (float): weight w of the invariance term (1.0).
                gather_across_devices (bool): compute the loss over the global batch under
                    DDP instead of each device's local batch (False).
                center (bool): centre each feature over the batch before the column
                    normalization (False). True is the loss the paper's two-view runs used;
                    False is the multiview loss the paper's 4- and 8-view runs used.

        Why ``center`` defaults to False: the uncentred loss is the reference (multiview)
        formulation, the one the official repository (OFSkean/FroSSL) runs for every number of
        views since 2024-08 (commit 4942ce5: "the results might differ slightly"), and the one
        lightly's ``FroSSLLoss`` and solo-learn PR #398 implement. Before that, the official code
        used a two-view function for 2 views, which is this loss with ``center: true`` up to an
        additive constant (same gradients); the configs that reproduce the paper's two-view runs
        set it.
        """

        super().__init__(cfg)

        self.invariance_weight: float = cfg.method_kwargs.invariance_weight
        self.gather_across_devices: bool = cfg.method_kwargs.gather_across_devices
        self.center: bool = cfg.method_kwargs.center

        proj_hidden_dim: int = cfg.method_kwargs.proj_hidden_dim
        self.proj_output_dim: int = cfg.method_kwargs.proj_output_dim

        self.projector = nn.Sequential(
            nn.Linear(self.features_dim, proj_hidden_dim),
            nn.BatchNorm1d(proj_hidden_dim),
            nn.ReLU(),
            nn.Linear(proj_hidden_dim, proj_hidden_dim),
            nn.BatchNorm1d(proj_hidden_dim),
            nn.ReLU(),
            nn.Linear(proj_hidden_dim, self.proj_output_dim),
        )

    @staticmethod
    def add_and_assert_specific_cfg(cfg: omegaconf.DictConfig) -> omegaconf.DictConfig:
        """Fills FroSSL's defaults and validates ``method_kwargs``.

        Args:
            cfg (omegaconf.DictConfig): DictConfig object.

        Raises:
            ValueError: for unknown keys, missing (``???``) values, wrong types (also a
                non-bool ``gather_across_devices`` or ``center``), non-positive dimensions or a
                negative invariance weight.

        Returns:
            omegaconf.DictConfig: same as the argument, used to avoid errors.
        """

        cfg = super(FroSSL, FroSSL).add_and_assert_specific_cfg(cfg)

        unknown = sorted(set(cfg.method_kwargs.keys()) - set(_DEFAULT_METHOD_KWARGS))
        if unknown:
            raise ValueError(
                f"Unknown FroSSL method_kwargs {unknown}; expected keys among "
                f"{sorted(_DEFAULT_METHOD_KWARGS)}."
            )
        for key, default in _DEFAULT_METHOD_KWARGS.items():
            # is_missing takes a key of the node, not a dotted path
            if omegaconf.OmegaConf.is_missing(cfg.method_kwargs, key):
                raise ValueError(f"method_kwargs.{key} is missing (???); set it, e.g. {default}.")
            cfg.method_kwargs[key] = omegaconf_select(cfg, f"method_kwargs.{key}", default)

        kwargs = cfg.method_kwargs
        if not isinstance(kwargs.gather_across_devices, bool):
            raise ValueError(
                "method_kwargs.gather_across_devices must be true or false, but found "
                f"{kwargs.gather_across_devices!r}."
            )
        if kwargs.proj_output_dim == "auto":
            batch_size, views = loss_batch_size(cfg), num_views(cfg)
            kwargs.proj_output_dim = auto_proj_output_dim(batch_size, views)
            rank_zero_info(
                f"FroSSL: method_kwargs.proj_output_dim=auto -> {kwargs.proj_output_dim} (the "
                f"paper's {PAPER_PROJ_OUTPUT_DIM}, at most {AUTO_VIEW_DIMS_PER_SAMPLE} x the "
                f"{batch_size} samples the loss sees per step / the {views} views)"
            )
        for key in ("proj_hidden_dim", "proj_output_dim"):
            value = kwargs[key]
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                expected = "a positive integer" + (" or auto" if key == "proj_output_dim" else "")
                raise ValueError(f"method_kwargs.{key} must be {expected}, but found {value!r}.")
        check_frossl_settings(kwargs.invariance_weight, kwargs.center, prefix="method_kwargs.")
        return cfg

    @property
    def learnable_params(self) -> List[dict]:
        """Adds projector parameters to the parent's learnable parameters.

        Returns:
            List[dict]: list of learnable parameters.
        """

        extra_learnable_params = [{"name": "projector", "params": self.projector.parameters()}]
        return super().learnable_params + extra_learnable_params

    def forward(self, X: torch.Tensor) -> Dict[str, Any]:
        """Performs the forward pass of the backbone and the projector.

        Args:
            X (torch.Tensor): B x C x H x W batch of images.

        Returns:
            Dict[str, Any]: the parent's outputs plus the projected features ``"z"`` (B x D).
        """

        out = super().forward(X)
        out.update({"z": self.projector(out["feats"])})
        return out

    def multicrop_forward(self, X: torch.Tensor) -> Dict[str, Any]:
        """Projects small crops as well, so that they are views of the loss.

        Args:
            X (torch.Tensor): B x C x h x w batch of small crops.

        Returns:
            Dict[str, Any]: the parent's outputs plus the projected features ``"z"`` (B x D).
        """

        out = super().multicrop_forward(X)
        out.update({"z": self.projector(out["feats"])})
        return out

    def on_train_start(self):
        """Warns when the projector is much wider than the batch the loss sees."""

        super().on_train_start()
        message = collapse_risk(
            self.batch_size,
            self.proj_output_dim,
            world_size=self.trainer.world_size,
            gather_across_devices=self.gather_across_devices,
            views=self.num_large_crops + self.num_small_crops,
        )
        if message:
            rank_zero_warn(message)

    def training_step(self, batch: Sequence[Any], batch_idx: int) -> torch.Tensor:
        """Training step for FroSSL reusing BaseMethod training step.

        Args:
            batch (Sequence[Any]): a batch of data in the format of [img_indexes, [X], Y], where
                [X] is a list of size num_crops containing batches of images.
            batch_idx (int): index of the batch.

        Returns:
            torch.Tensor: FroSSL loss plus the online classifier's loss.
        """

        out = super().training_step(batch, batch_idx)
        class_loss = out["loss"]

        frossl_loss, invariance, regularization = frossl_loss_func(
            out["z"],  # num_crops tensors of B x D: large crops first, then small crops
            invariance_weight=self.invariance_weight,
            gather_across_devices=self.gather_across_devices,
            center=self.center,
        )

        self.log("train_frossl_loss", frossl_loss, on_epoch=True, sync_dist=True)
        self.log("train_frossl_invariance", invariance, on_epoch=True, sync_dist=True)
        self.log("train_frossl_regularization", regularization, on_epoch=True, sync_dist=True)

        return frossl_loss + class_loss
