"""The texture operations beyond synthesis from scratch (texturize's repair, expand, enhance and
mashup), each a thin setup of tasks/region.py's skeleton: which pixels are known, where they sit on
the canvas, and which sources the rest is made from."""
from __future__ import annotations

from typing import Sequence

import torch

from .common import Stopwatch, TaskOutput, base_record, seeded_noise, with_quality
from .imageops import resize
from .kinds.enhance import EnhanceParams
from .kinds.expand import ExpandParams
from .kinds.mashup import MashupParams
from .kinds.repair import RepairParams
from .params import parse_size
from .region import region_record, smooth_fill, surroundings, synthesize
from .vgg import VGGFeatures


def _size_text(image: torch.Tensor) -> str:
    return f"{image.shape[-1]}x{image.shape[-2]}"


def repair(inputs: dict[str, Sequence[torch.Tensor]], params: RepairParams, vgg: VGGFeatures, seed: int) -> TaskOutput:
    """Fill the region a mask marks (dark pixels of ``inputs['mask']``, else alpha below the threshold)
    from ``inputs['source']`` (default: the rest of the image itself); every other pixel is kept."""
    clock = Stopwatch()
    given = inputs["inputs"][0]
    image = given[:, :3]
    if inputs.get("mask"):
        mask = inputs["mask"][0][:, :3]
        if mask.shape[-2:] != image.shape[-2:]:
            raise ValueError(f"the mask is {_size_text(mask)} but the image is {_size_text(image)}: give a mask of "
                             "the image's size (dark = fill, light = keep)")
        known = mask.mean(dim=1, keepdim=True) >= params.mask_threshold
    elif given.shape[1] == 4:
        known = given[:, 3:] >= params.mask_threshold
    else:
        raise ValueError("nothing says what to fill: give a mask image (`mask:` in a manifest, --mask on the "
                         "command line; dark = fill) or an image with transparency (alpha 0 where to fill)")
    if bool(known.all()):
        raise ValueError("the mask leaves nothing to fill (every pixel is kept): dark pixels mark the region "
                         "to fill")
    if not bool(known.any()):
        raise ValueError("the mask marks the whole image to fill: nothing is kept; use the `texture` kind for a "
                         "texture from scratch")
    sources = [s[:, :3] for s in inputs.get("source") or []]
    masks = [None] * len(sources)
    if not sources:  # the image is its own source: the pixels around the hole, never its old content
        sources, masks = [torch.where(known, image, smooth_fill(image, known, image.mean(dim=(2, 3), keepdim=True)))], \
            [surroundings(known)]
    result, octaves = synthesize(image, known, sources, [1.0] * len(sources), params, vgg, seed,
                                 source_masks=masks)
    record = base_record(octaves, vgg.device, clock.seconds)
    record.update(region_record(known.cpu()))
    return TaskOutput([result.cpu()], record)


def anchored_box(canvas: tuple[int, int], image: tuple[int, int], anchor: str) -> tuple[int, int]:
    """(top, left) of an image (H, W) placed on a canvas (H, W) at ``anchor`` (center, top-left, ...)."""
    (ch, cw), (ih, iw) = canvas, image
    top = 0 if anchor.startswith("top") else ch - ih if anchor.startswith("bottom") else (ch - ih) // 2
    left = 0 if anchor.endswith("left") else cw - iw if anchor.endswith("right") else (cw - iw) // 2
    return top, left


def expand(inputs: dict[str, Sequence[torch.Tensor]], params: ExpandParams, vgg: VGGFeatures, seed: int) -> TaskOutput:
    """Place the image on a canvas of ``params.size`` at ``params.anchor`` and synthesize the rest from
    ``inputs['source']`` (default: the image). Tileable with ``tileable: true``."""
    clock = Stopwatch()
    image = inputs["inputs"][0][:, :3]
    height, width = parse_size(params.size)
    ih, iw = image.shape[-2:]
    if height < ih or width < iw:
        raise ValueError(f"size {width}x{height} is smaller than the image ({iw}x{ih}): expand grows an image; "
                         "give a size at least as large in both directions")
    if (height, width) == (ih, iw):
        raise ValueError(f"size {width}x{height} is the image's own size: nothing to synthesize")
    top, left = anchored_box((height, width), (ih, iw), params.anchor)
    canvas = torch.zeros(1, 3, height, width)
    known = torch.zeros(1, 1, height, width, dtype=torch.bool)
    canvas[..., top : top + ih, left : left + iw] = image
    known[..., top : top + ih, left : left + iw] = True
    sources = [s[:, :3] for s in inputs.get("source") or []] or [image]
    result, octaves = synthesize(canvas, known, sources, [1.0] * len(sources), params, vgg, seed)
    record = base_record(octaves, vgg.device, clock.seconds)
    record.update(region_record(known), anchor_box=[left, top, left + iw, top + ih])
    return TaskOutput([result.cpu()], record)


def enhance(inputs: dict[str, Sequence[torch.Tensor]], params: EnhanceParams, vgg: VGGFeatures, seed: int) -> TaskOutput:
    """Upscale by ``params.zoom``: the layout is the input's (the result, downscaled, matches it), the
    fine detail comes from ``inputs['source']`` at its native scale (default: the input itself)."""
    clock = Stopwatch()
    image = inputs["inputs"][0][:, :3]
    ih, iw = image.shape[-2:]
    size = (ih * params.zoom, iw * params.zoom)
    if min(size) < 16:
        raise ValueError(f"{iw}x{ih} x{params.zoom} is under 16 px: VGG19 needs at least 16x16")
    sources = [s[:, :3] for s in inputs.get("source") or []] or [image]
    upscaled = resize(image, size)
    # Native scale (source_scale 1 at the finest octave): the source's pixels map onto the output's, so
    # its detail is invented at the new resolution rather than magnified with the layout.
    start = (upscaled + seeded_noise(seed, size, torch.zeros(1, 3, 1, 1), image.device, std=0.03,
                                     clamp=False)).clamp(0, 1)
    known = torch.zeros(1, 1, *size, dtype=torch.bool)
    result, octaves = synthesize(upscaled, known, sources, [1.0] * len(sources), params, vgg, seed, start=start,
                                 fidelity=(image, params.fidelity_weight))
    record = base_record(octaves, vgg.device, clock.seconds)
    record.update(zoom=params.zoom, input_size=[iw, ih])
    return TaskOutput([result.cpu()], record)


def mashup(inputs: dict[str, Sequence[torch.Tensor]], params: MashupParams, vgg: VGGFeatures, seed: int) -> TaskOutput:
    """One texture of ``params.size`` from every exemplar in ``inputs['inputs']``, blended by ``weights``."""
    clock = Stopwatch()
    exemplars = [e[:, :3] for e in inputs["inputs"]]
    weights = list(params.exemplar_weights) if params.exemplar_weights is not None else [1.0] * len(exemplars)
    if len(weights) != len(exemplars):
        raise ValueError(f"{len(weights)} weights for {len(exemplars)} exemplars: give one weight per exemplar")
    if sum(weights) <= 0:
        raise ValueError("the weights must not all be 0")
    height, width = parse_size(params.size)
    known = torch.zeros(1, 1, height, width, dtype=torch.bool)
    result, octaves = synthesize(torch.zeros(1, 3, height, width), known, exemplars, weights, params, vgg, seed)
    record = base_record(octaves, vgg.device, clock.seconds)
    record.update(exemplar_weights=weights)  # not `weights`: that is the VGG weights id of every record
    heaviest = exemplars[max(range(len(weights)), key=weights.__getitem__)]
    return TaskOutput([result.cpu()], with_quality(record, result, heaviest.to(result.device), params.source_scale))
