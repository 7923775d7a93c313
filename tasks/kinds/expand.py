"""Expand: grow an image to a larger canvas, its pixels kept in place, the rest synthesized."""
from __future__ import annotations

from dataclasses import dataclass

from ..kind import Kind, Size, param
from ..params import REGION_RANDOM_WEIGHTS, RegionParams

ANCHORS = ("center", "top-left", "top", "top-right", "left", "right", "bottom-left", "bottom", "bottom-right")


@dataclass
class ExpandParams(RegionParams):
    size: Size = param(512, help="the canvas: N (square), 'WxH' or [W, H]; at least the image's size")
    anchor: str = param("center", choices=ANCHORS, help="where the original goes on the canvas")


KIND = Kind("expand", "grow an image to a larger canvas, synthesizing the border from a source texture "
            "(default: the image itself)", ExpandParams, run="tasks.operations:expand", fanout="inputs",
            shared=("source",), exemplars=("source",), optional=("source",),
            presets={"random-weights": REGION_RANDOM_WEIGHTS})
