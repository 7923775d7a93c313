"""A content image through a trained stylizer, in one forward pass."""
from __future__ import annotations

from dataclasses import dataclass

from ..kind import Kind, Size, param


@dataclass
class StylizeParams:
    size: Size = param(512, help="long side of the output (content aspect, rounded to the generator's multiple)")


KIND = Kind("stylize", "stylize a photo with a trained stylizer, one pass", StylizeParams,
            run="tasks.texture_nets:stylize", fanout="content", shared=("generator",), raw=("generator",),
            uses_vgg=False, generator_from="train_stylizer", reports_loss=False)
