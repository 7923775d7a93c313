"""Ulyanov et al. 2016 (Texture Networks): train a multi-scale generator with the Gram loss."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ..kind import Kind, Size, param
from ..params import GATYS_TEXTURE_LAYERS, LAYER, layer_weights_param


@dataclass
class TextureNetParams:
    size: Size = param(256, help="training image size (N or 'WxH'); generation works at any size later")
    iterations: int = param(2000, min=1, help="Adam steps")
    batch_size: int = param(8, min=1, help="images per step", paper="16")
    lr: float = param(0.01, above=0, help="Adam learning rate", paper="0.1")
    lr_decay: float = param(0.8, above=0, max=1, help="the learning rate is multiplied by this every "
                                                      "lr_decay_every steps")
    lr_decay_every: int = param(400, min=1, help="steps between learning-rate decays")
    arch: str = param("multiscale", choices=("multiscale", "residual"),
                      help="generator: multiscale (the paper's noise pyramid) or residual (strided convolutions, "
                           "residual blocks at 1/4 resolution: several times faster per image, see docs/benchmarks.md)",
                      paper="multiscale")
    width: int = param(12, min=1, help="residual: channels of the first layer (x2, x4 below)")
    blocks: int = param(3, min=0, max=16, help="residual: residual blocks at 1/4 resolution")
    scales: int = param(5, min=1, max=8, help="noise scales", paper="K = 5 or 6")
    channels: int = param(8, min=1, help="channels per scale, concatenated as the scales join", paper="8")
    padding: str = param("circular", choices=("circular", "zeros", "reflect"), help="the generator's padding "
                         "(circular: tileable textures), and VGG's when it judges the samples and the exemplar",
                         paper="zeros")
    norm: str = param("instance", choices=("batch", "instance"), help="normalization in the generator (instance: "
                      "0.101 against 0.145 for batch on the quality yardstick, docs/quality.md)",
                      paper="batch (2017: instance)")
    diversity_weight: float = param(0.0, min=0, help="weight of the diversity term (minus the distance between "
                                    "samples' diversity_layer features; needs batch_size >= 2)",
                                    paper="2017 paper: used with instance norm")
    diversity_layer: str = param("relu4_1", choices=LAYER, help="VGG19 layer of the diversity term")
    layers: list[str] = param(GATYS_TEXTURE_LAYERS, choices=LAYER, help="VGG19 layers of the Gram loss")
    layer_weights: Optional[list[float]] = layer_weights_param()
    exemplar_scale: float = param(1.0, above=0, max=16, help="resize the exemplar first")
    checkpoint_every: int = param(200, min=1, help="steps; a preempted training loses at most this many")
    samples: int = param(4, min=1, max=64, help="images in the sample grid (the task's picture) saved with each "
                                                "checkpoint")


KIND = Kind("train_texture_net", "train a Texture Network generator (Ulyanov et al.) on an exemplar",
            TextureNetParams, run="tasks.texture_nets:train_texture_net", fanout="inputs",
            exemplars=("inputs",), checkpoints=True,
            produces=(".png", ".safetensors"))
