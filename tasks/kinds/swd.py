"""Heitz et al. 2021: texture synthesis with a sliced-Wasserstein loss on VGG19 features."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ..kind import Kind, param
from ..params import GATYS_STYLE_LAYERS, LAYER, ExemplarParams, OptimParams, layer_weights_param


@dataclass
class SWDParams(ExemplarParams, OptimParams):
    layers: list[str] = param(GATYS_STYLE_LAYERS, choices=LAYER, help="VGG19 layers whose feature distributions "
                              "are matched", paper="relu1_1..relu5_1")
    layer_weights: Optional[list[float]] = layer_weights_param()
    directions: Optional[int] = param(None, min=1, help="random projections per layer and draw; null: as many as "
                                      "the layer has channels", paper="as many as channels")
    check_every: int = param(10, min=1, help="iterations between divergence checks; the projections are redrawn "
                             "after each such chunk")


KIND = Kind("swd", "sliced-Wasserstein texture synthesis (Heitz et al. 2021) from an exemplar", SWDParams,
            run="tasks.swd:swd_texture", fanout="inputs", exemplars=("inputs",), reports_quality=True)
