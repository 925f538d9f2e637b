"""Lightning callback: embedding spectrum and effective rank on a fixed held-out batch."""

import json
import warnings
from pathlib import Path
from typing import Any, Dict, List, Optional

import torch
from lightning.pytorch import Callback, LightningModule, Trainer

from frossl_plugin.spectrum import spectrum_stats

# forward() output key -> name of the layer in the records; every host method returns "feats"
# (backbone) and most return "z" (projector output)
LAYERS = {"feats": "backbone", "z": "projector"}


def _image_of(item: Any) -> torch.Tensor:
    """The image tensor of one dataset item: ``(image, target)`` for the host's classification
    datasets, ``(index, [crop, ...], target)`` for its pretraining datasets (first crop)."""

    if isinstance(item, torch.Tensor):
        return item
    if isinstance(item, (list, tuple)):
        for part in item:
            if isinstance(part, torch.Tensor) and part.dim() == 3:
                return part
            if isinstance(part, (list, tuple)) and part and isinstance(part[0], torch.Tensor):
                return part[0]
    raise ValueError(f"Cannot find a C x H x W image in a dataset item of type {type(item)}.")


class SpectrumMonitor(Callback):
    """Every ``frequency`` epochs, embeds a fixed held-out set of images and records the
    covariance spectrum, RankMe and order-2 Renyi entropy (see :mod:`frossl_plugin.spectrum`)
    of the backbone features (``forward(X)["feats"]``) and of the projector output
    (``forward(X)["z"]``, when the method returns it). Works with any host method.

    The held-out set is ``num_samples`` images drawn once, with ``seed``, from the validation
    dataset (deterministic transforms), or from the training dataset's first crop when there is
    no validation set. The model is evaluated in eval mode (BatchNorm running statistics) under
    the trainer's precision context; the training mode of every submodule is restored after.

    Records are appended to ``directory/spectra.jsonl`` (one line per epoch and layer; epoch 0 is
    the model before training) and logged as ``spectrum_rankme_<layer>`` and
    ``spectrum_renyi2_<layer>``. At the end of training ``directory/spectra.png`` plots the
    spectra over epochs when matplotlib is installed. Only global rank 0 computes and writes.

    Args:
        frequency (int): epochs between two measurements (the last epoch is always measured).
        num_samples (int): size N of the held-out set (>= 2).
        directory (str): output folder.
        seed (int): seed of the held-out draw.
        batch_size (int): images per forward pass.
        title (str): title of the plot (e.g. the method name).
    """

    def __init__(
        self,
        frequency: int = 1,
        num_samples: int = 512,
        directory: str = "spectrum",
        seed: int = 0,
        batch_size: int = 256,
        title: str = "",
    ):
        super().__init__()
        for name, value, minimum in (
            ("frequency", frequency, 1),
            ("num_samples", num_samples, 2),
            ("batch_size", batch_size, 1),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise ValueError(f"{name} must be an integer >= {minimum}, but found {value!r}.")
        self.frequency = frequency
        self.num_samples = num_samples
        self.directory = Path(directory)
        self.seed = seed
        self.batch_size = batch_size
        self.title = title
        self._images: Optional[torch.Tensor] = None
        self.source: Optional[str] = None

    @property
    def records_path(self) -> Path:
        return self.directory / "spectra.jsonl"

    def _held_out_dataset(self, trainer: Trainer):
        loaders = trainer.val_dataloaders
        if loaders is None:
            try:  # the validation loop sets its loaders up lazily (after on_train_start)
                trainer.fit_loop.epoch_loop.val_loop.setup_data()
                loaders = trainer.val_dataloaders
            except Exception:  # noqa: BLE001 - fall back to the training data below
                loaders = None
        if isinstance(loaders, (list, tuple)):
            loaders = loaders[0] if loaders else None
        if loaders is not None and getattr(loaders, "dataset", None) is not None:
            return loaders.dataset, "validation"
        train_loader = trainer.train_dataloader
        if isinstance(train_loader, (list, tuple)):
            train_loader = train_loader[0] if train_loader else None
        if train_loader is not None and getattr(train_loader, "dataset", None) is not None:
            return train_loader.dataset, "training (first crop)"
        raise ValueError(
            "SpectrumMonitor needs a map-style validation or training dataset to draw its "
            "held-out images from; neither is available (DALI training without validation?)."
        )

    def _load_images(self, trainer: Trainer) -> torch.Tensor:
        dataset, self.source = self._held_out_dataset(trainer)
        size = len(dataset)
        if size < 2:
            raise ValueError(f"SpectrumMonitor needs >= 2 held-out images, found {size}.")
        generator = torch.Generator().manual_seed(self.seed)
        indices = torch.randperm(size, generator=generator)[: self.num_samples].sort().values
        return torch.stack([_image_of(dataset[int(i)]) for i in indices])  # (N, C, H, W)

    @torch.no_grad()
    def embed(self, trainer: Trainer, pl_module: LightningModule) -> Dict[str, torch.Tensor]:
        """Embeddings of the held-out images: ``{"backbone": N x F, "projector": N x D}``."""

        if self._images is None:
            self._images = self._load_images(trainer)
        modes = {module: module.training for module in pl_module.modules()}
        pl_module.eval()
        outputs: Dict[str, List[torch.Tensor]] = {}
        try:
            with trainer.precision_plugin.forward_context():
                for chunk in self._images.split(self.batch_size):
                    out = pl_module(chunk.to(pl_module.device))
                    for key, layer in LAYERS.items():
                        if isinstance(out.get(key), torch.Tensor):
                            value = out[key].detach().float().flatten(1).cpu()  # (B, D)
                            outputs.setdefault(layer, []).append(value)
        finally:
            for module, training in modes.items():
                module.training = training
        return {layer: torch.cat(values) for layer, values in outputs.items()}

    def measure(self, trainer: Trainer, pl_module: LightningModule, epoch: int) -> List[dict]:
        """Computes, logs and appends the records of ``epoch``; returns them."""

        records = []
        for layer, embeddings in self.embed(trainer, pl_module).items():
            stats = spectrum_stats(embeddings)
            records.append({"epoch": epoch, "layer": layer, "source": self.source, **stats})
        self.directory.mkdir(parents=True, exist_ok=True)
        with self.records_path.open("a") as handle:
            for record in records:
                handle.write(json.dumps(record) + "\n")
        return records

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.is_global_zero and trainer.current_epoch == 0:
            self.measure(trainer, pl_module, epoch=0)

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        epoch = trainer.current_epoch + 1
        last = trainer.max_epochs is not None and epoch >= trainer.max_epochs
        if not (epoch % self.frequency == 0 or last):
            return
        if not trainer.is_global_zero:
            return
        for record in self.measure(trainer, pl_module, epoch):
            for key in ("rankme", "renyi2"):
                pl_module.log(
                    f"spectrum_{key}_{record['layer']}",
                    float(record[key]),
                    on_step=False,
                    on_epoch=True,
                    rank_zero_only=True,
                )

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not trainer.is_global_zero or not self.records_path.is_file():
            return
        try:
            from frossl_plugin.plots import plot_spectra
        except ImportError:  # matplotlib missing: records only
            from frossl_plugin import install_hint

            warnings.warn(
                f"matplotlib is not installed, so no spectra.png: the spectra are in "
                f"{self.records_path} (for the plot: {install_hint('compare')}).",
                stacklevel=2,
            )
            return
        plot_spectra(
            read_spectrum_records(self.records_path),
            self.directory / "spectra.png",
            title=self.title,
        )


def read_spectrum_records(path) -> List[dict]:
    """The records of a ``spectra.jsonl`` file."""

    with Path(path).open() as handle:
        return [json.loads(line) for line in handle if line.strip()]
