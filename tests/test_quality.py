"""The network-free quality yardstick and the kinds that report it."""
import math

import pytest
import torch
import torch.nn.functional as F

from tasks.kind import param_info
from tasks.quality import matched_noise, texture_score
from tasks.registry import KINDS
from tests.conftest import DATA


def test_the_yardstick_ranks_copies_blur_noise_and_flat_images(pebbles):
    h, w = pebbles.shape[-2:]
    crop = pebbles[..., h // 4:h // 4 + h // 2, w // 4:w // 4 + w // 2]
    blurred = F.avg_pool2d(F.pad(crop, (2, 2, 2, 2), mode="replicate"), 5, 1)
    noise = matched_noise(pebbles, tuple(crop.shape[-2:]), seed=3)
    flat = crop.mean(dim=(2, 3), keepdim=True).expand_as(crop)
    scores = [texture_score(x, pebbles) for x in (crop, blurred, noise, flat)]
    assert scores == sorted(scores), scores
    # noise is the reference at the pixel scales (1 each) and lacks the exemplar's structure at 18 px
    assert scores[0] < 0.1 and 1.0 < scores[2] < scores[3] and scores[3] > 2, scores


def test_the_yardstick_is_strict_with_blank_and_shuffled_renders_of_a_sparse_texture(dots, pebbles):
    """Issue 25: on a sparse exemplar (dots scattered on white) a blank render scored 1.5, about as well as
    noise, and a crop whose dots were cut into 8 px tiles 0.29; a real crop scores 0.08. Now the reference is
    the better of noise and the flat ground, an 18 px level sees the arrangement, and the ink share and
    element size count."""
    from bench.quality_bench import shuffled_tiles
    from tasks.quality import background_colour, is_sparse, scatter_elements

    exemplar = scatter_elements(F.interpolate(dots, scale_factor=0.5, mode="area"), (256, 256), thinning=2)
    assert is_sparse(exemplar) and not is_sparse(pebbles)
    crop = exemplar[..., 64:192, 64:192]
    blank = background_colour(exemplar).view(1, 3, 1, 1).expand_as(crop)
    real, shuffled, empty = (texture_score(x, exemplar) for x in (crop, shuffled_tiles(crop, 8), blank))
    assert real < 0.3 and shuffled > 3 * real and empty > 4, (real, shuffled, empty)
    h, w = pebbles.shape[-2:]
    crop = pebbles[..., h // 4 : h // 4 + 128, w // 4 : w // 4 + 128]
    real, shuffled = texture_score(crop, pebbles), texture_score(shuffled_tiles(crop, 8), pebbles)
    assert shuffled > 3 * real, (real, shuffled)


@pytest.mark.parametrize("name", sorted(k for k, kind in KINDS.items() if kind.reports_quality))
def test_kinds_that_declare_a_quality_score_report_it(name, vgg, pebbles):
    kind = KINDS[name]
    small = {"size": 32, "iterations": 2, "octaves": 1}
    params = kind.params(**{k: v for k, v in small.items() if k in param_info(kind.params)})
    record = kind.function()({"inputs": [pebbles]}, params, vgg, 0).record
    assert math.isfinite(record["quality"]) and record["quality"] >= 0


def test_copy_distance_is_zero_for_a_crop_and_not_for_a_rearrangement(pebbles):
    from tasks.quality import copy_distance

    exemplar = F.interpolate(pebbles, size=(96, 96), mode="bilinear", antialias=True)
    crop = exemplar[..., 20:84, 10:74]
    quarters = [crop[..., :32, :32], crop[..., :32, 32:], crop[..., 32:, :32], crop[..., 32:, 32:]]
    pasted = torch.cat([torch.cat([quarters[3], quarters[0]], -1), torch.cat([quarters[1], quarters[2]], -1)], -2)
    tiles = crop.unfold(2, 8, 8).unfold(3, 8, 8).reshape(1, 3, 64, 8, 8)[:, :, torch.randperm(64, generator=torch.Generator().manual_seed(0))]
    shuffled = tiles.reshape(1, 3, 8, 8, 8, 8).permute(0, 1, 2, 4, 3, 5).reshape(1, 3, 64, 64)
    assert copy_distance(crop, exemplar) == 0.0
    assert copy_distance(pasted, exemplar) == 0.0  # most windows lie inside a pasted quarter: a copy
    assert copy_distance(shuffled, exemplar) > 2  # 8 px tiles: no 16 px window is intact
    assert math.isnan(copy_distance(torch.ones(1, 3, 64, 64), exemplar))  # only flat windows: nothing to judge


def test_the_shipped_pebbles_carry_no_burnt_in_caption():
    """pebbles.jpg had a yellow "source: Simoncelli" caption in its bottom rows, which every render
    reproduced as yellow specks; the shipped copy is cropped above it."""
    import numpy as np
    from PIL import Image

    pixels = np.asarray(Image.open(DATA / "textures" / "pebbles.jpg").convert("RGB")).astype(int)
    caption_yellow = (pixels[..., 0] > 150) & (pixels[..., 1] > 150) & (pixels[..., 2] < 90)
    assert caption_yellow.sum() == 0  # the caption's letters were 453 such pixels


def test_element_density_counts_elements_not_pixel_noise():
    """Issue 25's measure of a sparse texture: ink share, element count and size against the exemplar's.
    A crop of the exemplar is ~1 on each; a blank render 0; the same blank with salt-and-pepper noise (what
    an unsmoothed render adds) stays near 0, where a plain ink-pixel share counted the noise."""
    from tasks.quality import density_ratios, element_labels

    ink = torch.zeros(6, 8, dtype=torch.bool)
    ink[0:2, 0:2] = ink[3, 3] = ink[4, 4] = ink[0:3, 6] = True  # a square, a diagonal pair, a bar
    labels = element_labels(ink)
    assert len(labels[ink].unique()) == 3 and labels[3, 3] == labels[4, 4] and (labels[~ink] == 0).all()

    g = torch.Generator().manual_seed(0)
    exemplar = torch.ones(1, 3, 128, 128)
    yy, xx = torch.meshgrid(torch.arange(128), torch.arange(128), indexing="ij")
    for _ in range(40):  # magenta dots of radius 3..5 on white
        y, x = torch.randint(6, 122, (2,), generator=g).tolist()
        r = int(torch.randint(3, 6, (1,), generator=g))
        exemplar[0, 1][(yy - y) ** 2 + (xx - x) ** 2 <= r * r] = 0.1
    crop = density_ratios(exemplar[..., 32:96, 32:96], exemplar)
    assert all(0.5 < crop[key] < 2.0 for key in ("ink", "per_kpx", "median_area")), crop
    blank = torch.ones(1, 3, 64, 64)
    assert density_ratios(blank, exemplar)["ink"] == 0
    speckled = blank.clone()
    speckled[0, 1][torch.rand(64, 64, generator=g) < 0.05] = 0.0  # 5 % of pixels: isolated noise
    assert density_ratios(speckled, exemplar)["ink"] < 0.1
