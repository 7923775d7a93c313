"""What the optimizer itself costs per iteration, device-independent counts included: torch's L-BFGS
against ours (tasks/lbfgs.py) on the Gatys texture objective, same start, same run.

``ops`` are the aten calls per iteration outside the objective (on a GPU: kernel launches and their
CPU-side dispatch), ``syncs`` the host-device synchronizations (``_local_scalar_dense``): on a GPU
each one stalls the CPU until the device has drained its queue."""
from __future__ import annotations

import time
from collections import Counter

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from tasks.common import seeded_noise
from tasks.lbfgs import DeviceLBFGS
from tasks.losses import GramLoss, normalized_weights
from tasks.params import GATYS_TEXTURE_LAYERS
from tasks.vgg import VGGFeatures

from .tasks_bench import sync

CHUNK = 10  # iterations per step() call, as tasks/optimize.py runs them between divergence checks


class CountOps(TorchDispatchMode):
    """Counts aten calls by name while active."""

    def __init__(self) -> None:
        super().__init__()
        self.ops = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops[func.__name__.split(".")[0]] += 1
        return func(*args, **(kwargs or {}))


def _torch_lbfgs(x: torch.Tensor):
    optimizer = torch.optim.LBFGS([x], history_size=50, line_search_fn="strong_wolfe",
                                  tolerance_grad=-1.0, tolerance_change=-1.0)

    def run(closure, n: int) -> None:
        optimizer.param_groups[0].update(max_iter=n, max_eval=n * 5 // 4)
        optimizer.step(closure)
    return run


def _device_lbfgs(x: torch.Tensor):
    optimizer = DeviceLBFGS(x, history_size=50)
    return lambda closure, n: optimizer.step(closure, n)


def optimizer_rows(vgg: VGGFeatures, exemplar: torch.Tensor, size: int, iterations: int) -> list[dict]:
    layers = GATYS_TEXTURE_LAYERS
    with torch.no_grad():
        target = GramLoss.from_features([vgg(exemplar.to(vgg.device), layers)], normalized_weights(layers, None))
    start = seeded_noise(0, (size, size), exemplar.mean(dim=(2, 3), keepdim=True).to(vgg.device), vgg.device)
    rows = []
    for name, make in (("torch.optim.LBFGS", _torch_lbfgs), ("tasks.lbfgs.DeviceLBFGS", _device_lbfgs)):
        x = start.clone().requires_grad_(True)
        evaluations = 0

        def closure() -> torch.Tensor:
            nonlocal evaluations
            x.grad = None
            loss = target.per_image(vgg(x, layers)).sum()
            loss.backward()
            evaluations += 1
            return loss

        run = make(x)
        run(closure, CHUNK)  # warm-up, and a history to work with
        sync(vgg.device)
        evaluations, begin = 0, time.perf_counter()
        for _ in range(iterations // CHUNK):
            run(closure, CHUNK)
        sync(vgg.device)
        seconds, timed_evaluations = time.perf_counter() - begin, evaluations
        with CountOps() as in_closure:
            closure()
        evaluations = 0
        with CountOps() as counted:
            run(closure, CHUNK)
        optimizer_ops = sum(counted.ops.values()) - evaluations * sum(in_closure.ops.values())
        syncs = counted.ops["_local_scalar_dense"] - evaluations * in_closure.ops["_local_scalar_dense"]
        with torch.no_grad():
            loss = float(target.per_image(vgg(x, layers)).sum())
        rows.append({"optimizer": name, "size": size, "iterations": iterations // CHUNK * CHUNK,
                     "evaluations": timed_evaluations, "seconds": seconds,
                     "ops_per_iteration": optimizer_ops / CHUNK, "syncs_per_iteration": syncs / CHUNK,
                     "loss_end": loss})
    return rows
