"""Gatys et al.: texture synthesis (2015) and style transfer (2016) by optimizing pixels so that
Gram matrices of VGG19 features match the exemplar's, coarse to fine."""
from __future__ import annotations

import hashlib
from typing import Sequence

import torch

from .common import (Stopwatch, TaskOutput, base_record, network_padding, seeded_noise, solve_octaves, with_quality,
                     with_tv)
from .imageops import keep_colors, resize, scale_by, scale_to_long_side
from .losses import ContentLoss, GramLoss, GuidedGramLoss, gram, gram_at_tap, normalized_weights
from .params import parse_size
from .semantic import semantic_maps
from .kinds.style import StyleParams
from .kinds.texture import TextureParams
from .vgg import VGGFeatures


def content_key(image: torch.Tensor) -> str:
    """A key for caching what is derived from an image: the hash of its pixels."""
    return hashlib.sha1(image.detach().cpu().contiguous().numpy().tobytes()).hexdigest()


def texture_batch(inputs: dict[str, Sequence[torch.Tensor]], params: TextureParams, vgg: VGGFeatures,
                  seeds: Sequence[int]) -> list[TaskOutput]:
    """One texture per seed from the exemplar ``inputs['inputs'][0]``, optimized together: one VGG
    pass serves the whole batch and the Gram losses stay per image. With L-BFGS the batch shares
    one line-search step, so a batched image is not bit-identical to a one-at-a-time render."""
    clock = Stopwatch()
    device = vgg.device
    exemplar = inputs["inputs"][0].to(device)
    size = parse_size(params.size)
    weights = normalized_weights(params.layers, params.layer_weights)
    key = content_key(exemplar)

    def objective_for(octave_size: tuple[int, int]):
        # The exemplar shrinks with the octave so texture elements keep their size relative to the output.
        factor = params.exemplar_scale * octave_size[0] / size[0]

        padding = network_padding(params)

        def targets() -> GramLoss:
            # The exemplar's Gram matrices under the render's padding: with random weights the padding's
            # response dominates the deep layers' Grams (a zero-padded exemplar against a circular render:
            # a loss of 1.9 where two noise images differ by 0.005), and a tileable render that chased the
            # zero-padded targets rose in loss and kept patches of its start (issue 25).
            with torch.no_grad(), vgg.padding(padding):
                feats = vgg(scale_by(exemplar, factor, min_side=16), params.layers)
            return GramLoss.from_features([feats], weights)

        gram_loss = vgg.cached(("gram", key, factor, padding, tuple(weights.items())), targets)
        return lambda x: with_tv(gram_loss.per_image_of_grams(vgg(x, params.layers, at_tap=gram_at_tap)), x, params)

    mean = exemplar.mean(dim=(2, 3), keepdim=True)

    def init(octave_size: tuple[int, int]) -> torch.Tensor:
        return torch.cat([seeded_noise(seed, octave_size, mean, device) for seed in seeds])

    images, octaves = solve_octaves(params, vgg, size, init, objective_for)
    seconds = clock.seconds
    outputs = []
    for i, seed in enumerate(seeds):
        per_image = [{**octave, "loss_start": octave["per_image_start"][i], "loss_end": octave["per_image_end"][i]}
                     for octave in octaves]
        record = base_record(per_image, device, seconds)
        record.update(batch=len(seeds), seconds=round(seconds / len(seeds), 4), batch_seconds=seconds)
        with_quality(record, images[i : i + 1], exemplar, params.exemplar_scale)
        outputs.append(TaskOutput([images[i : i + 1].cpu()], record))
    return outputs


def texture(inputs: dict[str, Sequence[torch.Tensor]], params: TextureParams, vgg: VGGFeatures, seed: int) -> TaskOutput:
    """Synthesize a texture of ``params.size`` from the exemplar ``inputs['inputs'][0]``."""
    output = texture_batch(inputs, params, vgg, [seed])[0]
    del output.record["batch_seconds"]
    return output


def style(inputs: dict[str, Sequence[torch.Tensor]], params: StyleParams, vgg: VGGFeatures, seed: int) -> TaskOutput:
    """Render ``inputs['content'][0]`` in the style of ``inputs['style']`` (blended when several)."""
    clock = Stopwatch()
    device = vgg.device
    content = inputs["content"][0].to(device)
    styles = [s.to(device) for s in inputs["style"]]
    if not styles:
        raise ValueError("style transfer needs at least one style image")
    maps = semantic_maps(inputs, styles[0], content)  # region-controlled: target_map is the content's map
    if maps and len(styles) > 1:
        raise ValueError(f"style_map is the map of one style image, and {len(styles)} are given: give one style "
                         "image with its map")
    maps = maps and maps.to(device)
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
        if maps:
            gram_loss = GuidedGramLoss(style_feats[0], maps.style, resize(maps.target, octave_size), style_w)
        else:
            gram_loss = GramLoss.from_features(style_feats, style_w, blend=params.style_weights)

        def objective(x: torch.Tensor) -> torch.Tensor:
            if maps or params.content_layer in params.style_layers:
                feats = vgg(x, layers)
                style = gram_loss(feats)
            else:  # Gram matrices taken at their layers (less memory); the content layer's activation as is
                feats = vgg(x, layers, at_tap=lambda name, f: f if name == params.content_layer else gram(f))
                style = gram_loss.per_image_of_grams(feats).sum()
            loss = params.content_weight * content_loss(feats) + params.style_weight * style
            return with_tv(loss, x, params)

        return objective

    def init(octave_size: tuple[int, int]) -> torch.Tensor:
        if params.init == "content":
            return resize(content, octave_size)
        return seeded_noise(seed, octave_size, content.mean(dim=(2, 3), keepdim=True), device)

    image, octaves = solve_octaves(params, vgg, size, init, objective_for)
    if params.preserve_colors:
        image = keep_colors(image, content)
    record = base_record(octaves, device, clock.seconds)
    if maps:
        record.update(maps.record())
    return TaskOutput([image.cpu()], record)
