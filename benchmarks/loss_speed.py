"""Forward+backward time and peak memory of the FroSSL loss against lightly's and the host's.

Compares, on the same V x N x D embeddings:

- ``frossl_plugin``: :func:`frossl_plugin.losses.frossl.frossl_loss_func`;
- ``lightly``: ``lightly.loss.FroSSLLoss`` (lightly 1.6.0, a port of the reference code);
- ``solo barlow`` / ``solo vicreg``: the host's ``barlow_loss_func`` / ``vicreg_loss_func``
  (two views only; when solo-learn is importable, e.g. ``SOLO_LEARN_PATH`` set).

Each timing is one forward and one backward pass from a fresh leaf tensor. Every shape runs
``--warmup`` untimed calls, then ``--repeats`` timed calls, and the median is reported. The
implementations are interleaved call by call, so that drifts of the machine hit them alike.

Peak memory is the largest amount of memory allocated during one call above what was
allocated before it, the input excluded: ``torch.cuda.max_memory_allocated`` on CUDA; on CPU
(Linux) the growth of the resident set (``VmHWM`` after the call minus ``VmRSS`` before it) of a
fresh process that makes the one call, which counts pages, so it is approximate for small
shapes (allocator caching) and exact to a page for large buffers.

On CUDA the inputs are float32 and the call runs under bf16 autocast (``--no-autocast`` to
disable); device-to-host synchronizations of one call are counted with
``torch.cuda.set_sync_debug_mode("warn")``, which warns once per synchronizing operation.

Usage::

    python benchmarks/loss_speed.py --device cpu --out benchmarks/results/loss_speed_cpu.md
    python benchmarks/loss_speed.py --device cuda --out loss_speed_cuda.md
"""

import argparse
import datetime
import os
import statistics
import subprocess
import sys
import time
import warnings
from typing import Callable, Dict, List, Optional, Tuple

import torch
from machine_info import describe_machine

# (N, D, V): N > D and N < D, D up to 8192, V up to 8
DEFAULT_SHAPES = [
    (256, 128, 2),
    (1024, 256, 2),
    (512, 2048, 2),
    (256, 8192, 2),
    (2048, 1024, 2),
    (256, 2048, 4),
    (1024, 512, 8),
    (256, 8192, 8),
]
QUICK_SHAPES = [(256, 128, 2), (128, 1024, 2), (64, 8192, 2), (128, 256, 8)]


def _find_host_losses() -> Dict[str, Callable]:
    host = os.environ.get("SOLO_LEARN_PATH")
    if host and host not in sys.path:
        sys.path.insert(0, host)
    try:
        from solo.losses.barlow import barlow_loss_func
        from solo.losses.vicreg import vicreg_loss_func
    except ImportError:
        return {}
    return {
        "solo barlow": lambda z: barlow_loss_func(z[0], z[1], lamb=0.0051, scale_loss=0.1),
        "solo vicreg": lambda z: vicreg_loss_func(z[0], z[1]),
    }


def implementations(only: Optional[str] = None) -> Dict[str, Callable]:
    """name -> function of a V x N x D tensor returning a scalar loss (``only``: just that one,
    importing nothing else)."""

    impls = {}
    if only in (None, "frossl_plugin"):
        from frossl_plugin.losses.frossl import frossl_loss_func

        impls["frossl_plugin"] = lambda z: frossl_loss_func(z)[0]
    if only in (None, "lightly"):
        try:
            from lightly.loss import FroSSLLoss
        except ImportError:
            print("lightly is not installed (pip install lightly==1.6.0): no reference timings")
        else:
            reference = FroSSLLoss()
            impls["lightly"] = lambda z: reference(list(z.unbind(0)))
    if only is None or only.startswith("solo"):
        impls.update(_find_host_losses())
    return impls


def _call_on(fn: Callable, z: torch.Tensor, device: torch.device, autocast: bool) -> None:
    with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=autocast):
        loss = fn(z)
    loss.backward()


def _call(fn: Callable, base: torch.Tensor, device: torch.device, autocast: bool) -> None:
    _call_on(fn, base.detach().clone().requires_grad_(True), device, autocast)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_once(fn, base, device, autocast) -> float:
    z = base.detach().clone().requires_grad_(True)
    _sync(device)
    start = time.perf_counter()
    _call_on(fn, z, device, autocast)
    _sync(device)
    return time.perf_counter() - start


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise OSError(f"{field} not in /proc/self/status")


def cpu_peak_child(shape: tuple, name: str) -> float:
    """Body of ``--memory-child``: one warm-up call on a tiny input (library initialization),
    then the resident-set growth of one call on ``shape``, the input excluded."""

    import ctypes

    impl = implementations(only=name)[name]
    n, d, v = shape
    _call(impl, torch.randn(v, 8, 4), torch.device("cpu"), False)
    base = torch.randn(v, n, d, generator=torch.Generator().manual_seed(0))
    z = base.clone().requires_grad_(True)
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)  # hand cached heap pages back to the system
    except OSError:
        pass
    before = _status_kib("VmRSS")
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")  # reset the high-water mark VmHWM to the current resident set
    _call_on(impl, z, torch.device("cpu"), False)
    return (_status_kib("VmHWM") - before) * 1024.0


def _cpu_peak(shape: tuple, name: str) -> float:
    """Runs :func:`cpu_peak_child` in a fresh interpreter (forking a process that holds
    PyTorch's thread pools can deadlock)."""

    result = subprocess.run(
        [
            sys.executable,
            os.path.abspath(__file__),
            "--memory-child",
            "x".join(map(str, shape)) + ":" + name,
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    try:
        return float(result.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        print(f"memory of {name} at {shape} not measured: {result.stderr[-500:]}")
        return float("nan")


def peak_memory(fn, base, device, autocast, name: str) -> float:
    """Peak bytes allocated by one call (input copy excluded) above the memory in use before
    it: ``torch.cuda.max_memory_allocated`` on CUDA; on CPU (Linux) the growth of the resident
    set of a forked process that makes the call."""

    if device.type == "cuda":
        z = base.detach().clone().requires_grad_(True)
        _sync(device)
        before = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        _call_on(fn, z, device, autocast)
        _sync(device)
        return torch.cuda.max_memory_allocated(device) - before
    if not os.path.exists("/proc/self/clear_refs"):
        return float("nan")
    return _cpu_peak(tuple(base.shape[i] for i in (1, 2, 0)), name)


def count_syncs(fn, base, device, autocast) -> Optional[int]:
    """Device-to-host synchronizations of one call (CUDA only)."""

    if device.type != "cuda":
        return None
    _sync(device)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            _call(fn, base, device, autocast)
        finally:
            torch.cuda.set_sync_debug_mode("default")
    _sync(device)
    return sum("synchroniz" in str(w.message).lower() for w in caught)


def bench_shape(impls, shape, device, repeats, warmup, autocast) -> Dict[str, dict]:
    n, d, v = shape
    generator = torch.Generator().manual_seed(0)
    base = torch.randn(v, n, d, generator=generator).to(device)  # (V, N, D)
    usable = {name: fn for name, fn in impls.items() if not (name.startswith("solo") and v != 2)}
    values = {}
    for name, fn in usable.items():
        with torch.no_grad():
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=autocast):
                values[name] = float(fn(base))
    for _ in range(warmup):
        for fn in usable.values():
            _call(fn, base, device, autocast)
    times: Dict[str, List[float]] = {name: [] for name in usable}
    for _ in range(repeats):
        for name, fn in usable.items():
            times[name].append(time_once(fn, base, device, autocast))
    results = {}
    for name, fn in usable.items():
        results[name] = {
            "median_ms": statistics.median(times[name]) * 1000,
            "peak_mib": peak_memory(fn, base, device, autocast, name) / 2**20,
            "syncs": count_syncs(fn, base, device, autocast),
            "value": values[name],
        }
    return results


def markdown(rows: List[Tuple[tuple, Dict[str, dict]]], names: List[str], header: str) -> str:
    lines = [header, ""]
    columns = ["N", "D", "V"]
    for name in names:
        columns += [f"{name} ms", f"{name} MiB"]
    has_syncs = any(r.get("syncs") is not None for _, res in rows for r in res.values())
    if has_syncs:
        columns += [f"{name} syncs" for name in names]
    columns += ["ours / lightly (time)", "ours / lightly (memory)"]
    lines.append("| " + " | ".join(columns) + " |")
    lines.append("|" + " --- |" * len(columns))
    for (n, d, v), res in rows:
        cells = [str(n), str(d), str(v)]
        for name in names:
            r = res.get(name)
            cells += [f"{r['median_ms']:.2f}", f"{r['peak_mib']:.1f}"] if r else ["-", "-"]
        if has_syncs:
            cells += [str(res[name]["syncs"]) if name in res else "-" for name in names]
        ours, ref = res.get("frossl_plugin"), res.get("lightly")
        if ours and ref:
            cells.append(f"{ours['median_ms'] / ref['median_ms']:.2f}")
            cells.append(f"{ours['peak_mib'] / max(ref['peak_mib'], 1e-9):.2f}")
        else:
            cells += ["-", "-"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def parse_shapes(text: str) -> List[tuple]:
    shapes = []
    for item in text.split(","):
        parts = item.lower().split("x")
        if len(parts) != 3 or not all(p.strip().isdigit() for p in parts):
            raise ValueError(f"--shapes item {item!r} must look like NxDxV, e.g. 256x2048x2.")
        shapes.append(tuple(int(p) for p in parts))
    return shapes


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeats", type=int, default=20, help="timed calls per shape (20)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed calls per shape (3)")
    parser.add_argument("--shapes", type=parse_shapes, help="NxDxV,... (default: 8 shapes)")
    parser.add_argument("--quick", action="store_true", help="4 small shapes, 5 repeats")
    parser.add_argument("--no-autocast", action="store_true", help="CUDA: plain float32")
    parser.add_argument("--out", default="loss_speed.md", help="Markdown table (loss_speed.md)")
    parser.add_argument("--memory-child", help=argparse.SUPPRESS)  # NxDxV:implementation
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.memory_child:
        shape, _, name = args.memory_child.partition(":")
        print(cpu_peak_child(parse_shapes(shape)[0], name))
        return 0

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda, but CUDA is not available.")
    shapes = args.shapes or (QUICK_SHAPES if args.quick else DEFAULT_SHAPES)
    repeats = 5 if args.quick and args.repeats == 20 else args.repeats
    autocast = device.type == "cuda" and not args.no_autocast
    impls = implementations()
    names = list(impls)

    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    precision = " (bf16 autocast, float32 inputs)" if autocast else " (float32)"
    command = "python benchmarks/loss_speed.py " + " ".join(
        argv if argv is not None else sys.argv[1:]
    )
    header = (
        f"Loss forward+backward on {device.type}{precision}, median of {repeats} repeats after "
        f"{args.warmup} warm-up calls; machine: {describe_machine(device)}; {when}; "
        f"command: {command}"
    )
    print(header)
    rows = []
    for shape in shapes:
        results = bench_shape(impls, shape, device, repeats, args.warmup, autocast)
        rows.append((shape, results))
        summary = ", ".join(
            f"{name} {r['median_ms']:.2f} ms {r['peak_mib']:.1f} MiB"
            + (f" {r['syncs']} syncs" if r["syncs"] is not None else "")
            for name, r in results.items()
        )
        ratio = ""
        if "lightly" in results:
            ours, ref = results["frossl_plugin"], results["lightly"]
            ratio = (
                f" | ours/lightly {ours['median_ms'] / ref['median_ms']:.2f}"
                f" | |ours - lightly| {abs(ours['value'] - ref['value']):.2e}"
            )
        print(f"N={shape[0]} D={shape[1]} V={shape[2]}: {summary}{ratio}", flush=True)
    table = markdown(rows, names, header)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as handle:
        handle.write(table)
    print(f"table written to {args.out}")
    slower = [
        s
        for s, r in rows
        if "lightly" in r and r["frossl_plugin"]["median_ms"] > r["lightly"]["median_ms"]
    ]
    syncs = [s for s, r in rows if r["frossl_plugin"]["syncs"]]
    print(f"goal 'no slower than lightly': {'met' if not slower else f'missed on {slower}'}")
    if device.type == "cuda":
        print(f"goal 'zero syncs per call': {'met' if not syncs else f'missed on {syncs}'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
