"""Losses on VGG activations. Every loss is normalized by its target's magnitude, so per-layer
weights mean what they say (no layer dominates by sheer activation scale) and ``style_weight`` /
``content_weight`` stay comparable across layers, image sizes and weight files.

Departure from Gatys et al.: the paper weights raw squared Gram differences by 1/(4 N^2 M^2);
we divide by the squared norm of the target Gram instead, which makes the loss scale-free.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import torch


def gram(features: torch.Tensor) -> torch.Tensor:
    """Channel correlation matrices (B, C, C), averaged over positions so size does not matter."""
    b, c, h, w = features.shape
    if b == 1:  # one image: a 2-D matmul takes the transpose as a BLAS flag; bmm's backward copies it
        flat = features.reshape(c, h * w)
        return (flat @ flat.T / (h * w)).unsqueeze(0)
    flat = features.reshape(b, c, h * w)
    return flat @ flat.transpose(1, 2) / (h * w)


def gram_at_tap(name: str, features: torch.Tensor) -> torch.Tensor:
    """``VGGFeatures(..., at_tap=gram_at_tap)``: Gram matrices taken as the forward pass reaches each layer."""
    return gram(features)


def normalized_weights(layers: Sequence[str], weights: Sequence[float] | None) -> dict[str, float]:
    if weights is None:
        weights = [1.0] * len(layers)
    if len(weights) != len(layers):
        raise ValueError(f"{len(weights)} layer weights given for {len(layers)} layers")
    total = float(sum(weights))
    if total <= 0:
        raise ValueError("layer weights must sum to a positive number")
    return {layer: float(w) / total for layer, w in zip(layers, weights)}


class GramLoss:
    """Texture/style loss: relative squared distance between Gram matrices, per layer."""

    def __init__(self, targets: Mapping[str, torch.Tensor], layer_weights: Mapping[str, float]) -> None:
        self.targets = {k: v.detach() for k, v in targets.items()}
        self.norms = {k: v.pow(2).sum(dim=(-1, -2)).clamp_min(1e-12) for k, v in self.targets.items()}
        self.layer_weights = dict(layer_weights)

    @classmethod
    def from_features(
        cls,
        feature_sets: Sequence[Mapping[str, torch.Tensor]],
        layer_weights: Mapping[str, float],
        blend: Sequence[float] | None = None,
    ) -> "GramLoss":
        """Targets from one or more exemplars; several are blended as weighted Gram averages."""
        blend = list(blend) if blend is not None else [1.0] * len(feature_sets)
        total = float(sum(blend))
        targets = {
            layer: sum(w / total * gram(feats[layer]) for w, feats in zip(blend, feature_sets))
            for layer in layer_weights
        }
        return cls(targets, layer_weights)

    @property
    def layers(self) -> list[str]:
        return list(self.layer_weights)

    def per_image(self, features: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Loss of each image in the batch (B,), so batched renders stay independent."""
        return self.per_image_of_grams({layer: gram(features[layer]) for layer in self.layer_weights})

    def per_image_of_grams(self, grams: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """``per_image`` from Gram matrices already taken (``vgg(x, layers, at_tap=gram_at_tap)``)."""
        total = 0.0
        for layer, weight in self.layer_weights.items():
            diff = (grams[layer] - self.targets[layer]).pow(2).sum(dim=(-1, -2))
            total = total + weight * diff / self.norms[layer]
        return total

    def __call__(self, features: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return self.per_image(features).sum()


def guided_gram(features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The Gram matrix of the features weighted by a soft region mask (B, 1, h, w) at their resolution,
    averaged over the region (Gatys et al. 2017's guided Gram matrix)."""
    flat = (features * mask).flatten(2)
    return flat @ flat.transpose(1, 2) / mask.sum().clamp_min(1e-6)


class GuidedGramLoss:
    """Gatys et al. 2017, "Controlling perceptual factors": one Gram matrix per region of a semantic map
    per layer, the image's region r matched to the style image's region r. The maps are downsampled
    to each layer's resolution by area; each region weighs by its share of the output's map, so a
    small region does not pull as hard as the sky."""

    def __init__(self, style_features: Mapping[str, torch.Tensor], style_regions: torch.Tensor,
                 target_regions: torch.Tensor, layer_weights: Mapping[str, float]) -> None:
        self.layer_weights = dict(layer_weights)
        self.target_regions = target_regions
        shares = target_regions.mean(dim=(0, 2, 3))
        self.regions = [r for r in range(target_regions.shape[1]) if shares[r] > 0]  # those the output has
        self.shares = {r: float(shares[r]) for r in self.regions}
        self.targets, self.norms = {}, {}
        for layer in self.layer_weights:
            masks = _at(style_regions, style_features[layer])
            for r in self.regions:
                target = guided_gram(style_features[layer], masks[:, r : r + 1]).detach()
                self.targets[layer, r] = target
                self.norms[layer, r] = target.pow(2).sum(dim=(-1, -2)).clamp_min(1e-12)
        self._masks: dict[tuple, torch.Tensor] = {}

    def __call__(self, features: Mapping[str, torch.Tensor]) -> torch.Tensor:
        total = 0.0
        for layer, weight in self.layer_weights.items():
            shape = tuple(features[layer].shape[-2:])
            if shape not in self._masks:
                self._masks[shape] = _at(self.target_regions, features[layer])
            masks = self._masks[shape]
            for r in self.regions:
                diff = (guided_gram(features[layer], masks[:, r : r + 1]) - self.targets[layer, r]).pow(2)
                total = total + weight * self.shares[r] * (diff.sum(dim=(-1, -2)) / self.norms[layer, r]).sum()
        return total


def _at(regions: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.interpolate(regions.to(features.dtype), size=features.shape[-2:], mode="area")


class ContentLoss:
    """Relative squared distance between activations of the image and the content image."""

    def __init__(self, layer: str, target: torch.Tensor) -> None:
        self.layer = layer
        self.target = target.detach()
        self.norm = self.target.pow(2).mean().clamp_min(1e-12)

    def __call__(self, features: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return (features[self.layer] - self.target).pow(2).mean() / self.norm


def total_variation(image: torch.Tensor, circular: bool = False) -> torch.Tensor:
    """Mean squared difference of neighbouring pixels per image, (B,) (wrapping around when ``circular``)."""
    if circular:
        dx = image - image.roll(1, dims=-1)
        dy = image - image.roll(1, dims=-2)
    else:
        dx = image[..., :, 1:] - image[..., :, :-1]
        dy = image[..., 1:, :] - image[..., :-1, :]
    return dx.pow(2).mean(dim=(1, 2, 3)) + dy.pow(2).mean(dim=(1, 2, 3))


def diversity_loss(features: torch.Tensor) -> torch.Tensor:
    """Ulyanov et al. 2017's diversity term: minus the mean distance from each image's features
    (B, C, H, W) to the closest other image's in the batch, in RMS units per element. Adding it
    with a positive weight pushes a generator's samples apart (against mode collapse); it needs a
    batch of at least 2."""
    flat = features.flatten(1)
    distance = torch.cdist(flat, flat) / flat.shape[1] ** 0.5
    distance = distance + torch.diag(torch.full((flat.shape[0],), float("inf"), device=flat.device))
    return -distance.min(dim=1).values.mean()
