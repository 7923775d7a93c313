"""Repair: fill the masked region of an image from texture so it blends in (texturize's `repair`)."""
from __future__ import annotations

from dataclasses import dataclass

from ..kind import Kind, param
from ..params import REGION_RANDOM_WEIGHTS, RegionParams


@dataclass
class RepairParams(RegionParams):
    mask_threshold: float = param(0.5, min=0, max=1, help="mask image: pixels darker than this are filled, the "
                                                          "rest kept; without a mask, pixels whose alpha is below it")


KIND = Kind("repair", "fill the masked region of an image (mask image or alpha = 0) from a source texture "
            "(default: the image itself)", RepairParams, run="tasks.operations:repair", fanout="inputs",
            shared=("mask", "source"), exemplars=("source",), optional=("mask", "source"), single=("mask",),
            alpha=("inputs",),
            reports_quality=False,
            presets={"random-weights": REGION_RANDOM_WEIGHTS})
