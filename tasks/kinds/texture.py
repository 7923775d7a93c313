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


KIND = Kind("texture", "Gatys texture synthesis from an exemplar", TextureParams, run="tasks.gatys:texture",
            fanout="inputs", exemplars=("inputs",), reports_quality=True, batch_run="tasks.gatys:texture_batch")
