"""Any timm model as a solo-learn backbone: ``backbone.name: timm/<model name>``.

The host looks backbones up in ``solo.methods.base.BaseMethod._BACKBONES``, a dict of
``name -> factory(method, **backbone.kwargs)``. Its keys are fixed, while timm names are
open-ended, so the plugin does two things:

- :func:`install_timm_backbone_table` gives ``BaseMethod._BACKBONES`` a dict subclass holding the
  same entries that also answers for any ``timm/<model>`` name, adding its factory on first
  lookup (checked first: the host's attribute must be a dict of callables; undone by
  :func:`frossl_plugin.host.uninstall`, which puts the host's own dict back). This reaches every
  host entry point: ``main_pretrain.py``, ``main_linear.py`` and the argparse scripts
  ``main_knn.py``/``main_umap.py`` that rebuild a method from ``args.json``.
- timm's own builder is found through timm's public API, where the host re-registered a name
  (:func:`_timm_entrypoint`); timm's registry is never changed.
- :func:`register_configured_backbone`, called by the plugin's Hydra callback before the host's
  task function, validates the configured name early and puts its factory into the table.

Names that do not start with ``resnet`` keep the host away from ``fc``/``inplanes``; the host then
takes the feature dimension from ``backbone.num_features``. Every model is built headless
(``num_classes=0``), so its forward returns pooled ``B x num_features`` features.

``backbone.kwargs`` go to ``timm.create_model``, except the plugin's own keys:

- ``small_input`` (bool): for 32- and 64-px images, remove the downsampling of a CNN's stem
  (strided stem convolutions get stride 1, a patchify stem such as ConvNeXt's becomes a 3x3
  stride-1 convolution, stem pooling is dropped), as the host does for its CIFAR ResNet. ViT-like
  models take ``img_size``/``patch_size`` instead.
- ``torch_compile`` (bool): compile the backbone in place with ``nn.Module.compile`` (state-dict
  keys unchanged, so checkpoints stay interchangeable).
- ``pretrained`` (bool): load timm's pretrained weights. Off by default; only this downloads.
"""

import difflib
import functools
import importlib
import warnings
from typing import Any, Callable, Dict, List, Optional

import torch.nn as nn

from frossl_plugin.host.patches import expect, set_attr

TIMM_PREFIX = "timm/"

# top-level module names that timm CNN families use for their stem
_STEM_MODULE_NAMES = ("conv1", "bn1", "act1", "maxpool", "stem", "conv_stem")
_MAX_CLOSE_MATCHES = 20


def is_timm_backbone_name(name: Any) -> bool:
    """Whether ``name`` asks for a timm model (``"timm/<model>"``)."""

    return isinstance(name, str) and name.startswith(TIMM_PREFIX)


def close_timm_matches(model_name: str) -> List[str]:
    """timm model names resembling ``model_name``: ``timm.list_models(f"*{model_name}*")``, or the
    nearest names by spelling when that finds nothing."""

    import timm

    matches = [name for name in timm.list_models(f"*{model_name}*") if _timm_entrypoint(name)]
    if not matches:
        every = [name for name in timm.list_models() if _timm_entrypoint(name)]
        matches = difflib.get_close_matches(model_name, every, n=10, cutoff=0.6)
    return matches[:_MAX_CLOSE_MATCHES]


@functools.lru_cache(maxsize=None)
def _timm_entrypoint(arch: str) -> Optional[Callable[..., nn.Module]]:
    """The builder timm itself registered for ``arch``, or None, through timm's public API.

    Importing ``solo.backbones`` re-registers a few names in timm's registry (convnext_tiny,
    poolformer_s12, vit_small, ...) with the host's own builders, which fix ``num_classes`` and
    ``pretrained``. For those, timm's own builder is still the function of that name in the
    ``timm.models.<module>`` whose model list (``timm.list_models(module=...)``) holds it; it is
    called directly, so timm's registry is never changed.
    """

    import timm

    if not timm.models.is_model(arch):
        return None
    entrypoint = timm.models.model_entrypoint(arch)
    if getattr(entrypoint, "__module__", "").startswith("timm."):
        return entrypoint
    for module_name in timm.list_modules():
        if arch not in timm.list_models(module=module_name):
            continue
        try:
            module = importlib.import_module(f"timm.models.{module_name}")
        except ImportError:  # the host's module of the same name (e.g. "poolformer")
            continue
        candidate = getattr(module, arch, None)
        if callable(candidate) and getattr(candidate, "__module__", None) == module.__name__:
            return candidate
    return None


def _create_timm_model(model_name: str, pretrained: bool, **kwargs: Any) -> nn.Module:
    """``timm.create_model``, but with timm's own builder where the host re-registered the
    name (see :func:`_timm_entrypoint`), called as ``timm.create_model`` calls it."""

    import timm

    arch, tag = timm.models.split_model_name_tag(model_name)
    builder = _timm_entrypoint(arch)
    if builder is timm.models.model_entrypoint(arch):
        return timm.create_model(model_name, pretrained=pretrained, **kwargs)
    kwargs = {key: value for key, value in kwargs.items() if value is not None}
    return builder(pretrained=pretrained, pretrained_cfg=tag or None, **kwargs)


def timm_model_name(name: str) -> str:
    """The timm model name in ``"timm/<model>"``, validated against timm's registry.

    Args:
        name (str): a backbone name such as ``"timm/convnext_atto"``; a pretrained tag
            (``"timm/resnet18.a1_in1k"``) is allowed.

    Raises:
        ValueError: if ``name`` does not start with ``"timm/"`` or timm has no such model; the
            message lists close matches.

    Returns:
        str: the part after ``"timm/"``.
    """

    if not is_timm_backbone_name(name):
        raise ValueError(f"A timm backbone name must look like 'timm/<model>', but found {name!r}.")
    model_name = name[len(TIMM_PREFIX) :]
    arch = model_name.split(".", 1)[0]
    if not arch or _timm_entrypoint(arch) is None:
        matches = close_timm_matches(arch) if arch else []
        hint = f" Close matches: {', '.join(matches)}." if matches else ""
        raise ValueError(
            f"Unknown timm model {model_name!r} in backbone.name={name!r}.{hint} "
            "All names: python -c 'import timm; print(timm.list_models())'."
        )
    return model_name


def _check_flag(kwargs: Dict[str, Any], key: str) -> bool:
    value = kwargs.pop(key, False)
    if not isinstance(value, bool):
        raise ValueError(f"backbone.kwargs.{key} must be true or false, but found {value!r}.")
    return value


def adapt_stem_to_small_input(model: nn.Module, model_name: str) -> List[str]:
    """Removes the downsampling of a timm CNN's stem, in place, for 32- and 64-px images.

    Within the top-level stem modules (``conv1``, ``bn1``, ``act1``, ``maxpool``, ``stem``,
    ``conv_stem``): a convolution whose kernel equals its stride (a patchify stem, e.g.
    ConvNeXt's 4x4/4) becomes a freshly initialized 3x3 stride-1 convolution with the same
    channels; any other strided convolution gets stride 1 (its weights, pretrained or not, are
    kept); strided pooling is removed. A 32-px input then reaches the first stage at 32 px.

    Args:
        model (nn.Module): a timm model.
        model_name (str): its timm name, for error messages.

    Raises:
        ValueError: for ViT-like models (``patch_embed``), which take ``img_size`` and
            ``patch_size`` instead, and for models whose stem has none of the names above.

    Returns:
        List[str]: the qualified names of the modules changed.
    """

    if hasattr(model, "patch_embed"):
        raise ValueError(
            f"backbone.kwargs.small_input is for CNN stems, but timm model {model_name!r} embeds "
            "patches; for small images pass img_size and patch_size instead, e.g. "
            "backbone.kwargs={img_size: 32, patch_size: 4}."
        )
    changed = []
    top_level = dict(model.named_children())
    for stem_name in _STEM_MODULE_NAMES:
        if stem_name not in top_level:
            continue
        for sub_name, module in list(top_level[stem_name].named_modules()):
            qualified = f"{stem_name}.{sub_name}" if sub_name else stem_name
            replacement = None
            if isinstance(module, nn.Conv2d) and max(module.stride) > 1:
                if tuple(module.kernel_size) == tuple(module.stride) and max(module.padding) == 0:
                    replacement = nn.Conv2d(
                        module.in_channels,
                        module.out_channels,
                        kernel_size=3,
                        stride=1,
                        padding=1,
                        bias=module.bias is not None,
                    )
                else:
                    module.stride = (1, 1)
                changed.append(qualified)
            elif isinstance(module, (nn.MaxPool2d, nn.AvgPool2d)):
                stride = module.stride if module.stride is not None else module.kernel_size
                stride = stride if isinstance(stride, (tuple, list)) else (stride,)
                if max(stride) > 1:
                    replacement = nn.Identity()
                    changed.append(qualified)
            if replacement is not None:
                parent_name, _, attr = qualified.rpartition(".")
                parent = model.get_submodule(parent_name) if parent_name else model
                setattr(parent, attr, replacement)
    if not changed:
        raise ValueError(
            f"backbone.kwargs.small_input found no strided stem in timm model {model_name!r} "
            f"(looked for top-level modules {list(_STEM_MODULE_NAMES)}); build it without "
            "small_input, or resize the images."
        )
    return changed


def build_timm_backbone(model_name: str, **kwargs: Any) -> nn.Module:
    """Builds a headless timm model (``num_classes=0``) for use as a solo-learn backbone.

    Args:
        model_name (str): a timm model name (without ``"timm/"``).
        **kwargs: ``small_input``, ``torch_compile`` and ``pretrained`` (see the module
            docstring); the rest goes to ``timm.create_model``.

    Raises:
        ValueError: for an unknown model, a ``num_classes`` in ``kwargs`` or a non-boolean plugin
            flag.

    Returns:
        nn.Module: the timm model; ``model(x)`` maps B x C x H x W to B x ``num_features``
        (set to timm's ``head_hidden_size`` where a pre-logits layer widens the output).
    """

    model_name = timm_model_name(TIMM_PREFIX + model_name)
    kwargs = dict(kwargs)
    if "num_classes" in kwargs:
        raise ValueError(
            f"timm backbones are built headless (num_classes=0); remove "
            f"backbone.kwargs.num_classes={kwargs['num_classes']!r}."
        )
    small_input = _check_flag(kwargs, "small_input")
    torch_compile = _check_flag(kwargs, "torch_compile")
    pretrained = _check_flag(kwargs, "pretrained")

    model = _create_timm_model(model_name, pretrained=pretrained, num_classes=0, **kwargs)

    # the host sizes its classifier with num_features, but a few families (e.g. MobileNetV3)
    # put a wider pre-logits layer (head_hidden_size) after the trunk, which a headless forward
    # returns; timm reads num_features only while building, so report the output width
    head_width = getattr(model, "head_hidden_size", None)
    if head_width is not None and head_width != model.num_features:
        model.num_features = head_width
    if small_input:
        adapt_stem_to_small_input(model, model_name)
    if torch_compile:
        model.compile()
    return model


class TimmBackboneFactory:
    """The host-facing factory of one timm model: ``factory(method, **backbone.kwargs)``.

    Two factories of the same model compare equal, so registering a name twice is a no-op.

    Args:
        model_name (str): the timm model name (without ``"timm/"``).
    """

    def __init__(self, model_name: str):
        self.model_name = model_name

    def __call__(self, method: Optional[str] = None, **kwargs: Any) -> nn.Module:
        # ``method`` is the host's method name; timm models do not depend on it
        return build_timm_backbone(self.model_name, **kwargs)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TimmBackboneFactory) and other.model_name == self.model_name

    def __hash__(self) -> int:
        return hash((TimmBackboneFactory, self.model_name))

    def __repr__(self) -> str:
        return f"TimmBackboneFactory({self.model_name!r})"


SMALL_INPUT_SUFFIX = "_small_input"


class SmallInputResNetFactory:
    """The host's ResNet with the stem the host gives CIFAR (a 3x3 stride-1 first convolution and
    no max-pool) for any dataset: ``backbone.name: resnet18_small_input``. The host itself uses
    that stem only for ``data.dataset`` cifar10/cifar100, so 28- to 64-px image folders would
    otherwise reach the first stage at a quarter of their size.

    Args:
        base (Callable): the host's factory of the ResNet (``BaseMethod._BACKBONES["resnet18"]``).
        name (str): its name, for ``repr``.
    """

    def __init__(self, base: Callable[..., nn.Module], name: str):
        self.base = base
        self.name = name

    def __call__(self, method: Optional[str] = None, **kwargs: Any) -> nn.Module:
        model = self.base(method, **kwargs)
        # as the host's CIFAR stem (solo.methods.base.BaseMethod.__init__)
        model.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=2, bias=False)
        model.maxpool = nn.Identity()
        return model

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SmallInputResNetFactory) and other.base is self.base

    def __hash__(self) -> int:
        return hash((SmallInputResNetFactory, id(self.base)))

    def __repr__(self) -> str:
        return f"SmallInputResNetFactory({self.name!r})"


def small_input_entries(table: Dict[str, Callable[..., nn.Module]]) -> Dict[str, Callable]:
    """``<resnet>_small_input`` for every host ResNet of ``table``. The names start with
    ``resnet``, so the host removes ``fc`` and reads ``inplanes`` as for its own ResNets."""

    return {
        f"{name}{SMALL_INPUT_SUFFIX}": SmallInputResNetFactory(factory, name)
        for name, factory in table.items()
        if name.startswith("resnet") and not name.endswith(SMALL_INPUT_SUFFIX)
    }


class TimmBackboneTable(dict):
    """The host's backbone dict, which also answers for any valid ``"timm/<model>"`` name.

    A ``timm/`` name is validated and its factory added on the first membership test or lookup.
    A membership test of an unknown name is False, as for a dict; a lookup raises ``KeyError``
    whose message lists close timm names. The Hydra callback validates the configured name
    before the host's bare ``assert name in _BACKBONES`` (:func:`register_configured_backbone`).
    """

    def _add_timm(self, key: str) -> "TimmBackboneFactory":
        factory = TimmBackboneFactory(timm_model_name(key))
        dict.__setitem__(self, key, factory)
        return factory

    def __contains__(self, key: object) -> bool:
        if dict.__contains__(self, key):
            return True
        if is_timm_backbone_name(key):
            try:
                self._add_timm(key)
            except ValueError:
                return False
            return True
        return False

    def __missing__(self, key: str):
        if is_timm_backbone_name(key):
            try:
                return self._add_timm(key)
            except ValueError as err:
                raise KeyError(str(err)) from err
        raise KeyError(key)


def install_timm_backbone_table() -> TimmBackboneTable:
    """Makes ``BaseMethod._BACKBONES`` resolve ``"timm/<model>"`` names and hold
    ``<resnet>_small_input`` (:class:`SmallInputResNetFactory`). Idempotent; undone by
    :func:`frossl_plugin.host.uninstall`.

    A builtin dict cannot resolve names on lookup, so the class attribute is replaced by a
    :class:`TimmBackboneTable` holding every entry of the host's dict; the host reads the
    attribute at call time (``BaseMethod._BACKBONES[...]``, ``self._BACKBONES[...]``).

    Raises:
        ImportError: if solo-learn cannot be imported.
        HostMismatchError: if ``BaseMethod._BACKBONES`` is not a dict of callables.

    Returns:
        TimmBackboneTable: the installed table.
    """

    from frossl_plugin.host.methods import import_host_methods

    import_host_methods()
    from solo.methods.base import BaseMethod

    table = vars(BaseMethod).get("_BACKBONES")
    if isinstance(table, TimmBackboneTable):
        return table
    expect(
        type(table) is dict and all(callable(factory) for factory in table.values()),
        "solo.methods.base.BaseMethod.__dict__['_BACKBONES']",
        "a dict of backbone name -> factory(method, **kwargs)",
        type(table),
    )
    table = TimmBackboneTable({**table, **small_input_entries(table)})
    set_attr(BaseMethod, "_BACKBONES", table)
    return table


def register_timm_backbone(name: str) -> TimmBackboneFactory:
    """Puts the factory of ``name`` (``"timm/<model>"``) into the host's backbone table.

    Idempotent; warns if another factory already holds the name and replaces it.

    Raises:
        ValueError: for a name that is not ``timm/<a timm model>``, listing close matches.

    Returns:
        TimmBackboneFactory: the registered factory.
    """

    factory = TimmBackboneFactory(timm_model_name(name))
    table = install_timm_backbone_table()
    current = dict.get(table, name)
    if current == factory:
        return current
    if current is not None:
        warnings.warn(
            f"BaseMethod._BACKBONES[{name!r}] already holds {current!r}; replacing it with "
            f"{factory!r}.",
            stacklevel=2,
        )
    table[name] = factory
    return factory


def register_configured_backbone(config: Any) -> Optional[TimmBackboneFactory]:
    """Registers ``config.backbone.name`` if it names a timm model; does nothing otherwise.

    Args:
        config: the composed Hydra config of a host entry point.

    Raises:
        ValueError: for an unknown timm model, listing close matches.

    Returns:
        Optional[TimmBackboneFactory]: the factory, or None for non-timm names.
    """

    from omegaconf import OmegaConf

    name = OmegaConf.select(config, "backbone.name", default=None)
    if not is_timm_backbone_name(name):
        return None
    return register_timm_backbone(name)
