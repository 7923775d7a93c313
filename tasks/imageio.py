"""Conversions between encoded image bytes and float RGB tensors in [0, 1], shape (1, 3, H, W)."""
from __future__ import annotations

import io
import warnings

import numpy as np
import torch
from PIL import Image, ImageOps

# Refuse decompression bombs: a 16k x 16k exemplar is far beyond any texture we synthesize from.
DEFAULT_MAX_PIXELS = 16384 * 16384


class BadImage(ValueError):
    """The bytes are not an image we can use (truncated, not an image, too many pixels)."""


def _to_rgb(image: Image.Image) -> Image.Image:
    """Convert any PIL mode to 8-bit RGB: palette, grayscale, CMYK, 16-bit, alpha (over white)."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        array = np.asarray(image, dtype=np.float64)
        peak = 65535.0 if array.max() > 255 else 255.0
        image = Image.fromarray(np.clip(array / peak * 255.0, 0, 255).astype(np.uint8))
    if image.mode == "P":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA"):
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, image.convert("RGBA"))
    return image.convert("RGB")


def decode_image(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS, name: str = "image") -> torch.Tensor:
    """Decode encoded bytes into a (1, 3, H, W) float tensor in [0, 1]."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            if image.width * image.height > max_pixels:
                raise BadImage(
                    f"{name} has {image.width}x{image.height} pixels, over the cap of {max_pixels}; "
                    "downscale it or raise the pixel cap"
                )
            image = ImageOps.exif_transpose(image)
            image.load()
    except BadImage:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise BadImage(f"{name} refused as a decompression bomb: {exc}") from exc
    except Exception as exc:  # UnidentifiedImageError, truncated data, OSError
        raise BadImage(f"{name} is not a readable image: {exc}") from exc
    array = np.asarray(_to_rgb(image), dtype=np.float32) / 255.0
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
