"""Pieces shared by the optimization-based task kinds: results, octave plans, seeded noise."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import torch

MIN_OCTAVE_SIDE = 32  # below this the deepest pooling layers have almost nothing left


@dataclass
class TaskOutput:
    """What every task kind returns: output images (1, 3, H, W) in [0, 1] and a JSON-able record."""

    images: list[torch.Tensor]
    record: dict[str, Any] = field(default_factory=dict)


def octave_sizes(h: int, w: int, octaves: int) -> list[tuple[int, int]]:
    """Sizes from coarse to fine, each half the next; coarse levels under MIN_OCTAVE_SIDE are dropped."""
    sizes = []
    for k in reversed(range(max(1, octaves))):
        oh, ow = round(h / 2**k), round(w / 2**k)
        if k == 0 or min(oh, ow) >= MIN_OCTAVE_SIDE:
            sizes.append((oh, ow))
    return sizes


def split_iterations(total: int, parts: int) -> list[int]:
    """Equal shares of ``total``; the finest level takes the remainder."""
    share = total // parts
    return [share] * (parts - 1) + [total - share * (parts - 1)]


def seeded_noise(seed: int, size: tuple[int, int], mean: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Noise around ``mean`` (1, 3, 1, 1), drawn on the CPU so a seed gives the same start on any device."""
    generator = torch.Generator().manual_seed(seed)
    noise = torch.randn((1, 3, *size), generator=generator) * 0.1
    return (noise + mean.cpu()).clamp(0, 1).to(device)


class Stopwatch:
    def __init__(self) -> None:
        self.start = time.perf_counter()

    @property
    def seconds(self) -> float:
        return round(time.perf_counter() - self.start, 4)


def base_record(result_octaves: list[dict[str, Any]], device: torch.device, seconds: float) -> dict[str, Any]:
    """Summary fields every optimization task records."""
    return {
        "loss_start": result_octaves[0]["loss_start"],
        "loss_end": result_octaves[-1]["loss_end"],
        "iterations": sum(o["iterations"] for o in result_octaves),
        "evaluations": sum(o["evaluations"] for o in result_octaves),
        "rollbacks": sum(o["rollbacks"] for o in result_octaves),
        "seconds": seconds,
        "device": str(device),
        "octaves": result_octaves,
    }
