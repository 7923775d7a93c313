"""The Ray actor class: a torch-free shell around the Renderer. The driver imports this module to make
the actor class, so it must not import torch: the Renderer (VGG19, torch, torchvision) is imported
inside the actor process, where the model lives. A driver on a small CPU head then needs Ray,
pyarrow and boto3 only (about a tenth of the memory and start-up time)."""
from __future__ import annotations

from typing import Any


# Errors of the user's making that every actor would hit alike (weights that cannot be loaded, offline
# ImageNet weights, a staged file that is missing): answered by the probe as one line, because a raising
# constructor makes Ray print each actor's whole traceback (about 90 lines each) before texfarm's message.
UNDERSTOOD = ("WeightsUnavailable", "StorageError")


class RenderWorker:
    def __init__(self, **settings: Any) -> None:
        from .renderer import Renderer  # torch loads here, in the actor

        self.start_error: str | None = None
        try:
            self.renderer = Renderer(**settings)
        except Exception as exc:
            if type(exc).__name__ not in UNDERSTOOD:
                raise
            self.start_error = f"{type(exc).__name__}: {exc}"

    def ready(self) -> dict[str, Any]:
        if self.start_error:
            return {"start_error": self.start_error}
        return self.renderer.ready()

    def render_batch(self, specs: list[dict[str, Any]], attempt: int = 1) -> list[dict[str, Any]]:
        return self.renderer.render_batch(specs, attempt)
