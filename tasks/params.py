"""Parameters of each task kind with their defaults.

Where a default departs from the paper, the comment gives the paper's value and the reference
code's value side by side (after pystiche_papers). Manifests and the CLI use these field names.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Optional, Union

Size = Union[int, str, list]

# Gatys, Ecker, Bethge 2015 "Texture synthesis using CNNs": conv1_1, pool1..pool4, equal weights
# (the DeepTextures reference code uses the same set).
GATYS_TEXTURE_LAYERS = ["relu1_1", "pool1", "pool2", "pool3", "pool4"]
# Gatys, Ecker, Bethge 2016 "Image style transfer using CNNs": style conv1_1..conv5_1, content conv4_2
# (jcjohnson/neural-style uses the ReLU outputs relu1_1..relu5_1 and relu4_2, as we do).
GATYS_STYLE_LAYERS = ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"]


@dataclass
class OptimParams:
    iterations: int = 500  # paper: L-BFGS until convergence; DeepTextures: maxiter=2000; neural-style: 1000
    optimizer: str = "lbfgs"  # paper: L-BFGS; Adam is an option (neural-style: -optimizer adam)
    lr: float = 1.0  # L-BFGS step scale; for Adam a pixel-space rate such as 0.02
    octaves: int = 1  # coarse-to-fine levels, each half the size of the next (paper: 1; texturize: 5)
    tileable: bool = False  # circular padding in VGG's convolutions: the result wraps without a seam
    tv_weight: float = 0.0  # total-variation smoothing (paper: none; neural-style: 1e-3 on raw losses)
    check_every: int = 10  # iterations between divergence checks
    divergence_factor: float = 10.0  # a loss above this multiple of the best so far counts as divergence


@dataclass
class TextureParams(OptimParams):
    size: Size = 256  # N (square), "WxH" or [W, H]; independent of the exemplar's size and aspect
    layers: list = field(default_factory=lambda: list(GATYS_TEXTURE_LAYERS))
    layer_weights: Optional[list] = None  # None: equal weights (paper: w_l = 1/5)
    exemplar_scale: float = 1.0  # resize the exemplar first: larger means bigger texture elements


@dataclass
class StyleParams(OptimParams):
    size: Size = 512  # long side of the output (content aspect kept), or "WxH" / [W, H]
    init: str = "content"  # "content" or "noise" (paper: noise; neural-style default: random)
    content_layer: str = "relu4_2"
    style_layers: list = field(default_factory=lambda: list(GATYS_STYLE_LAYERS))
    style_layer_weights: Optional[list] = None  # None: equal (paper: w_l = 1/5)
    # Our losses are normalized (see tasks/losses.py), so these are relative weights; the paper's
    # alpha/beta ratio of 1e-3..1e-4 applies to raw losses and does not transfer.
    content_weight: float = 1.0
    style_weight: float = 10.0
    style_weights: Optional[list] = None  # blend weights of several style images (neural-style -style_blend_weights)
    style_scale: float = 1.0  # style image long side = style_scale x output long side (neural-style -style_scale)
    preserve_colors: bool = False  # keep the content's colours, transfer luminance only (Gatys et al. 2016b)


def param_names(cls: type) -> list[str]:
    return [f.name for f in fields(cls)]


def build_params(cls: type, values: dict[str, Any]) -> Any:
    """Instantiate ``cls`` from a dict, rejecting unknown keys (the manifest validates types first)."""
    unknown = sorted(set(values) - set(param_names(cls)))
    if unknown:
        raise ValueError(f"unknown parameter(s) {unknown} for {cls.__name__}; known: {param_names(cls)}")
    return cls(**values)


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
    elif isinstance(size, str) and "x" in size.lower():
        w_text, h_text = size.lower().split("x", 1)
        w, h = int(w_text), int(h_text)
    elif isinstance(size, (list, tuple)) and len(size) == 2:
        w, h = int(size[0]), int(size[1])
    elif isinstance(size, str) and size.isdigit():
        return parse_size(int(size), aspect_from)
    else:
        raise ValueError(f"size must be N, 'WxH' or [W, H], not {size!r}")
    if h < 16 or w < 16:
        raise ValueError(f"size {w}x{h} is too small: VGG19 needs at least 16x16 pixels")
    return h, w


# Li & Wand 2016 "Combining MRFs and CNNs for image synthesis" (CNNMRF): 3x3 patches of relu3_1 and
# relu4_1, nearest neighbours by normalized cross-correlation, coarse to fine.
MRF_LAYERS = ["relu3_1", "relu4_1"]


@dataclass
class MRFParams(OptimParams):
    size: Size = 256
    iterations: int = 300  # CNNMRF reference code: 100 iterations at each of 3 resolutions
    octaves: int = 3  # CNNMRF reference code: 3 resolutions
    layers: list = field(default_factory=lambda: list(MRF_LAYERS))
    layer_weights: Optional[list] = None  # None: equal
    patch_size: int = 3  # paper: 3x3
    stride: int = 1  # image patches: every one (paper)
    exemplar_stride: int = 1  # exemplar patches; 2 quarters the matching cost
    chunk: int = 4096  # exemplar patches per matrix product; bounds peak memory, halved on OOM
    exemplar_scale: float = 1.0
    rotations: list = field(default_factory=lambda: [0.0])  # degrees; paper augments with rotated copies
    scales: list = field(default_factory=lambda: [1.0])  # paper augments with scaled copies
    # Against repetitive copying (our additions, each switchable):
    center_features: bool = True  # match on features centred by the exemplar mean (Pearson, not raw cosine)
    noise: float = 0.05  # std of noise injected into each upsampled octave start
    repetition_penalty: float = 0.1  # subtract penalty x (uses / expected uses) from a patch's match score
    # The reference code adds a TV term too; 1.0 (on our normalized losses) was tuned with random weights.
    tv_weight: float = 1.0


@dataclass
class MRFStyleParams(MRFParams):
    size: Size = 512  # long side of the output (content aspect kept)
    init: str = "content"
    content_layer: str = "relu4_2"
    content_weight: float = 1.0
    style_weight: float = 1.0
    style_scale: float = 1.0  # style long side = style_scale x output long side
    noise: float = 0.0


# Ulyanov, Lebedev, Vedaldi, Lempitsky 2016 "Texture Networks": a multi-scale generator trained with
# the Gram loss of Gatys et al., Adam with learning-rate decay.
@dataclass
class TextureNetParams:
    size: Size = 256  # training image size (square N or "WxH"); generation works at any size later
    iterations: int = 2000  # Adam steps
    batch_size: int = 8
    lr: float = 0.01
    lr_decay: float = 0.8  # the learning rate is multiplied by this every lr_decay_every steps
    lr_decay_every: int = 400
    scales: int = 5  # paper: K = 5 or 6 noise scales
    channels: int = 8  # paper: 8 channels per scale, concatenated as the scales join
    padding: str = "circular"  # circular | zeros | reflect (paper: zero padding; see tasks/generator.py)
    norm: str = "batch"  # batch (paper) | instance
    layers: list = field(default_factory=lambda: list(GATYS_TEXTURE_LAYERS))
    layer_weights: Optional[list] = None
    exemplar_scale: float = 1.0
    checkpoint_every: int = 200  # steps; a preempted training loses at most this many
    samples: int = 4  # images in the sample grid saved with each checkpoint


@dataclass
class StylizerParams(TextureNetParams):
    style_layers: list = field(default_factory=lambda: list(GATYS_STYLE_LAYERS))
    style_layer_weights: Optional[list] = None
    content_layer: str = "relu4_2"
    content_weight: float = 1.0
    style_weight: float = 10.0
    style_scale: float = 1.0  # style image long side = style_scale x training size


@dataclass
class GenerateParams:
    size: Size = 512  # any multiple of 2^(scales-1); N or "WxH"
    count: int = 1  # textures per task (seeds seed*count ... seed*count+count-1)
    batch_size: int = 8  # textures per forward pass


@dataclass
class StylizeParams:
    size: Size = 512  # long side of the output (content aspect, rounded to the generator's multiple)
