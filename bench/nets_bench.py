"""Texture Networks: one-pass generation against Gatys optimization at the same size, and training
throughput with one training against several packed on the same device."""
from __future__ import annotations

import threading
import time

import torch

from tasks.kinds.generate import GenerateParams
from tasks.kinds.train_texture_net import TextureNetParams
from tasks.texture_nets import generate, train_texture_net
from tasks.vgg import VGGFeatures

from .tasks_bench import sync


def _train(vgg: VGGFeatures, exemplar: torch.Tensor, size: int, steps: int, seed: int) -> dict:
    params = TextureNetParams(size=size, iterations=steps, batch_size=4, checkpoint_every=steps)
    return train_texture_net({"inputs": [exemplar]}, params, vgg, seed)


def generate_row(vgg: VGGFeatures, exemplar: torch.Tensor, size: int, gatys_seconds: float, train_steps: int) -> dict:
    weights = _train(vgg, exemplar, 64, train_steps, 0).files[".safetensors"]
    params = GenerateParams(size=size, count=8, batch_size=8)
    generate({"generator": [weights]}, GenerateParams(size=size, count=1), vgg, 0)  # warm-up
    sync(vgg.device)
    start = time.perf_counter()
    generate({"generator": [weights]}, params, vgg, 1)
    sync(vgg.device)
    per_image = (time.perf_counter() - start) / params.count
    return {"size": size, "generate_images_per_s": 1.0 / per_image, "generate_s_per_image": per_image,
            "gatys_s_per_image": gatys_seconds, "speedup": gatys_seconds / per_image}


def training_rows(vgg: VGGFeatures, exemplar: torch.Tensor, size: int, steps: int, packed: int) -> list[dict]:
    _train(vgg, exemplar, size, 2, 0)  # warm-up
    rows = []
    for count in (1, packed):
        results: list[dict] = []
        threads = [threading.Thread(target=lambda s=seed: results.append(_train(vgg, exemplar, size, steps, s).record))
                   for seed in range(count)]
        sync(vgg.device)
        start = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        sync(vgg.device)
        wall = time.perf_counter() - start
        rows.append({"trainings": count, "size": size, "batch": 4, "steps_each": steps,
                     "total_steps_per_s": count * steps / wall, "per_training_steps_per_s": steps / wall})
    base = rows[0]["total_steps_per_s"]
    for row in rows:
        row["throughput_vs_one"] = row["total_steps_per_s"] / base
    return rows


def _conv_gflop(model, size: int) -> float:
    """GFLOP of one image through the generator's convolutions (2 x multiply-adds)."""
    total = 0

    def count(module, _inputs, output):
        nonlocal total
        total += 2 * output.numel() * module.in_channels * module.kernel_size[0] * module.kernel_size[1] // module.groups

    hooks = [m.register_forward_hook(count) for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    with torch.no_grad():
        model(model.noise(1, (size, size), 0, next(model.parameters()).device))
    for hook in hooks:
        hook.remove()
    return total / 1e9


def arch_rows(vgg: VGGFeatures, exemplar: torch.Tensor, steps: int, size: int = 64, render: int = 512,
              score_size: int = 128) -> list[dict]:
    """Each generator architecture (arch: multiscale | residual), trained on the exemplar for the same
    wall time (the multi-scale one's ``steps``, the residual one as many steps as fit in that time):
    GFLOP and images/s of one pass at ``render`` px (batch 1, interleaved, best of 3), and the quality
    yardstick (tasks/quality.py) of 4 samples at ``score_size`` px."""
    from tasks.generator import load_generator
    from tasks.quality import texture_score

    def train(arch: str, n: int):
        params = TextureNetParams(size=size, iterations=n, batch_size=4, checkpoint_every=n, arch=arch)
        start = time.perf_counter()
        out = train_texture_net({"inputs": [exemplar]}, params, vgg, 0)
        return load_generator(out.files[".safetensors"], vgg.device), time.perf_counter() - start

    multi, budget = train("multiscale", steps)
    # Time per residual step from two probes (their difference leaves out the set-up both pay).
    short, long = train("residual", 2)[1], train("residual", 6)[1]
    per_step = max((long - short) / 4, 1e-6)
    residual, spent = train("residual", max(2, int((budget - short) / per_step) + 2))
    models = {"multiscale": (multi, steps, budget), "residual": (residual, None, spent)}
    times: dict[str, list[float]] = {name: [] for name in models}
    with torch.no_grad():
        for name, (model, _, _) in models.items():
            model(model.noise(1, (render, render), 0, vgg.device))  # warm-up
        for rep in range(3):
            for name, (model, _, _) in models.items():
                noise = model.noise(1, (render, render), rep, vgg.device)
                sync(vgg.device)
                start = time.perf_counter()
                model(noise)
                sync(vgg.device)
                times[name].append(time.perf_counter() - start)
    rows = []
    for name, (model, n, seconds) in models.items():
        with torch.no_grad():
            samples = model(model.noise(4, (score_size, score_size), 7, vgg.device)).cpu()
        quality = sum(texture_score(samples[i : i + 1], exemplar.cpu()) for i in range(4)) / 4
        rows.append({"arch": name, "parameters": sum(p.numel() for p in model.parameters()),
                     "gflop_per_image": _conv_gflop(model, render), "render_px": render,
                     "images_per_s": 1.0 / min(times[name]), "train_seconds": seconds, "quality": quality})
    rows[1]["speedup_vs_multiscale"] = rows[1]["images_per_s"] / rows[0]["images_per_s"]
    rows[0]["speedup_vs_multiscale"] = 1.0
    return rows
