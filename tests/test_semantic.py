"""Semantic maps (neural doodles, region-controlled style transfer) on real textures from data/, seeded
random VGG19 weights, small sizes: the output's regions take the style of the style image's regions
that have the same colour in the maps."""
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pipelines.manifest import ManifestError, parse_manifest
from tasks.imageio import load_image
from tasks.imageops import resize
from tasks.kind import build_params
from tasks.kinds.mrf import RANDOM_WEIGHTS, MRFParams
from tasks.kinds.mrf_style import RANDOM_WEIGHTS as STYLE_RANDOM_WEIGHTS
from tasks.kinds.mrf_style import MRFStyleParams
from tasks.kinds.style import StyleParams
from tasks.gatys import style
from tasks.mrf import mrf, mrf_style
from tasks.quality import texture_score
from tasks.semantic import semantic_maps
from tests.conftest import DATA

RED, BLUE = (1.0, 0.0, 0.0), (0.0, 0.0, 1.0)


def _flat(colour, height, width) -> torch.Tensor:
    return torch.tensor(colour).view(1, 3, 1, 1).expand(1, 3, height, width).clone()


def _two_colours(left, right, height, width) -> torch.Tensor:
    return torch.cat([_flat(left, height, width // 2), _flat(right, height, width - width // 2)], dim=-1)


@pytest.fixture(scope="module")
def halves():
    """The style image: water on the left, red peppers on the right; its map: red left, blue right."""
    water = resize(load_image(str(DATA / "textures" / "water.jpg")), (64, 32))
    peppers = resize(load_image(str(DATA / "textures" / "red_peppers.jpg")), (64, 32))
    return water, peppers, torch.cat([water, peppers], dim=-1), _two_colours(RED, BLUE, 64, 64)


def _swapped_distance(image, water, peppers) -> float:
    """How far the output's halves are from the swapped layout (left peppers, right water), by mean colour."""
    width = image.shape[-1] // 2
    mean = lambda x: x.mean(dim=(2, 3))  # noqa: E731
    return float((mean(image[..., :width]) - mean(peppers)).norm() + (mean(image[..., width:]) - mean(water)).norm())


def test_a_doodle_takes_each_region_from_the_style_regions_of_its_colour(halves, vgg):
    """`mrf` with style_map + target_map and no content (the classic neural doodle): the target map swaps
    the regions, and the render's left half is peppers, its right half water."""
    water, peppers, style_image, style_map = halves
    doodle = _two_colours(BLUE, RED, 48, 48)  # swapped: blue (peppers) left, red (water) right
    params = build_params(MRFParams, {**RANDOM_WEIGHTS, "size": 48, "iterations": 40, "octaves": 2})
    with_maps = mrf({"inputs": [style_image], "style_map": [style_map], "target_map": [doodle]}, params, vgg, 0)
    without = mrf({"inputs": [style_image]}, params, vgg, 0)
    image = with_maps.images[0]
    assert image.shape == (1, 3, 48, 48)
    apart = float((water.mean(dim=(2, 3)) - peppers.mean(dim=(2, 3))).norm())
    swapped, plain = _swapped_distance(image, water, peppers), _swapped_distance(without.images[0], water, peppers)
    assert swapped < 0.3 * apart and swapped < 0.3 * plain, (swapped, plain, apart)
    # The yardstick per region: each half is nearer the texture its colour asked for than the other one.
    left, right = image[..., :24], image[..., 24:]
    assert texture_score(left, peppers) < texture_score(left, water)
    assert texture_score(right, water) < texture_score(right, peppers)
    regions = {r["colour"]: r for r in with_maps.record["regions"]}
    assert set(regions) == {"#ff0000", "#0000ff"} and regions["#0000ff"]["target_share"] == 0.5
    # The output's size follows the doodle's shape when `size` is one number.
    tall = _two_colours(BLUE, RED, 64, 32)
    params = build_params(MRFParams, {**RANDOM_WEIGHTS, "size": 48, "iterations": 2, "octaves": 1})
    out = mrf({"inputs": [style_image], "style_map": [style_map], "target_map": [tall]}, params, vgg, 0)
    assert out.images[0].shape == (1, 3, 48, 24)


def test_gatys_style_with_maps_takes_one_gram_matrix_per_region(halves, vgg):
    water, peppers, style_image, style_map = halves
    content = torch.full((1, 3, 32, 32), 0.5)
    target = _two_colours(BLUE, RED, 32, 32)
    params = build_params(StyleParams, {"size": 32, "iterations": 30, "init": "noise", "content_weight": 0.01})
    with_maps = style({"content": [content], "style": [style_image], "style_map": [style_map],
                       "target_map": [target]}, params, vgg, 0)
    without = style({"content": [content], "style": [style_image]}, params, vgg, 0)
    apart = float((water.mean(dim=(2, 3)) - peppers.mean(dim=(2, 3))).norm())
    swapped = _swapped_distance(with_maps.images[0], water, peppers)
    plain = _swapped_distance(without.images[0], water, peppers)
    assert swapped < 0.5 * apart and swapped < 0.5 * plain, (swapped, plain, apart)
    assert with_maps.record["loss_end"] < with_maps.record["loss_start"]


def test_mrf_style_with_maps_keeps_the_content_regions_style(halves, vgg):
    water, peppers, style_image, style_map = halves
    content = resize(load_image(str(DATA / "content" / "golden_gate.jpg")), (32, 32))
    params = build_params(MRFStyleParams, {**STYLE_RANDOM_WEIGHTS, "size": 32, "iterations": 20, "octaves": 1,
                                           "content_weight": 0.1})
    out = mrf_style({"content": [content], "style": [style_image], "style_map": [style_map],
                     "target_map": [_two_colours(BLUE, RED, 32, 32)]}, params, vgg, 0)
    assert out.images[0].shape == (1, 3, 32, 32)
    assert _swapped_distance(out.images[0], water, peppers) < _swapped_distance(out.images[0], peppers, water)


def test_bad_maps_are_refused_with_the_fix(halves):
    _, _, style_image, style_map = halves
    doodle = _two_colours(BLUE, RED, 48, 48)
    with pytest.raises(ValueError, match=r"style_map is 64x32 but its style image is 64x64"):
        semantic_maps({"style_map": [style_map[..., :32, :]], "target_map": [doodle]}, style_image)
    green = _two_colours(BLUE, (0.0, 1.0, 0.0), 48, 48)
    with pytest.raises(ValueError, match=r"target_map has colour #00ff00 \(50.0% of its pixels\) that style_map lacks "
                                         r"\(its colours: #[0-9a-f]{6}, #[0-9a-f]{6}\)"):
        semantic_maps({"style_map": [style_map], "target_map": [green]}, style_image)
    with pytest.raises(ValueError, match="target_map is given without style_map"):
        semantic_maps({"target_map": [doodle]}, style_image)
    with pytest.raises(ValueError, match="style_map is given without target_map"):
        semantic_maps({"style_map": [style_map]}, style_image)
    content = torch.zeros(1, 3, 40, 80)
    with pytest.raises(ValueError, match=r"target_map is 48x48 but its content image is 80x40"):
        semantic_maps({"style_map": [style_map], "target_map": [doodle]}, style_image, content)
    # Edge pixels (antialiasing) are not regions: a thin line of an odd colour joins its neighbours.
    edged = doodle.clone()
    edged[..., 24, :] = torch.tensor([0.5, 0.0, 0.5]).view(1, 3, 1)
    maps = semantic_maps({"style_map": [style_map], "target_map": [edged]}, style_image)
    assert maps.target.shape == (1, 2, 48, 48) and torch.equal(maps.target.sum(dim=1), torch.ones(1, 48, 48))


def _save(tensor: torch.Tensor, path) -> None:
    Image.fromarray((tensor[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)).save(path)


def _doodle_folder(tmp_path, halves, first_width: int = 32) -> None:
    """style.png, style_map.png and doodles/a.png (32 x first_width), doodles/b.png (32 x 32)."""
    _, _, style_image, style_map = halves
    _save(style_image, tmp_path / "style.png")
    _save(style_map, tmp_path / "style_map.png")
    (tmp_path / "doodles").mkdir()
    _save(_two_colours(BLUE, RED, 32, first_width), tmp_path / "doodles" / "a.png")
    _save(_two_colours(RED, BLUE, 32, 32), tmp_path / "doodles" / "b.png")


def test_a_folder_of_doodles_fans_out_one_task_per_doodle_keyed_by_content(tmp_path, halves):
    _doodle_folder(tmp_path, halves)
    path = tmp_path / "doodles.yaml"
    path.write_text("name: d\noutput: out\nmodel: {weights: random}\njobs:\n"
                    "  - {name: doodles, kind: mrf, inputs: style.png, style_map: style_map.png,"
                    " target_map: doodles/*.png, seeds: 2}\n")
    tasks = parse_manifest(str(path)).tasks
    assert len(tasks) == 4 and len({t.task_id for t in tasks}) == 4
    assert {Path(t.inputs["target_map"][0]).name for t in tasks} == {"a.png", "b.png"}
    assert all(len(t.inputs["style_map"]) == 1 for t in tasks)
    before = {t.task_id for t in tasks if t.inputs["target_map"][0].endswith("a.png")}
    _save(_two_colours(BLUE, BLUE, 32, 32), tmp_path / "doodles" / "a.png")  # the user edits a doodle
    after = parse_manifest(str(path)).tasks
    assert {t.task_id for t in after if t.inputs["target_map"][0].endswith("a.png")}.isdisjoint(before)
    assert {t.task_id for t in after if t.inputs["target_map"][0].endswith("b.png")} == \
        {t.task_id for t in tasks if t.inputs["target_map"][0].endswith("b.png")}
    path.write_text("name: d\noutput: out\nmodel: {weights: random}\njobs:\n"
                    "  - {name: doodles, kind: mrf, inputs: style.png,\n"
                    "     style_map: doodles/*.png, target_map: doodles/a.png}\n")
    with pytest.raises(ManifestError, match=r"doodles.yaml:6: jobs\[0\].style_map: names 2 images; 'style_map' takes one"):
        parse_manifest(str(path))


@pytest.mark.slow
def test_doodles_render_from_a_manifest_and_from_render(tmp_path, halves, ray_cluster):
    from pipelines.cli import main
    from pipelines.run import run_manifest

    _doodle_folder(tmp_path, halves, first_width=48)
    (tmp_path / "doodles" / "notes.txt").write_text("not an image")
    path = tmp_path / "doodles.yaml"
    path.write_text("name: d\noutput: out\nmodel: {weights: random}\ncluster: {workers: 1}\njobs:\n"
                    "  - {name: doodles, kind: mrf, inputs: style.png, style_map: style_map.png,"
                    " target_map: doodles/*.png, preset: random-weights, params: {size: 32, iterations: 3, octaves: 1}}\n")
    summary = run_manifest(parse_manifest(str(path)), stream=None)
    assert summary.exit_code == 0 and summary.executed == 2, [r.get("error") for r in summary.failed]
    sizes = sorted(Image.open(r["output_uri"]).size for r in summary.records)
    assert sizes == [(32, 21), (32, 32)]  # each doodle's shape
    out = tmp_path / "cli.png"
    assert main(["render", "mrf", str(tmp_path / "style.png"), "--style-map", str(tmp_path / "style_map.png"),
                 "--target-map", str(tmp_path / "doodles" / "a.png"), "-o", str(out), "--weights", "random",
                 "--size", "32", "--iterations", "2", "--octaves", "1"]) == 0
    assert Image.open(out).size == (32, 21)
    bad = tmp_path / "bad.png"
    assert main(["render", "mrf", str(tmp_path / "style.png"), "--style-map", str(tmp_path / "doodles" / "notes.txt"),
                 "--target-map", str(tmp_path / "doodles" / "a.png"), "-o", str(bad), "--weights", "random",
                 "--size", "32", "--iterations", "2"]) == 2
    assert not bad.exists()
