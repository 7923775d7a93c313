"""``python -m bench.operations_example [OUT.png]``: the README's picture of the four operations.

Seeded random VGG19 weights, each operation's `random-weights` preset, the tests' tiny sizes: a 16 px
hole in a 64x48 photo and its repair; 64 px of pebbles expanded to 128 px; 48 px of pebbles enhanced x2;
a 1:1 mashup of pebbles and red peppers. Prints the expanded area's score on the quality yardstick
beside real pebbles from the same place."""
from __future__ import annotations

import sys
from pathlib import Path

import torch
from PIL import Image

from tasks.imageio import load_image
from tasks.imageops import resize
from tasks.kind import build_params
from tasks.operations import enhance, expand, mashup, repair
from tasks.quality import texture_score
from tasks.registry import get_kind
from tasks.vgg import VGGFeatures

DATA = Path(__file__).resolve().parents[1] / "data"
ROW = 128  # every picture is shown this tall, nearest-neighbour scaled


def _picture(image: torch.Tensor) -> Image.Image:
    pixels = (image[0].clamp(0, 1).permute(1, 2, 0) * 255).round().byte().numpy()
    picture = Image.fromarray(pixels)
    return picture.resize((round(picture.width * ROW / picture.height), ROW), Image.NEAREST)


def _params(kind: str, values: dict):
    kind_ = get_kind(kind)
    return build_params(kind_.params, {**kind_.preset("random-weights"), **values})


def main(argv: list[str]) -> int:
    out = Path(argv[0] if argv else "docs/operations_random_weights.png")
    vgg = VGGFeatures("random", pooling="avg", seed=0, last_layer="relu5_1")
    pebbles = load_image(str(DATA / "textures" / "pebbles.jpg"))
    peppers = load_image(str(DATA / "textures" / "red_peppers.jpg"))
    photo = resize(load_image(str(DATA / "content" / "golden_gate.jpg")), (48, 64))
    mask = torch.ones_like(photo)
    mask[..., 16:32, 24:40] = 0
    damaged = torch.where(mask.bool(), photo, torch.zeros_like(photo))
    repaired = repair({"inputs": [damaged], "mask": [mask]}, _params("repair", {"iterations": 80}), vgg, 0).images[0]
    crop = resize(pebbles, (128, 128))[..., 32:96, 32:96]
    expanded = expand({"inputs": [crop]}, _params("expand", {"size": 128, "iterations": 80, "octaves": 1}),
                      vgg, 0).images[0]

    def bands(image: torch.Tensor) -> torch.Tensor:
        return torch.cat([image[..., :32, :], image[..., 96:, :]], dim=-2)

    print(f"expand: new area {texture_score(bands(expanded), crop):.3f} on the yardstick, real pebbles "
          f"{texture_score(bands(resize(pebbles, (128, 128))), crop):.3f}")
    sharp = resize(pebbles, (96, 96))
    small = resize(sharp, (48, 48))
    enhanced = enhance({"inputs": [small], "source": [sharp.flip(-1)]},
                       _params("enhance", {"zoom": 2, "iterations": 60, "octaves": 1}), vgg, 0).images[0]
    mixed = mashup({"inputs": [resize(pebbles, (64, 64)), resize(peppers, (64, 64))]},
                   _params("mashup", {"size": 48, "exemplar_weights": [0.5, 0.5], "iterations": 80}), vgg, 0).images[0]
    pictures = [_picture(image) for image in (damaged, repaired, crop, expanded, small, enhanced, mixed)]
    sheet = Image.new("RGB", (sum(p.width + 6 for p in pictures), ROW), "white")
    x = 0
    for picture in pictures:
        sheet.paste(picture, (x, 0))
        x += picture.width + 6
    sheet.save(out)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
