"""Decoding image files to 8-bit RGB with PIL only (no torch), so the report and light commands share
the tasks' decoder without importing torch."""
from __future__ import annotations

import io
import re
from typing import Optional

import numpy as np
from PIL import Image, ImageOps

# Refuse decompression bombs: a 16k x 16k exemplar is far beyond any texture we synthesize from.
DEFAULT_MAX_PIXELS = 16384 * 16384
# One pixel cap, ours (checked from the header, before decoding): Pillow's own 89.5-megapixel guard
# would otherwise refuse inputs a user allowed with limits.max_input_pixels.
Image.MAX_IMAGE_PIXELS = None
_BUFFER_REPR = re.compile(r"<_io\.BytesIO object at 0x[0-9a-fA-F]+>")


class BadImage(ValueError):
    """The bytes are not an image we can use (truncated, not an image, too many pixels)."""


def _to_rgb(image: Image.Image) -> Image.Image:
    """Convert any PIL mode to 8-bit RGB: palette, grayscale, CMYK, 16-bit, alpha (over white)."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        # By the declared bit depth, not by the values: a dark 16-bit image stays dark.
        array = np.asarray(image, dtype=np.float64)
        peak = 65535.0 if image.mode != "I" or array.max() <= 65535 else 4294967295.0
        image = Image.fromarray(np.clip(array / peak * 255.0, 0, 255).astype(np.uint8))
    if image.mode == "P":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA"):
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, image.convert("RGBA"))
    return image.convert("RGB")


def decode_rgb(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS, name: str = "image",
               at_least: Optional[int] = None) -> Image.Image:
    """Decode encoded bytes into the 8-bit RGB image every consumer sees (tasks and report alike): EXIF
    orientation applied, alpha over white, any bit depth scaled by its declared depth. ``at_least``: a
    JPEG may be decoded at 1/2..1/8 scale while both sides stay >= that (a thumbnail of a camera photo)."""
    return _to_rgb(_open(data, max_pixels, name, at_least))


def decode_alpha(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS, name: str = "image") -> "np.ndarray | None":
    """The image's alpha channel as 8-bit (H, W), oriented like ``decode_rgb``'s pixels; None without one."""
    image = _open(data, max_pixels, name)
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode not in ("RGBA", "LA", "PA"):
        return None
    return np.asarray(image.getchannel("A"), dtype=np.uint8)


def _open(data: bytes, max_pixels: int, name: str, at_least: Optional[int] = None) -> Image.Image:
    try:
        image = Image.open(io.BytesIO(data))
        if image.width * image.height > max_pixels:
            raise BadImage(
                f"{name} has {image.width}x{image.height} pixels, over the cap of {max_pixels}; "
                "downscale it or raise the pixel cap"
            )
        if at_least:
            image.draft("RGB", (at_least, at_least))
        image = ImageOps.exif_transpose(image)
        image.load()
        return image
    except BadImage:
        raise
    except Exception as exc:  # UnidentifiedImageError, truncated data, OSError
        raise BadImage(f"{name} is not a readable image: {_BUFFER_REPR.sub(name, str(exc))}") from exc
