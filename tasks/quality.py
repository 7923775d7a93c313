"""A network-free yardstick of texture quality: how far an output's local statistics are from the
exemplar's, relative to how far colour-matched noise is.

    score = mean over scales s of  SW(output, exemplar; s) / SW(noise, exemplar; s)

where SW is the sliced-Wasserstein distance between the distributions of k x k pixel patches (k = 1:
colours; k = 3, 5, 9: mean-removed patches, i.e. structure at growing scales) along random
directions, and the noise has the exemplar's per-channel mean and standard deviation. 0 means the two
are indistinguishable at these scales, 1 means no better than noise, > 1 worse than noise (a blank
image). No VGG: the measure does not share the blind spots of the losses it judges.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

SCALES = (1, 3, 5, 9)  # patch sides: colour, then structure
SAMPLES = 4096  # patches drawn per image and scale
DIRECTIONS = 64


def _patches(image: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
    """(SAMPLES, 3*k*k) random k x k patches of a (1, 3, H, W) image; mean-removed when k > 1."""
    # The same patches as F.unfold(image, k)[0].T[pick], gathered at the picked corners only: unfolding
    # every position first cost ~1 s a render (a 9 x 9 unfold of a 256 px exemplar is 60 MB).
    _, _, h, w = image.shape
    pick = torch.randint((h - k + 1) * (w - k + 1), (SAMPLES,), generator=generator)
    offsets = torch.arange(k)
    rows = (pick // (w - k + 1))[:, None, None] + offsets[None, :, None]
    cols = (pick % (w - k + 1))[:, None, None] + offsets[None, None, :]
    patches = image[0].float()[:, rows, cols].permute(1, 0, 2, 3).reshape(SAMPLES, -1)  # (SAMPLES, 3*k*k)
    if k > 1:  # structure, not colour: remove each patch's per-channel mean
        patches = patches.view(SAMPLES, 3, k * k)
        patches = (patches - patches.mean(dim=2, keepdim=True)).view(SAMPLES, -1)
    return patches


def sliced_distance(a: torch.Tensor, b: torch.Tensor, k: int, seed: int = 0) -> float:
    """Sliced-Wasserstein-2 (squared) between the k x k patch distributions of images ``a`` and ``b``."""
    generator = torch.Generator().manual_seed(seed)
    pa, pb = _patches(a, k, generator), _patches(b, k, generator)
    directions = F.normalize(torch.randn(pa.shape[1], DIRECTIONS, generator=generator), dim=0)
    sa, sb = (pa @ directions).sort(dim=0).values, (pb @ directions).sort(dim=0).values
    return float(((sa - sb) ** 2).mean())


def matched_noise(exemplar: torch.Tensor, size: tuple[int, int], seed: int = 0) -> torch.Tensor:
    """Gaussian noise with the exemplar's per-channel mean and standard deviation, clamped to [0, 1]."""
    generator = torch.Generator().manual_seed(seed)
    mean = exemplar.mean(dim=(2, 3), keepdim=True)
    std = exemplar.std(dim=(2, 3), keepdim=True)
    return (torch.randn((1, 3, *size), generator=generator) * std + mean).clamp(0, 1)


def texture_score(output: torch.Tensor, exemplar: torch.Tensor, scales: Sequence[int] = SCALES,
                  seed: int = 0) -> float:
    """0 = indistinguishable from the exemplar at these scales, 1 = as far as colour-matched noise.
    Both images are (1, 3, H, W) in [0, 1] at the exemplar's own scale."""
    output, exemplar = output.detach().cpu().float(), exemplar.detach().cpu().float()
    noise = matched_noise(exemplar, tuple(output.shape[-2:]), seed)
    ratios = []
    for k in scales:
        if min(*output.shape[-2:], *exemplar.shape[-2:]) < k:
            continue
        reference = sliced_distance(noise, exemplar, k, seed)
        ratios.append(sliced_distance(output, exemplar, k, seed) / max(reference, 1e-12))
    return round(sum(ratios) / len(ratios), 4) if ratios else float("nan")


def colour_coverage(output: torch.Tensor, exemplar: torch.Tensor, bins: int = 8, floor: float = 0.002) -> float:
    """Share of the exemplar's colours that the output has: the RGB cube cut into ``bins``^3 cells,
    a cell counts if it holds at least ``floor`` of the exemplar's pixels and any output pixel. A
    blank render of a dotted exemplar covers the background's cell only; the exemplar covers 1."""
    def cells(image: torch.Tensor) -> torch.Tensor:
        q = (image.detach().cpu().float().clamp(0, 1) * (bins - 1e-6)).long()[0]  # (3, H, W)
        index = (q[0] * bins + q[1]) * bins + q[2]
        return torch.bincount(index.flatten(), minlength=bins ** 3).float()
    wanted = cells(exemplar) / exemplar[0, 0].numel() >= floor
    return round(float((cells(output)[wanted] > 0).float().mean()), 4)


def copy_distance(output: torch.Tensor, exemplar: torch.Tensor, window: int = 16, stride: int = 4,
                  flat: float = 0.02) -> float:
    """How far the output is from a verbatim copy, in 8-bit levels: for each ``window``-side output
    window (every ``stride`` px) with some structure (pixel std above ``flat``: a plain background
    window matches the exemplar's trivially), the mean absolute difference to the closest exemplar
    window at any position; the median over those windows. 0 = copied; a crop of the exemplar
    scores 0, a new arrangement of its elements a few levels. NaN when every window is flat."""
    out = F.unfold(output.detach().cpu().float(), window, stride=stride)[0].T
    out = out[out.std(dim=1) > flat]
    if out.shape[0] == 0:
        return float("nan")
    ex = F.unfold(exemplar.detach().cpu().float(), window, stride=1)[0].T
    best = torch.cat([torch.cdist(part, ex, p=1).min(dim=1).values for part in out.split(256)])
    return round(float(best.median()) / out.shape[1] * 255, 3)


def background_colour(exemplar: torch.Tensor, levels: int = 8) -> torch.Tensor:
    """The exemplar's most common colour (RGB cube cut into ``levels``^3 cells; the mean of the modal
    cell's pixels), (3,): the ground of a sparse texture."""
    pixels = exemplar.detach().cpu().float().clamp(0, 1)[0].flatten(1)  # (3, N)
    q = (pixels * (levels - 1e-6)).long()
    cell = (q[0] * levels + q[1]) * levels + q[2]
    mode = torch.bincount(cell, minlength=levels ** 3).argmax()
    return pixels[:, cell == mode].mean(dim=1)


def element_labels(ink: torch.Tensor) -> torch.Tensor:
    """Connected components (8-neighbour) of a boolean (H, W) mask: each element's pixels carry one label
    > 0, the rest 0. Labels spread by 3x3 max-pooling within the mask until nothing changes (as many passes
    as the widest element's diameter: small images, few passes)."""
    h, w = ink.shape
    labels = torch.where(ink, torch.arange(1, h * w + 1, dtype=torch.float64).view(h, w), torch.zeros(h, w,
                                                                                                   dtype=torch.float64))
    mask = ink.to(torch.float64)
    while True:
        spread = F.max_pool2d(labels[None, None], 3, stride=1, padding=1)[0, 0] * mask
        if torch.equal(spread, labels):
            return labels.long()
        labels = spread


def element_stats(image: torch.Tensor, background: torch.Tensor, threshold: float = 0.25,
                  min_area: int = 1) -> dict[str, float]:
    """Elements of a sparse texture: pixels further than ``threshold`` (RGB distance) from ``background``,
    grouped into connected elements; elements under ``min_area`` pixels (pixel noise) are not counted.
    ``ink``: the share of pixels in counted elements; ``per_kpx``: elements per 1000 pixels;
    ``median_area``: their median size in pixels (0 without elements)."""
    img = image.detach().cpu().float().clamp(0, 1)[0]
    ink = (img - background.view(3, 1, 1)).norm(dim=0) > threshold
    labels = element_labels(ink)
    areas = torch.bincount(labels.flatten())[1:]
    areas = areas[areas >= min_area]
    pixels = float(ink.numel())
    return {"ink": float(areas.sum()) / pixels, "per_kpx": 1000.0 * areas.numel() / pixels,
            "median_area": float(areas.float().median()) if areas.numel() else 0.0}


def density_ratios(output: torch.Tensor, exemplar: torch.Tensor, threshold: float = 0.25) -> dict[str, float]:
    """The render's elements against the exemplar's (1 = the same): ink share, elements per pixel, median
    element size. Elements smaller than a quarter of the exemplar's median element are noise, in both."""
    ground = background_colour(exemplar)
    reference = element_stats(exemplar, ground, threshold)
    min_area = max(1, int(reference["median_area"] // 4))
    reference = element_stats(exemplar, ground, threshold, min_area)
    got = element_stats(output, ground, threshold, min_area)
    return {key: got[key] / reference[key] if reference[key] else float("nan") for key in got}
