"""Linear/kNN transforms at the training resolution for ``data.dataset: custom``.

The host builds the online-classifier and ``main_linear.py`` transforms of an image folder with
``RandomResizedCrop(224)`` and ``Resize(256) + CenterCrop(224)`` whatever the pretraining crop
size. Setting ``data.eval_crop_size`` in a config (configs/base/shared.yaml sets it to the
pretraining crop size) makes the plugin's Hydra callback replace the host's custom-folder
pipeline, ``solo.data.classification_dataloader.build_custom_pipeline``, with the same protocol
scaled to that size: ``RandomResizedCrop(s)`` for training, and for validation a resize of the
shorter side to ``s * 256 / 224`` followed by ``CenterCrop(s)``, the host's ratio, so that
``s = 224`` gives exactly the host's ``Resize(256) + CenterCrop(224)``.
:func:`frossl_plugin.host.uninstall` puts the host's pipeline back.
"""

import inspect
from typing import Any, Dict, Optional

from omegaconf import DictConfig, OmegaConf

from frossl_plugin.host.patches import expect, set_attr

# the host's validation resize for its 224-px centre crop (Resize(256) + CenterCrop(224))
HOST_RESIZE, HOST_CROP = 256, 224


def eval_resize_for(crop_size: int) -> int:
    """Shorter side before the centre crop of ``crop_size``, at the host's 256 / 224 ratio."""

    return round(crop_size * HOST_RESIZE / HOST_CROP)


def build_custom_pipeline_at(crop_size: int) -> Dict[str, Any]:
    """The host's custom-folder pipeline (same steps, ImageNet statistics) scaled to
    ``crop_size``: the validation resize keeps the host's 256 / 224 ratio."""

    from timm.data.constants import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
    from torchvision import transforms

    normalize = transforms.Normalize(mean=IMAGENET_DEFAULT_MEAN, std=IMAGENET_DEFAULT_STD)
    return {
        "T_train": transforms.Compose(
            [
                transforms.RandomResizedCrop(size=crop_size, scale=(0.08, 1.0)),
                transforms.RandomHorizontalFlip(),
                transforms.ToTensor(),
                normalize,
            ]
        ),
        "T_val": transforms.Compose(
            [
                transforms.Resize(eval_resize_for(crop_size)),  # shorter side
                transforms.CenterCrop(crop_size),
                transforms.ToTensor(),
                normalize,
            ]
        ),
    }


def eval_crop_size_from_cfg(cfg: DictConfig) -> Optional[int]:
    """Reads and validates ``data.eval_crop_size``; None when unset or not a custom folder."""

    if OmegaConf.select(cfg, "data.dataset") != "custom":
        return None
    size = OmegaConf.select(cfg, "data.eval_crop_size", default=None)
    if size is None:
        return None
    if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
        raise ValueError(f"data.eval_crop_size must be a positive integer, but found {size!r}.")
    return size


def apply_custom_eval_crop_size(cfg: DictConfig) -> Optional[int]:
    """Points the host's custom-folder linear/kNN transforms at ``data.eval_crop_size``.

    Returns:
        Optional[int]: the size applied, or None when the config does not ask for it.
    """

    size = eval_crop_size_from_cfg(cfg)
    if size is None:
        return None
    import solo.data.classification_dataloader as host_loader

    current = getattr(host_loader, "build_custom_pipeline", None)
    required = [
        p.name
        for p in (inspect.signature(current).parameters.values() if callable(current) else ())
        if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]
    expect(
        inspect.isfunction(current) and not required,
        "solo.data.classification_dataloader.build_custom_pipeline",
        "a function without required arguments",
        current,
    )

    def build_custom_pipeline():
        return build_custom_pipeline_at(size)

    set_attr(host_loader, "build_custom_pipeline", build_custom_pipeline)
    return size
