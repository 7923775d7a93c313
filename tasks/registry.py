"""One registry maps a manifest ``kind`` to its task function, parameter class and input roles.

Adding a method = one module in tasks/ and one line here.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

from . import gatys, mrf, texture_nets
from .params import (GenerateParams, MRFParams, MRFStyleParams, StyleParams, StylizeParams, StylizerParams,
                     TextureNetParams, TextureParams)


@dataclass(frozen=True)
class TaskKind:
    name: str
    run: Callable  # (inputs: dict[role, list[Tensor]], params, vgg, seed) -> TaskOutput
    params: type
    fanout: str  # the input role with one task per image ("inputs" or "content")
    shared: tuple[str, ...] = ()  # input roles every task of the job receives whole (e.g. "style")
    raw: tuple[str, ...] = ()  # input roles passed as bytes, not decoded images (a generator file)
    checkpoints: bool = False  # long training: run() takes a CheckpointStore as `checkpoints`
    uses_vgg: bool = True  # False: run() works from its inputs alone and takes `device`
    batch_run: Optional[Callable] = None  # (inputs, params, vgg, seeds) -> [TaskOutput]: seeds in one pass


KINDS: dict[str, TaskKind] = {
    "texture": TaskKind("texture", gatys.texture, TextureParams, fanout="inputs", batch_run=gatys.texture_batch),
    "style": TaskKind("style", gatys.style, StyleParams, fanout="content", shared=("style",)),
    "mrf": TaskKind("mrf", mrf.mrf, MRFParams, fanout="inputs"),
    "mrf_style": TaskKind("mrf_style", mrf.mrf_style, MRFStyleParams, fanout="content", shared=("style",)),
    "train_texture_net": TaskKind("train_texture_net", texture_nets.train_texture_net, TextureNetParams,
                                  fanout="inputs", checkpoints=True),
    "train_stylizer": TaskKind("train_stylizer", texture_nets.train_stylizer, StylizerParams, fanout="style",
                               shared=("content",), checkpoints=True),
    "generate": TaskKind("generate", texture_nets.generate, GenerateParams, fanout="generator", raw=("generator",),
                         uses_vgg=False),
    "stylize": TaskKind("stylize", texture_nets.stylize, StylizeParams, fanout="content", shared=("generator",),
                        raw=("generator",), uses_vgg=False),
}


def get_kind(name: str) -> TaskKind:
    try:
        return KINDS[name]
    except KeyError:
        raise ValueError(f"unknown kind {name!r}; known kinds: {sorted(KINDS)}") from None
