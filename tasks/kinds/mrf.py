"""Li & Wand 2016 (CNNMRF): every 3x3 patch of deep features matches its nearest exemplar patch."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ..kind import Kind, param
from ..params import LAYER, MRF_LAYERS, ExemplarParams, OptimParams, layer_weights_param


@dataclass
class MRFParams(ExemplarParams, OptimParams):
    iterations: int = param(300, min=1, help="optimizer iterations, shared by the octaves",
                            paper="100 at each of 3 resolutions (reference code)")
    octaves: int = param(3, min=1, max=8, help="coarse-to-fine levels", paper="3 (reference code)")
    layers: list[str] = param(MRF_LAYERS, choices=LAYER, help="VGG19 layers whose patches are matched",
                              paper="relu3_1, relu4_1")
    layer_weights: Optional[list[float]] = layer_weights_param()
    patch_size: int = param(3, min=1, max=9, help="patch side in feature pixels", paper="3")
    stride: int = param(1, min=1, help="image patches: every one (paper)")
    exemplar_stride: int = param(1, min=1, help="exemplar patches; 2 quarters the matching cost")
    chunk: int = param(4096, min=1, help="exemplar patches per matrix product; bounds peak memory, halved on OOM")
    rotations: list[float] = param([0.0], help="degrees; rotated exemplar copies (the paper augments)")
    scales: list[float] = param([1.0], above=0, help="scaled exemplar copies (the paper augments)")
    # Against repetitive copying (our additions, each switchable):
    center_features: bool = param(True, help="match on features centred by the exemplar mean (Pearson, not raw "
                                             "cosine)")
    noise: float = param(0.05, min=0, help="std of noise injected into each upsampled octave start")
    matching: str = param("balanced-coarsest", choices=("balanced-coarsest", "balanced", "nearest"),
                          help="nearest: each patch takes its most similar exemplar patch (paper); balanced: a "
                               "uniform sample of the exemplar's patches, each used once, so a sparse exemplar's "
                               "elements keep their share (ours); balanced-coarsest: balanced at the coarsest "
                               "octave (the layout), nearest at the finer ones (the detail)",
                          paper="nearest")
    repetition_penalty: float = param(0.1, min=0, help="nearest matching: subtract penalty x (uses / expected uses) "
                                                       "from a patch's match score")
    tv_weight: float = param(0.001, min=0, help="total-variation smoothing (random weights need far more: the "
                                                "random-weights preset)", paper="alpha_2 = 1e-3")


# Measured on the shipped textures with seeded random weights: their features are noisier, and without
# strong smoothing the render is speckled (docs/quality.md).
RANDOM_WEIGHTS = {"tv_weight": 1.0}

KIND = Kind("mrf", "Li & Wand (CNNMRF) patch-based texture synthesis", MRFParams, run="tasks.mrf:mrf",
            fanout="inputs", reports_quality=True,
            presets={"random-weights": RANDOM_WEIGHTS})
