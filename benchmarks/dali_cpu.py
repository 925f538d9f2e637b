"""Runs the host's DALI pretraining loader CPU-only, for tests and GPU-less checks of a config.

The host's ``PretrainDALIDataModule`` always builds its pipeline with ``device_id=local_rank``,
and DALI refuses a pipeline with a device id where CUDA is absent, even with
``dali.device: cpu``. DALI itself runs CPU-only pipelines when ``device_id=None``.
:func:`cpu_only_dali` patches, while active, the host's pipeline builders so that a pipeline
whose device is ``"cpu"`` gets ``device_id=None`` when CUDA is unavailable. With a GPU, and for
``dali.device: gpu``, nothing changes: real runs keep the host's GPU pipelines.

Example:
    >>> with cpu_only_dali():
    ...     datamodule.setup("fit")  # the host's PretrainDALIDataModule, dali_device="cpu"
"""

from contextlib import contextmanager
from typing import Iterator

DALI_INSTALL_HINT = (
    "needs NVIDIA DALI: pip install nvidia-dali-cuda130 (CUDA-13 torch builds; "
    "nvidia-dali-cuda120 for CUDA-12 builds); its CPU-only pipelines need no GPU"
)


def _cpu_pipeline_def(pipeline_method):
    import torch

    def pipeline(self, *args, **kwargs):
        if self.device == "cpu" and not torch.cuda.is_available():
            kwargs["device_id"] = None
        return pipeline_method(self, *args, **kwargs)

    pipeline.__wrapped__ = pipeline_method
    pipeline.__doc__ = pipeline_method.__doc__
    return pipeline


@contextmanager
def cpu_only_dali() -> Iterator[None]:
    """Lets the host's DALI pipelines with device ``"cpu"`` run where CUDA is absent.

    Raises:
        ImportError: if DALI or the host's DALI module cannot be imported.
    """

    try:
        from solo.data import dali_dataloader
    except ImportError as err:
        raise ImportError(f"The host's DALI loaders {DALI_INSTALL_HINT}. Cause: {err}") from err

    builders = (dali_dataloader.PretrainPipelineBuilder, dali_dataloader.NormalPipelineBuilder)
    originals = [builder.__dict__["pipeline"] for builder in builders]
    try:
        for builder, original in zip(builders, originals):
            builder.pipeline = _cpu_pipeline_def(original)
        yield
    finally:
        for builder, original in zip(builders, originals):
            builder.pipeline = original
