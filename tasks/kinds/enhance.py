"""Enhance: upscale an image by an integer factor, inventing the fine detail from a source texture."""
from __future__ import annotations

from dataclasses import dataclass

from ..kind import Kind, param
from ..params import RegionParams


@dataclass
class EnhanceParams(RegionParams):
    zoom: int = param(2, min=2, max=8, help="upscaling factor")
    fidelity_weight: float = param(10.0, min=0, help="weight of the layout constraint: the result downscaled "
                                                     "must match the input")


KIND = Kind("enhance", "upscale an image by `zoom`, inventing fine detail from a source texture at its native "
            "scale (default: the image itself)", EnhanceParams, run="tasks.operations:enhance", fanout="inputs",
            shared=("source",), optional=("source",))
