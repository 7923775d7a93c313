"""Gatys et al. 2015 texture synthesis: match the Gram matrices of VGG19 features of an exemplar."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ..kind import Kind, param
from ..params import GATYS_TEXTURE_LAYERS, LAYER, ExemplarParams, OptimParams, layer_weights_param


@dataclass
class TextureParams(ExemplarParams, OptimParams):
    layers: list[str] = param(GATYS_TEXTURE_LAYERS, choices=LAYER, help="VGG19 layers whose Gram matrices are "
                              "matched", paper="conv1_1, pool1..pool4")
    layer_weights: Optional[list[float]] = layer_weights_param()


# Measured on the shipped textures with seeded random weights (docs/quality.md, issue 25): the zero padding's
# response dominates random features' deep Gram matrices, and the render paints it as a frame round a
# washed-out middle; circular padding has no border, and scores 2.5-5x better on every shipped texture.
RANDOM_WEIGHTS = {"tileable": True}

KIND = Kind("texture", "Gatys texture synthesis from an exemplar", TextureParams, run="tasks.gatys:texture",
            fanout="inputs", exemplars=("inputs",), reports_quality=True, batch_run="tasks.gatys:texture_batch",
            presets={"random-weights": RANDOM_WEIGHTS})
