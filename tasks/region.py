"""Known pixels + a synthesized region: the one skeleton behind repair, expand, enhance and mashup.

The image being optimized is the whole canvas, but the loss sees the composite
``where(known, canvas, x)``: the known pixels are constraints, not suggestions (they reach the
output bit for bit), and every loss window that straddles the border sees both, so the synthesized
region is pulled to continue what surrounds it (texturize's repair and expand work the same way;
Gatys' Gram statistics or Li & Wand's patches are the critic). Coarse to fine, like the other
kinds: at a coarse octave only the pixels that are known in full stay fixed.

The critic is a parameter (``loss: gram|mrf``) rather than a kind per pair, because the skeleton,
its inputs and every other parameter are the same for both: one kind per operation keeps the
manifest's vocabulary to what a user wants done.
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn.functional as F

from .common import Objective, seeded_noise, solve_octaves, with_tv
from .imageops import resize, scale_by
from .losses import GramLoss, gram, guided_gram, normalized_weights
from .mrf import MRFLoss, augmented, balanced_octave, resolve_matching
from .params import GATYS_TEXTURE_LAYERS, RegionParams
from .vgg import VGGFeatures


def loss_layers(params: RegionParams) -> list[str]:
    """The layers asked for, else the critic's own: Gatys' five for gram, relu3_1 + relu4_1 for mrf
    (repair: relu1_1..relu4_1, its seam is pixels wide)."""
    return list(params.layers or (GATYS_TEXTURE_LAYERS if params.loss == "gram" else params.mrf_layers))


class Critic:
    """The texture loss against one or more sources, built per octave at that octave's scale."""

    def __init__(self, params: RegionParams, vgg: VGGFeatures, sources: Sequence[torch.Tensor],
                 shares: Sequence[float], full_height: int, seed: int,
                 masks: Optional[Sequence[Optional[torch.Tensor]]] = None) -> None:
        """``masks``: per source, None or (1, 1, h, w) with 1 where it is texture (a repair's own image:
        everything but the hole), so the hole's old content is never a target."""
        self.params, self.vgg, self.seed = params, vgg, seed
        masks = list(masks) if masks is not None else [None] * len(sources)
        used = [i for i, w in enumerate(shares) if w > 0]  # a 0 weight: that source is not used
        self.sources = [sources[i] for i in used]
        self.masks = [masks[i] for i in used]
        self.shares = [shares[i] for i in used]
        self.full_height = full_height
        self.layers = loss_layers(params)
        self.weights = normalized_weights(self.layers, params.layer_weights)
        self.octave = 0
        self.matching = resolve_matching(params.matching, self.sources) if params.loss == "mrf" else None

    def for_octave(self, octave_size: tuple[int, int]):
        """(loss of features, refresh or None). Sources shrink with the octave, so their elements keep
        their size relative to the output."""
        factor = self.params.source_scale * octave_size[0] / self.full_height
        scaled = [scale_by(s, factor, min_side=16) for s in self.sources]
        masks = [None if m is None else scale_by(m.float(), factor, min_side=16) for m in self.masks]
        index, self.octave = self.octave, self.octave + 1
        with torch.no_grad():
            if self.params.loss == "gram":
                total = float(sum(self.shares))
                targets = {layer: 0.0 for layer in self.weights}
                for source, mask, share in zip(scaled, masks, self.shares):
                    feats = self.vgg(source, self.layers)
                    for layer in self.weights:
                        targets[layer] = targets[layer] + share / total * masked_gram(feats[layer], mask)
                return GramLoss(targets, self.weights), None
            feats, owners, copy_masks = [], [], []
            for i, (source, mask) in enumerate(zip(scaled, masks)):
                copies = augmented(source, self.params.rotations, self.params.scales)
                feats += [self.vgg(copy, self.layers) for copy in copies]
                owners += [i] * len(copies)
                copy_masks += augmented(mask, self.params.rotations, self.params.scales) if mask is not None \
                    else [None] * len(copies)
        balanced = balanced_octave(self.matching, index, self.params.octaves)
        shares = [self.shares[i] for i in owners]
        mrf = MRFLoss(feats, self.weights, self.params, self.seed + index, balanced, shares=shares, masks=copy_masks)
        return mrf, mrf.refresh


def masked_gram(features: torch.Tensor, mask: Optional[torch.Tensor]) -> torch.Tensor:
    """The Gram matrix of the positions a mask (1, 1, h, w) keeps, averaged over them (Gatys et al.
    2017's guided Gram matrices, with a hard mask): ``gram`` when there is no mask. The positions
    mostly inside count (a deep layer whose cells all reach out: those the mask touches)."""
    if mask is None:
        return gram(features)
    area = F.interpolate(mask, size=features.shape[-2:], mode="area")
    at_layer = (area >= 0.5).to(features.dtype)
    if at_layer.sum() < 1:  # a deep layer's cells are all partly outside: take those that touch it
        at_layer = (area > 0).to(features.dtype)
    if at_layer.sum() < 1:
        raise ValueError("the source has no texture left outside the region to fill: give a source texture")
    return guided_gram(features, at_layer)


def synthesize(canvas: torch.Tensor, known: torch.Tensor, sources: Sequence[torch.Tensor], shares: Sequence[float],
               params: RegionParams, vgg: VGGFeatures, seed: int, start: Optional[torch.Tensor] = None,
               fidelity: Optional[tuple[torch.Tensor, float]] = None,
               source_masks: Optional[Sequence[Optional[torch.Tensor]]] = None) -> tuple[torch.Tensor, list[dict]]:
    """Fill the pixels of ``canvas`` (1, 3, H, W) where ``known`` (1, 1, H, W, bool) is False so the whole
    matches ``sources`` (blended by ``shares``); return the composite and the octave records.
    ``start``: the first octave's image (default: noise around the known pixels' mean colour).
    ``fidelity`` (low-resolution image, weight): the result, downscaled to that image, must stay close to it
    (enhance: the layout is the input's, the detail is the source's)."""
    device = vgg.device
    canvas, known = canvas.to(device), known.to(device)
    height, width = canvas.shape[-2:]
    critic = Critic(params, vgg, [s.to(device) for s in sources], shares, height, seed,
                    [None if m is None else m.to(device) for m in source_masks] if source_masks else None)
    mean = (canvas * known).sum(dim=(2, 3), keepdim=True) / known.sum().clamp_min(1) if known.any() else \
        torch.stack([s.mean(dim=(2, 3), keepdim=True) for s in sources]).mean(0).to(device)

    def at(octave_size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        if octave_size == (height, width):
            return canvas, known
        # Only the pixels known in full stay fixed at a coarse octave: a blend of known and unknown is free.
        return resize(canvas, octave_size), resize(known.float(), octave_size) >= 0.999

    def init(octave_size: tuple[int, int]) -> torch.Tensor:
        fixed, mask = at(octave_size)
        if start is not None:
            return torch.where(mask, fixed, resize(start.to(device), octave_size))
        # Noise around the colours nearby (a coarse normalized convolution of the known pixels), so the
        # region starts as a smooth continuation of its border rather than of the global mean.
        noise = seeded_noise(seed, octave_size, torch.zeros(1, 3, 1, 1), device, std=INIT_NOISE, clamp=False)
        return torch.where(mask, fixed, (smooth_fill(fixed, mask, mean) + noise).clamp(0, 1))

    def objective_for(octave_size: tuple[int, int]):
        fixed, mask = at(octave_size)
        critic_loss, refresh = critic.for_octave(octave_size)
        scale = octave_size[0] / height
        window = loss_window(mask, max(1, round(WINDOW_MARGIN * scale)))
        top, bottom, left, right = crop_box(window, params.tileable, max(16, round(CONTEXT * scale)))
        if window is not None:
            window = window[..., top:bottom, left:right]

        def loss_of(composite: torch.Tensor) -> torch.Tensor:
            """The critic on the loss window only (the region being made and a thin margin of known pixels,
            so the seam is in the loss; the known pixels further away would only dilute it), its features
            computed with CONTEXT pixels around it, cropped (a small hole costs a small VGG pass)."""
            feats = vgg(composite[..., top:bottom, left:right], critic.layers)
            if isinstance(critic_loss, GramLoss):
                # Over the whole crop, not the window alone: a Gram matrix of the few positions a small
                # hole has at pool4 cannot match one averaged over many, and chasing it drives the pixels
                # to extremes (measured: saturated noise). The crop is mostly the surroundings the
                # source is taken from, so the truth scores near zero.
                return critic_loss(feats)
            return critic_loss(feats, window)
        low = None
        if fidelity is not None:
            target, weight = fidelity
            low_size = (min(octave_size[0], target.shape[-2]), min(octave_size[1], target.shape[-1]))
            low = resize(target.to(device), low_size)
            scale = low.pow(2).mean().clamp_min(1e-8)

        def objective(x: torch.Tensor) -> torch.Tensor:
            composite = torch.where(mask, fixed, x)
            loss = loss_of(composite)
            if low is not None:
                loss = loss + weight * F.mse_loss(resize(composite, tuple(low.shape[-2:])), low) / scale
            return with_tv(loss, composite, params)

        return Objective(objective, refresh)

    image, octaves = solve_octaves(params, vgg, (height, width), init, objective_for,
                                   jitter=params.noise if params.loss == "mrf" else 0.0, seed=seed)
    return torch.where(known, canvas, image.clamp(0, 1)), octaves


# The made region starts from its surroundings plus a little noise: the deep layers the critics use
# barely see pixel noise (avg pooling averages it away), so a noisier start would stay noisy.
INIT_NOISE = 0.02
WINDOW_MARGIN = 4  # known pixels (at full size) around the made region that its loss window takes in
CONTEXT = 32  # pixels around the window that its features see (VGG's receptive field, not zero padding)


def loss_window(known: torch.Tensor, margin: int) -> Optional[torch.Tensor]:
    """Where the critic looks: the unknown pixels grown by ``margin`` (so the windows that straddle the
    border see both sides and the seam is part of the loss); None when nothing is known (all of it)."""
    if bool((~known).all()):
        return None
    grown = F.max_pool2d((~known).float(), kernel_size=2 * margin + 1, stride=1, padding=margin)
    return grown > 0


def crop_box(window: Optional[torch.Tensor], tileable: bool, context: int) -> tuple[int, int, int, int]:
    """(top, bottom, left, right): the window's bounding box grown by ``context`` within the canvas; the
    whole canvas for a tileable result (its wrap-around needs every edge) or without a window."""
    if window is None:
        return 0, None, 0, None
    height, width = window.shape[-2:]
    if tileable:
        return 0, height, 0, width
    rows, cols = window[0, 0].any(dim=1).nonzero(), window[0, 0].any(dim=0).nonzero()
    return (max(0, int(rows.min()) - context), min(height, int(rows.max()) + 1 + context),
            max(0, int(cols.min()) - context), min(width, int(cols.max()) + 1 + context))


def smooth_fill(image: torch.Tensor, known: torch.Tensor, fallback: torch.Tensor) -> torch.Tensor:
    """Each unknown pixel: the average of the known pixels around it, from a pyramid of normalized
    convolutions (coarser where the nearest known pixels are farther); ``fallback`` where none are."""
    height, width = image.shape[-2:]
    weight = known.to(image.dtype)
    filled, have = torch.zeros_like(image), torch.zeros_like(weight)
    side = min(height, width)
    while side >= 2:
        small = (max(1, round(height * side / min(height, width))), max(1, round(width * side / min(height, width))))
        total = resize(resize(image * weight, small), (height, width))
        count = resize(resize(weight, small), (height, width))
        fresh = (count > 1e-3) & (have < 0.5)
        filled = torch.where(fresh, total / count.clamp_min(1e-3), filled)
        have = torch.maximum(have, fresh.to(have.dtype))
        side //= 2
    return torch.where(have > 0.5, filled, fallback.expand_as(image)).clamp(0, 1)


def surroundings(known: torch.Tensor) -> torch.Tensor:
    """The known pixels of the crop the critic sees around the region to make: a photo is not one
    texture, so a hole in the sky is filled from the sky around it, not from the whole image, and
    the crop's true content would score near zero."""
    top, bottom, left, right = crop_box(loss_window(known, WINDOW_MARGIN), False, CONTEXT)
    box = torch.zeros_like(known)
    box[..., top:bottom, left:right] = True
    return known & box


def region_record(known: torch.Tensor) -> dict:
    """What was kept and what was made: pixel counts and the made region's bounding box [x0, y0, x1, y1]."""
    made = ~known[0, 0]
    rows, cols = made.any(dim=1).nonzero(), made.any(dim=0).nonzero()
    box = [int(cols.min()), int(rows.min()), int(cols.max()) + 1, int(rows.max()) + 1] if made.any() else None
    return {"kept_pixels": int(known.sum()), "made_pixels": int(made.sum()), "made_box": box,
            "kept_share": round(float(known.float().mean()), 4)}
