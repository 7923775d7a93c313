"""What each anti-repetition setting of the MRF task changes, on one shared texture:
``python -m bench.mrf_variety`` writes docs/mrf_variety.png and prints a markdown table."""
from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw

from tasks.imageio import encode_png, load_image
from tasks.mrf import mrf
from tasks.kinds.mrf import RANDOM_WEIGHTS, MRFParams
from tasks.vgg import VGGFeatures

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = {
    "all off": dict(matching="nearest", center_features=False, noise=0.0, repetition_penalty=0.0),
    "+ centred features": dict(matching="nearest", center_features=True, noise=0.0, repetition_penalty=0.0),
    "+ octave noise 0.05": dict(matching="nearest", center_features=False, noise=0.05, repetition_penalty=0.0),
    "+ repetition penalty 0.1": dict(matching="nearest", center_features=False, noise=0.0, repetition_penalty=0.1),
    "all on (nearest matching)": dict(matching="nearest"),
}


def copy_distance(output: torch.Tensor, exemplar: torch.Tensor, window: int = 16) -> float:
    """Median over 16x16 output windows of the mean absolute difference to the closest exemplar
    window: near 0 for a verbatim copy, larger for a new arrangement."""
    out_windows = F.unfold(output, window, stride=4)[0].T
    ex_windows = F.unfold(exemplar, window, stride=1)[0].T
    return float((torch.cdist(out_windows, ex_windows, p=1) / out_windows.shape[1]).min(dim=1).values.median())


def main(size: int = 160, iterations: int = 90) -> int:
    import io

    vgg = VGGFeatures("random")
    exemplar = load_image(str(ROOT / "data" / "textures" / "pebbles.jpg"))
    exemplar = F.interpolate(exemplar, size=(96, 96), mode="bilinear", antialias=True)
    tiles = [F.pad(exemplar, (0, size - 96, 0, size - 96), value=1.0)]
    rows = ["| variant | distinct relu3_1 patches | distinct relu4_1 patches | copy distance | final loss |",
            "|---|---|---|---|---|"]
    for name, overrides in VARIANTS.items():
        out = mrf({"inputs": [exemplar]}, MRFParams(**RANDOM_WEIGHTS, size=size, iterations=iterations, octaves=2, **overrides), vgg, 0)
        tiles.append(out.images[0])
        used = out.record["distinct_patches"]
        rows.append(f"| {name} | {used['relu3_1']} | {used['relu4_1']} | "
                    f"{copy_distance(out.images[0], exemplar):.3f} | {out.record['loss_end']:.4f} |")
    labels = ["exemplar (96 px)", *VARIANTS]
    sheet = Image.new("RGB", (len(tiles) * (size + 8), size + 18), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (tile, label) in enumerate(zip(tiles, labels)):
        image = Image.open(io.BytesIO(encode_png(tile))).resize((size, size))
        sheet.paste(image, (i * (size + 8), 18))
        draw.text((i * (size + 8), 2), label, fill="black")
    sheet.save(ROOT / "docs" / "mrf_variety.png")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    torch.set_num_threads(2)
    sys.exit(main())
