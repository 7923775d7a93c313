"""Repair: fill the masked region of an image from texture so it blends in (texturize's `repair`)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ..kind import Kind, param
from ..params import MATCHINGS, REGION_RANDOM_WEIGHTS, REPAIR_MRF_LAYERS, RegionParams


@dataclass
class RepairParams(RegionParams):
    mrf_layers: ClassVar[tuple[str, ...]] = tuple(REPAIR_MRF_LAYERS)
    # A hole is filled from its surroundings' best-fitting patches. The balanced assignment (mrf's
    # default) gives the hole a uniform sample of every patch around it, sky, bridge and water alike,
    # and the repetition penalty pushes off the best fit; measured with the MRF critic on a 16 px hole:
    # steps across the seam 0.64 balanced, 0.12 nearest without penalty (tests/test_operations.py).
    matching: str = param("nearest", choices=MATCHINGS,
                          help="MRF critic: nearest (each patch its best-fitting source patch) or a balanced "
                               "assignment (see `mrf`)")
    repetition_penalty: float = param(0.0, min=0, help="MRF critic, nearest matching: subtract penalty x (uses / "
                                                       "expected uses) from a patch's match score")
    mask_threshold: float = param(0.5, min=0, max=1, help="mask image: pixels darker than this are filled, the "
                                                          "rest kept; without a mask, pixels whose alpha is below it")


KIND = Kind("repair", "fill the masked region of an image (mask image or alpha = 0) from a source texture "
            "(default: the image itself)", RepairParams, run="tasks.operations:repair", fanout="inputs",
            shared=("mask", "source"), exemplars=("source",), optional=("mask", "source"), single=("mask",),
            alpha=("inputs",),
            reports_quality=False,
            presets={"random-weights": REGION_RANDOM_WEIGHTS})
