"""Host training-step time of FroSSL against Barlow Twins and VICReg (goal: ratio <= 1.02).

Every method is the host's own class from ``solo.methods.METHODS`` (FroSSL registered by the
plugin), built from the same plugin config (``compare.yaml`` with ``data.dataset=cifar10``:
ResNet-18 with the CIFAR stem, LARS) completed by the host's ``parse_cfg``; only ``method`` and
``method_kwargs`` differ.
Each method's settings are the host's recommended ones (``scripts/pretrain/cifar``) and FroSSL's
the plugin's. A second FroSSL variant with a 2048-d output (Barlow's and VICReg's size) separates
the effect of the loss from that of the projector's size.

``--views 4,8`` adds FroSSL with that many full-size views (``compare --views N``'s config: two
crops plus N - 2 written ``[S, S]``), so that the cost of each extra view is measured next to the
two-view methods.

One step is what the Trainer runs per batch: the method's ``training_step`` on the same
views of the same synthetic batch, ``backward`` and the optimizer built by the host's
``configure_optimizers`` (scheduler off). Lightning's own per-step work, identical for all
methods, is left out. Steps of the methods are interleaved, ``--warmup`` rounds are untimed and
the median of ``--repeats`` rounds is reported. On CUDA each step is synchronized before and
after timing, and ``--precision bf16`` runs it under bf16 autocast, as Lightning's
``bf16-mixed`` does.

Usage::

    SOLO_LEARN_PATH=<solo-learn> python benchmarks/step_overhead.py --device cpu --batch-size 64
"""

import argparse
import datetime
import os
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Dict, List, Optional

import torch
from machine_info import describe_machine


def host_root() -> Path:
    from frossl_plugin.host.checkout import find_host

    root = find_host(os.environ.get("SOLO_LEARN_PATH"))
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    return root


def build_models(batch_size: int, crop: int, device: torch.device, variants: List[str]):
    """name -> (model, optimizer), all from one config; see the module docstring."""

    from hydra import compose, initialize_config_module
    from omegaconf import OmegaConf

    host_root()  # puts the checkout on sys.path: its solo package and recipes
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from solo.args.pretrain import parse_cfg
        from solo.methods import METHODS

        from frossl_plugin import register

        register()
    models = {}
    for variant in variants:
        method, views = variant_views(variant)
        method, _, size = method.partition("@")
        overrides = [f"preset={method}", "data.dataset=cifar10"]
        overrides += ["data.train_path=unused", "data.val_path=unused"]  # never read: no loader
        if views > 2:
            overrides += [f"augmentations=cifar_symmetric_{views}views"]
        # the comparison's preset: the host's CIFAR recipe (FroSSL: the plugin's settings)
        with initialize_config_module(config_module="frossl_plugin.configs", version_base="1.2"):
            cfg = compose(config_name="compare", overrides=overrides)
        OmegaConf.set_struct(cfg, False)
        cfg.optimizer.batch_size = batch_size
        cfg.augmentations[0].crop_size = crop
        if views > 2:  # the extra views: full size, written as a pair (see docs/configs.md)
            cfg.augmentations[1].crop_size = [crop, crop]
            cfg.augmentations[1].num_crops = views - 2
        cfg.scheduler.name = "none"
        cfg.knn_eval.enabled = False
        if size:
            cfg.method_kwargs.proj_output_dim = int(size)
        cfg = parse_cfg(cfg)
        torch.manual_seed(0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = METHODS[method](cfg)
            model = model.to(device=device, memory_format=torch.channels_last)
            optimizer = model.configure_optimizers()
        if isinstance(optimizer, (list, tuple)):
            optimizer = optimizer[0][0] if isinstance(optimizer[0], list) else optimizer[0]
        model.train()
        models[variant] = (model, optimizer)
    return models


def variant_views(variant: str):
    """``"frossl:4v"`` -> ``("frossl", 4)``; a name without ``:`` has 2 views."""

    method, _, views = variant.partition(":")
    return method, int(views.rstrip("v")) if views else 2


def step(model, optimizer, batch, device: torch.device, bf16: bool) -> float:
    """Seconds of one training step."""

    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=bf16):
        out = model.training_step(batch, 0)
    loss = out["loss"] if isinstance(out, dict) else out
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def measure(models, batch_size, crop, device, repeats, warmup, bf16) -> Dict[str, List[float]]:
    generator = torch.Generator().manual_seed(0)
    most = max(variant_views(name)[1] for name in models)
    views = [
        torch.randn(batch_size, 3, crop, crop, generator=generator)
        .to(device)
        .contiguous(memory_format=torch.channels_last)
        for _ in range(most)
    ]
    targets = torch.randint(0, 10, (batch_size,), generator=generator).to(device)
    index = torch.arange(batch_size, device=device)
    batches = {name: [index, views[: variant_views(name)[1]], targets] for name in models}
    times: Dict[str, List[float]] = {name: [] for name in models}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # self.log outside a Trainer warns once per call
        for round_index in range(warmup + repeats):
            for name, (model, optimizer) in models.items():
                seconds = step(model, optimizer, batches[name], device, bf16)
                if round_index >= warmup:
                    times[name].append(seconds)
    return times


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch-size", type=int, default=64, help="images per view (64)")
    parser.add_argument("--crop", type=int, default=32, help="crop size (32)")
    parser.add_argument("--repeats", type=int, default=10, help="timed rounds (10)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed rounds (2)")
    parser.add_argument("--precision", choices=("32", "bf16"), default="32")
    parser.add_argument(
        "--no-equal-projector", action="store_true", help="skip FroSSL with a 2048-d output"
    )
    parser.add_argument("--views", default="", help="also FroSSL with these views, e.g. 4,8")
    parser.add_argument("--out", default="step_overhead.md", help="Markdown table")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    device = torch.device(args.device)
    variants = ["frossl", "barlow_twins", "vicreg"]
    if not args.no_equal_projector:
        variants.insert(1, "frossl@2048")
    for views in filter(None, args.views.split(",")):
        if not views.strip().isdigit() or int(views) <= 2:
            parser.error(f"--views {args.views!r}: expected view counts above 2, e.g. 4,8")
        variants.append(f"frossl:{int(views)}v")
    models = build_models(args.batch_size, args.crop, device, variants)
    bf16 = args.precision == "bf16"
    times = measure(models, args.batch_size, args.crop, device, args.repeats, args.warmup, bf16)
    medians = {name: statistics.median(values) for name, values in times.items()}

    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    command = "python benchmarks/step_overhead.py " + " ".join(
        argv if argv is not None else sys.argv[1:]
    )
    header = (
        f"Host training step (training_step + backward + optimizer) on {device.type}, "
        f"precision {args.precision}, ResNet-18 (CIFAR stem), 2 views (FroSSL: as named) of "
        f"{args.batch_size} x {args.crop} px; median of {args.repeats} interleaved rounds after "
        f"{args.warmup} warm-up rounds; machine: {describe_machine(device)}; {when}; "
        f"command: {command}"
    )
    labels = {
        "frossl": "FroSSL (compare preset: 2048-2048 hidden, proj_output_dim auto)",
        "frossl@2048": "FroSSL with a 2048-d output",
        "barlow_twins": "Barlow Twins (host cifar config: 2048-2048-2048)",
        "vicreg": "VICReg (host cifar config: 2048-2048-2048)",
    }
    columns = "| method | median step (ms) | min (ms) | max (ms) | / Barlow Twins | / VICReg |"
    lines = [header, "", columns, "| --- | --- | --- | --- | --- | --- |"]
    for name in variants:
        label = labels.get(name) or f"FroSSL with {variant_views(name)[1]} full-size views"
        lines.append(
            f"| {label} | {medians[name] * 1000:.1f} | {min(times[name]) * 1000:.1f} | "
            f"{max(times[name]) * 1000:.1f} | {medians[name] / medians['barlow_twins']:.3f} | "
            f"{medians[name] / medians['vicreg']:.3f} |"
        )
    table = "\n".join(lines) + "\n"
    print(table)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(table)
    worst = max(medians["frossl"] / medians["barlow_twins"], medians["frossl"] / medians["vicreg"])
    print(f"goal 'FroSSL / baseline <= 1.02': {'met' if worst <= 1.02 else 'missed'} ({worst:.3f})")
    print(f"table written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
