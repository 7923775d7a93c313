"""Li & Wand 2016 (CNNMRF) style transfer: MRF matching of the style plus a content loss."""
from __future__ import annotations

from dataclasses import dataclass

from ..kind import Kind, Size, param
from ..params import LAYER
from .mrf import MAP_ROLES, MRFParams


@dataclass
class MRFStyleParams(MRFParams):
    size: Size = param(512, help="long side of the output (content aspect kept), or 'WxH' / [W, H]")
    init: str = param("content", choices=("content", "noise"), help="start from the content image or from noise")
    content_layer: str = param("relu4_2", choices=LAYER, help="VGG19 layer of the content loss")
    content_weight: float = param(1.0, min=0, help="weight of the content loss")
    style_weight: float = param(1.0, min=0, help="weight of the MRF style loss")
    style_scale: float = param(1.0, above=0, max=16, help="style long side = style_scale x output long side")
    noise: float = param(0.0, min=0, help="std of noise injected into each upsampled octave start")


# The `mrf` preset's smoothing; not its circular padding: a content photo does not wrap around.
RANDOM_WEIGHTS = {"tv_weight": 1.0}

KIND = Kind("mrf_style", "Li & Wand (CNNMRF) style transfer; style_map + target_map (the content's map) keep "
            "each region's style", MRFStyleParams, run="tasks.mrf:mrf_style", fanout="content", exemplars=("style",),
            shared=("style", *MAP_ROLES), optional=MAP_ROLES, single=MAP_ROLES,
            presets={"random-weights": RANDOM_WEIGHTS})
