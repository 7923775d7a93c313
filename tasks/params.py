"""Parameters shared by several task kinds, and the size grammar. Each kind's own parameter class
lives in its declaration module (tasks/kinds/); every field is declared with ``param()``: its
default, help, choices, range and, where it departs from it, the paper's value (after pystiche_papers).
Manifests and the CLI use these field names."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, ClassVar, Optional

from .kind import Size, param

LAYER = ("<layer>",)  # choices: a VGG19 layer name (tasks/model.py)

# Gatys, Ecker, Bethge 2015 "Texture synthesis using CNNs": conv1_1, pool1..pool4, equal weights
# (the DeepTextures reference code uses the same set).
GATYS_TEXTURE_LAYERS = ["relu1_1", "pool1", "pool2", "pool3", "pool4"]
# Gatys, Ecker, Bethge 2016 "Image style transfer using CNNs": style conv1_1..conv5_1, content conv4_2
# (jcjohnson/neural-style uses the ReLU outputs relu1_1..relu5_1 and relu4_2, as we do).
GATYS_STYLE_LAYERS = ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"]
# Li & Wand 2016 "Combining MRFs and CNNs for image synthesis" (CNNMRF): 3x3 patches of relu3_1 and
# relu4_1, nearest neighbours by normalized cross-correlation, coarse to fine.
MRF_LAYERS = ["relu3_1", "relu4_1"]
# A repair's MRF critic also matches shallow patches: the seam between kept and made pixels is a few
# pixels wide, and relu3_1/relu4_1 patches (16-32 px across) do not see it. Measured (16 px hole, random
# weights): deep layers only leave saturated colour noise in the hole (seam step 0.37, the photo's 0.11).
REPAIR_MRF_LAYERS = ["relu1_1", "relu2_1", "relu3_1", "relu4_1"]
MATCHINGS = ("auto", "balanced-coarsest", "balanced", "nearest")  # tasks/mrf.py:balanced_octave


@dataclass
class OptimParams:
    iterations: int = param(500, min=1, help="optimizer iterations, shared by the octaves",
                            paper="L-BFGS to convergence; DeepTextures maxiter=2000; neural-style 1000")
    optimizer: str = param("lbfgs", choices=("lbfgs", "adam"), help="lbfgs (the paper) or adam (neural-style "
                                                                   "-optimizer adam)")
    lr: float = param(1.0, above=0, help="L-BFGS step scale; for Adam a pixel-space rate such as 0.02")
    octaves: int = param(1, min=1, max=8, help="coarse-to-fine levels, each half the size of the next",
                         paper="1 (texturize: 5)")
    tileable: bool = param(False, help="circular padding in VGG's convolutions: the result wraps without a seam")
    padding: str = param("zeros", choices=("zeros", "reflect"), help="VGG's padding when not tileable, for the "
                                                                    "render and its targets: reflect has no border "
                                                                    "frame (random weights need it)",
                         paper="zeros")
    tv_weight: float = param(0.0, min=0, help="total-variation smoothing", paper="none (neural-style: 1e-3 on "
                                                                                 "raw losses)")
    check_every: int = param(10, min=1, help="iterations between divergence checks")
    divergence_factor: float = param(10.0, above=1, help="a loss above this multiple of the best so far counts "
                                                         "as divergence")


@dataclass
class PatchParams:
    """How the MRF loss (Li & Wand 2016) matches patches of deep features to the exemplar's."""
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
    matching: str = param("auto", choices=MATCHINGS,
                          help="nearest: each patch takes its most similar exemplar patch (paper); balanced: a "
                               "uniform sample of the exemplar's patches, each used once, so a sparse exemplar's "
                               "elements keep their share (ours); balanced-coarsest: balanced at the coarsest "
                               "octave (the layout), nearest at the finer ones (the detail); auto: balanced for "
                               "an exemplar of elements on a plain ground, else balanced-coarsest (docs/quality.md)",
                          paper="nearest")
    repetition_penalty: float = param(0.1, min=0, help="nearest matching: subtract penalty x (uses / expected uses) "
                                                       "from a patch's match score")


@dataclass
class ExemplarParams:
    """A texture from one exemplar: the output size and the exemplar's scale."""
    size: Size = param(256, help="N (square), 'WxH' or [W, H]; independent of the exemplar's size and aspect")
    exemplar_scale: float = param(1.0, above=0, max=16, help="resize the exemplar first: larger means bigger "
                                                            "texture elements")


@dataclass
class ContentStyleParams:
    """Content plus style: the output follows the content image's aspect."""
    size: Size = param(512, help="long side of the output (content aspect kept), or 'WxH' / [W, H]")
    init: str = param("content", choices=("content", "noise"), help="start from the content image or from noise",
                      paper="noise (neural-style: random)")
    content_layer: str = param("relu4_2", choices=LAYER, help="VGG19 layer of the content loss",
                               paper="conv4_2")
    content_weight: float = param(1.0, min=0, help="weight of the content loss (our losses are normalized: "
                                                   "relative weights; the paper's 1e-3..1e-4 ratio is for raw "
                                                   "losses)")
    style_scale: float = param(1.0, above=0, max=16, help="style image long side = style_scale x output long side "
                                                          "(neural-style -style_scale)")


def layer_weights_param() -> Any:
    return param(None, min=0, help="one weight per layer; null: equal weights", paper="w_l = 1/5 (equal)")


def parse_size(size: Size, aspect_from: Optional[tuple[int, int]] = None) -> tuple[int, int]:
    """(H, W) from N, "WxH" or [W, H]. With ``aspect_from`` (H, W), N is the long side at that aspect."""
    if isinstance(size, bool):
        raise ValueError(f"size must be N, 'WxH' or [W, H], not {size!r}")
    if isinstance(size, int):
        if aspect_from is None:
            h, w = size, size
        else:
            ah, aw = aspect_from
            scale = size / max(ah, aw)
            h, w = max(1, round(ah * scale)), max(1, round(aw * scale))
    elif isinstance(size, str) and re.fullmatch(r"\s*\d+\s*[xX]\s*\d+\s*", size):
        w, h = (int(part) for part in size.lower().split("x", 1))
    elif (isinstance(size, (list, tuple)) and len(size) == 2
          and all(isinstance(v, int) and not isinstance(v, bool) for v in size)):
        w, h = size
    elif isinstance(size, str) and size.isdigit():
        return parse_size(int(size), aspect_from)
    else:
        raise ValueError(f"size must be N, 'WxH' or [W, H], not {size!r}")
    if h < 16 or w < 16:
        raise ValueError(f"size {w}x{h} is too small: VGG19 needs at least 16x16 pixels")
    return h, w


@dataclass
class RegionParams(PatchParams, OptimParams):
    """Known pixels + a synthesized region (repair, expand, enhance, mashup; tasks/region.py): the
    critic, its layers and the source's scale; the MRF matching settings apply with `loss: mrf`."""
    mrf_layers: ClassVar[tuple[str, ...]] = tuple(MRF_LAYERS)  # the MRF critic's layers when `layers` is null
    loss: str = param("gram", choices=("gram", "mrf"), help="the texture critic: gram (Gatys et al., global "
                                                          "statistics) or mrf (Li & Wand, patches)")
    layers: Optional[list[str]] = param(None, choices=LAYER, help="VGG19 layers of the critic; null: relu1_1, "
                                        "pool1..pool4 for gram, relu3_1 + relu4_1 for mrf (repair: relu1_1.."
                                        "relu4_1)")
    layer_weights: Optional[list[float]] = layer_weights_param()
    source_scale: float = param(1.0, above=0, max=16, help="resize the source texture first: larger means bigger "
                                                           "texture elements")
    iterations: int = param(200, min=1, help="optimizer iterations, shared by the octaves")
    octaves: int = param(2, min=1, max=8, help="coarse-to-fine levels, each half the size of the next",
                         paper="texturize: 5")


# Measured on a 16 px hole in a 64x48 photo with seeded random weights (tests/test_operations.py): their
# critics accept pixel noise in a made region (avg pooling averages it away); without smoothing the
# steps across the seam average 0.44 (the photo's own: 0.11, its 90th percentile 0.29), with 0.3: 0.17.
# Reflect padding: the zero padding's response dominates random weights' deep layers, so zero padding drew a
# grey frame round an expanded canvas (the made area 0.75 on the yardstick, real pebbles 0.15; reflect: 0.15)
# and a frame round every cropped loss window.
REGION_RANDOM_WEIGHTS = {"tv_weight": 0.3, "padding": "reflect"}
