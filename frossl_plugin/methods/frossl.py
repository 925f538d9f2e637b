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

# A projector width D above this many times the batch N that the loss sees risks collapse: the
# invariance term grows like D / N against a regularizer bounded by log(min(N, D)). The paper's
# own configs run at 4 N (CIFAR, batch 256) and 8 N (ImageNet-100, 128 per device).
COLLAPSE_RISK_RATIO = 8

# proj_output_dim: auto. From the paper's batch up (256, its CIFAR and STL-10 runs with 2, 4 and 8
# views), the paper's width; below it, at most AUTO_VIEW_DIMS_PER_SAMPLE x N / V for V views
# (2 N for two views), since summed over views the invariance term grows like V D / N.
PAPER_PROJ_OUTPUT_DIM = 1024
PAPER_BATCH_SIZE = 256
AUTO_VIEW_DIMS_PER_SAMPLE = 4

# invariance_weight: auto. From the paper's batch up, the paper's CIFAR weight for any number of
# views; below it, that weight x 2 / V, which keeps the two-view balance of the summed terms
# (measured best with 4 full-size views at batch 64: docs/results.md, "Multiview").
PAPER_INVARIANCE_WEIGHT = 1.0


def count_devices(devices: Any) -> int:
    """Processes per node that Lightning starts for ``devices``: a number, a list of device ids,
    or a string of either (``"2"`` is two devices, ``"0,1"`` two ids), as Lightning reads it.

    Raises:
        ValueError: for ``"auto"``, ``-1`` and anything else whose count is only known once the
            trainer looks at the machine.
    """

    value = devices
    if isinstance(value, str):
        text = value.strip()
        if "," in text:
            value = [item for item in text.split(",") if item.strip()]
        elif text.isdigit():
            value = int(text)
    if isinstance(value, (list, tuple, omegaconf.ListConfig)) and len(value) > 0:
        return len(value)
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    raise ValueError(
        f"devices={devices!r}: with method_kwargs.gather_across_devices=true FroSSL needs the "
        'number of processes before training starts; give devices as a number (2, "2") or a '
        "list of device ids ([0, 1])."
    )


def loss_batch_size(cfg: omegaconf.DictConfig) -> int:
    """The batch FroSSL's loss sees: the per-device ``optimizer.batch_size``, times the number of
    processes (devices x ``num_nodes``) with ``gather_across_devices``.

    Raises:
        ValueError: if gathering and ``devices`` cannot be counted (see :func:`count_devices`).
    """

    batch_size = cfg.optimizer.batch_size
    if not cfg.method_kwargs.gather_across_devices:
        return batch_size
    return batch_size * count_devices(cfg.devices) * omegaconf_select(cfg, "num_nodes", 1)


def num_views(cfg: omegaconf.DictConfig) -> int:
    """Views of the loss: every crop, large and small (2 where the host has not counted them)."""

    return omegaconf_select(cfg, "data.num_large_crops", 2) + omegaconf_select(
        cfg, "data.num_small_crops", 0
    )


def auto_proj_output_dim(batch_size: int, views: int = 2) -> int:
    """``proj_output_dim: auto`` for a loss batch of ``batch_size`` and ``views`` views: the
    paper's 1024 from its batch of 256 up, else ``AUTO_VIEW_DIMS_PER_SAMPLE * batch_size //
    views``."""

    if batch_size >= PAPER_BATCH_SIZE:
        return PAPER_PROJ_OUTPUT_DIM
    return max(1, min(PAPER_PROJ_OUTPUT_DIM, AUTO_VIEW_DIMS_PER_SAMPLE * batch_size // views))


def auto_invariance_weight(batch_size: int, views: int = 2) -> float:
    """``invariance_weight: auto`` for a loss batch of ``batch_size`` and ``views`` views: the
    paper's ``PAPER_INVARIANCE_WEIGHT`` from its batch of 256 up, else that weight x 2 /
    ``views`` (the same for two views)."""

    if batch_size >= PAPER_BATCH_SIZE:
        return PAPER_INVARIANCE_WEIGHT
    return PAPER_INVARIANCE_WEIGHT * 2 / views


# method_kwargs that take "auto": what else the key takes, and its rule in words for the log
# (the rules themselves, auto_<key>, are looked up when a config is resolved)
_AUTO_SETTINGS = {
    "proj_output_dim": (
        "a positive integer",
        f"the paper's {PAPER_PROJ_OUTPUT_DIM} from a batch of {PAPER_BATCH_SIZE}, else "
        f"{AUTO_VIEW_DIMS_PER_SAMPLE} x the batch / the views",
    ),
    "invariance_weight": (
        "a finite number >= 0",
        f"the paper's {PAPER_INVARIANCE_WEIGHT:g} from a batch of {PAPER_BATCH_SIZE}, else "
        f"{PAPER_INVARIANCE_WEIGHT:g} x 2 / the views",
    ),
}


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
        "grows with D / N, and a much wider projector than the batch can collapse "
        "(train_frossl_loss and train_frossl_regularization near 0). Use a larger batch, "
        "gather_across_devices=true under DDP, or method_kwargs.proj_output_dim=auto "
        f"(here {auto_proj_output_dim(seen, views)}); "
        "if the width must stay, method_kwargs.center=true is less prone to it."
    )


# Datasets whose images all are square: there, without random resized crops, a crop size [S, S]
# (resize to S x S) and S (resize the shorter side to S) give the same view.
SQUARE_IMAGE_DATASETS = ("cifar10", "cifar100", "stl10")


def _is_size(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _shown(value: Any) -> str:
    if isinstance(value, omegaconf.ListConfig):
        value = omegaconf.OmegaConf.to_container(value)
    return repr(value)


def check_views(cfg: omegaconf.DictConfig) -> None:
    """Checks the views that ``cfg.augmentations`` makes, before anything is trained.

    The host's ``parse_cfg`` counts a pipeline's crops as large only when its ``crop_size``
    equals the first pipeline's (``==``), and an unmodified ``main_pretrain.py`` takes exactly two
    large crops for FroSSL. An extra view at the first crop size ``S`` is therefore written so
    that it is not equal to ``S`` but still cropped at ``S x S``:

    - ``[S, S]`` for the torchvision loaders (``data.format`` ``image_folder`` or ``h5``), whose
      ``RandomResizedCrop`` and ``Resize`` take a pair;
    - the string ``"S"`` with ``data.format: dali``, whose operators cannot read a pair from the
      config (DALI takes an OmegaConf list for one number and fails) but convert a digit string.

    Such views count as small crops: ``multicrop_forward`` projects them, so they are views of
    the loss like the large ones, with the same random augmentations (the draws do not depend on
    the size). The online linear classifier and kNN monitor read only the large crops, the first
    two: the same two views per image that they see for every two-view method, so their
    accuracies stay comparable with the host's baselines. A plain integer other than ``S`` is a
    small crop, a cheaper extra view at a lower resolution.

    A run with more than two views needs at least as many images per device and step
    (``optimizer.batch_size``) as views: with fewer, the images of a step are outnumbered by
    their views, and ``proj_output_dim: auto`` (``4 N / V``) would fall under 4 dimensions.
    Two-view runs are every method's setting and are left to the host.

    A cfg without ``augmentations`` (a method built directly, as in unit tests) is not checked.

    Args:
        cfg (omegaconf.DictConfig): the config after the host's ``parse_cfg``.

    Raises:
        ValueError: if the first crop size is not a positive integer; if a pair is not square,
            not the first crop size, not a pair of positive integers, used with DALI, or used
            without random resized crops on images that may not be square; if a string crop
            size is used outside DALI or is not the first crop size; if another crop size is not
            a positive integer; or if a run with more than two views has fewer images per step
            than views.
    """

    augmentations = omegaconf_select(cfg, "augmentations", None)
    if not augmentations:
        return
    first = augmentations[0].crop_size
    if not _is_size(first):
        raise ValueError(
            f"augmentations.0.crop_size={_shown(first)}: expected a positive integer, the size "
            "of the large crops that every other crop size is compared with."
        )
    data_format = omegaconf_select(cfg, "data.format", "image_folder")
    dataset = omegaconf_select(cfg, "data.dataset", None)
    full = f"[{first}, {first}]"
    for index, pipeline in enumerate(augmentations[1:], start=1):
        size = pipeline.crop_size
        where = f"augmentations.{index}.crop_size={_shown(size)}"
        if isinstance(size, (list, tuple, omegaconf.ListConfig)):
            if len(size) != 2 or not all(_is_size(side) for side in size):
                raise ValueError(
                    f"{where}: a crop size written as a pair must be two positive integers; "
                    f"expected {full}, a full-size view (the first crop size, "
                    f"augmentations.0.crop_size={first})."
                )
            if size[0] != size[1]:
                raise ValueError(
                    f"{where}: a full-size view written as a pair must be square; expected "
                    f"{full} (augmentations.0.crop_size={first})."
                )
            if size[0] != first:
                raise ValueError(
                    f"{where} is not a full-size copy of the first crop "
                    f"(augmentations.0.crop_size={first}): a pair stands for an extra view at "
                    f"the first crop size, expected {full}; write a smaller view as the plain "
                    f"integer {size[0]} (a small crop)."
                )
            if data_format == "dali":
                raise ValueError(
                    f"{where} with data.format=dali: the host's DALI pipeline cannot take a "
                    "pair (DALI reads the config's list as one number and fails); expected the "
                    f"string '{first}' for a full-size view with DALI (crop_size: \"{first}\" in "
                    f"YAML, \"augmentations.{index}.crop_size='{first}'\" on the command line), "
                    "which DALI crops at the same size."
                )
            rrc = omegaconf.OmegaConf.select(pipeline, "rrc.enabled", default=True)
            if not rrc and dataset not in SQUARE_IMAGE_DATASETS:
                raise ValueError(
                    f"{where} with augmentations.{index}.rrc.enabled=false on "
                    f"data.dataset={dataset}: without random resized crops the host resizes "
                    f"a pair to exactly {first} x {first} but the integer {first} only its "
                    "shorter side, so on images that are not square this view would differ in "
                    f"size from the same pipeline with crop_size {first}; expected rrc.enabled: "
                    f"true (or a dataset of square images: {', '.join(SQUARE_IMAGE_DATASETS)})."
                )
        elif isinstance(size, str):
            if data_format != "dali":
                raise ValueError(
                    f"{where} with data.format={data_format}: a crop size written as a string "
                    f"is for the DALI pipeline only; expected {full} for a full-size view with "
                    "the torchvision loaders, or a plain integer for a small crop."
                )
            if size != str(first):
                raise ValueError(
                    f"{where}: a crop size written as a string stands for a full-size view with "
                    f"DALI, expected '{first}' (augmentations.0.crop_size={first}); write a "
                    "smaller view as a plain integer (a small crop)."
                )
        elif not _is_size(size):
            raise ValueError(
                f"{where}: expected a positive integer (a small crop, or a large one when equal "
                f"to augmentations.0.crop_size={first}) or {full} for a full-size extra view."
            )

    views = sum(pipeline.num_crops for pipeline in augmentations)
    batch_size = cfg.optimizer.batch_size
    if views > 2 and views > batch_size:
        raise ValueError(
            f"{views} views (the num_crops of augmentations) with optimizer.batch_size="
            f"{batch_size}: a run with more than two views needs at least as many images per "
            f"step as views, expected optimizer.batch_size >= {views} or at most "
            f"{max(2, batch_size)} views."
        )


class FroSSL(BaseMethod):
    # every crop is a view of the loss, so any number of large crops works (read by hosts whose
    # main_pretrain.py otherwise requires exactly 2 large crops)
    supports_any_num_large_crops: bool = True

    def __init__(self, cfg: omegaconf.DictConfig):
        """Implements FroSSL (https://arxiv.org/abs/2310.02903).

        Every crop, large and small, is a view of the loss: small crops are projected too.
        The host's online linear classifier and kNN monitor see only the large crops (two on an
        unmodified host), as for every two-view method; extra views at the first crop size are
        written ``[S, S]`` (see :func:`check_views`).

        Extra cfg settings:
            method_kwargs:
                proj_hidden_dim (int): neurons in the two hidden projector layers (2048).
                proj_output_dim (int or "auto"): dimension D of the projected embeddings
                    ("auto": the paper's 1024 when the loss sees a batch N of at least 256,
                    else 4 N / V for V views, that is 2 N for two views).
                invariance_weight (float or "auto"): weight w of the invariance term (1.0;
                    "auto": 1.0 when the loss sees a batch N of at least 256, else 2 / V).
                gather_across_devices (bool): compute the loss over the global batch under
                    DDP instead of each device's local batch (False).
                center (bool): centre each feature over the batch before the column
                    normalization (False). True is the loss the paper's two-view runs used;
                    False is the multiview loss the paper's 4- and 8-view runs used.

        ``center`` defaults to False, the multiview formulation of the official implementation
        (https://github.com/OFSkean/FroSSL), which it uses for any number of views. Its earlier
        two-view function equals this loss with ``center: true`` up to an additive constant.
        """

        width_follows_batch = (
            omegaconf_select(cfg, "method_kwargs.proj_output_dim", "auto") == "auto"
        )

        super().__init__(cfg)

        self.invariance_weight: float = cfg.method_kwargs.invariance_weight
        self.gather_across_devices: bool = cfg.method_kwargs.gather_across_devices
        self.center: bool = cfg.method_kwargs.center

        # the batch auto's width was resolved for, checked against the trainer in on_train_start
        self._counted_loss_batch: Optional[int] = (
            loss_batch_size(cfg) if width_follows_batch else None
        )

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
                negative invariance weight; for crop sizes or a number of views that
                :func:`check_views` refuses (a full-size view written as a pair that is not
                ``[S, S]`` of the first crop size, or that the loader cannot take; more views
                than images per step).

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
        rules = {
            "proj_output_dim": auto_proj_output_dim,
            "invariance_weight": auto_invariance_weight,
        }
        batch_and_views = None
        for key, (expected, description) in _AUTO_SETTINGS.items():
            value = kwargs[key]
            if not isinstance(value, str):
                continue
            if value != "auto":
                raise ValueError(
                    f"method_kwargs.{key} must be {expected} or auto, but found {value!r}."
                )
            batch_and_views = batch_and_views or (loss_batch_size(cfg), num_views(cfg))
            kwargs[key] = rules[key](*batch_and_views)
            rank_zero_info(
                f"FroSSL: method_kwargs.{key}=auto -> {kwargs[key]:g} for the "
                f"{batch_and_views[0]} samples the loss sees per step and {batch_and_views[1]} "
                f"views ({description})"
            )
        for key in ("proj_hidden_dim", "proj_output_dim"):
            value = kwargs[key]
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                expected = "a positive integer" + (" or auto" if key == "proj_output_dim" else "")
                raise ValueError(f"method_kwargs.{key} must be {expected}, but found {value!r}.")
        check_frossl_settings(kwargs.invariance_weight, kwargs.center, prefix="method_kwargs.")
        check_views(cfg)
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
        """Checks that the loss batch counted from the config is the trainer's, and warns when
        the projector is much wider than the batch the loss sees.

        Raises:
            ValueError: if ``proj_output_dim: auto`` was resolved for a loss batch (with
                ``gather_across_devices``) that differs from the one the trainer runs.
        """

        super().on_train_start()
        running = self.batch_size * self.trainer.world_size
        counted = self._counted_loss_batch
        if self.gather_across_devices and counted is not None and counted != running:
            raise ValueError(
                f"FroSSL counted a loss batch of {counted} from devices and num_nodes, but the "
                f"trainer runs {self.trainer.world_size} processes of {self.batch_size} "
                f"({running}); give devices as a number or a list of device ids."
            )
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
