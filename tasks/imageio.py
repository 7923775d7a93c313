"""Conversions between encoded image bytes and float RGB tensors in [0, 1], shape (1, 3, H, W)."""
from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import torch
from PIL import Image

from .imagefile import DEFAULT_MAX_PIXELS, BadImage, decode_alpha, decode_rgb  # noqa: F401 (re-exported)


def decode_image(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS, name: str = "image",
                 alpha: bool = False) -> torch.Tensor:
    """Decode encoded bytes into a (1, 3, H, W) float tensor in [0, 1]. With ``alpha``, (1, 4, H, W):
    the colour as stored (not composited) plus the alpha channel (1 where the image has none), for
    kinds that read transparency as a mask (repair)."""
    rgb = np.asarray(decode_rgb(data, max_pixels, name), dtype=np.float32) / 255.0
    image = torch.from_numpy(rgb.copy()).permute(2, 0, 1).unsqueeze(0)
    if not alpha:
        return image
    channel = decode_alpha(data, max_pixels, name)
    if channel is None:
        return torch.cat([image, torch.ones_like(image[:, :1])], dim=1)
    return torch.cat([image, torch.from_numpy(channel.astype(np.float32) / 255.0)[None, None]], dim=1)


FORMATS = {"png": ".png", "png16": ".png", "jpeg": ".jpg", "webp": ".webp"}  # format -> file extension


def encode_image(image: torch.Tensor, fmt: str = "png", quality: int = 95) -> bytes:
    """Encode a (1, 3, H, W) or (3, H, W) tensor in [0, 1]: ``png`` (8 bits), ``png16`` (16 bits per
    channel, for post-processing), ``jpeg`` or ``webp`` at ``quality`` (1..100)."""
    if image.dim() == 4:
        image = image[0]
    hwc = image.detach().float().clamp(0, 1).permute(1, 2, 0).cpu()
    if fmt == "png16":
        return _png16((hwc * 65535.0).round().to(torch.int32).numpy().astype(">u2"))
    array = (hwc * 255.0).round().to(torch.uint8).numpy()
    buffer = io.BytesIO()
    if fmt == "png":
        Image.fromarray(array).save(buffer, format="PNG")
    elif fmt in ("jpeg", "webp"):
        Image.fromarray(array).save(buffer, format=fmt.upper(), quality=int(quality))
    else:
        raise ValueError(f"unknown image format {fmt!r}; use one of {', '.join(FORMATS)}")
    return buffer.getvalue()


def encode_png(image: torch.Tensor) -> bytes:
    """Encode a (1, 3, H, W) or (3, H, W) tensor in [0, 1] as 8-bit PNG bytes."""
    return encode_image(image, "png")


def _png16(rgb: np.ndarray) -> bytes:
    """A 16-bit RGB PNG from big-endian (H, W, 3) samples (Pillow writes 16 bits only for grey)."""
    height, width, _ = rgb.shape
    rows = b"".join(b"\x00" + rgb[y].tobytes() for y in range(height))  # filter type 0 on every row

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows, 6)) + chunk(b"IEND", b"")


def load_image(path: str, max_pixels: int = DEFAULT_MAX_PIXELS) -> torch.Tensor:
    """Read a local image file (for the single-render command and tests)."""
    with open(path, "rb") as handle:
        return decode_image(handle.read(), max_pixels, name=path)
