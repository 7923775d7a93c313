"""Pieces shared by the optimization-based task kinds: results, octave plans, seeded noise."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import torch

from .imageops import resize, scale_by
from .losses import total_variation
from .progress import Step, listener
from .optimize import OptimResult, optimize
from .params import OptimParams
from .vgg import VGGFeatures

MIN_OCTAVE_SIDE = 32  # below this the deepest pooling layers have almost nothing left


@dataclass
class TaskOutput:
    """What every task kind returns: output images (1, 3, H, W) in [0, 1], a JSON-able record, and
    any other files (a trained generator) to store next to the images."""

    images: list[torch.Tensor]
    record: dict[str, Any] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)  # extra outputs by key suffix, e.g. ".safetensors"


@dataclass
class Objective:
    """What an octave minimizes: ``loss(x)`` gives one loss per image of the batch (weighted sums of
    the losses of tasks/losses.py); ``refresh``, if any, runs between chunks of iterations for
    objectives that re-match patches or re-draw projections, so L-BFGS sees a fixed function in between."""
    loss: Callable[[torch.Tensor], torch.Tensor]
    refresh: Optional[Callable[[], None]] = None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.loss(x)


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


def seeded_noise(seed: int, size: tuple[int, int], mean: torch.Tensor, device: torch.device,
                 std: float = 0.1, clamp: bool = True) -> torch.Tensor:
    """Noise around ``mean`` (1, 3, 1, 1), drawn on the CPU so a seed gives the same start on any device."""
    generator = torch.Generator().manual_seed(seed)
    noise = torch.randn((1, 3, *size), generator=generator) * std + mean.cpu()
    return (noise.clamp(0, 1) if clamp else noise).to(device)


class Stopwatch:
    def __init__(self) -> None:
        self.start = time.perf_counter()

    @property
    def seconds(self) -> float:
        return round(time.perf_counter() - self.start, 4)


def base_record(result_octaves: list[dict[str, Any]], device: torch.device, seconds: float) -> dict[str, Any]:
    """Summary fields every optimization task records (per-image batch details left out)."""
    result_octaves = [{k: v for k, v in o.items() if not k.startswith("per_image")} for o in result_octaves]
    return {
        "loss_start": result_octaves[0]["loss_start"],
        "loss_end": result_octaves[-1]["loss_end"],
        "iterations": sum(o["iterations"] for o in result_octaves),
        "evaluations": sum(o["evaluations"] for o in result_octaves),
        "rollbacks": sum(o["rollbacks"] for o in result_octaves),
        # Where the time went (issue 27): building each octave's objective (the exemplar's features,
        # patch banks) against optimizing it; the rest of `seconds` is the task's own set-up and checks.
        "setup_seconds": round(sum(o.get("setup_seconds", 0.0) for o in result_octaves), 4),
        "optimize_seconds": round(sum(o.get("optimize_seconds", 0.0) for o in result_octaves), 4),
        "seconds": seconds,
        "device": str(device),
        "octaves": result_octaves,
    }


def with_quality(record: dict[str, Any], image: torch.Tensor, exemplar: torch.Tensor, exemplar_scale: float) -> dict:
    """Add the network-free quality score (tasks/quality.py) of a texture against its exemplar at the
    scale the texture was made for: 0 = indistinguishable, 1 = as far as colour-matched noise."""
    from .quality import colour_coverage, texture_score

    start = time.perf_counter()
    reference = scale_by(exemplar, exemplar_scale, min_side=16)
    record["quality"] = texture_score(image, reference)
    record["colour_coverage"] = colour_coverage(image, reference)
    record["quality_seconds"] = round(time.perf_counter() - start, 4)
    return record


def octave_record(size: tuple[int, int], result: OptimResult) -> dict:
    return {
        "size": [size[1], size[0]],
        "loss_start": result.loss_start,
        "loss_end": result.loss_end,
        "iterations": result.iterations,
        "evaluations": result.evaluations,
        "rollbacks": result.rollbacks,
        "history": result.history,
        "per_image_start": result.per_image_start,
        "per_image_end": result.per_image_end,
    }


def network_padding(params: OptimParams) -> str:
    """VGG's padding for a render and for its targets, which must agree: with random weights the padding's
    response dominates the deep layers (docs/quality.md). Circular for a tileable render."""
    return "circular" if params.tileable else params.padding


def solve_octaves(
    params: OptimParams,
    vgg: VGGFeatures,
    size: tuple[int, int],
    init: Callable[[tuple[int, int]], torch.Tensor],
    objective_for: Callable[[tuple[int, int]], Callable[[torch.Tensor], torch.Tensor]],
    jitter: float = 0.0,
    seed: int = 0,
) -> tuple[torch.Tensor, list[dict]]:
    """Solve at each octave size, upsampling the previous solution as the next start.

    ``jitter`` adds seeded noise of that standard deviation to each upsampled start: it shakes
    patch-based methods out of the matches they settled on at the coarser level."""
    sizes = octave_sizes(*size, params.octaves)
    image, records = None, []
    listen, done_before = listener(), 0
    for octave_size, iterations in zip(sizes, split_iterations(params.iterations, len(sizes))):
        if image is None:
            start = init(octave_size)
        else:
            start = resize(image, octave_size, circular=params.tileable)
            if jitter:
                start = (start + jitter * seeded_noise(seed + len(records), octave_size, torch.zeros(1, 3, 1, 1),
                                                        start.device, std=1.0, clamp=False)).clamp(0, 1)
        clock = time.perf_counter()
        padding = network_padding(params)
        with vgg.padding(padding):  # the targets under the render's padding (docs/quality.md: random weights)
            objective = objective_for(octave_size)
        setup = time.perf_counter() - clock
        with vgg.padding(padding):
            result = optimize(
                start, objective, iterations, method=params.optimizer, lr=params.lr,
                check_every=params.check_every, divergence_factor=params.divergence_factor,
                on_chunk=None if listen is None else (
                    lambda done, loss, x, o=len(records) + 1, s=octave_size, before=done_before: listen(
                        Step(o, len(sizes), s, before + done, params.iterations, loss, x))),
            )
        done_before += iterations
        image = result.image
        records.append({**octave_record(octave_size, result), "setup_seconds": round(setup, 4),
                        "optimize_seconds": round(time.perf_counter() - clock - setup, 4)})
    return image, records


def with_tv(loss: torch.Tensor, image: torch.Tensor, params: OptimParams) -> torch.Tensor:
    if params.tv_weight:
        loss = loss + params.tv_weight * total_variation(image, circular=params.tileable)
    return loss
