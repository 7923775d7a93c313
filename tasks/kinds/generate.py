"""Textures from a trained Texture Network generator, in one forward pass."""
from __future__ import annotations

from dataclasses import dataclass

from ..kind import Kind, Size, param


@dataclass
class GenerateParams:
    size: Size = param(512, help="N or 'WxH', a multiple of 2^(scales-1)")
    count: int = param(1, min=1, max=1024, help="textures per task (seeds seed*count ... seed*count+count-1)")
    batch_size: int = param(8, min=1, help="textures per forward pass")


KIND = Kind("generate", "textures from a trained Texture Network generator, one pass", GenerateParams,
            run="tasks.texture_nets:generate", fanout="generator", raw=("generator",), uses_vgg=False,
            generator_from="train_texture_net", reports_loss=False)
