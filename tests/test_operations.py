"""The texture operations (repair, expand, enhance, mashup) on real images from data/, seeded random
VGG19 weights, small sizes: kept pixels are kept bit for bit, made pixels blend in."""

import numpy as np
import pytest
import torch
from PIL import Image

from pipelines.manifest import ManifestError, parse_manifest
from tasks.imageio import decode_image, encode_image, load_image
from tasks.imageops import resize
from tasks.kind import build_params
from tasks.kinds.enhance import EnhanceParams
from tasks.kinds.expand import ExpandParams
from tasks.kinds.mashup import MashupParams
from tasks.kinds.repair import RepairParams
from tasks.operations import enhance, expand, mashup, repair
from tasks.params import REGION_RANDOM_WEIGHTS
from tasks.quality import texture_score
from tests.conftest import DATA, seam_ratio


def _png_roundtrip(image: torch.Tensor) -> torch.Tensor:
    """What a user gets back: the output as stored (8-bit PNG), decoded."""
    return decode_image(encode_image(image))


def _gradient(image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Absolute horizontal and vertical differences, summed over channels."""
    return ((image[..., :, 1:] - image[..., :, :-1]).abs().sum(1)[0],
            (image[..., 1:, :] - image[..., :-1, :]).abs().sum(1)[0])


RANDOM = REGION_RANDOM_WEIGHTS  # the `random-weights` preset: these tests run with seeded random weights


@pytest.fixture(scope="module")
def photo() -> torch.Tensor:
    return resize(load_image(str(DATA / "content" / "golden_gate.jpg")), (48, 64))


def _hole(image: torch.Tensor, top=16, left=24, side=16) -> torch.Tensor:
    mask = torch.ones_like(image)
    mask[..., top : top + side, left : left + side] = 0  # dark = fill
    return mask


# Both critics. MRF with mrf's own matching (balanced, deep layers only) left saturated colour noise in the
# hole: seam 0.64, hole colour off by 0.07; repair's defaults (nearest, relu1_1..relu4_1): 0.12 and 0.03.
@pytest.mark.parametrize("loss", ["gram", "mrf"])
def test_repair_keeps_every_other_pixel_and_the_hole_blends_in(photo, vgg, loss):
    mask = _hole(photo)
    damaged = photo.clone()
    damaged[..., 16:32, 24:40] = 0  # the hole's old content: black, never a target
    params = build_params(RepairParams, {**RANDOM, "iterations": 80, "loss": loss})
    out = repair({"inputs": [damaged], "mask": [mask]}, params, vgg, seed=0)
    result = _png_roundtrip(out.images[0])
    known = mask[:, :1].bool().expand_as(photo)
    assert torch.equal(result[known], _png_roundtrip(damaged)[known])  # bit-identical where kept
    assert out.record["made_pixels"] == 256 and out.record["made_box"] == [24, 16, 40, 32]
    assert out.record["loss_end"] < out.record["loss_start"]
    # The hole's colours are those around it (an 8 px ring), not black, not another palette.
    ring = torch.zeros(48, 64, dtype=torch.bool)
    ring[8:40, 16:48] = True
    ring[16:32, 24:40] = False
    hole = result[0, :, 16:32, 24:40].flatten(1)
    around = result[0][:, ring]
    print("hole mean", hole.mean(1).tolist(), "around", around.mean(1).tolist())
    assert (hole.mean(1) - around.mean(1)).abs().max() < 0.12
    # No seam: the steps across the hole's border are no stronger than the image's own steps.
    dx, dy = _gradient(result)
    seam = torch.cat([dx[16:32, 23], dx[16:32, 39], dy[15, 24:40], dy[31, 24:40]])
    own_x, own_y = _gradient(photo)
    own = torch.cat([own_x.flatten(), own_y.flatten()])
    print(f"seam {seam.mean():.3f}, the image's own steps {own.mean():.3f} (90th percentile {own.quantile(0.9):.3f})")
    assert seam.mean() <= own.quantile(0.9)


def test_repair_reads_the_hole_from_alpha_and_refuses_masks_that_make_no_sense(photo, vgg):
    params = build_params(RepairParams, {"iterations": 5})
    rgba = torch.cat([photo, _hole(photo)[:, :1]], dim=1)  # alpha 0 in the hole
    out = repair({"inputs": [rgba]}, params, vgg, seed=0)
    assert out.record["made_pixels"] == 256 and out.images[0].shape == (1, 3, 48, 64)
    with pytest.raises(ValueError, match="the mask is 32x32 but the image is 64x48"):
        repair({"inputs": [photo], "mask": [torch.zeros(1, 3, 32, 32)]}, params, vgg, seed=0)
    with pytest.raises(ValueError, match="leaves nothing to fill"):
        repair({"inputs": [photo], "mask": [torch.ones_like(photo)]}, params, vgg, seed=0)
    with pytest.raises(ValueError, match="nothing says what to fill"):
        repair({"inputs": [photo]}, params, vgg, seed=0)


def test_expand_keeps_the_crop_in_place_and_the_new_area_is_texture(pebbles, vgg):
    crop = resize(pebbles, (128, 128))[..., 32:96, 32:96]  # 64 px of pebbles at half their native scale
    # One octave: at this size a coarse octave (64 px, the crop 32 px) has too little to go on.
    params = build_params(ExpandParams, {**RANDOM, "size": 128, "iterations": 80, "octaves": 1})
    out = expand({"inputs": [crop]}, params, vgg, seed=0)
    result = _png_roundtrip(out.images[0])
    assert result.shape == (1, 3, 128, 128)
    assert torch.equal(result[..., 32:96, 32:96], _png_roundtrip(crop))  # centred, bit-identical
    assert out.record["anchor_box"] == [32, 32, 96, 96] and out.record["made_pixels"] == 128 * 128 - 64 * 64
    # The new area (the top and bottom bands) against the crop on the project's yardstick (0 = alike, 1 = no
    # better than noise or a blank ground), beside baselines measured here: the crop's colours smeared outwards
    # (what the start is, without a critic) and real pebbles from the same place in the exemplar.
    from tasks.region import smooth_fill

    known = torch.zeros(1, 1, 128, 128, dtype=torch.bool)
    known[..., 32:96, 32:96] = True
    canvas = torch.zeros(1, 3, 128, 128)
    canvas[..., 32:96, 32:96] = crop
    smeared = smooth_fill(canvas, known, crop.mean(dim=(2, 3), keepdim=True))

    def bands(image):
        return torch.cat([image[..., :32, :], image[..., 96:, :]], dim=-2)

    made, smear = texture_score(bands(result), crop), texture_score(bands(smeared), crop)
    real = texture_score(bands(resize(pebbles, (128, 128))), crop)
    print(f"new area {made:.3f}; baselines: smeared crop {smear:.3f}, real pebbles {real:.3f}")
    # Yardstick version 2 (issue 25): made 0.75 with zero padding (a grey frame round the canvas), smeared 2.34,
    # real pebbles 0.15; with the preset's reflect padding made 0.15: like real pebbles.
    assert made < 1.0 and made < smear / 2
    assert made < 2 * real, "the new area should score like real texture, not like a framed smear"


def test_expand_anchors_and_refuses_a_smaller_canvas(pebbles, vgg):
    crop = resize(pebbles, (48, 48))
    params = build_params(ExpandParams, {"size": [96, 64], "anchor": "bottom-right", "iterations": 5})
    result = expand({"inputs": [crop]}, params, vgg, seed=0).images[0]
    assert torch.equal(_png_roundtrip(result)[..., 16:, 48:], _png_roundtrip(crop))
    with pytest.raises(ValueError, match="size 32x32 is smaller than the image"):
        expand({"inputs": [crop]}, build_params(ExpandParams, {"size": 32}), vgg, seed=0)


def test_enhance_keeps_the_layout_and_invents_detail_like_the_source(pebbles, vgg):
    sharp = resize(pebbles, (96, 96))  # the truth at the output's resolution
    small = resize(sharp, (48, 48))
    from tasks.registry import get_kind

    preset = get_kind("enhance").preset("random-weights")
    params = build_params(EnhanceParams, {**preset, "zoom": 2, "iterations": 60, "octaves": 1})
    source = sharp.flip(-1)  # pebbles at the output's pixel scale, not the truth's layout
    out = enhance({"inputs": [small], "source": [source]}, params, vgg, seed=0)
    result = out.images[0]
    assert result.shape == (1, 3, 96, 96)
    assert (resize(result, (48, 48)) - small).abs().mean() < 0.04  # downscaled again: the input's layout

    def detail(image):  # high-frequency energy: mean absolute Laplacian
        kernel = torch.tensor([[0.0, 1, 0], [1, -4, 1], [0, 1, 0]]).expand(3, 1, 3, 3)
        return torch.nn.functional.conv2d(image, kernel, groups=3).abs().mean().item()

    bicubic = torch.nn.functional.interpolate(small, scale_factor=2, mode="bicubic", align_corners=False).clamp(0, 1)
    print(f"detail: truth {detail(sharp):.4f}, enhanced {detail(result):.4f}, bicubic {detail(bicubic):.4f}")
    assert abs(detail(result) - detail(sharp)) < abs(detail(bicubic) - detail(sharp))


def _palette_share(image: torch.Tensor, palettes: list[torch.Tensor]) -> list[float]:
    """Share of the image's pixels nearest to each palette (sets of colours, (3, K))."""
    pixels = image[0].flatten(1).T  # (N, 3)
    distances = torch.stack([torch.cdist(pixels, p.T).min(dim=1).values for p in palettes])
    nearest = distances.argmin(dim=0)
    return [float((nearest == i).float().mean()) for i in range(len(palettes))]


def test_mashup_weights_choose_the_palettes(pebbles, vgg):
    peppers = load_image(str(DATA / "textures" / "red_peppers.jpg"))
    exemplars = [resize(pebbles, (64, 64)), resize(peppers, (64, 64))]
    g = torch.Generator().manual_seed(0)
    palettes = [e[0].flatten(1)[:, torch.randperm(64 * 64, generator=g)[:256]] for e in exemplars]
    shares = {}
    for weights in ([1.0, 0.0], [0.5, 0.5]):
        params = build_params(MashupParams, {**RANDOM, "size": 48, "exemplar_weights": weights, "iterations": 80})
        out = mashup({"inputs": exemplars}, params, vgg, seed=0)
        assert out.images[0].shape == (1, 3, 48, 48)
        shares[tuple(weights)] = _palette_share(out.images[0], palettes)
    print("pixels nearest to pebbles / peppers:", shares)
    assert shares[(1.0, 0.0)][0] > 0.8  # weight 1:0 is a texture of the first alone
    assert min(shares[(0.5, 0.5)]) > 0.15  # 0.5:0.5 holds both palettes


def test_tileable_mashup_and_expand_wrap_around_without_a_seam(pebbles, vgg):
    peppers = load_image(str(DATA / "textures" / "red_peppers.jpg"))
    exemplars = [resize(pebbles, (64, 64)), resize(peppers, (64, 64))]
    seams = {}
    for tileable in (True, False):
        params = build_params(MashupParams, {**RANDOM, "size": 48, "exemplar_weights": [0.5, 0.5], "iterations": 40,
                                             "octaves": 1, "tileable": tileable})
        seams[tileable] = seam_ratio(mashup({"inputs": exemplars}, params, vgg, seed=0).images[0])
    crop = resize(pebbles, (128, 128))[..., 48:80, 48:80]
    # 80 iterations: since the source's targets are taken under the render's circular padding (issue 25) the
    # wrap-around step after 40 reads 1.53 / 1.46 (seeds 0 / 1) against 1.11 / 1.07 after 80; 0.86 at 40 before.
    params = build_params(ExpandParams, {**RANDOM, "size": 64, "iterations": 80, "octaves": 1, "tileable": True})
    expanded = expand({"inputs": [crop]}, params, vgg, seed=0).images[0]
    seams["expand"] = seam_ratio(expanded)
    print("wrap-around seam / inside step:", seams)
    assert seams[True] < 1.5 and seams[True] < seams[False], seams
    assert seams["expand"] < 1.5, seams
    assert torch.equal(_png_roundtrip(expanded)[..., 16:48, 16:48], _png_roundtrip(crop))  # kept, still exact


def test_operations_are_declared_kinds_validated_with_lines(tmp_path):
    image, other = DATA / "textures" / "pebbles.jpg", DATA / "textures" / "red_peppers.jpg"
    path = tmp_path / "ops.yaml"
    path.write_text(f"name: ops\noutput: out\nmodel: {{weights: random}}\njobs:\n"
                    f"  - {{name: e, kind: enhance, inputs: {image}, params: {{zoom: 1}}}}\n"
                    f"  - {{name: m, kind: mashup, inputs: [{image}, {image}], params: {{source_scale: 0}}}}\n")
    with pytest.raises(ManifestError) as info:
        parse_manifest(str(path))
    text = str(info.value)
    assert "ops.yaml:5: jobs[0].params.zoom: must be at least 2" in text
    assert "ops.yaml:6: jobs[1].params.source_scale: must be greater than 0" in text
    path.write_text(f"name: ops\noutput: out\nmodel: {{weights: random}}\njobs:\n"
                    f"  - {{name: r, kind: repair, inputs: {image}, mask: {image}}}\n"
                    f"  - {{name: x, kind: expand, inputs: {image}, params: {{size: 300}}}}\n"
                    f"  - {{name: m, kind: mashup, inputs: [{image}, {other}], seeds: 2,"
                    f" sweep: {{exemplar_weights: [[1, 0], [1, 1]]}}}}\n")
    manifest = parse_manifest(str(path))
    by_job = {}
    for task in manifest.tasks:
        by_job.setdefault(task.job, []).append(task)
    assert len(by_job["r"]) == 1 and set(by_job["r"][0].inputs) == {"inputs", "mask"}  # no source: optional
    assert len(by_job["m"]) == 4 and len(by_job["m"][0].inputs["inputs"]) == 2  # one task holds every exemplar


@pytest.mark.slow
def test_the_operations_run_from_a_manifest_and_from_render(tmp_path, ray_cluster):
    from pipelines.cli import main
    from pipelines.run import run_manifest

    photo_path, mask_path = tmp_path / "photo.png", tmp_path / "hole.png"
    Image.open(DATA / "content" / "golden_gate.jpg").convert("RGB").resize((64, 48)).save(photo_path)
    hole = Image.new("L", (64, 48), 255)
    hole.paste(0, (24, 16, 40, 32))
    hole.save(mask_path)
    pebbles, peppers = DATA / "textures" / "pebbles.jpg", DATA / "textures" / "red_peppers.jpg"
    path = tmp_path / "ops.yaml"
    path.write_text(
        f"name: ops\noutput: out\nmodel: {{weights: random}}\ncluster: {{workers: 1}}\njobs:\n"
        f"  - {{name: r, kind: repair, inputs: {photo_path}, mask: {mask_path}, preset: random-weights,"
        f" params: {{iterations: 4}}}}\n"
        f"  - {{name: x, kind: expand, inputs: {photo_path}, params: {{size: [80, 64], anchor: top-left, iterations: 4}}}}\n"
        f"  - {{name: m, kind: mashup, inputs: [{pebbles}, {peppers}], params: {{size: 32, iterations: 4}},"
        f" sweep: {{exemplar_weights: [[1, 0], [1, 1]]}}}}\n")
    summary = run_manifest(parse_manifest(str(path)), stream=None)
    assert summary.exit_code == 0 and summary.executed == 4, [r.get("error") for r in summary.failed]
    by_job = {r["job"]: r for r in summary.records}
    original = np.asarray(Image.open(photo_path))
    repaired = np.asarray(Image.open(by_job["r"]["output_uri"]))
    assert (repaired[:16] == original[:16]).all() and by_job["r"]["made_box"] == [24, 16, 40, 32]
    expanded = np.asarray(Image.open(by_job["x"]["output_uri"]))
    assert expanded.shape == (64, 80, 3) and (expanded[:48, :64] == original).all()

    # The report's card shows what was kept and what was made: the made box outlined.
    from pipelines.report import OUTLINE, build_report
    from pipelines.storage import Storage, StorageConfig

    build_report(Storage(StorageConfig()), str(tmp_path / "out"), "ops")
    thumb = np.asarray(Image.open(tmp_path / "out" / "_report" / "thumbs" / "r" / f"{by_job['r']['task_id']}.jpg"))
    scale = thumb.shape[1] / 64
    edge = thumb[round(16 * scale), round(28 * scale):round(36 * scale)].astype(int)  # the box's top edge
    magenta = (edge[:, 0] - edge[:, 1] > 60) & (edge[:, 2] - edge[:, 1] > 60)  # JPEG blurs OUTLINE's (255, 0, 255)
    assert magenta.mean() > 0.5 and OUTLINE == (255, 0, 255), edge

    out = tmp_path / "cli.png"
    assert main(["render", "repair", str(photo_path), "--mask", str(mask_path), "-o", str(out), "--weights",
                 "random", "--iterations", "3"]) == 0
    assert (np.asarray(Image.open(out))[32:] == original[32:]).all()
