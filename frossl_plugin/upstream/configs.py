"""Host-style ``scripts/{pretrain,linear}/<dataset>/frossl*.yaml`` generated from the plugin's
configs.

Each plugin config is composed with Hydra (so the base config and the augmentation group are
resolved exactly as ``main_pretrain.py`` would see them), then written the way the host writes
its configs: ``_self_`` first in the defaults, the augmentations and wandb settings taken from the
host folder's own ``augmentations/`` and ``wandb/`` groups, the host's key order, and the host's
Lightning conventions (GPU, a device list, DDP). Plugin-only settings (the Hydra callback, keys
the host never reads such as ``data.eval_crop_size``, the ``frossl_last_checkpoint`` resolver)
are dropped.
"""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import yaml

CONFIG_MODULE = "frossl_plugin.configs"


@dataclass(frozen=True)
class ConfigTarget:
    """One plugin config and where its host version goes.

    Attributes:
        plugin_config (str): plugin config name (``configs/<name>.yaml``).
        stage (str): ``"pretrain"`` or ``"linear"``.
        folder (str): host folder below ``scripts/<stage>/`` (the host's dataset folder name).
        file_name (str): file written in that folder.
        comments (Dict[str, str]): end-of-line comments by dotted key, as the host writes them.
    """

    plugin_config: str
    stage: str
    folder: str
    file_name: str = "frossl.yaml"
    comments: Dict[str, str] = field(default_factory=dict)

    @property
    def host_path(self) -> str:
        return f"scripts/{self.stage}/{self.folder}/{self.file_name}"


# method_kwargs.center: each config runs the loss the paper ran for its number of views
_TWO_VIEW = {"method_kwargs.center": "the paper's two-view runs centred each feature"}
_MULTIVIEW = {"method_kwargs.center": "the paper's 4/8-view runs: multiview loss, uncentred"}
_CIFAR_COMMENTS = {"name": "change here for cifar100", "data.dataset": "change here for cifar100"}

# The plugin's CIFAR-100 configs differ from CIFAR-10 only in the dataset, which the host's
# cifar/ folder expresses with a comment. Tiny-ImageNet is not a host dataset: as an image
# folder the host validates it at 224 px (see the plugin's data.eval_crop_size), so it stays in
# the plugin.
CONFIG_TARGETS: Tuple[ConfigTarget, ...] = (
    ConfigTarget("frossl", "pretrain", "cifar", comments={**_CIFAR_COMMENTS, **_TWO_VIEW}),
    ConfigTarget("frossl_stl10", "pretrain", "stl10", comments=_TWO_VIEW),
    ConfigTarget("frossl_stl10_4views", "pretrain", "stl10", "frossl_4views.yaml", _MULTIVIEW),
    ConfigTarget("frossl_stl10_8views", "pretrain", "stl10", "frossl_8views.yaml", _MULTIVIEW),
    ConfigTarget("frossl_imagenet100", "pretrain", "imagenet-100", comments=_TWO_VIEW),
    ConfigTarget("frossl_imagenet", "pretrain", "imagenet", comments=_TWO_VIEW),
    ConfigTarget("frossl_linear", "linear", "cifar", comments=_CIFAR_COMMENTS),
    ConfigTarget("frossl_stl10_linear", "linear", "stl10"),
    ConfigTarget("frossl_imagenet100_linear", "linear", "imagenet-100"),
    ConfigTarget("frossl_imagenet_linear", "linear", "imagenet"),
)

# the host's top-level key order; Lightning's keys come last under "# overwrite PL stuff"
_KEY_ORDER = (
    "name",
    "method",
    "pretrained_feature_extractor",
    "backbone",
    "pretrain_method",
    "method_kwargs",
    "momentum",
    "data",
    "optimizer",
    "scheduler",
    "checkpoint",
    "auto_resume",
)
_LIGHTNING_KEYS = (
    "max_epochs",
    "devices",
    "sync_batchnorm",
    "accelerator",
    "strategy",
    "precision",
)
# replaced by the host's defaults groups
_GROUP_KEYS = ("hydra", "wandb", "augmentations")


def host_known_keys(root: Path) -> Tuple[set, set]:
    """Top-level and ``data.`` keys that the host reads: those its code selects from ``cfg``,
    those its own configs set, and Lightning ``Trainer`` arguments (which it passes through).

    Everything else in a plugin config (``data.eval_crop_size``, the plugin's callback switches)
    is applied by the plugin's Hydra callback, which the host does not have, so it is dropped.
    """

    import inspect
    import re
    import warnings

    with warnings.catch_warnings():  # lightning's dependencies warn about their own deprecations
        warnings.simplefilter("ignore")
        from lightning.pytorch import Trainer

    top, data = set(inspect.signature(Trainer.__init__).parameters), set()
    code = [root / "main_pretrain.py", root / "main_linear.py", *(root / "solo").rglob("*.py")]
    for path in code:
        text = path.read_text()
        top.update(re.findall(r"\bcfg\.(\w+)", text))
        top.update(re.findall(r"omegaconf_select\(\s*cfg,\s*\"(\w+)", text))
        data.update(re.findall(r"\bcfg\.data\.(\w+)", text))
        data.update(re.findall(r"omegaconf_select\(\s*cfg,\s*\"data\.(\w+)", text))
    for path in (root / "scripts").rglob("*.yaml"):
        loaded = _load_group(path)
        if isinstance(loaded, dict):
            top.update(loaded)
            if isinstance(loaded.get("data"), dict):
                data.update(loaded["data"])
    return top, data


def compose_plugin_config(name: str) -> Tuple[Dict[str, Any], Optional[str], List[str]]:
    """Composes plugin config ``name`` with Hydra.

    Returns:
        Tuple[Dict[str, Any], Optional[str], List[str]]: the unresolved config as a dict, the
        chosen augmentation group option (None for linear configs) and the config file's
        leading comment lines.
    """

    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import OmegaConf

    if GlobalHydra.instance().is_initialized():
        GlobalHydra.instance().clear()
    with initialize_config_module(config_module=CONFIG_MODULE, version_base="1.2"):
        cfg = compose(config_name=name, return_hydra_config=True)
    augmentation_choice = cfg.hydra.runtime.choices.get("augmentations")
    config = OmegaConf.to_container(cfg, resolve=False)
    config.pop("hydra")
    return config, augmentation_choice, _leading_comments(name)


def _leading_comments(name: str) -> List[str]:
    from importlib import resources

    text = resources.files(CONFIG_MODULE).joinpath(f"{name}.yaml").read_text()
    comments = []
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        comments.append(line)
    # the host has no plugin: drop lines that speak about it
    return [line for line in comments if "frossl-plugin" not in line and "plugin" not in line]


def _host_lightning(config: Dict[str, Any]) -> None:
    """Plugin Lightning defaults (auto/"1"/auto, CPU friendly) in the host's GPU convention."""

    if config.get("accelerator") in (None, "auto"):
        config["accelerator"] = "gpu"
    devices = config.get("devices")
    if isinstance(devices, str) and devices.isdigit():
        config["devices"] = list(range(int(devices)))
    elif isinstance(devices, int):
        config["devices"] = list(range(devices))
    if config.get("strategy") in (None, "auto"):
        config["strategy"] = "ddp"


def _load_group(path: Path) -> Any:
    with open(path) as stream:
        return yaml.safe_load(stream)


def _augmentation_group_file(
    host_folder: Path, plugin_choice: str, augmentations: List[Any], folder: str
) -> Tuple[str, Optional[str]]:
    """The host augmentation group option for ``augmentations``.

    Returns:
        Tuple[str, Optional[str]]: the option's file name, and the YAML text of a new group file
        to write (None when the host folder already has an identical one).
    """

    group_dir = host_folder / "augmentations"
    if group_dir.is_dir():
        for existing in sorted(group_dir.glob("*.yaml")):
            if _load_group(existing) == augmentations:
                return existing.name, None
    # plugin options are named <dataset>_<kind>; the host's folder already names the dataset
    prefix = folder.replace("-", "") + "_"
    base = plugin_choice
    for candidate in (prefix, "cifar_", "stl10_", "imagenet_", "tinyimagenet_"):
        if base.startswith(candidate):
            base = base[len(candidate) :]
            break
    file_name = f"{base}.yaml"
    if (group_dir / file_name).exists():
        file_name = f"frossl_{base}.yaml"
    text = _dump(augmentations)
    return file_name, text


_DATA_KEY_ORDER = ("dataset", "train_path", "val_path", "format", "num_workers")


def _ordered(config: Dict[str, Any]) -> Tuple[List[str], List[str]]:
    if isinstance(config.get("data"), dict):
        data = config["data"]
        first = [key for key in _DATA_KEY_ORDER if key in data]
        config["data"] = {key: data[key] for key in first + [k for k in data if k not in first]}
    main = [key for key in _KEY_ORDER if key in config]
    rest = [key for key in config if key not in main and key not in _LIGHTNING_KEYS]
    lightning = [key for key in _LIGHTNING_KEYS if key in config]
    return main + rest, lightning


class _HostStyleDumper(yaml.SafeDumper):
    """Block-style mappings, and lists of scalars on one line (``devices: [0, 1]``)."""


def _represent_list(dumper: yaml.SafeDumper, data: list) -> yaml.Node:
    flow = all(not isinstance(item, (dict, list)) for item in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


_HostStyleDumper.add_representer(list, _represent_list)


def _dump(value: Any) -> str:
    return yaml.dump(
        value, Dumper=_HostStyleDumper, sort_keys=False, default_flow_style=False, width=100
    )


def _dump_section(key: str, value: Any, comments: Dict[str, str]) -> str:
    text = _dump({key: value})
    lines = text.rstrip("\n").splitlines()
    for dotted, comment in comments.items():
        parts = dotted.split(".")
        if parts[0] != key:
            continue
        indent = "  " * (len(parts) - 1)
        leaf = f"{indent}{parts[-1]}:"
        for index, line in enumerate(lines):
            if line.startswith(leaf):
                lines[index] = f"{line} # {comment}"
                break
    return "\n".join(lines) + "\n"


def render_host_config(
    target: ConfigTarget, config: Dict[str, Any], defaults: List[str], header: List[str]
) -> str:
    """YAML text of a host config, in the host's layout.

    Args:
        target (ConfigTarget): what is being written.
        config (Dict[str, Any]): composed plugin config without plugin-only keys.
        defaults (List[str]): entries of the defaults list after ``_self_``.
        header (List[str]): leading comment lines.

    Returns:
        str: the file's text.
    """

    out = list(header)
    out.append("defaults:")
    out.append("  - _self_")
    out.extend(f"  - {entry}" for entry in defaults)
    out.append("  - override hydra/hydra_logging: disabled")
    out.append("  - override hydra/job_logging: disabled")
    out.append("")
    out.append("# disable hydra outputs")
    out.append("hydra:")
    out.append("  output_subdir: null")
    out.append("  run:")
    out.append("    dir: .")
    out.append("")
    body_keys, lightning_keys = _ordered(config)
    text = "\n".join(out) + "\n"
    text += "".join(_dump_section(key, config[key], target.comments) for key in body_keys)
    if lightning_keys:
        text += "\n# overwrite PL stuff\n"
        text += "".join(_dump_section(key, config[key], target.comments) for key in lightning_keys)
    return text


def export_configs(root: Path, targets: Tuple[ConfigTarget, ...] = CONFIG_TARGETS) -> List[str]:
    """Writes every target's host config (and new group files) into the checkout at ``root``.

    Returns:
        List[str]: paths written, relative to ``root``.
    """

    written: List[str] = []
    known_top, known_data = host_known_keys(root)
    for target in targets:
        config, augmentation_choice, header = compose_plugin_config(target.plugin_config)
        folder = root / "scripts" / target.stage / target.folder
        defaults: List[str] = []
        if target.stage == "pretrain":
            augmentations = config.get("augmentations")
            if not augmentations or augmentation_choice is None:
                raise ValueError(
                    f"plugin config {target.plugin_config!r} has no augmentations group choice."
                )
            group_file, group_text = _augmentation_group_file(
                folder, augmentation_choice, augmentations, target.folder
            )
            if group_text is not None:
                written.append(_write(root, folder / "augmentations" / group_file, group_text))
            defaults.append(f"augmentations: {group_file}")
        defaults.append(f"wandb: {_wandb_group(root, target, folder, written)}")

        for key in _GROUP_KEYS:
            config.pop(key, None)
        for key in [key for key in config if key not in known_top]:
            config.pop(key)
        data = config.get("data", {})
        for key in [key for key in data if key not in known_data]:
            data.pop(key)
        value = config.get("pretrained_feature_extractor")
        if isinstance(value, str) and value.startswith("${"):
            # resolved by the plugin's callback; the host's linear configs leave it to the user
            config["pretrained_feature_extractor"] = "None"
        _host_lightning(config)
        text = render_host_config(target, config, defaults, header)
        written.append(_write(root, folder / target.file_name, text))
    return written


def _wandb_group(root: Path, target: ConfigTarget, folder: Path, written: List[str]) -> str:
    """The host's ``wandb: private.yaml`` group; a new dataset folder gets a copy of a sibling's."""

    option = "private.yaml"
    if not (folder / "wandb" / option).is_file():
        siblings = sorted((root / "scripts" / target.stage).glob(f"*/wandb/{option}"))
        if not siblings:
            raise ValueError(f"no scripts/{target.stage}/*/wandb/{option} in the host to follow.")
        written.append(_write(root, folder / "wandb" / option, siblings[0].read_text()))
    return option


def _write(root: Path, path: Path, text: str) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return str(path.relative_to(root))
