"""The Ray actor class: a torch-free shell around the Renderer. The driver imports this module to make
the actor class, so it must not import torch: the Renderer (VGG19, torch, torchvision) is imported
inside the actor process, where the model lives. A driver on a small CPU head then needs Ray,
pyarrow and boto3 only (about a tenth of the memory and start-up time)."""
from __future__ import annotations

from typing import Any


class RenderWorker:
    def __init__(self, **settings: Any) -> None:
        from .renderer import Renderer  # torch loads here, in the actor

        self.renderer = Renderer(**settings)

    def ready(self) -> dict[str, Any]:
        return self.renderer.ready()

    def render_batch(self, specs: list[dict[str, Any]], attempt: int = 1) -> list[dict[str, Any]]:
        return self.renderer.render_batch(specs, attempt)
