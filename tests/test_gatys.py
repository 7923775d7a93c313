import torch
import torch.nn.functional as F

from tasks.gatys import style, texture
from tasks.imageops import rgb_to_yiq, scale_to_long_side
from tasks.losses import GramLoss, normalized_weights
from tasks.params import GATYS_STYLE_LAYERS
from tasks.kinds.style import StyleParams
from tasks.kinds.texture import TextureParams


def _texture(vgg, exemplar, seed=0, **params):
    return texture({"inputs": [exemplar]}, TextureParams(**params), vgg, seed)


def test_gram_loss_falls_tenfold_on_a_real_texture(vgg, pebbles):
    out = _texture(vgg, pebbles, size=64, iterations=40)
    record = out.record
    assert record["loss_end"] * 10 <= record["loss_start"], record
    assert record["iterations"] == 40 and record["evaluations"] >= 40
    assert out.images[0].shape == (1, 3, 64, 64)
    assert 0.0 <= out.images[0].min() and out.images[0].max() <= 1.0


def test_output_size_is_independent_of_the_exemplar(vgg, pebbles):
    small = F.interpolate(pebbles, size=(40, 48), mode="bilinear")
    out = _texture(vgg, small, size=[96, 64], iterations=6, octaves=2)
    assert out.images[0].shape == (1, 3, 64, 96)  # W=96, H=64, larger than the 48x40 exemplar
    assert [o["size"] for o in out.record["octaves"]] == [[48, 32], [96, 64]]


def test_same_seed_same_image_different_seed_different_image(vgg, pebbles):
    a = _texture(vgg, pebbles, seed=3, size=48, iterations=5).images[0]
    b = _texture(vgg, pebbles, seed=3, size=48, iterations=5).images[0]
    c = _texture(vgg, pebbles, seed=4, size=48, iterations=5).images[0]
    assert torch.equal(a, b)
    assert (a - c).abs().mean() > 0.01


def _seams(image):
    """Wrap-around differences (last column vs first, last row vs first) and the inside ones."""
    img = image[0]
    col_diffs = (img[:, :, 1:] - img[:, :, :-1]).abs().mean(dim=(0, 1))
    row_diffs = (img[:, 1:, :] - img[:, :-1, :]).abs().mean(dim=(0, 2))
    seam_x = (img[:, :, 0] - img[:, :, -1]).abs().mean()
    seam_y = (img[:, 0, :] - img[:, -1, :]).abs().mean()
    return seam_x, seam_y, col_diffs, row_diffs


def test_tileable_texture_has_no_seam_when_wrapped(vgg, pebbles):
    image = _texture(vgg, pebbles, size=64, iterations=40, tileable=True).images[0]
    seam_x, seam_y, cols, rows = _seams(image)
    # The wrap-around steps lie within the range of the steps inside the image, near the typical one.
    assert seam_x <= cols.max() and seam_y <= rows.max(), (seam_x, seam_y, cols.max(), rows.max())
    assert (seam_x + seam_y) / 2 <= 1.5 * torch.cat([cols, rows]).median()
    # The measure does tell: without `tileable` the wrapped edges are a visible seam.
    plain_x, plain_y, plain_cols, _ = _seams(_texture(vgg, pebbles, size=64, iterations=40).images[0])
    assert plain_x > plain_cols.max() and (plain_x + plain_y) > 1.3 * (seam_x + seam_y)


def test_an_absurd_step_scale_still_converges(vgg, pebbles):
    # A first trial step a million times too long: the line search backs off from it (a loss that
    # breaks down altogether is rolled back: tests/test_lbfgs.py).
    record = _texture(vgg, pebbles, size=48, iterations=30, lr=1e6).record
    assert torch.isfinite(torch.tensor(record["loss_end"]))
    assert record["loss_end"] < record["loss_start"] / 2


def _edges(image):
    gray = image.mean(dim=1, keepdim=True)
    kx = torch.tensor([[-1.0, 0, 1], [-2, 0, 2], [-1, 0, 1]]).view(1, 1, 3, 3)
    gx, gy = F.conv2d(gray, kx, padding=1), F.conv2d(gray, kx.transpose(2, 3), padding=1)
    return (gx.pow(2) + gy.pow(2)).sqrt()[..., 2:-2, 2:-2].flatten()


def _corr(a, b):
    return torch.corrcoef(torch.stack([a, b]))[0, 1].item()


def _style_gram_loss(vgg, image, style_image):
    weights = normalized_weights(GATYS_STYLE_LAYERS, None)
    with torch.no_grad():
        side = max(image.shape[-2:])
        target = GramLoss.from_features([vgg(scale_to_long_side(style_image, side), GATYS_STYLE_LAYERS)], weights)
        return target(vgg(image, GATYS_STYLE_LAYERS)).item()


def test_style_transfer_keeps_structure_and_moves_to_the_style(vgg, content_image, starry):
    params = dict(size=96, iterations=40)
    out = style({"content": [content_image], "style": [starry]}, StyleParams(**params), vgg, 0).images[0]
    content = F.interpolate(content_image, size=out.shape[-2:], mode="bilinear", antialias=True)
    textured = _texture(vgg, starry, size=list(out.shape[-2:][::-1]), iterations=40).images[0]
    content_edges = _edges(content)
    assert _corr(_edges(out), content_edges) > _corr(_edges(textured), content_edges) + 0.3
    assert _style_gram_loss(vgg, out, starry) < 0.5 * _style_gram_loss(vgg, content, starry)


def test_the_style_random_weights_preset_moves_closer_to_each_style_and_keeps_the_content(vgg, content_image, starry):
    """Issue 25: with random weights the style defaults draw the zero padding's frame and rainbow speckle;
    the preset (reflect padding, smoothing) scores closer to the style on the yardstick (64 px, 40
    iterations: starry_night 0.15 -> 0.10, cezanne 0.72 -> 0.60) and keeps the content's edges."""
    from tasks.imageio import load_image
    from tasks.kinds.style import KIND
    from tasks.quality import texture_score
    from tests.conftest import DATA

    cezanne = load_image(str(DATA / "styles" / "cezanne.jpg"))
    for style_image in (starry, cezanne):
        scores, corrs = [], []
        for extra in ({}, KIND.preset("random-weights")):
            out = style({"content": [content_image], "style": [style_image]},
                        StyleParams(size=64, iterations=40, **extra), vgg, 0).images[0]
            content = F.interpolate(content_image, size=out.shape[-2:], mode="bilinear", antialias=True)
            scores.append(texture_score(out, scale_to_long_side(style_image, max(out.shape[-2:]))))
            corrs.append(_corr(_edges(out), _edges(content)))
        assert scores[1] < 0.92 * scores[0], (scores, corrs)
        assert corrs[1] > corrs[0] - 0.1, (scores, corrs)


def test_preserve_colors_keeps_the_content_colours(vgg, content_image, starry):
    inputs = {"content": [content_image], "style": [starry]}
    kept = style(inputs, StyleParams(size=64, iterations=20, preserve_colors=True), vgg, 0).images[0]
    free = style(inputs, StyleParams(size=64, iterations=20), vgg, 0).images[0]
    content = F.interpolate(content_image, size=kept.shape[-2:], mode="bilinear", antialias=True)

    def chroma_histogram(image):
        iq = rgb_to_yiq(image)[0, 1:]
        return torch.stack([torch.histc(channel, bins=16, min=-0.6, max=0.6) for channel in iq]) / iq[0].numel()

    kept_distance = (chroma_histogram(kept) - chroma_histogram(content)).abs().sum()
    free_distance = (chroma_histogram(free) - chroma_histogram(content)).abs().sum()
    assert kept_distance < 0.5 * free_distance, (kept_distance, free_distance)


def test_several_styles_blend(vgg, content_image, starry, pebbles):
    inputs = {"content": [content_image], "style": [starry, pebbles]}
    only_starry = style(inputs, StyleParams(size=48, iterations=15, style_weights=[1.0, 0.0]), vgg, 0).images[0]
    only_pebbles = style(inputs, StyleParams(size=48, iterations=15, style_weights=[0.0, 1.0]), vgg, 0).images[0]
    assert _style_gram_loss(vgg, only_starry, starry) < _style_gram_loss(vgg, only_pebbles, starry)
    assert _style_gram_loss(vgg, only_pebbles, pebbles) < _style_gram_loss(vgg, only_starry, pebbles)


def test_batched_textures_optimize_together_with_losses_per_image(vgg, pebbles):
    from tasks.gatys import texture_batch

    outputs = texture_batch({"inputs": [pebbles]}, TextureParams(size=48, iterations=20), vgg, [0, 1, 2])
    assert len(outputs) == 3
    for out in outputs:
        assert out.images[0].shape == (1, 3, 48, 48) and out.record["batch"] == 3
        assert out.record["loss_end"] < 0.2 * out.record["loss_start"]
    assert (outputs[0].images[0] - outputs[1].images[0]).abs().mean() > 0.01
    # Each image starts from its own seed's noise: the same start as a one-at-a-time render.
    alone = texture({"inputs": [pebbles]}, TextureParams(size=48, iterations=20), vgg, 1)
    assert abs(alone.record["loss_start"] - outputs[1].record["loss_start"]) < 1e-4 * alone.record["loss_start"]


def test_exemplar_targets_are_computed_once_per_network(vgg, pebbles):
    exemplar = pebbles.flip(-1) * 0.97  # an exemplar no other test has used
    before = len(vgg._cache)
    _texture(vgg, exemplar, seed=0, size=64, iterations=1, octaves=2)
    added = len(vgg._cache) - before
    _texture(vgg, exemplar, seed=1, size=64, iterations=1, octaves=2)
    assert added == 2 and len(vgg._cache) - before == 2  # one entry per octave, reused by the next seed


def test_the_record_says_where_a_renders_time_went(vgg, pebbles):
    """Issue 27: a breakdown of every render (objective set-up, optimization, quality score)."""
    record = texture({"inputs": [pebbles]}, TextureParams(size=32, iterations=4, octaves=2), vgg, 5).record
    parts = record["setup_seconds"] + record["optimize_seconds"]
    # set-up may round to 0: the exemplar's Gram targets are cached per network (another test made them)
    assert record["optimize_seconds"] > 0 and record["setup_seconds"] >= 0 and record["quality_seconds"] > 0
    assert parts <= record["seconds"] and all("optimize_seconds" in o for o in record["octaves"])


def test_a_tileable_texture_matches_its_exemplar_like_a_plain_one(vgg, pebbles):
    """Issue 25: the exemplar's Gram targets were taken with zero padding while a tileable render runs
    with circular padding; with random weights the padding's response dominates the deep layers' Grams,
    so the loss rose (water 96 px: 0.052 -> 0.061) and the render kept grey patches of its start (quality
    1.77 against 0.22 untiled). The targets now use the render's padding."""
    exemplar = F.interpolate(pebbles, size=(96, 96), mode="area")
    plain = _texture(vgg, exemplar, size=64, iterations=60).record
    tiled = _texture(vgg, exemplar, size=64, iterations=60, tileable=True).record
    assert tiled["loss_end"] * 5 < tiled["loss_start"], tiled
    assert tiled["quality"] < 1.5 * plain["quality"] + 0.05, (tiled["quality"], plain["quality"])


def test_the_random_weights_preset_beats_the_defaults_on_the_shipped_textures(vgg):
    """Issue 25: with random weights the defaults paint the zero padding's response as a frame round a
    washed-out middle; the preset (circular padding) scores 2-5x better on the yardstick (80 px, 60
    iterations: pebbles 0.16 -> 0.08, red peppers 0.28 -> 0.14, water 0.48 -> 0.10). Dots at this size is a
    coin toss either way (docs/quality.md), so it is measured in the docs, not here."""
    from tasks.imageio import load_image
    from tasks.kinds.texture import KIND
    from tests.conftest import DATA

    for name in ("pebbles.jpg", "red_peppers.jpg", "water.jpg"):
        exemplar = scale_to_long_side(load_image(str(DATA / "textures" / name)), 128)
        default = _texture(vgg, exemplar, size=80, iterations=60).record["quality"]
        preset = _texture(vgg, exemplar, size=80, iterations=60, **KIND.preset("random-weights")).record["quality"]
        assert preset < 0.7 * default, (name, preset, default)
