"""``python -m bench.doodle_example``: the README's neural-doodle picture and its per-region figures.

A two-region style image (water left, red peppers right, from data/) with its map, a doodle that
swaps and reshapes the regions, and the renders with and without the maps (mrf and Gatys `style`),
seeded random VGG19 weights. Prints, per render, the mean-colour distance of each doodle region to
the texture its colour asks for, and the quality yardstick (tasks/quality.py) per region."""
from __future__ import annotations

import sys
from pathlib import Path

import torch
from PIL import Image

from tasks.imageio import load_image
from tasks.imageops import resize
from tasks.kind import build_params
from tasks.kinds.mrf import RANDOM_WEIGHTS, MRFParams
from tasks.kinds.style import StyleParams
from tasks.gatys import style
from tasks.mrf import mrf
from tasks.quality import texture_score
from tasks.vgg import VGGFeatures

DATA = Path(__file__).resolve().parents[1] / "data"
RED, BLUE = torch.tensor([1.0, 0, 0]), torch.tensor([0, 0, 1.0])


def doodle(size: int) -> torch.Tensor:
    """Blue (peppers) disc in the middle, red (water) around it."""
    ys, xs = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    inside = ((ys - size / 2) ** 2 + (xs - size / 2) ** 2 < (size * 0.3) ** 2)[None, None]
    return torch.where(inside, BLUE.view(1, 3, 1, 1), RED.view(1, 3, 1, 1))


def per_region(image, target_map, water, peppers) -> str:
    """Per region of the doodle: the mean-colour distance to the texture its colour asks for, and the
    yardstick (0 = like that texture, 1 = like colour-matched noise) on a square wholly inside the region
    (the disc's inscribed square; the top-left corner of the water)."""
    side = image.shape[-1]
    inner, corner = round(side * 0.3 * 2 ** 0.5), round(side * 0.2)
    squares = {"peppers (blue)": image[..., (side - inner) // 2:(side + inner) // 2, (side - inner) // 2:(side + inner) // 2],
               "water (red)": image[..., :corner, :corner]}
    out = []
    for name, colour, texture in (("peppers (blue)", BLUE, peppers), ("water (red)", RED, water)):
        mask = (target_map[0] == colour.view(3, 1, 1)).all(dim=0)
        distance = float((image[0][:, mask].mean(dim=1) - texture.mean(dim=(0, 2, 3))).norm())
        out.append(f"{name}: colour distance {distance:.3f}, quality {texture_score(squares[name], texture):.3f}")
    return "; ".join(out)


def main(argv: list[str]) -> int:
    side = int(argv[0]) if argv else 96
    vgg = VGGFeatures("random", pooling="avg", seed=0, last_layer="relu5_1")
    water = resize(load_image(str(DATA / "textures" / "water.jpg")), (side, side // 2))
    peppers = resize(load_image(str(DATA / "textures" / "red_peppers.jpg")), (side, side // 2))
    style_image = torch.cat([water, peppers], dim=-1)
    style_map = torch.cat([RED.view(1, 3, 1, 1).expand(1, 3, side, side // 2),
                           BLUE.view(1, 3, 1, 1).expand(1, 3, side, side // 2)], dim=-1)
    target = doodle(side)
    maps = {"style_map": [style_map], "target_map": [target]}
    mrf_params = build_params(MRFParams, {**RANDOM_WEIGHTS, "size": side, "iterations": 150, "octaves": 3})
    style_params = build_params(StyleParams, {"size": side, "iterations": 150, "init": "noise", "content_weight": 0.0})
    content = torch.full((1, 3, side, side), 0.5)
    renders = {
        "mrf with maps": mrf({"inputs": [style_image], **maps}, mrf_params, vgg, 0).images[0],
        "mrf without": mrf({"inputs": [style_image]}, mrf_params, vgg, 0).images[0],
        "style with maps": style({"content": [content], "style": [style_image], **maps}, style_params, vgg, 0).images[0],
        "style without": style({"content": [content], "style": [style_image]}, style_params, vgg, 0).images[0],
    }
    for name, image in renders.items():
        print(f"{name}: {per_region(image, target, water, peppers)}")
    tiles = [style_image, style_map, target, renders["mrf with maps"], renders["style with maps"]]
    sheet = Image.new("RGB", (len(tiles) * (side + 8) - 8, side), "white")
    for i, tile in enumerate(tiles):
        array = (tile[0].permute(1, 2, 0).clamp(0, 1) * 255).round().byte().numpy()
        sheet.paste(Image.fromarray(array), (i * (side + 8), 0))
    sheet.save(DATA.parent / "docs" / "doodle_random_weights.png")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
