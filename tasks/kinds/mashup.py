"""Mashup: one texture from several exemplars, blended by weights."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ..kind import Kind, Size, param
from ..params import REGION_RANDOM_WEIGHTS, RegionParams


@dataclass
class MashupParams(RegionParams):
    size: Size = param(256, help="N (square), 'WxH' or [W, H]")
    exemplar_weights: Optional[list[float]] = param(None, min=0, help="one weight per exemplar (gram: a weighted "
                                                    "average of Gram matrices; mrf: that share of each exemplar's "
                                                    "patches); null: equal")


KIND = Kind("mashup", "one texture from several exemplars blended by weights", MashupParams,
            run="tasks.operations:mashup", fanout="", shared=("inputs",), exemplars=("inputs",), reports_quality=False,
            presets={"random-weights": REGION_RANDOM_WEIGHTS})
