"""What the timing benchmarks share: which device a run times, and waiting for it before a timer is read."""

import platform

import torch


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued kernels, so a timer read afterwards covers them (CUDA runs asynchronously)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return f"{device.type} ({platform.machine()}, {torch.get_num_threads()} threads)"
