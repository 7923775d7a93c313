"""Task-level figures, pure torch (runs on a GPU machine without Ray): the bare VGG19 ceiling and
the Gatys texture task against it."""
from __future__ import annotations

import time

import torch

from tasks.gatys import texture
from tasks.params import GATYS_TEXTURE_LAYERS
from tasks.kinds.texture import TextureParams
from tasks.vgg import VGGFeatures


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def vgg_pass_seconds(vgg: VGGFeatures, size: int, groups: int = 5, min_seconds: float = 0.2) -> float:
    """Seconds of one forward+backward pass through the texture layers (the optimization's unit of work):
    the best mean over ``groups`` groups of passes (each at least 2 passes and ``min_seconds``), since a
    ceiling should not carry the machine's noise."""
    x = torch.rand(1, 3, size, size, device=vgg.device, requires_grad=True)

    def one_pass():
        feats = vgg(x, GATYS_TEXTURE_LAYERS)
        sum(f.square().mean() for f in feats.values()).backward()

    one_pass()  # warm-up: kernels, allocator, compilation
    best = float("inf")
    for _ in range(groups):
        sync(vgg.device)
        start, passes = time.perf_counter(), 0
        while passes < 2 or time.perf_counter() - start < min_seconds:
            one_pass()
            passes += 1
            sync(vgg.device)
        best = min(best, (time.perf_counter() - start) / passes)
    return best


def gatys_texture_row(vgg: VGGFeatures, exemplar: torch.Tensor, size: int, iterations: int) -> dict:
    start = time.perf_counter()
    pass_s = vgg_pass_seconds(vgg, size)
    params = TextureParams(size=size, iterations=iterations)
    texture({"inputs": [exemplar]}, TextureParams(size=size, iterations=2), vgg, 0)  # warm-up
    sync(vgg.device)
    warm_up = time.perf_counter() - start
    start = time.perf_counter()
    record = texture({"inputs": [exemplar]}, params, vgg, 0).record
    sync(vgg.device)
    wall = time.perf_counter() - start
    return {
        "size": size, "iterations": iterations, "evaluations": record["evaluations"],
        "vgg_passes_per_s": 1.0 / pass_s, "seconds_per_texture": wall, "textures_per_hour": 3600.0 / wall,
        # Useful network work: VGG evaluations x the bare pass time, over the task's wall time.
        "useful_fraction": record["evaluations"] * pass_s / wall,
        "loss_end": record["loss_end"],
        # Paid once per size and actor: kernel selection, and compilation under torch.compile.
        "warm_up_s": warm_up,
    }


def matching_row(device: torch.device, queries: int, exemplar_patches: int, dim: int, chunk: int) -> dict:
    """Patch matching against a plain matrix product of the same shape (the ceiling for the search)."""
    from tasks.patches import balanced_patches, nearest_patches, sample_capacity

    generator = torch.Generator().manual_seed(0)
    query = torch.randn(queries, dim, generator=generator).to(device)
    exemplar = torch.nn.functional.normalize(torch.randn(exemplar_patches, dim, generator=generator), dim=1).to(device)

    def timed(fn, repeats: int = 3) -> float:
        fn()
        sync(device)
        start = time.perf_counter()
        for _ in range(repeats):
            fn()
        sync(device)
        return (time.perf_counter() - start) / repeats

    match_s = timed(lambda: nearest_patches(query, exemplar, chunk, exemplar_normalized=True))
    mm_s = timed(lambda: exemplar @ query.T)
    capacity = sample_capacity(queries, exemplar_patches, generator)
    balanced_s = timed(lambda: balanced_patches(query, exemplar, capacity, chunk), repeats=1)
    flops = 2.0 * queries * exemplar_patches * dim
    return {"queries": queries, "exemplar_patches": exemplar_patches, "dim": dim, "chunk": chunk,
            "matching_s": match_s, "matmul_s": mm_s, "matching_gflops": flops / match_s / 1e9,
            "matmul_gflops": flops / mm_s / 1e9, "ratio": mm_s / match_s,
            "balanced_s": balanced_s, "balanced_over_nearest": balanced_s / match_s}


def mrf_texture_row(vgg: VGGFeatures, exemplar: torch.Tensor, size: int, iterations: int) -> dict:
    from tasks.mrf import mrf
    from tasks.kinds.mrf import RANDOM_WEIGHTS, MRFParams

    params = MRFParams(**RANDOM_WEIGHTS, size=size, iterations=iterations, octaves=1)
    mrf({"inputs": [exemplar]}, MRFParams(**RANDOM_WEIGHTS, size=size, iterations=2, octaves=1), vgg, 0)  # warm-up
    sync(vgg.device)
    start = time.perf_counter()
    record = mrf({"inputs": [exemplar]}, params, vgg, 0).record
    sync(vgg.device)
    wall = time.perf_counter() - start
    return {"size": size, "iterations": iterations, "evaluations": record["evaluations"],
            "seconds_per_texture": wall, "textures_per_hour": 3600.0 / wall, "loss_end": record["loss_end"]}


def batch_row(vgg: VGGFeatures, exemplar: torch.Tensor, size: int, iterations: int, batch: int) -> dict:
    """Textures/hour with ``batch`` seeds per VGG pass against the same seeds one at a time."""
    from tasks.gatys import texture_batch

    params = TextureParams(size=size, iterations=iterations)
    inputs = {"inputs": [exemplar]}
    texture(inputs, TextureParams(size=size, iterations=2), vgg, 0)  # warm-up
    sync(vgg.device)
    start = time.perf_counter()
    alone = [texture(inputs, params, vgg, seed).record["loss_end"] for seed in range(batch)]
    sync(vgg.device)
    one_s = time.perf_counter() - start
    start = time.perf_counter()
    together = [out.record["loss_end"] for out in texture_batch(inputs, params, vgg, list(range(batch)))]
    sync(vgg.device)
    batch_s = time.perf_counter() - start
    return {"size": size, "batch": batch, "one_at_a_time_per_hour": 3600 * batch / one_s,
            "batched_per_hour": 3600 * batch / batch_s, "speedup": one_s / batch_s,
            "mean_loss_alone": sum(alone) / batch, "mean_loss_batched": sum(together) / batch}
