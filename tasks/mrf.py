"""Li & Wand 2016 (CNNMRF): texture synthesis and style transfer by matching every k x k patch of
deep features to its nearest exemplar patch, coarse to fine.

The matches are kept fixed for ``check_every`` optimizer iterations and then recomputed (the
reference code re-matches at every evaluation): between re-matches the loss is a smooth quadratic
that L-BFGS handles well, and the costly brute-force search runs ~10x less often.

Departures from the paper: losses are normalized by the target's magnitude (as in tasks/losses);
matching can centre the features and penalize over-used exemplar patches to fight the method's
known weakness, copying one patch over and over.
"""
from __future__ import annotations

import math
from typing import Mapping, Optional, Sequence

import torch
import torch.nn.functional as F
from torchvision.transforms.functional import rotate

from .common import (Objective, Stopwatch, TaskOutput, base_record, seeded_noise, solve_octaves, with_quality,
                     with_tv)
from .imageops import resize, scale_by
from .losses import ContentLoss, normalized_weights
from .params import parse_size
from .kinds.mrf import MRFParams
from .kinds.mrf_style import MRFStyleParams
from .semantic import SemanticMaps, semantic_maps
from .quality import is_sparse
from .patches import balanced_patches, extract_patches, grouped_capacity, nearest_patches, sample_capacity
from .vgg import VGGFeatures


def augmented(exemplar: torch.Tensor, rotations: Sequence[float], scales: Sequence[float]) -> list[torch.Tensor]:
    """Rotated and scaled copies of the exemplar; non-right angles are cropped to the valid middle."""
    out = []
    for scale in scales:
        base = scale_by(exemplar, scale, min_side=16)
        for angle in rotations:
            if angle % 90 == 0:
                out.append(torch.rot90(base, int(angle // 90) % 4, dims=(-2, -1)))
                continue
            turned = rotate(base, float(angle))
            theta = math.radians(angle)
            keep = 1.0 / (abs(math.cos(theta)) + abs(math.sin(theta)))
            h, w = base.shape[-2:]
            ch, cw = max(16, int(h * keep)), max(16, int(w * keep))
            top, left = (h - ch) // 2, (w - cw) // 2
            out.append(turned[..., top : top + ch, left : left + cw])
    return out


class MRFLoss:
    """Relative squared distance between each image patch and its nearest exemplar patch, per layer."""

    def __init__(self, exemplar_features: Sequence[Mapping[str, torch.Tensor]], layer_weights: Mapping[str, float],
                 params: MRFParams, seed: int = 0, balanced: bool = False,
                 shares: Optional[Sequence[float]] = None,
                 masks: Optional[Sequence[Optional[torch.Tensor]]] = None,
                 regions: Optional[Sequence[torch.Tensor]] = None, target_regions: Optional[torch.Tensor] = None,
                 map_weight: float = 0.0) -> None:
        """``shares``: one weight per exemplar (a mashup's blend): each keeps that share of its patches,
        a random subset, relative to the largest share, so the matching draws on them in proportion.
        ``masks``: per exemplar, None or (1, 1, H, W) with 1 where its pixels may be copied (a repair's
        own image: never the hole); only patches mostly inside are kept.
        ``regions``: per exemplar, its semantic map's region masks (1, K, H, W), and ``target_regions``
        the output's (1, K, h, w) (tasks/semantic.py): appended to the patches being matched with
        ``map_weight``, so a patch is taken from the region the output's map asks for."""
        self.params = params
        self.balanced = balanced
        self.layer_weights = dict(layer_weights)
        self.generator = torch.Generator().manual_seed(seed)
        count = len(exemplar_features)
        shares, masks = self._shares(shares, count), list(masks) if masks is not None else [None] * count
        self.target_regions = target_regions
        # Feature patches are unit vectors when matched, so the map's weight means the same whatever
        # the network's activation scale: map patches are scaled so that two patches of one region
        # add ``map_weight`` to their similarity (whose feature part lies in [-1, 1]).
        self.map_scale = map_weight ** 0.5 / params.patch_size
        self.patches, region_keys = {}, {}
        for layer in layer_weights:
            chosen, chosen_regions = [], []
            for i, (f, share, mask) in enumerate(zip(exemplar_features, shares, masks)):
                if min(f[layer].shape[-2:]) < params.patch_size:  # a small copy at a deep layer: no whole patch
                    continue
                patches = extract_patches(f[layer], params.patch_size, params.exemplar_stride)
                keep = self._share(self._inside(patches.shape[0], mask, f[layer]), share)
                chosen.append(patches[keep])
                if regions is not None:
                    chosen_regions.append(self.region_patches(regions[i], f[layer], params.exemplar_stride)[keep])
            if not chosen:
                continue  # this layer has no exemplar patch at this octave: the loss leaves it out
            self.patches[layer] = torch.cat(chosen).detach()
            if regions is not None:
                region_keys[layer] = torch.cat(chosen_regions)
        # Centring by the exemplar's mean patch turns cosine similarity into a correlation. The
        # normalized keys are made once here, not at every match.
        self.centre = {layer: p.mean(dim=0, keepdim=True) if params.center_features else torch.zeros_like(p[:1])
                       for layer, p in self.patches.items()}
        self.keys = {layer: F.normalize(p - self.centre[layer], dim=1) for layer, p in self.patches.items()}
        self.key_regions = region_keys
        for layer, r in region_keys.items():
            self.keys[layer] = torch.cat([self.keys[layer], self.map_scale * r], dim=1)
        self.chunk = params.chunk  # shrinks for good after an out-of-memory retry
        self.last_index: dict[str, torch.Tensor] = {}  # the current matches, kept until refresh()
        self.capacity: dict[str, torch.Tensor] = {}  # balanced matching: uses allowed per exemplar patch

    def region_patches(self, regions: torch.Tensor, features: torch.Tensor, stride: int) -> torch.Tensor:
        """(N, K*k*k): the region masks at the features' resolution, cut into the same patches."""
        at_layer = F.interpolate(regions.to(features.dtype), size=features.shape[-2:], mode="area")
        return extract_patches(at_layer, self.params.patch_size, stride)

    @staticmethod
    def _shares(shares: Optional[Sequence[float]], count: int) -> list[float]:
        if shares is None:
            return [1.0] * count
        top = max(shares)
        return [share / top for share in shares]

    def _inside(self, count: int, mask: Optional[torch.Tensor], features: torch.Tensor) -> torch.Tensor:
        """The indices of the patches to keep: all, or those mostly inside ``mask``."""
        if mask is None:
            return torch.arange(count, device=features.device)
        at_layer = F.interpolate(mask.float(), size=features.shape[-2:], mode="area")
        cover = extract_patches(at_layer, self.params.patch_size, self.params.exemplar_stride)
        inside = cover.amin(dim=1) >= 0.5  # patches mostly made of allowed pixels
        if not inside.any():  # a deep layer's patches all reach out: those centred on allowed pixels
            inside = cover[:, self.params.patch_size ** 2 // 2] >= 0.5
        if not inside.any():
            raise ValueError("no patch of the source lies outside the region to fill: give a source texture")
        return inside.nonzero().squeeze(1)

    def _share(self, index: torch.Tensor, share: float) -> torch.Tensor:
        if share >= 1.0:
            return index
        keep = max(1, round(index.shape[0] * share))
        return index[torch.randperm(index.shape[0], generator=self.generator)[:keep].to(index.device)]

    def refresh(self) -> None:
        """Forget the matches: the next evaluation matches again (E step of an EM-like loop)."""
        self.last_index = {}

    def match(self, layer: str, query: torch.Tensor, query_regions: Optional[torch.Tensor] = None) -> torch.Tensor:
        """The exemplar patch each image patch is pulled towards.

        Balanced (``self.balanced``): an assignment that uses a uniform sample of the exemplar's
        patches, as many as the image has, each once (Gu et al. 2018's feature reshuffle; Kaspar
        et al. 2015 bound occurrences similarly). Nearest matching lets the background of a sparse
        exemplar win every patch and the render goes blank; the sample keeps the exemplar's share
        of each element. It is drawn once per octave: re-matching only rearranges it.

        Nearest (the paper): each patch's most similar exemplar patch; with a repetition penalty,
        a second pass scores every exemplar patch down in proportion to how often the first pass
        used it (both passes see the same image). Its coherent neighbours give cleaner detail
        than a forced assignment, so by default the octaves after the coarsest refine with it.

        With semantic maps (``query_regions``, the output's region patches) the balanced sample is drawn
        per region, as many patches of each region as the output's map gives it."""
        keys = self.keys[layer]
        query = F.normalize(query - self.centre[layer], dim=1)
        if query_regions is not None:
            query = torch.cat([query, self.map_scale * query_regions], dim=1)
        if self.balanced:
            if layer not in self.capacity:
                self.capacity[layer] = self._capacity(layer, query.shape[0], query_regions)
            match = balanced_patches(query, keys, self.capacity[layer], self.chunk, normalized_query=True)
        else:
            match = nearest_patches(query, keys, self.chunk, exemplar_normalized=True, normalized_query=True)
            if self.params.repetition_penalty:
                uses = torch.bincount(match.index, minlength=keys.shape[0]).to(query.dtype)
                expected = query.shape[0] / keys.shape[0]
                penalty = self.params.repetition_penalty * uses / max(expected, 1.0)
                match = nearest_patches(query, keys, match.chunk, penalty, exemplar_normalized=True,
                                        normalized_query=True)
        self.chunk = match.chunk
        self.last_index[layer] = match.index
        return match.index

    def _capacity(self, layer: str, queries: int, query_regions: Optional[torch.Tensor]) -> torch.Tensor:
        if query_regions is None:
            return sample_capacity(queries, self.keys[layer].shape[0], self.generator)
        centre = self.params.patch_size ** 2 // 2
        count = query_regions.shape[1] // self.params.patch_size ** 2
        groups = lambda r: r.reshape(r.shape[0], count, -1)[:, :, centre].argmax(dim=1).cpu()  # noqa: E731
        return grouped_capacity(groups(query_regions), groups(self.key_regions[layer]), self.generator)

    def __call__(self, features: Mapping[str, torch.Tensor], window: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``window`` (1, 1, h, w): only the image patches centred where it is set count (a region being
        made next to known pixels: the known ones would only dilute the loss)."""
        total = 0.0
        used = [layer for layer in self.layer_weights
                if layer in self.patches and min(features[layer].shape[-2:]) >= self.params.patch_size]
        if not used:  # a deep layer of a small (or coarse-octave) image is smaller than one patch
            height, width = next(iter(features.values())).shape[-2:]
            raise ValueError(f"{self.params.patch_size}x{self.params.patch_size} patches of {', '.join(self.layer_weights)} "
                             f"do not fit in an image of this size (features {width}x{height} at "
                             f"{next(iter(features))}): raise `size`, use fewer `octaves`, or add a shallower layer")
        for layer in used:
            weight = self.layer_weights[layer]
            query = extract_patches(features[layer], self.params.patch_size, self.params.stride)
            query_regions = None if self.target_regions is None else \
                self.region_patches(self.target_regions, features[layer], self.params.stride)
            if window is not None:
                at_layer = F.interpolate(window.float(), size=features[layer].shape[-2:], mode="area")
                centre = extract_patches(at_layer, self.params.patch_size, self.params.stride)[:, self.params.patch_size ** 2 // 2]
                query = query[centre > 0]
                query_regions = None if query_regions is None else query_regions[centre > 0]
            with torch.no_grad():
                index = self.last_index.get(layer)
                if index is None:
                    index = self.match(layer, query.detach(), query_regions)
                target = self.patches[layer][index]
            total = total + weight * (query - target).pow(2).sum() / target.pow(2).sum().clamp_min(1e-12)
        return total


def resolve_matching(matching: str, exemplars: Sequence[torch.Tensor]) -> str:
    """``auto``: ``balanced`` for exemplars of elements on a plain ground, else ``balanced-coarsest``.
    On such an exemplar nearest matching at the finer octaves keeps every blob the upsampled start holds
    and sharpens it into an element (bars on white: 4-8x the exemplar's ink), or lets the ground win
    (dots: blank); balanced assignment keeps the elements' share. On a dense texture it forces rare
    patches in and speckles the render (red peppers 0.26 -> 0.56 on the yardstick): docs/quality.md."""
    if matching != "auto":
        return matching
    return "balanced" if all(is_sparse(e) for e in exemplars) else "balanced-coarsest"


def balanced_octave(matching: str, octave: int, octaves: int) -> bool:
    """Whether octave ``octave`` (0 = coarsest) matches by balanced assignment (``matching`` resolved).
    ``balanced-coarsest`` lays the exemplar's elements out at the coarsest octave, in their proportions,
    and the finer octaves refine with nearest matching (measured: docs/quality.md)."""
    if matching == "auto":
        raise ValueError("resolve_matching first: 'auto' depends on the exemplar")
    return matching == "balanced" or (matching == "balanced-coarsest" and octave == 0)


def _exemplar_loss(vgg: VGGFeatures, image: torch.Tensor, params: MRFParams, weights: Mapping[str, float],
                   seed: int, balanced: bool, maps: Optional[SemanticMaps] = None,
                   octave_size: Optional[tuple[int, int]] = None) -> MRFLoss:
    """The MRF loss against ``image`` (scaled for this octave); with ``maps``, its region masks go along
    with every augmented copy and the output's are at ``octave_size``."""
    copies = augmented(image, params.rotations, params.scales)
    with torch.no_grad():
        feats = [vgg(copy, params.layers) for copy in copies]
    if maps is None:
        return MRFLoss(feats, weights, params, seed, balanced)
    style_regions = augmented(resize(maps.style, tuple(image.shape[-2:])), params.rotations, params.scales)
    return MRFLoss(feats, weights, params, seed, balanced, regions=style_regions,
                   target_regions=resize(maps.target, octave_size), map_weight=params.map_weight)


def mrf(inputs: dict[str, Sequence[torch.Tensor]], params: MRFParams, vgg: VGGFeatures, seed: int) -> TaskOutput:
    """Synthesize a texture of ``params.size`` from ``inputs['inputs'][0]`` with the MRF loss."""
    clock = Stopwatch()
    device = vgg.device
    exemplar = inputs["inputs"][0].to(device)
    maps = semantic_maps(inputs, exemplar)  # a doodle: the output follows target_map's regions
    maps = maps and maps.to(device)
    size = parse_size(params.size, aspect_from=tuple(maps.target.shape[-2:]) if maps else None)
    weights = normalized_weights(params.layers, params.layer_weights)
    losses: list[MRFLoss] = []
    matching = resolve_matching(params.matching, [exemplar])

    def objective_for(octave_size: tuple[int, int]):
        factor = params.exemplar_scale * octave_size[0] / size[0]
        balanced = balanced_octave(matching, len(losses), params.octaves)
        loss = _exemplar_loss(vgg, scale_by(exemplar, factor, min_side=16), params, weights, seed + len(losses), balanced,
                              maps, octave_size)
        losses.append(loss)

        return Objective(lambda x: with_tv(loss(vgg(x, params.layers)), x, params), loss.refresh)

    mean = exemplar.mean(dim=(2, 3), keepdim=True)

    def init(octave_size: tuple[int, int]) -> torch.Tensor:
        if maps is None:
            return seeded_noise(seed, octave_size, mean, device, std=0.2)
        noise = seeded_noise(seed, octave_size, torch.zeros_like(mean), device, std=0.2, clamp=False)
        return (maps.region_colours(exemplar, octave_size) + noise).clamp(0, 1)  # noise on the doodle's colours

    image, octaves = solve_octaves(params, vgg, size, init, objective_for, jitter=params.noise, seed=seed)
    record = base_record(octaves, device, clock.seconds)
    record["matching"] = matching
    record["distinct_patches"] = {layer: int(idx.unique().numel()) for layer, idx in losses[-1].last_index.items()}
    record["patch_share"] = {layer: round(int(idx.unique().numel()) / losses[-1].patches[layer].shape[0], 4)
                             for layer, idx in losses[-1].last_index.items()}  # of the exemplar's patches used
    if maps:
        record.update(maps.record())
    return TaskOutput([image.cpu()], with_quality(record, image, exemplar, params.exemplar_scale))


def mrf_style(inputs: dict[str, Sequence[torch.Tensor]], params: MRFStyleParams, vgg: VGGFeatures,
              seed: int) -> TaskOutput:
    """Content loss at ``content_layer`` plus the MRF loss against the style image (the first one)."""
    clock = Stopwatch()
    device = vgg.device
    content = inputs["content"][0].to(device)
    style_image = inputs["style"][0].to(device)
    maps = semantic_maps(inputs, style_image, content)  # region-controlled: target_map is the content's map
    maps = maps and maps.to(device)
    size = parse_size(params.size, aspect_from=tuple(content.shape[-2:]))
    weights = normalized_weights(params.layers, params.layer_weights)
    layers = list(dict.fromkeys([*params.layers, params.content_layer]))

    octave = iter(range(params.octaves))
    matching = resolve_matching(params.matching, [style_image])

    def objective_for(octave_size: tuple[int, int]):
        side = max(octave_size) * params.style_scale
        index = next(octave)
        mrf_loss = _exemplar_loss(vgg, scale_by(style_image, side / max(style_image.shape[-2:]), 16), params, weights,
                                  seed + index, balanced_octave(matching, index, params.octaves),
                                  maps, octave_size)
        with torch.no_grad():
            target = vgg(resize(content, octave_size), [params.content_layer])[params.content_layer]
        content_loss = ContentLoss(params.content_layer, target)

        def objective(x: torch.Tensor) -> torch.Tensor:
            feats = vgg(x, layers)
            loss = params.content_weight * content_loss(feats) + params.style_weight * mrf_loss(feats)
            return with_tv(loss, x, params)

        return Objective(objective, mrf_loss.refresh)

    def init(octave_size: tuple[int, int]) -> torch.Tensor:
        if params.init == "content":
            return resize(content, octave_size)
        return seeded_noise(seed, octave_size, content.mean(dim=(2, 3), keepdim=True), device)

    image, octaves = solve_octaves(params, vgg, size, init, objective_for, jitter=params.noise, seed=seed)
    record = base_record(octaves, device, clock.seconds)
    record["matching"] = matching
    if maps:
        record.update(maps.record())
    return TaskOutput([image.cpu()], record)
