"""A network-free yardstick of texture quality: how far an output's local statistics are from the
exemplar's, relative to how far a trivial render is.

    score = mean over levels (f, k) of  SW_f(output, exemplar; k) / min(SW_f(noise, exemplar; k),
                                                                       SW_f(ground, exemplar; k))
            + element distance (sparse exemplars only)

where SW_f is the sliced-Wasserstein distance between the distributions of k x k pixel patches of the
images average-pooled by f (f = 1, k = 1: colours; k = 3, 5, 9: mean-removed patches, i.e. structure
at growing scales; f = 2, k = 9: the arrangement over 18 px) along random directions. The trivial
renders are noise with the exemplar's per-channel mean and standard deviation and the exemplar's
background colour, flat: 0 means indistinguishable at these scales, 1 no better than the better of the
two, > 1 worse. On a sparse exemplar (one colour covers half of it: elements on a ground) the score adds
how far the render's ink share and element size are from the exemplar's (|log2| of each ratio, averaged:
1 = off by a factor of two), which the patch statistics are lenient with. No VGG: the measure does not
share the blind spots of the losses it judges.
"""
from __future__ import annotations

import math
from typing import Optional, Sequence

import torch
import torch.nn.functional as F

SCALES = (1, 3, 5, 9)  # patch sides: colour, then structure
COARSE = ((2, 9),)  # (pooling, patch side): structure beyond 9 px; catches tiles shuffled at 8-16 px
SPARSE_GROUND = 0.5  # an exemplar whose modal colour cell holds this share is elements on a ground
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
    """0 = indistinguishable from the exemplar at these scales, 1 = as far as the better of colour-matched
    noise and the exemplar's flat background colour. Both images are (1, 3, H, W) in [0, 1] at the
    exemplar's own scale."""
    output, exemplar = output.detach().cpu().float(), exemplar.detach().cpu().float()
    ground = background_colour(exemplar).view(1, 3, 1, 1)
    ratios = []
    for pool, k in [(1, k) for k in scales] + list(COARSE):
        out, ex = (F.avg_pool2d(x, pool) if pool > 1 else x for x in (output, exemplar))
        if min(*out.shape[-2:], *ex.shape[-2:]) < k:
            continue
        # The better trivial render is the reference: noise is as far as a blank ground from a sparse
        # exemplar, so against noise alone a blank render of one scored 0.66 (as good as many renders).
        noise = matched_noise(ex, tuple(out.shape[-2:]), seed)
        reference = min(sliced_distance(noise, ex, k, seed), sliced_distance(ground.expand_as(out), ex, k, seed))
        ratios.append(sliced_distance(out, ex, k, seed) / max(reference, 1e-12))
    if not ratios:
        return float("nan")
    score = sum(ratios) / len(ratios)
    if is_sparse(exemplar):
        score += element_distance(output, exemplar)
    return round(score, 4)


def is_sparse(exemplar: torch.Tensor, levels: int = 8) -> bool:
    """Elements on a ground: the exemplar's modal colour cell holds at least ``SPARSE_GROUND`` of it."""
    pixels = exemplar.detach().cpu().float().clamp(0, 1)[0].flatten(1)
    q = (pixels * (levels - 1e-6)).long()
    cell = (q[0] * levels + q[1]) * levels + q[2]
    return float(torch.bincount(cell).max()) / cell.numel() >= SPARSE_GROUND


def element_distance(output: torch.Tensor, exemplar: torch.Tensor, cap: float = 8.0) -> float:
    """How far the render's ink share and median element size are from the exemplar's: the mean of
    |log2 ratio| (each ratio within [1/cap, cap]; a blank render scores log2(cap)). 0 = the same,
    1 = off by a factor of two. A window of n elements holds the exemplar's ink share only to about
    1/sqrt(n) (a crop of 3 dots reads 1.4x), so the ink ratio's first log2(1 + 1/sqrt(n)) is free."""
    ground = background_colour(exemplar)
    ratios = density_ratios(output, exemplar)
    if not all(math.isfinite(ratios[key]) for key in ("ink", "median_area")):
        return 0.0  # an exemplar without elements: nothing to compare
    expected = element_stats(exemplar, ground)["per_kpx"] * output[0, 0].numel() / 1000
    slack = math.log2(1 + 1 / math.sqrt(max(expected, 1.0)))
    ink = max(0.0, abs(math.log2(min(cap, max(1 / cap, ratios["ink"])))) - slack)
    if ratios["ink"] == 0:
        ink = math.log2(cap)
    size = abs(math.log2(min(cap, max(1 / cap, ratios["median_area"]))))
    return (ink + size) / 2


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


def _element_areas(image: torch.Tensor, background: torch.Tensor, threshold: float) -> torch.Tensor:
    """Pixel counts of the connected elements of ``image`` (1, 3, H, W) away from ``background``."""
    img = image.detach().cpu().float().clamp(0, 1)[0]
    ink = (img - background.view(3, 1, 1)).norm(dim=0) > threshold
    return torch.bincount(element_labels(ink).flatten())[1:]


def _windows(exemplar: torch.Tensor, size: tuple[int, int]) -> list[torch.Tensor]:
    """Non-overlapping windows of ``size`` tiling ``exemplar`` (the whole exemplar when it is smaller)."""
    h, w = exemplar.shape[-2:]
    wh, ww = min(size[0], h), min(size[1], w)
    return [exemplar[..., y : y + wh, x : x + ww] for y in range(0, h - wh + 1, wh) for x in range(0, w - ww + 1, ww)]


def element_stats(image: torch.Tensor, background: torch.Tensor, threshold: float = 0.25,
                  min_area: int = 1, window: Optional[tuple[int, int]] = None) -> dict[str, float]:
    """Elements of a sparse texture: pixels further than ``threshold`` (RGB distance) from ``background``,
    grouped into connected elements; elements under ``min_area`` pixels (pixel noise) are not counted.
    ``ink``: the share of pixels in counted elements; ``per_kpx``: elements per 1000 pixels;
    ``median_area``: their median size in pixels (0 without elements). With ``window`` the statistics
    pool windows of that size tiling ``image``, so elements cut by a window's border count as they do in
    a render of that size (a 64 px render of 20 px dots cuts half of them)."""
    parts = _windows(image, window) if window else [image]
    areas = torch.cat([_element_areas(part, background, threshold) for part in parts])
    areas = areas[areas >= min_area]
    pixels = float(sum(part[0, 0].numel() for part in parts))
    return {"ink": float(areas.sum()) / pixels, "per_kpx": 1000.0 * areas.numel() / pixels,
            "median_area": float(areas.float().median()) if areas.numel() else 0.0}


def density_ratios(output: torch.Tensor, exemplar: torch.Tensor, threshold: float = 0.25,
                   tileable: bool = False) -> dict[str, float]:
    """The render's elements against those of the exemplar's windows of the render's size (1 = the same):
    ink share, elements per pixel, median element size. Elements smaller than a quarter of the exemplar's
    median element are noise, in both. ``tileable``: the render wraps around, so it is measured tiled 2x2
    (an element that crosses its edge is whole there) against windows of that size."""
    if tileable:
        output = output.repeat(1, 1, 2, 2)
    ground = background_colour(exemplar)
    min_area = max(1, int(element_stats(exemplar, ground, threshold)["median_area"] // 4))
    reference = element_stats(exemplar, ground, threshold, min_area, window=tuple(output.shape[-2:]))
    got = element_stats(output, ground, threshold, min_area)
    return {key: got[key] / reference[key] if reference[key] else float("nan") for key in got}


def scatter_elements(image: torch.Tensor, size: tuple[int, int], thinning: float = 2.0, seed: int = 0,
                     gap: int = 2) -> torch.Tensor:
    """A stationary sparse exemplar (1, 3, H, W) of ``size`` (H, W): the whole elements of ``image`` (not cut by
    its border) pasted at seeded random places on its background colour, ``gap`` px apart, as many as give
    ``image``'s elements per pixel over ``thinning`` (2: half as dense). Pasting ``image`` into a larger blank
    canvas instead makes a crop of the canvas a poor sample of it (all dots, or none)."""
    ground = background_colour(image)
    pixels = image.detach().cpu().float()[0]
    labels = element_labels((pixels - ground.view(3, 1, 1)).norm(dim=0) > 0.25)
    h, w = labels.shape
    elements = []
    for label in labels.unique()[1:].tolist():
        ys, xs = (labels == label).nonzero(as_tuple=True)
        y0, y1, x0, x1 = int(ys.min()), int(ys.max()) + 1, int(xs.min()), int(xs.max()) + 1
        if y0 > 0 and x0 > 0 and y1 < h and x1 < w:
            elements.append((labels[y0:y1, x0:x1] == label, pixels[:, y0:y1, x0:x1]))
    if not elements:
        raise ValueError("the image has no whole element on a background to scatter")
    count = round((labels.unique().numel() - 1) * size[0] * size[1] / (h * w) / thinning)
    canvas = ground.view(3, 1, 1).repeat(1, *size)
    taken = torch.zeros(size, dtype=torch.bool)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(count):
        mask, element = elements[int(torch.randint(len(elements), (1,), generator=generator))]
        eh, ew = mask.shape
        for _ in range(500):  # rejection sampling: a free place, or this element is left out
            y = int(torch.randint(gap, max(gap + 1, size[0] - eh - gap + 1), (1,), generator=generator))
            x = int(torch.randint(gap, max(gap + 1, size[1] - ew - gap + 1), (1,), generator=generator))
            if not taken[y - gap : y + eh + gap, x - gap : x + ew + gap].any():
                taken[y : y + eh, x : x + ew] |= mask
                canvas[:, y : y + eh, x : x + ew] = torch.where(mask, element, canvas[:, y : y + eh, x : x + ew])
                break
    return canvas[None]
