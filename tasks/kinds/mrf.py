"""Li & Wand 2016 (CNNMRF): every 3x3 patch of deep features matches its nearest exemplar patch."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ..kind import Kind, param
from ..params import LAYER, MRF_LAYERS, ExemplarParams, OptimParams, PatchParams, layer_weights_param


@dataclass
class MRFParams(ExemplarParams, PatchParams, OptimParams):
    iterations: int = param(300, min=1, help="optimizer iterations, shared by the octaves",
                            paper="100 at each of 3 resolutions (reference code)")
    octaves: int = param(3, min=1, max=8, help="coarse-to-fine levels", paper="3 (reference code)")
    layers: list[str] = param(MRF_LAYERS, choices=LAYER, help="VGG19 layers whose patches are matched",
                              paper="relu3_1, relu4_1")
    layer_weights: Optional[list[float]] = layer_weights_param()
    tv_weight: float = param(0.001, min=0, help="total-variation smoothing (random weights need far more: the "
                                                "random-weights preset)", paper="alpha_2 = 1e-3")
    map_weight: float = param(10.0, min=0, help="semantic maps (style_map + target_map): how much a region "
                                               "mismatch costs in the matching, against feature similarity in "
                                               "[-1, 1]; 10 keeps every patch in its region",
                              paper="10 (neural-doodle's --semantic-weight)")


# Measured on the shipped textures with seeded random weights: their features are noisier, and without
# strong smoothing the render is speckled; and the zero padding's response dominates their deep layers, so
# the patches along a zero-padded border match nothing inside and a sparse texture's elements crowd there
# (a 64 px render of scattered dots: ink 0.68, element size 0.44 of the exemplar's; circular: 1.07, 0.87).
# docs/quality.md.
RANDOM_WEIGHTS = {"tv_weight": 1.0, "tileable": True}

# Semantic maps (Champandard 2016): the exemplar's map and the output's (the doodle), one task per doodle.
MAP_ROLES = ("style_map", "target_map")

KIND = Kind("mrf", "Li & Wand (CNNMRF) patch-based texture synthesis; with style_map + target_map a neural doodle",
            MRFParams, run="tasks.mrf:mrf", fanout="inputs", exemplars=("inputs",),
            shared=MAP_ROLES, optional=MAP_ROLES,
            fans=("target_map",), single=("style_map",), reports_quality=True,
            presets={"random-weights": RANDOM_WEIGHTS})
