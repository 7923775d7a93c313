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
