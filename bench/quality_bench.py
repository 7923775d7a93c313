"""``texfarm bench --quality``: every texture kind on every texture, scored by the network-free
yardstick (tasks/quality.py), with baselines, a verbatim-copy check and a picture sheet.

    texfarm bench --quality                                  # the shipped textures, 128 px
    texfarm bench --quality --textures ../shared/data/textures --sparse --output docs/quality_table.md \
        --sheet docs/quality_sheet.png

Each exemplar is first scaled so its long side is ``--exemplar-side``; every kind renders at that
scale (``exemplar_scale: 1``), so the score compares like with like. Random weights unless
``--weights`` names ImageNet weights: the figures describe the methods under those weights.
"""
from __future__ import annotations

import argparse
import io
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw

from tasks.common import TaskOutput
from tasks.device import describe, pick_device
from tasks.imageio import encode_png, load_image
from tasks.imageops import scale_by
from tasks.kind import build_params
from tasks.quality import (background_colour, colour_coverage, copy_distance, density_ratios, is_sparse,
                           matched_noise, scatter_elements, texture_score)
from tasks.registry import KINDS
from tasks.vgg import VGGFeatures

ROOT = Path(__file__).resolve().parents[1]
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp"}
NEAR_UNIFORM_STD = 0.02  # a render whose pixel std is below this is blank, whatever it scores


@dataclass
class Method:
    """One column of the table: a kind (or a train-then-generate pair) with its parameters."""
    name: str
    kind: str
    params: dict = field(default_factory=dict)
    copies: bool = False  # patch-based: check for verbatim copying


def methods(size: int, iterations: int, train_steps: int, train_batch: int, net_variants: bool) -> list[Method]:
    out = [Method("gatys", "texture", {"size": size, "iterations": iterations}),
           Method("mrf", "mrf", {"size": size, "iterations": iterations}, copies=True),
           Method("mrf (nearest, paper)", "mrf", {"size": size, "iterations": iterations, "matching": "nearest"},
                  copies=True),
           Method("swd", "swd", {"size": size, "iterations": iterations})]
    net = {"size": size, "iterations": train_steps, "batch_size": train_batch, "checkpoint_every": train_steps, "samples": 1,
           "lr": 0.01, "lr_decay_every": max(1, train_steps // 3)}
    out.append(Method("texture net", "train_texture_net", net))
    if net_variants:
        out.append(Method("texture net BN", "train_texture_net", {**net, "norm": "batch"}))
        out.append(Method("texture net IN+div", "train_texture_net",
                          {**net, "norm": "instance", "diversity_weight": 0.1}))
    return out


def sparse_exemplar(image: torch.Tensor) -> torch.Tensor:
    """``image`` in the middle of a white canvas twice its size: few elements on a wide background."""
    h, w = image.shape[-2:]
    canvas = torch.ones(1, 3, 2 * h, 2 * w)
    canvas[..., h // 2 : h // 2 + h, w // 2 : w // 2 + w] = image
    return canvas


def exemplars(folders: list[Path], side: int, sparse: bool) -> dict[str, torch.Tensor]:
    """Every image of the folders, scaled to ``side`` on its long side; with ``sparse``, issue 17's
    reproduction too: the shipped dots.png at its own size on a white canvas twice as large (its
    scale is the point: nearest matching collapses there, not on a smaller copy)."""
    out = {}
    for folder in folders:
        for path in sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
            image = load_image(str(path))
            out[path.name] = scale_by(image, side / max(image.shape[-2:]))
    if sparse:
        dots = load_image(str(ROOT / "data" / "textures" / "dots.png"))
        out["dots on white 2x"] = sparse_exemplar(dots)
        half = F.interpolate(dots, scale_factor=0.5, mode="area")
        for thinning in (2, 4):  # stationary sparse textures: elements scattered, half or a quarter as dense
            out[f"dots scattered /{thinning}"] = scatter_elements(half, (side, side), thinning=thinning)
    return out


def render(method: Method, exemplar: torch.Tensor, vgg: VGGFeatures, seed: int) -> tuple[torch.Tensor, float]:
    """The method's texture for ``exemplar`` and the seconds it took (training included)."""
    kind = KINDS[method.kind]
    clock = time.perf_counter()
    preset = kind.preset("random-weights") if vgg.weights == "random" and "random-weights" in kind.presets else {}
    params = build_params(kind.params, {**preset, **method.params})
    out: TaskOutput = kind.function()({"inputs": [exemplar]}, params, vgg, seed)
    if method.kind == "train_texture_net":  # then one texture from the trained generator
        gen_kind = KINDS["generate"]
        gen_params = build_params(gen_kind.params, {"size": method.params["size"]})
        out = gen_kind.function()({"generator": [out.files[".safetensors"]]}, gen_params, vgg, seed + 1)
    return out.images[0], time.perf_counter() - clock


def baselines(exemplar: torch.Tensor, size: int) -> dict[str, torch.Tensor]:
    """What a score means: a crop of the exemplar (a perfect texture up to what the crop misses),
    the crop blurred, the crop cut into 8 px tiles and shuffled (local statistics kept, arrangement lost),
    colour-matched noise, the exemplar's background colour flat (a blank render)."""
    h, w = exemplar.shape[-2:]
    ch, cw = min(size, h), min(size, w)
    crop = exemplar[..., (h - ch) // 2 : (h - ch) // 2 + ch, (w - cw) // 2 : (w - cw) // 2 + cw]
    return {"crop": crop, "blurred crop": F.avg_pool2d(F.pad(crop, (2, 2, 2, 2), mode="replicate"), 5, stride=1),
            "shuffled 8 px tiles": shuffled_tiles(crop, 8), "noise": matched_noise(exemplar, (size, size)),
            "blank": background_colour(exemplar).view(1, 3, 1, 1).expand(1, 3, size, size)}


def shuffled_tiles(image: torch.Tensor, tile: int, seed: int = 0) -> torch.Tensor:
    """``image`` cut into ``tile``-side squares (the remainder dropped), put back in a seeded random order."""
    tiles = image.unfold(2, tile, tile).unfold(3, tile, tile)  # (1, 3, rows, cols, tile, tile)
    rows, cols = tiles.shape[2:4]
    order = torch.randperm(rows * cols, generator=torch.Generator().manual_seed(seed))
    tiles = tiles.reshape(1, 3, rows * cols, tile, tile)[:, :, order].reshape(1, 3, rows, cols, tile, tile)
    return tiles.permute(0, 1, 2, 4, 3, 5).reshape(1, 3, rows * tile, cols * tile)


def measure(image: torch.Tensor, exemplar: torch.Tensor, copies: bool) -> dict:
    row = {"quality": texture_score(image, exemplar), "colour_coverage": colour_coverage(image, exemplar),
           "std": round(float(image.std()), 3)}
    row["near_uniform"] = row["std"] < NEAR_UNIFORM_STD
    if is_sparse(exemplar):  # issue 25: elements kept? ink share and median element size over the exemplar's
        ratios = density_ratios(image, exemplar)
        row["ink"], row["element_size"] = round(ratios["ink"], 2), round(ratios["median_area"], 2)
    if copies:
        row["copy_distance"] = copy_distance(image, exemplar)
    return row


def sheet(tiles: dict[str, list[tuple[str, torch.Tensor]]], tile: int) -> Image.Image:
    """Rows: textures; columns: the exemplar, then each method's render, all shown at ``tile`` px."""
    columns = max(len(row) for row in tiles.values())
    out = Image.new("RGB", (columns * (tile + 6), len(tiles) * (tile + 16)), "white")
    draw = ImageDraw.Draw(out)
    for r, row in enumerate(tiles.values()):
        for c, (label, image) in enumerate(row):
            picture = Image.open(io.BytesIO(encode_png(image))).convert("RGB")
            scale = tile / max(picture.size)
            picture = picture.resize((max(1, round(picture.width * scale)), max(1, round(picture.height * scale))))
            x, y = c * (tile + 6), r * (tile + 16)
            out.paste(picture, (x, y + 14))
            draw.text((x, y + 1), label[:24], fill="black")
    return out


def run(args: argparse.Namespace, log: Callable[[str], None] = lambda line: print(line, flush=True)) -> tuple[list[dict], Image.Image]:
    device = pick_device(args.device)
    vgg = VGGFeatures(args.weights, device=device)
    folders = [Path(f) for f in (args.textures if args.textures is not None else [ROOT / "data" / "textures"])]
    rows, tiles = [], {}
    for name, exemplar in exemplars(folders, args.exemplar_side, args.sparse).items():
        tiles[name] = [("exemplar", exemplar)]
        for label, image in baselines(exemplar, args.size).items():
            rows.append({"texture": name, "method": f"baseline: {label}", "seconds": 0.0,
                         **measure(image, exemplar, copies=label == "crop")})
        for method in methods(args.size, args.iterations, args.train_steps, args.train_batch, args.net_variants):
            if args.only and not any(word in method.name for word in args.only) or \
                    any(word in method.name for word in args.skip or ()):
                continue
            image, seconds = render(method, exemplar.to(device), vgg, args.seed)
            row = {"texture": name, "method": method.name, "seconds": round(seconds, 1),
                   **measure(image.cpu(), exemplar, method.copies)}
            rows.append(row)
            tiles[name].append((method.name, image.cpu()))
            log(f"{name:24} {method.name:40} quality {row['quality']:.3f}  {seconds:.0f} s")
    return rows, sheet(tiles, args.tile)


def table(rows: list[dict]) -> str:
    keys = ["texture", "method", "quality", "colour_coverage", "ink", "element_size", "copy_distance", "near_uniform",
            "seconds"]
    fmt = lambda v: "" if v is None else (f"{v:.3f}" if isinstance(v, float) else str(v))  # noqa: E731
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(fmt(row.get(k)) for k in keys) + " |" for row in rows]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="texfarm bench --quality", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quality", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--textures", nargs="*", help="folders of exemplars (default: the shipped data/textures; none: only --sparse)")
    parser.add_argument("--sparse", action="store_true", help="also data/textures/dots.png on a white canvas "
                                                               "twice its size (not scaled), and its dots at half "
                                                               "size scattered half and a quarter as dense")
    parser.add_argument("--size", type=int, default=128, help="render side")
    parser.add_argument("--exemplar-side", type=int, default=192, help="exemplars are scaled to this long side")
    parser.add_argument("--iterations", type=int, default=300, help="optimizer iterations (gatys, mrf, swd)")
    parser.add_argument("--train-steps", type=int, default=300, help="Texture Network training steps")
    parser.add_argument("--train-batch", type=int, default=2, help="Texture Network training batch")
    parser.add_argument("--net-variants", action="store_true", help="also batch norm (BN, the 2016 paper) and "
                                                                      "instance norm with the diversity term (IN+div, 2017)")
    parser.add_argument("--only", nargs="+", help="only the methods whose name contains one of these words")
    parser.add_argument("--skip", nargs="+", help="not the methods whose name contains one of these words")
    parser.add_argument("--weights", default="random", help="VGG19 weights (random, imagenet, a path)")
    parser.add_argument("--device")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tile", type=int, default=128, help="picture sheet tile side")
    parser.add_argument("--output", help="write the table (markdown) here")
    parser.add_argument("--sheet", help="write the picture sheet (PNG) here")
    args = parser.parse_args(argv)
    rows, picture = run(args)
    header = (f"device: {describe(pick_device(args.device))}; torch {torch.__version__}; weights {args.weights}; "
              f"render {args.size} px from exemplars of {args.exemplar_side} px; {args.iterations} iterations; "
              f"texture nets {args.train_steps} steps, batch {args.train_batch}; {time.strftime('%Y-%m-%d')}")
    text = f"## Texture quality (0 = like the exemplar, 1 = like colour-matched noise)\n\n{header}\n\n{table(rows)}"
    print(text)
    if args.output:
        Path(args.output).write_text(text + "\n")
    if args.sheet:
        picture.save(args.sheet)
    return 0
