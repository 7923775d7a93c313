"""Semantic maps (Champandard 2016, "neural doodles"; Gatys et al. 2017's guided Gram matrices).

A map is an image of a few flat colours, one per region (sky, water, rocks). The style image comes
with one (``style_map``), the output gets its own (``target_map``, the doodle). Here the two maps
become region masks, one channel per colour of the style map, that the losses downsample to each
layer's resolution: the MRF loss appends them to the patches it matches (tasks/mrf.py), the Gram
loss takes one Gram matrix per region (tasks/losses.py:GuidedGramLoss).

Colours are matched exactly (8 bits per channel) between the two maps. A colour that never fills a
3x3 neighbourhood is an edge (antialiasing) and its pixels join the nearest region.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Optional, Sequence

import torch
import torch.nn.functional as F

MIN_SHARE = 0.001  # of a map's pixels, in the interior of a colour's areas, for that colour to be a region
ASPECT_TOLERANCE = 0.02  # a map may be drawn at another resolution than its image, not another shape


def hex_colour(rgb: Sequence[int]) -> str:
    return "#" + "".join(f"{int(c):02x}" for c in rgb)


def _region_colours(image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(the colours that make regions (N, 3) as 8-bit integers, their shares of the map (N,)), most
    common first. A region colour fills whole 3x3 neighbourhoods somewhere; the colours of edges
    (antialiasing: a line or two of in-between pixels) never do, and join the nearest region."""
    quantized = (image[0, :3].clamp(0, 1) * 255).round().to(torch.int64)
    ids = quantized[0] * 65536 + quantized[1] * 256 + quantized[2]  # one integer per colour
    grid = ids.double()[None, None]  # exact: ids are below 2**24
    interior = (F.max_pool2d(grid, 3, 1, 1) == -F.max_pool2d(-grid, 3, 1, 1))[0, 0]
    inner_ids, inner_counts = ids[interior].unique(return_counts=True)
    inner_ids = inner_ids[inner_counts >= max(1.0, MIN_SHARE * ids.numel())]
    all_ids, all_counts = ids.unique(return_counts=True)  # sorted: each inner id is found by bisection
    shares = all_counts[torch.searchsorted(all_ids, inner_ids)].double() / ids.numel()
    inner_colours = torch.stack([inner_ids // 65536, inner_ids // 256 % 256, inner_ids % 256], dim=1)
    order = shares.argsort(descending=True)
    return inner_colours[order], shares[order]


def palette(style_map: torch.Tensor) -> torch.Tensor:
    """The style map's region colours (K, 3) as 8-bit integers."""
    colours, _ = _region_colours(style_map)
    if not len(colours):  # a photo given as a map, or a JPEG: no colour is flat anywhere
        raise ValueError("style_map has no flat colours: a map is an image of a few flat colours, one per region "
                         "(save it as PNG: JPEG blurs colours)")
    return colours


def regions(map_image: torch.Tensor, colours: torch.Tensor) -> torch.Tensor:
    """(1, K, H, W) one-hot masks: each pixel belongs to the region of the nearest palette colour."""
    pixels = (map_image[0, :3].clamp(0, 1) * 255).round().reshape(3, -1).T  # (H*W, 3)
    nearest = torch.cdist(pixels.double(), colours.double()).argmin(dim=1)
    height, width = map_image.shape[-2:]
    one_hot = F.one_hot(nearest, colours.shape[0]).T.reshape(1, -1, height, width)
    return one_hot.to(map_image.dtype)


def check_colours(target_map: torch.Tensor, colours: torch.Tensor) -> None:
    """Every region colour of the target map must be one of the style map's, exactly."""
    known = {tuple(c.tolist()) for c in colours}
    for colour, share in zip(*_region_colours(target_map)):
        if tuple(colour.tolist()) not in known:
            have = ", ".join(hex_colour(c) for c in colours.tolist())
            raise ValueError(f"target_map has colour {hex_colour(colour.tolist())} ({float(share):.1%} of its pixels) "
                             f"that style_map lacks (its colours: {have}): paint that region in one of them, or add "
                             "the colour to the style map where its texture is")


def check_shape(map_image: torch.Tensor, image: torch.Tensor, map_role: str, image_role: str) -> None:
    """A map must have its image's shape (any resolution: it is resized per layer)."""
    (mh, mw), (ih, iw) = map_image.shape[-2:], image.shape[-2:]
    if abs(mw / mh - iw / ih) > ASPECT_TOLERANCE * (iw / ih):
        raise ValueError(f"{map_role} is {mw}x{mh} but its {image_role} image is {iw}x{ih}: a map must have its "
                         "image's shape (the same size, or scaled as a whole)")


@dataclass
class SemanticMaps:
    """The region masks of both maps, over the style map's palette."""
    style: torch.Tensor  # (1, K, h, w) for the style image
    target: torch.Tensor  # (1, K, H, W) for the output
    colours: torch.Tensor  # (K, 3) 8-bit

    def to(self, device) -> "SemanticMaps":
        return SemanticMaps(self.style.to(device), self.target.to(device), self.colours)

    def region_colours(self, style: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """(1, 3, H, W): each region of the output's map in its mean colour in the style image, a start
        that already follows the doodle (from noise, the coarse octave must find the layout too)."""
        masks = torch.nn.functional.interpolate(self.style, size=style.shape[-2:], mode="area")
        means = torch.einsum("bkhw,bchw->kc", masks, style) / masks.sum(dim=(0, 2, 3)).clamp_min(1e-6)[:, None]
        target = torch.nn.functional.interpolate(self.target, size=size, mode="area")
        return torch.einsum("bkhw,kc->bchw", target, means)

    def record(self) -> dict:
        """What the record says: each region's colour and its share of the style image and of the output."""
        return {"regions": [{"colour": hex_colour(c), "style_share": round(float(s), 4),
                             "target_share": round(float(t), 4)}
                            for c, s, t in zip(self.colours.tolist(), self.style.mean(dim=(0, 2, 3)),
                                               self.target.mean(dim=(0, 2, 3)))]}


def semantic_maps(inputs: Mapping[str, Sequence[torch.Tensor]], style: torch.Tensor,
                  content: Optional[torch.Tensor] = None) -> Optional[SemanticMaps]:
    """The maps of a task's inputs (roles ``style_map`` and ``target_map``), checked against the style
    image and the content image (when there is one); None when the task has no maps."""
    style_map = (inputs.get("style_map") or [None])[0]
    target_map = (inputs.get("target_map") or [None])[0]
    if style_map is None and target_map is None:
        return None
    if style_map is None:
        raise ValueError("target_map is given without style_map: give the style image's map too (the same colours "
                         "for the same regions)")
    if target_map is None:
        raise ValueError("style_map is given without target_map: give the output's map (the doodle"
                         + (", or the content image's map)" if content is not None else ")"))
    check_shape(style_map, style, "style_map", "style")
    if content is not None:
        check_shape(target_map, content, "target_map", "content")
    colours = palette(style_map)
    check_colours(target_map, colours)
    return SemanticMaps(regions(style_map, colours), regions(target_map, colours), colours)
