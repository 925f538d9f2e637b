"""One line describing the machine a benchmark ran on (shared by the benchmark scripts)."""

import os
import platform

import torch


def describe_machine(device: torch.device) -> str:
    parts = [platform.platform(), platform.processor() or platform.machine()]
    parts.append(f"{os.cpu_count()} CPUs, {torch.get_num_threads()} torch threads")
    if device.type == "cuda":
        parts.append(torch.cuda.get_device_name(device))
    parts.append(f"torch {torch.__version__}")
    if hasattr(os, "getloadavg"):
        parts.append("load average %.1f %.1f %.1f" % os.getloadavg())
    return "; ".join(parts)
