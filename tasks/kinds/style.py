"""Gatys et al. 2016 style transfer: the content's features plus the style's Gram matrices."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ..kind import Kind, param
from ..params import GATYS_STYLE_LAYERS, LAYER, ContentStyleParams, OptimParams, layer_weights_param


@dataclass
class StyleParams(ContentStyleParams, OptimParams):
    style_layers: list[str] = param(GATYS_STYLE_LAYERS, choices=LAYER, help="VGG19 layers of the style loss",
                                    paper="conv1_1..conv5_1")
    style_layer_weights: Optional[list[float]] = layer_weights_param()
    style_weight: float = param(10.0, min=0, help="weight of the style loss (relative, see content_weight)")
    style_weights: Optional[list[float]] = param(None, min=0, help="blend weights of several style images "
                                                 "(neural-style -style_blend_weights); null: equal")
    preserve_colors: bool = param(False, help="keep the content's colours, transfer luminance only "
                                              "(Gatys et al. 2016b)")


# Measured with seeded random weights (docs/quality.md, issue 25; golden_gate and tubingen in the styles of
# starry_night and cezanne, 128 px, 150 iterations): zero padding draws a frame round the render, and random
# features leave rainbow speckle. Reflect padding (a photo does not wrap, so not `tileable`) and smoothing
# bring the yardstick against the style to 0.68-0.84 of the defaults' on all four pairs, the content's edges
# kept as well (correlation within 0.04).
RANDOM_WEIGHTS = {"padding": "reflect", "tv_weight": 0.3}

KIND = Kind("style", "Gatys style transfer; style_map + target_map (the content's map): one Gram matrix per region",
            StyleParams, run="tasks.gatys:style", fanout="content", exemplars=("style",),
            shared=("style", "style_map", "target_map"),
            optional=("style_map", "target_map"), single=("style_map", "target_map"),
            presets={"random-weights": RANDOM_WEIGHTS})
