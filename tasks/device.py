"""Device choice and housekeeping between tasks."""
from __future__ import annotations

import gc

import torch


def pick_device(requested: str | None = None) -> torch.device:
    """``requested`` if given, else the first CUDA device when there is one, else the CPU."""
    if requested:
        return torch.device(requested)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def free_memory(device: torch.device) -> None:
    """Release cached GPU blocks so the next task (maybe of another size) starts from a clean pool.
    A no-op on the CPU, where a full gc pass would cost ~0.15 s per task for nothing."""
    if device.type == "cuda":
        gc.collect()  # tensors held by reference cycles keep their GPU blocks until collected
        torch.cuda.empty_cache()


def describe(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}"
    return "cpu"


def set_threads(count: int | None) -> None:
    if count:
        torch.set_num_threads(max(1, int(count)))


def is_out_of_memory(exc: BaseException) -> bool:
    """A CUDA out-of-memory error or a failed CPU allocation."""
    text = str(exc).lower()
    return isinstance(exc, torch.cuda.OutOfMemoryError) or "out of memory" in text or "can't allocate memory" in text
