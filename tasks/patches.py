"""Brute-force nearest-neighbour matching of feature patches by normalized cross-correlation.

The exemplar patches are processed in chunks, keeping only the running best match per image
patch, so peak memory is ``chunk x image patches`` whatever the exemplar's size. On out-of-memory
the chunk is halved and the step retried.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F


def extract_patches(features: torch.Tensor, size: int, stride: int = 1) -> torch.Tensor:
    """(1, C, H, W) → (N, C*size*size): every ``size`` x ``size`` patch at ``stride``, row-major."""
    patches = F.unfold(features, kernel_size=size, stride=stride)  # (1, C*k*k, N)
    return patches[0].transpose(0, 1)


def _is_oom(exc: BaseException) -> bool:
    return isinstance(exc, torch.cuda.OutOfMemoryError) or "out of memory" in str(exc).lower()


@dataclass
class Match:
    index: torch.Tensor  # (N,) exemplar patch index for each image patch
    score: torch.Tensor  # (N,) cosine similarity of the match (with any usage penalty subtracted)
    chunk: int  # the chunk size that fit


def nearest_patches(
    query: torch.Tensor,
    exemplar: torch.Tensor,
    chunk: int = 4096,
    penalty: Optional[torch.Tensor] = None,
) -> Match:
    """For each row of ``query`` (N, D) the row of ``exemplar`` (M, D) with the highest cosine
    similarity, minus ``penalty`` (M,) if given. One matrix product per chunk of exemplar rows."""
    q = F.normalize(query, dim=1)
    e = F.normalize(exemplar, dim=1)
    while True:
        try:
            best = torch.full((q.shape[0],), -float("inf"), device=q.device, dtype=q.dtype)
            index = torch.zeros(q.shape[0], dtype=torch.long, device=q.device)
            for start in range(0, e.shape[0], chunk):
                scores = e[start : start + chunk] @ q.T  # (chunk, N): the only big allocation
                if penalty is not None:
                    scores -= penalty[start : start + chunk, None]
                chunk_best, chunk_index = scores.max(dim=0)
                better = chunk_best > best  # strict: ties keep the lowest index, as a full argmax does
                best = torch.where(better, chunk_best, best)
                index = torch.where(better, chunk_index + start, index)
                del scores
            return Match(index, best, chunk)
        except (RuntimeError, torch.cuda.OutOfMemoryError) as exc:
            if not _is_oom(exc) or chunk <= 1:
                raise
            chunk //= 2
            if q.device.type == "cuda":
                torch.cuda.empty_cache()
