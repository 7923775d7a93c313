"""Progress of a running optimization for whoever listens (the `render` command prints it and saves
intermediate images): a context-local listener, so task functions keep their signature and a task
in a Ray actor, where nobody listens, pays nothing."""
from __future__ import annotations

import contextlib
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Callable, Iterator, Optional

import torch


@dataclass
class Step:
    octave: int  # 1-based
    octaves: int
    size: tuple[int, int]  # (H, W) of this octave
    done: int  # iterations done in all octaves so far
    total: int  # iterations of the whole task
    loss: float
    image: torch.Tensor  # the current image (1, 3, H, W), detached


_LISTENER: ContextVar[Optional[Callable[[Step], None]]] = ContextVar("texfarm_progress", default=None)


@contextlib.contextmanager
def listening(callback: Callable[[Step], None]) -> Iterator[None]:
    token = _LISTENER.set(callback)
    try:
        yield
    finally:
        _LISTENER.reset(token)


def listener() -> Optional[Callable[[Step], None]]:
    return _LISTENER.get()
