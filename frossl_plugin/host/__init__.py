"""Everything of the plugin that touches solo-learn's or timm's internals, behind one entry point.

:func:`install` is what the import hook, the Hydra callback and :func:`frossl_plugin.register`
call. Each change to a host object is checked first (a :class:`HostMismatchError` names the
object and the host commit this was built for, solo-learn 9187ea3) and recorded, so that
:func:`uninstall` undoes all of them. Importing this package imports neither torch nor the host.
"""


def install(config=None) -> None:
    """Registers FroSSL in ``solo.methods.METHODS`` and makes ``BaseMethod._BACKBONES`` resolve
    ``timm/<model>`` names; with a run's ``config`` (the Hydra callback), also validates and
    registers its timm backbone, applies ``data.eval_crop_size`` to image folders, refuses a
    ``resume_from_checkpoint`` that is not a complete checkpoint and makes the host's
    ``auto_resume`` compare the whole config and skip incomplete checkpoints
    (:mod:`frossl_plugin.host.resume`). Idempotent.

    Raises:
        ImportError: if solo-learn cannot be imported.
        HostMismatchError: if a host object differs from what the plugin was built against.
        ValueError: for a bad timm backbone name, ``data.eval_crop_size`` or
            ``resume_from_checkpoint`` in ``config``.
    """

    from frossl_plugin.host import backbones, eval_transforms, methods, resume

    methods.register_methods()
    backbones.install_timm_backbone_table()
    if config is not None:
        backbones.register_configured_backbone(config)
        eval_transforms.apply_custom_eval_crop_size(config)
        resume.check_resume_from_checkpoint(config)
        resume.install_checked_auto_resume()


def uninstall() -> None:
    """Undoes every change :func:`install` made to host objects (the import hook's finder, put in
    place at start-up, stays)."""

    from frossl_plugin.host.patches import undo_all

    undo_all()


def __getattr__(name):
    # lazily, so that the start-up hook (which imports this package) stays a few modules long
    if name in ("HOST_COMMIT", "HostMismatchError"):
        from frossl_plugin.host import patches

        return getattr(patches, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["HOST_COMMIT", "HostMismatchError", "install", "uninstall"]
