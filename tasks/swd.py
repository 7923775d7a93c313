"""Sliced-Wasserstein texture synthesis (Heitz, Vanderhaeghe, Chen, Lischinski, 2021, "A Sliced
Wasserstein Loss for Neural Texture Synthesis"): instead of matching Gram matrices (second moments),
match the full distribution of each layer's features, compared along random 1-D projections where
optimal transport is a sort."""
from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn.functional as F

from .common import (Objective, Stopwatch, TaskOutput, base_record, network_padding, seeded_noise, solve_octaves,
                     with_quality, with_tv)
from .gatys import content_key
from .imageops import scale_by
from .kinds.swd import SWDParams
from .losses import normalized_weights
from .params import parse_size
from .vgg import VGGFeatures


class SlicedWassersteinLoss:
    """Per layer: project the (C, N) features on K random unit directions, sort each projection, and
    compare with the exemplar's sorted projections (resampled to N values when the sizes differ).
    Each layer's term is divided by its target's variance so layers weigh as their weights say.
    ``refresh()`` draws new directions (seeded): between refreshes the loss is a fixed function."""

    def __init__(self, exemplar_features: dict[str, torch.Tensor], weights: dict[str, float],
                 directions: Optional[int], seed: int) -> None:
        self.targets = {name: exemplar_features[name][0].flatten(1) for name in weights}  # (C, M)
        self.weights = weights
        self.count = directions
        self.generator = torch.Generator().manual_seed(seed)
        self.refresh()

    def refresh(self) -> None:
        self.directions, self.sorted_targets, self.scale = {}, {}, {}
        for name, target in self.targets.items():
            channels = target.shape[0]
            d = torch.randn(channels, self.count or channels, generator=self.generator)  # on the CPU: any device alike
            d = (d / d.norm(dim=0, keepdim=True)).to(target.device, target.dtype)
            projected = (d.T @ target).sort(dim=1).values  # (K, M)
            self.directions[name], self.sorted_targets[name] = d, projected
            self.scale[name] = float(projected.var()) + 1e-8

    def per_image(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
        total = 0.0
        for name, weight in self.weights.items():
            x = features[name].flatten(2)  # (B, C, N)
            projected = torch.einsum("ck,bcn->bkn", self.directions[name], x).sort(dim=2).values
            target = self.sorted_targets[name]
            if target.shape[1] != projected.shape[2]:  # quantiles of the exemplar at the output's count
                target = F.interpolate(target[None], size=projected.shape[2], mode="linear",
                                       align_corners=True)[0]
            total = total + weight * ((projected - target) ** 2).mean(dim=(1, 2)) / self.scale[name]
        return total


def swd_texture(inputs: dict[str, Sequence[torch.Tensor]], params: SWDParams, vgg: VGGFeatures,
                seed: int) -> TaskOutput:
    """A texture of ``params.size`` whose VGG19 feature distributions match the exemplar's."""
    clock = Stopwatch()
    device = vgg.device
    exemplar = inputs["inputs"][0].to(device)
    size = parse_size(params.size)
    weights = normalized_weights(params.layers, params.layer_weights)
    key = content_key(exemplar)

    def objective_for(octave_size: tuple[int, int]) -> Objective:
        factor = params.exemplar_scale * octave_size[0] / size[0]

        padding = network_padding(params)

        def targets() -> dict[str, torch.Tensor]:
            # Under the render's padding, as for Gatys (tasks/gatys.py): with random weights a zero-padded
            # exemplar's border response is a large part of its deep features' distribution.
            with torch.no_grad(), vgg.padding(padding):
                return vgg(scale_by(exemplar, factor, min_side=16), params.layers)

        features = vgg.cached(("features", key, factor, padding, tuple(params.layers)), targets)
        loss = SlicedWassersteinLoss(features, weights, params.directions, seed)
        return Objective(lambda x: with_tv(loss.per_image(vgg(x, params.layers)), x, params), loss.refresh)

    mean = exemplar.mean(dim=(2, 3), keepdim=True)
    image, octaves = solve_octaves(params, vgg, size, lambda s: seeded_noise(seed, s, mean, device), objective_for)
    record = base_record(octaves, device, clock.seconds)
    return TaskOutput([image.cpu()], with_quality(record, image, exemplar, params.exemplar_scale))
