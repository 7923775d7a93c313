"""Gatys et al.: texture synthesis (2015) and style transfer (2016) by optimizing pixels so that
Gram matrices of VGG19 features match the exemplar's, coarse to fine."""
from __future__ import annotations

from typing import Sequence

import torch

from .common import Stopwatch, TaskOutput, base_record, seeded_noise, solve_octaves, with_tv
from .imageops import keep_colors, resize, scale_by, scale_to_long_side
from .losses import ContentLoss, GramLoss, normalized_weights
from .params import StyleParams, TextureParams, parse_size
from .vgg import VGGFeatures


def texture(inputs: dict[str, Sequence[torch.Tensor]], params: TextureParams, vgg: VGGFeatures, seed: int) -> TaskOutput:
    """Synthesize a texture of ``params.size`` from the exemplar ``inputs['inputs'][0]``."""
    clock = Stopwatch()
    device = vgg.device
    exemplar = inputs["inputs"][0].to(device)
    size = parse_size(params.size)
    weights = normalized_weights(params.layers, params.layer_weights)

    def objective_for(octave_size: tuple[int, int]):
        # The exemplar shrinks with the octave so texture elements keep their size relative to the output.
        factor = params.exemplar_scale * octave_size[0] / size[0]
        with torch.no_grad():  # targets from the exemplar as a photo: zero padding, not circular
            gram_loss = GramLoss.from_features([vgg(scale_by(exemplar, factor, min_side=16), params.layers)], weights)
        return lambda x: with_tv(gram_loss(vgg(x, params.layers)), x, params)

    mean = exemplar.mean(dim=(2, 3), keepdim=True)
    image, octaves = solve_octaves(params, vgg, size, lambda s: seeded_noise(seed, s, mean, device), objective_for)
    return TaskOutput([image.cpu()], base_record(octaves, device, clock.seconds))


def style(inputs: dict[str, Sequence[torch.Tensor]], params: StyleParams, vgg: VGGFeatures, seed: int) -> TaskOutput:
    """Render ``inputs['content'][0]`` in the style of ``inputs['style']`` (blended when several)."""
    clock = Stopwatch()
    device = vgg.device
    content = inputs["content"][0].to(device)
    styles = [s.to(device) for s in inputs["style"]]
    if not styles:
        raise ValueError("style transfer needs at least one style image")
    size = parse_size(params.size, aspect_from=tuple(content.shape[-2:]))
    style_w = normalized_weights(params.style_layers, params.style_layer_weights)
    layers = list(dict.fromkeys([*params.style_layers, params.content_layer]))
    if params.init not in ("content", "noise"):
        raise ValueError(f"init must be 'content' or 'noise', not {params.init!r}")

    def objective_for(octave_size: tuple[int, int]):
        style_side = max(16, round(params.style_scale * max(octave_size)))
        with torch.no_grad():
            content_feats = vgg(resize(content, octave_size), [params.content_layer])
            style_feats = [vgg(scale_to_long_side(s, style_side), params.style_layers) for s in styles]
        content_loss = ContentLoss(params.content_layer, content_feats[params.content_layer])
        gram_loss = GramLoss.from_features(style_feats, style_w, blend=params.style_weights)

        def objective(x: torch.Tensor) -> torch.Tensor:
            feats = vgg(x, layers)
            loss = params.content_weight * content_loss(feats) + params.style_weight * gram_loss(feats)
            return with_tv(loss, x, params)

        return objective

    def init(octave_size: tuple[int, int]) -> torch.Tensor:
        if params.init == "content":
            return resize(content, octave_size)
        return seeded_noise(seed, octave_size, content.mean(dim=(2, 3), keepdim=True), device)

    image, octaves = solve_octaves(params, vgg, size, init, objective_for)
    if params.preserve_colors:
        image = keep_colors(image, content)
    return TaskOutput([image.cpu()], base_record(octaves, device, clock.seconds))
