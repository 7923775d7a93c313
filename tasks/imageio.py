"""Conversions between encoded image bytes and float RGB tensors in [0, 1], shape (1, 3, H, W)."""
from __future__ import annotations

import io

import numpy as np
import torch
from PIL import Image

from .imagefile import DEFAULT_MAX_PIXELS, BadImage, decode_rgb  # noqa: F401 (re-exported)


def decode_image(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS, name: str = "image") -> torch.Tensor:
    """Decode encoded bytes into a (1, 3, H, W) float tensor in [0, 1]."""
    array = np.asarray(decode_rgb(data, max_pixels, name), dtype=np.float32) / 255.0
    return torch.from_numpy(array.copy()).permute(2, 0, 1).unsqueeze(0)


def encode_png(image: torch.Tensor) -> bytes:
    """Encode a (1, 3, H, W) or (3, H, W) tensor in [0, 1] as PNG bytes."""
    if image.dim() == 4:
        image = image[0]
    array = (image.detach().float().clamp(0, 1) * 255.0).round().to(torch.uint8)
    buffer = io.BytesIO()
    Image.fromarray(array.permute(1, 2, 0).cpu().numpy()).save(buffer, format="PNG")
    return buffer.getvalue()


def load_image(path: str, max_pixels: int = DEFAULT_MAX_PIXELS) -> torch.Tensor:
    """Read a local image file (for the single-render command and tests)."""
    with open(path, "rb") as handle:
        return decode_image(handle.read(), max_pixels, name=path)
