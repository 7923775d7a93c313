"""The task kinds, by manifest name. Adding a method = its implementation module, its declaration
module in tasks/kinds/, and one line here; nothing else in the project names a kind."""
from __future__ import annotations

from .kind import Kind
from .kinds import (enhance, expand, generate, mashup, mrf, mrf_style, repair, style, stylize, swd, texture, train_stylizer,
                    train_texture_net)

KINDS: dict[str, Kind] = {k.name: k for k in (
    texture.KIND,
    style.KIND,
    mrf.KIND,
    mrf_style.KIND,
    train_texture_net.KIND,
    train_stylizer.KIND,
    generate.KIND,
    stylize.KIND,
    swd.KIND,
    repair.KIND,
    expand.KIND,
    enhance.KIND,
    mashup.KIND,
)}

TaskKind = Kind  # the name earlier code used


def get_kind(name: str) -> Kind:
    try:
        return KINDS[name]
    except KeyError:
        raise ValueError(f"unknown kind {name!r}; known kinds: {sorted(KINDS)}") from None
