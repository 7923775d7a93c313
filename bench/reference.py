"""The minimal reference a render is measured against (issue 27): torchvision's VGG19, frozen, truncated
after the last tapped layer, in-place ReLU, each Gram matrix one matmul, a squared-distance loss. No
texfarm code runs in it, so "useful fraction" means work a plain script would also do. Also: the
render's time breakdown from its record, the peak memory of one evaluation (texfarm's network vs this
reference, each in a fresh process), and achieved GFLOP/s next to a large matmul's."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Callable, Sequence

import torch
from torch import nn

from tasks.vgg import LAYERS, VGGFeatures, build_vgg19

from .tasks_bench import sync


class ReferenceGram(nn.Module):
    """Frozen VGG19 features up to the deepest of ``layers``; avg pooling like texfarm's default."""

    def __init__(self, layers: Sequence[str], pooling: str = "avg", seed: int = 0) -> None:
        super().__init__()
        deepest = max(LAYERS.index(name) for name in layers)
        features = build_vgg19("random", seed).features[: deepest + 1]
        if pooling == "avg":
            features = nn.Sequential(*(nn.AvgPool2d(2, 2) if isinstance(m, nn.MaxPool2d) else m for m in features))
        for module in features:
            if isinstance(module, nn.ReLU):
                module.inplace = True
        self.features = features.requires_grad_(False).eval()
        self.taps = {LAYERS.index(name) for name in layers}

    def grams(self, image: torch.Tensor) -> list[torch.Tensor]:
        out, x = [], image
        for index, module in enumerate(self.features):
            x = module(x)
            if index in self.taps:
                c = x.shape[1]
                flat = x.reshape(c, -1)
                out.append(flat @ flat.T / flat.shape[1])
        return out


def reference_evaluation(layers: Sequence[str], size: int, device: torch.device,
                         exemplar: torch.Tensor) -> Callable[[], float]:
    """One evaluation of the reference objective (forward, loss, backward to the image), as a closure."""
    model = ReferenceGram(layers).to(device)
    with torch.no_grad():
        targets = model.grams(exemplar.to(device))
    image = torch.rand(1, 3, size, size, device=device, requires_grad=True)

    def evaluate() -> float:
        image.grad = None
        loss = sum((g - t).square().sum() for g, t in zip(model.grams(image), targets))
        loss.backward()
        return float(loss.detach())

    return evaluate


def best_seconds(fn: Callable[[], object], device: torch.device, groups: int = 3, min_seconds: float = 0.2) -> float:
    """Best mean seconds per call over ``groups`` groups (each at least 2 calls and ``min_seconds``)."""
    fn()
    best = float("inf")
    for _ in range(groups):
        sync(device)
        start, calls = time.perf_counter(), 0
        while calls < 2 or time.perf_counter() - start < min_seconds:
            fn()
            calls += 1
        sync(device)
        best = min(best, (time.perf_counter() - start) / calls)
    return best


def evaluation_gflop(layers: Sequence[str], size: int) -> float:
    """Multiply-adds x 2 of the convolutions up to the deepest layer, forward plus the backward to the
    input (about the forward's again: the weights are frozen, so no weight gradients)."""
    flops, side = 0.0, size
    deepest = max(LAYERS.index(name) for name in layers)
    for module in build_vgg19("random", 0).features[: deepest + 1]:
        if isinstance(module, nn.Conv2d):
            flops += 2.0 * module.in_channels * module.out_channels * 9 * side * side
        elif isinstance(module, nn.MaxPool2d):
            side //= 2
    return 2.0 * flops / 1e9


def matmul_gflops(device: torch.device, n: int = 2048) -> float:
    a = torch.rand(n, n, device=device)
    b = torch.rand(n, n, device=device)
    return 2.0 * n ** 3 / best_seconds(lambda: a @ b, device) / 1e9


def breakdown_row(kind: str, task_fn: Callable[[], dict], size: int, reference_s: float, gflop: float) -> dict:
    """Where one render's time goes (from its record), against evaluations x the reference's time."""
    start = time.perf_counter()
    record = task_fn()
    wall = time.perf_counter() - start
    optimize = float(record.get("optimize_seconds") or 0.0)
    evaluations = int(record.get("evaluations") or 0)
    floor = evaluations * reference_s
    return {"kind": kind, "size": size, "evaluations": evaluations, "wall_s": wall,
            "setup_s": float(record.get("setup_seconds") or 0.0), "optimize_s": optimize,
            "quality_s": float(record.get("quality_seconds") or 0.0),
            "other_s": wall - optimize - float(record.get("setup_seconds") or 0.0)
            - float(record.get("quality_seconds") or 0.0),
            "reference_eval_s": reference_s, "optimize_over_reference": optimize / floor if floor else float("nan"),
            "useful_fraction": floor / wall if wall else float("nan"),
            "achieved_gflops": evaluations * gflop / optimize if optimize else float("nan")}


_MEMORY_PROBE = r"""
import gc, json, sys, torch
sys.path.insert(0, {root!r})
from tasks.params import GATYS_TEXTURE_LAYERS as layers
torch.set_num_threads({threads})
size, which = {size}, {which!r}
image = torch.rand(1, 3, size, size, requires_grad=True)
if which == "texfarm":
    from tasks.vgg import VGGFeatures
    from tasks.losses import gram_at_tap
    net = VGGFeatures("random", last_layer=layers[-1])  # as the texture objective calls it
    run = lambda: sum(g.square().sum() for g in net(image, layers, at_tap=gram_at_tap).values())
else:
    from bench.reference import ReferenceGram
    net = ReferenceGram(layers)
    run = lambda: sum(g.square().sum() for g in net.grams(image))
def status(key):
    return next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith(key + ":"))
gc.collect()
with open("/proc/self/clear_refs", "w") as refs:  # reset the high-water mark: the model's build peaked higher
    refs.write("5")
before = status("VmRSS")
run().backward()
print(json.dumps({{"peak_mb": (status("VmHWM") - before) / 1024}}))
"""


def cuda_memory_rows(device: torch.device, sizes: list[int]) -> list[dict]:
    """torch.cuda.max_memory_allocated of one evaluation, texfarm's objective against the reference."""
    from tasks.losses import gram_at_tap
    from tasks.params import GATYS_TEXTURE_LAYERS as layers

    net, ref = VGGFeatures("random", last_layer=layers[-1], device=device), ReferenceGram(layers).to(device)
    rows = []
    for size in sizes:
        peaks = {}
        for name, run in (("texfarm", lambda x: sum(g.square().sum() for g in net(x, layers, at_tap=gram_at_tap).values())),
                          ("reference", lambda x: sum(g.square().sum() for g in ref.grams(x)))):
            image = torch.rand(1, 3, size, size, device=device, requires_grad=True)
            torch.cuda.synchronize(device)
            base = torch.cuda.memory_allocated(device)
            torch.cuda.reset_peak_memory_stats(device)
            run(image).backward()
            torch.cuda.synchronize(device)
            peaks[name] = (torch.cuda.max_memory_allocated(device) - base) / 2**20
        rows.append({"size": size, "texfarm_mb": peaks["texfarm"], "reference_mb": peaks["reference"],
                     "texfarm_over_reference": peaks["texfarm"] / peaks["reference"]})
    return rows


def memory_rows(sizes: Sequence[int], threads: int = 1) -> list[dict]:
    """Peak resident memory one evaluation adds (forward + backward, Gram texture layers), texfarm's
    network against the reference, each in a fresh process (Linux: the high-water mark is reset through
    /proc/self/clear_refs after the model is built, then read after one evaluation)."""
    from pathlib import Path

    root = str(Path(__file__).resolve().parents[1])
    rows = []
    for size in sizes:
        peaks = {}
        for which in ("texfarm", "reference"):
            code = _MEMORY_PROBE.format(root=root, threads=threads, size=size, which=which)
            done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=1800)
            if done.returncode:
                raise RuntimeError(f"memory probe failed: {done.stderr[-2000:]}")
            peaks[which] = json.loads(done.stdout.strip().splitlines()[-1])["peak_mb"]
        rows.append({"size": size, "texfarm_mb": peaks["texfarm"], "reference_mb": peaks["reference"],
                     "texfarm_over_reference": peaks["texfarm"] / peaks["reference"],
                     "texfarm_bytes_per_pixel": peaks["texfarm"] * 2**20 / size ** 2})
    return rows


def reference_rows(vgg, exemplar: torch.Tensor, content: torch.Tensor, sizes: Sequence[int], iterations: int,
                   kinds: Sequence[str] = ("texture", "style", "mrf", "swd"), repeats: int = 1) -> list[dict]:
    """Per kind and size: the render's breakdown (set-up, optimization, quality score, the rest) and its
    optimization against evaluations x the reference's evaluation on the kind's layers. For `mrf` and
    `swd` the reference is the network part only (Gram matrices on their layers): the patch matching and
    the sliced distances are the method's own work, so their ratio is an upper bound, not a goal.
    ``repeats``: renders per row, the reference re-timed before each; the row is the median render (by
    ratio) and gives the ratios' range (a shared machine's noise is several percent)."""
    from tasks.gatys import style, texture
    from tasks.kinds.mrf import RANDOM_WEIGHTS, MRFParams
    from tasks.kinds.style import StyleParams
    from tasks.kinds.swd import SWDParams
    from tasks.kinds.texture import TextureParams
    from tasks.mrf import mrf
    from tasks.swd import swd_texture

    def task(kind: str, size: int, steps: int) -> Callable[[], dict]:
        one = {"size": size, "iterations": steps, "octaves": 1}
        runs = {
            "texture": lambda: texture({"inputs": [exemplar]}, TextureParams(**one), vgg, 0),
            "style": lambda: style({"content": [content], "style": [exemplar]}, StyleParams(**one), vgg, 0),
            "mrf": lambda: mrf({"inputs": [exemplar]}, MRFParams(**RANDOM_WEIGHTS, **one), vgg, 0),
            "swd": lambda: swd_texture({"inputs": [exemplar]}, SWDParams(**one), vgg, 0),
        }
        return lambda: runs[kind]().record

    layers = {"texture": TextureParams().layers, "style": [*StyleParams().style_layers, StyleParams().content_layer],
              "mrf": MRFParams().layers, "swd": SWDParams().layers}
    rows = []
    for size in sizes:
        for kind in kinds:
            evaluate = reference_evaluation(layers[kind], size, vgg.device, exemplar)
            task(kind, size, 2)()  # warm-up: kernels, cached exemplar targets
            runs = sorted((breakdown_row(kind, task(kind, size, iterations), size, best_seconds(evaluate, vgg.device),
                                         evaluation_gflop(layers[kind], size)) for _ in range(max(1, repeats))),
                          key=lambda row: row["optimize_over_reference"])
            row = runs[len(runs) // 2]
            row["ratio_range"] = (f"{runs[0]['optimize_over_reference']:.2f}-{runs[-1]['optimize_over_reference']:.2f}"
                                  if len(runs) > 1 else "one run")
            row["reference"] = "gram objective" if kind in ("texture", "style") else "network only"
            rows.append(row)
    return rows
