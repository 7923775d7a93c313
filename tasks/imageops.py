"""Small image operations on (B, 3, H, W) tensors: resizing, tileable upsampling, colour spaces."""
from __future__ import annotations

import torch
import torch.nn.functional as F

# RGB <-> YIQ (NTSC): Y carries luminance, I and Q the colour.
_RGB_TO_YIQ = torch.tensor(
    [[0.299, 0.587, 0.114], [0.595716, -0.274453, -0.321263], [0.211456, -0.522591, 0.311135]]
)


def resize(image: torch.Tensor, size: tuple[int, int], circular: bool = False) -> torch.Tensor:
    """Resize to (H, W) with antialiased bilinear filtering; ``circular`` treats the image as a torus."""
    h, w = size
    if tuple(image.shape[-2:]) == (h, w):
        return image
    if circular:
        # Resize a 3x3 tiling and keep the middle tile, so the edges see their wrap-around neighbours.
        tiled = image.repeat(1, 1, 3, 3)
        big = F.interpolate(tiled, size=(3 * h, 3 * w), mode="bilinear", align_corners=False, antialias=True)
        return big[..., h : 2 * h, w : 2 * w]
    return F.interpolate(image, size=(h, w), mode="bilinear", align_corners=False, antialias=True)


def scale_to_long_side(image: torch.Tensor, long_side: int) -> torch.Tensor:
    """Resize keeping the aspect ratio so the longer side is ``long_side`` pixels."""
    h, w = image.shape[-2:]
    factor = long_side / max(h, w)
    return resize(image, (max(1, round(h * factor)), max(1, round(w * factor))))


def scale_by(image: torch.Tensor, factor: float, min_side: int = 1) -> torch.Tensor:
    h, w = image.shape[-2:]
    return resize(image, (max(min_side, round(h * factor)), max(min_side, round(w * factor))))


# Exemplars are processed at their native resolution (their elements keep their size): a camera photo
# as exemplar took 408 s and 12.5 GB for a 64 px texture. Above this many pixels it is scaled down.
DEFAULT_MAX_EXEMPLAR_PIXELS = 1024 * 1024


def bounded(image: torch.Tensor, max_pixels: int) -> tuple[torch.Tensor, float]:
    """``image`` scaled down (aspect kept) to at most ``max_pixels`` pixels, and the factor used (1.0: as is)."""
    h, w = image.shape[-2:]
    if h * w <= max_pixels:
        return image, 1.0
    factor = (max_pixels / (h * w)) ** 0.5
    size = (max(1, int(h * factor)), max(1, int(w * factor)))
    return resize(image, size), size[0] / h


def rgb_to_yiq(image: torch.Tensor) -> torch.Tensor:
    return torch.einsum("ij,bjhw->bihw", _RGB_TO_YIQ.to(image), image)


def yiq_to_rgb(image: torch.Tensor) -> torch.Tensor:
    return torch.einsum("ij,bjhw->bihw", torch.linalg.inv(_RGB_TO_YIQ).to(image), image)


def keep_colors(stylized: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """Luminance of ``stylized`` with the colour (I, Q) of ``content`` (Gatys et al. 2016, 'Preserving colour')."""
    y = rgb_to_yiq(stylized)[:, :1]
    iq = rgb_to_yiq(resize(content, tuple(stylized.shape[-2:])))[:, 1:]
    return yiq_to_rgb(torch.cat([y, iq], dim=1)).clamp(0, 1)
