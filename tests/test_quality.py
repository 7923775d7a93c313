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
    assert scores[0] < 0.1 and abs(scores[2] - 1.0) < 0.1 and scores[3] > 1.2, scores


@pytest.mark.parametrize("name", sorted(k for k, kind in KINDS.items() if kind.reports_quality))
def test_kinds_that_declare_a_quality_score_report_it(name, vgg, pebbles):
    kind = KINDS[name]
    small = {"size": 32, "iterations": 2, "octaves": 1}
    params = kind.params(**{k: v for k, v in small.items() if k in param_info(kind.params)})
    record = kind.function()({"inputs": [pebbles]}, params, vgg, 0).record
    assert math.isfinite(record["quality"]) and record["quality"] >= 0
