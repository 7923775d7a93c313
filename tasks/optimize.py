"""Pixel optimization with L-BFGS (default, as Gatys et al.) or Adam, guarded against divergence.

The guard (after texturize's solver): the loop runs in chunks of ``check_every`` iterations;
after each chunk the loss is checked once (the only host-device sync besides the line search's,
see ``lbfgs.py``).
A non-finite or exploding loss rolls the image back to the last good state and restarts the
optimizer with a tenth of the step size, instead of returning garbage. Rolled-back chunks do not
count against ``iterations`` (at most ``max_rollbacks`` of them), so a recovered run still converges.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Optional

import torch

from .lbfgs import DeviceLBFGS

Objective = Callable[[torch.Tensor], torch.Tensor]


class Diverged(RuntimeError):
    """The optimization kept diverging after every allowed roll-back."""


@dataclass
class OptimResult:
    image: torch.Tensor
    loss_start: float
    loss_end: float
    iterations: int
    evaluations: int
    rollbacks: int
    history: list[float] = field(default_factory=list)
    per_image_start: list[float] = field(default_factory=list)  # when the objective returns one loss per image
    per_image_end: list[float] = field(default_factory=list)


class _Stepper:
    """Runs ``n`` iterations of one optimizer; tells it when the objective changed."""

    def __init__(self, x: torch.Tensor, method: str, lr: float) -> None:
        self.x = x
        if method == "lbfgs":
            # Runs the iterations it is asked for: no early stop on a flat stretch.
            self.optimizer = DeviceLBFGS(x, lr=lr, history_size=50)
        elif method == "adam":
            self.optimizer = torch.optim.Adam([x], lr=lr)
        else:
            raise ValueError(f"optimizer must be 'lbfgs' or 'adam', not {method!r}")

    def run(self, closure: Callable[[], torch.Tensor], n: int) -> None:
        if isinstance(self.optimizer, DeviceLBFGS):
            self.optimizer.step(closure, n)
        else:
            for _ in range(n):
                self.optimizer.step(closure)
                with torch.no_grad():
                    self.x.clamp_(0, 1)

    def loss_at_x(self, last_evaluated: float) -> float:
        """The loss at the current image: L-BFGS knows it; for Adam the last evaluation is one step behind."""
        return self.optimizer.loss if isinstance(self.optimizer, DeviceLBFGS) else last_evaluated

    def objective_changed(self) -> None:
        if isinstance(self.optimizer, DeviceLBFGS):
            self.optimizer.objective_changed()  # Adam evaluates afresh at every step anyway


def optimize(
    image: torch.Tensor,
    objective: Objective,
    iterations: int,
    method: str = "lbfgs",
    lr: float = 1.0,
    check_every: int = 10,
    divergence_factor: float = 10.0,
    max_rollbacks: int = 20,
    on_chunk: Optional[Callable[[int, float, torch.Tensor], None]] = None,
) -> OptimResult:
    """Minimize ``objective(image)`` over the pixels; returns the image clamped to [0, 1].

    The objective may return one loss per image of a batch: their sum is minimized (the images are
    independent, but L-BFGS's line search takes one step size for the whole batch).

    An objective with a ``refresh()`` method (e.g. patch matching with fixed targets) is refreshed
    after every good chunk, so between refreshes L-BFGS sees a smooth function. ``on_chunk(iterations
    done, loss, image)`` is called after every good chunk (progress lines, intermediate images)."""
    refresh = getattr(objective, "refresh", None)
    x = image.detach().clone(memory_format=torch.contiguous_format).requires_grad_(True)  # L-BFGS views it flat
    with torch.no_grad():
        per_image_start = objective(x).reshape(-1)
        loss_start = float(per_image_start.sum())
    if not math.isfinite(loss_start):
        raise Diverged(f"the loss is {loss_start} before the first step; check the inputs and weights")
    last_good = x.detach().clone()
    best = loss_start
    history: list[float] = [loss_start]
    evaluations = iterations_done = rollbacks = 0
    last_loss = torch.tensor(loss_start)
    stepper = _Stepper(x, method, lr)

    def closure() -> torch.Tensor:
        nonlocal evaluations, last_loss
        x.grad = None
        loss = objective(x).sum()
        loss.backward()
        evaluations += 1
        last_loss = loss.detach()
        return loss

    while iterations_done < iterations:
        chunk = min(check_every, iterations - iterations_done)
        stepper.run(closure, chunk)
        loss = stepper.loss_at_x(float(last_loss))
        finite = math.isfinite(loss) and bool(torch.isfinite(x).all())
        if finite and loss <= divergence_factor * best:
            iterations_done += chunk
            last_good.copy_(x.detach())
            best = min(best, loss)
            history.append(loss)
            if on_chunk is not None:
                on_chunk(iterations_done, loss, x.detach())
            if refresh is not None:
                refresh()
                stepper.objective_changed()
            continue
        rollbacks += 1
        if rollbacks > max_rollbacks:
            raise Diverged(f"loss diverged {rollbacks} times (last {loss}); lower `lr` or use `optimizer: lbfgs`")
        with torch.no_grad():
            x.copy_(last_good)
        lr *= 0.1
        stepper = _Stepper(x, method, lr)

    with torch.no_grad():
        x.clamp_(0, 1)
        per_image_end = objective(x).reshape(-1)
        loss_end = float(per_image_end.sum())
    if not math.isfinite(loss_end):
        raise Diverged(f"final loss is {loss_end}")
    return OptimResult(x.detach(), loss_start, loss_end, iterations_done, evaluations, rollbacks, history,
                       per_image_start.tolist(), per_image_end.tolist())
