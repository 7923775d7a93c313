"""Ulyanov et al. 2016: train a feed-forward stylizer for one style image over content images."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ..kind import Kind, param
from ..params import GATYS_STYLE_LAYERS, LAYER, layer_weights_param
from .train_texture_net import TextureNetParams


@dataclass
class StylizerParams(TextureNetParams):
    # Unlike train_texture_net's, this critic keeps VGG's zero padding: a stylized photo does not tile.
    padding: str = param("circular", choices=("circular", "zeros", "reflect"), help="the generator's padding",
                         paper="zeros")
    style_layers: list[str] = param(GATYS_STYLE_LAYERS, choices=LAYER, help="VGG19 layers of the style loss")
    style_layer_weights: Optional[list[float]] = layer_weights_param()
    content_layer: str = param("relu4_2", choices=LAYER, help="VGG19 layer of the content loss")
    content_weight: float = param(1.0, min=0, help="weight of the content loss")
    style_weight: float = param(10.0, min=0, help="weight of the style loss")
    style_scale: float = param(1.0, above=0, max=16, help="style image long side = style_scale x training size")


KIND = Kind("train_stylizer", "train a feed-forward stylizer (Ulyanov et al.) for a style image", StylizerParams,
            run="tasks.texture_nets:train_stylizer", fanout="style", exemplars=("style",),
            shared=("content",), checkpoints=True,
            produces=(".png", ".safetensors"))
