"""Enhance: upscale an image by an integer factor, inventing the fine detail from a source texture."""
from __future__ import annotations

from dataclasses import dataclass

from ..kind import Kind, param
from ..params import REGION_RANDOM_WEIGHTS, RegionParams


@dataclass
class EnhanceParams(RegionParams):
    zoom: int = param(2, min=2, max=8, help="upscaling factor")
    fidelity_weight: float = param(10.0, min=0, help="weight of the layout constraint: the result downscaled "
                                                     "must match the input")


# Measured (tests/test_operations.py, x2 of 48 px pebbles, the source at the output's scale): the
# Laplacian energy of the result is 0.22 without smoothing, 0.090 with the random-weights preset's
# tv_weight 0.3, 0.073 with 1.0; the true 96 px image has 0.114, a bicubic upscale 0.047.
KIND = Kind("enhance", "upscale an image by `zoom`, inventing fine detail from a source texture at its native "
            "scale (default: the image itself)", EnhanceParams, run="tasks.operations:enhance", fanout="inputs",
            shared=("source",), exemplars=("source",), optional=("source",),
            presets={"random-weights": REGION_RANDOM_WEIGHTS})
