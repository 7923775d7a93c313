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

from .device import is_out_of_memory


def extract_patches(features: torch.Tensor, size: int, stride: int = 1) -> torch.Tensor:
    """(1, C, H, W) → (N, C*size*size): every ``size`` x ``size`` patch at ``stride``, row-major."""
    patches = F.unfold(features, kernel_size=size, stride=stride)  # (1, C*k*k, N)
    return patches[0].transpose(0, 1)


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
    exemplar_normalized: bool = False,
) -> Match:
    """For each row of ``query`` (N, D) the row of ``exemplar`` (M, D) with the highest cosine
    similarity, minus ``penalty`` (M,) if given. One matrix product per chunk of exemplar rows;
    exemplar rows are normalized chunk by chunk unless ``exemplar_normalized`` (precomputed)."""
    q = F.normalize(query, dim=1)
    e = exemplar
    while True:
        try:
            best = torch.full((q.shape[0],), -float("inf"), device=q.device, dtype=q.dtype)
            index = torch.zeros(q.shape[0], dtype=torch.long, device=q.device)
            for start in range(0, e.shape[0], chunk):
                keys = e[start : start + chunk]
                if not exemplar_normalized:
                    keys = F.normalize(keys, dim=1)
                scores = keys @ q.T  # (chunk, N): the only allocation that grows, with the chunk
                if penalty is not None:
                    scores -= penalty[start : start + chunk, None]
                chunk_best, chunk_index = scores.max(dim=0)
                better = chunk_best > best  # strict: ties keep the lowest index, as a full argmax does
                best = torch.where(better, chunk_best, best)
                index = torch.where(better, chunk_index + start, index)
                del scores, keys
            # Re-score the winners one way, so the scores do not depend on the chunk's BLAS kernel.
            winners = e[index] if exemplar_normalized else F.normalize(e[index], dim=1)
            score = (winners * q).sum(dim=1)
            if penalty is not None:
                score = score - penalty[index]
            return Match(index, score, chunk)
        except (RuntimeError, torch.cuda.OutOfMemoryError) as exc:
            if not is_out_of_memory(exc) or chunk <= 1:
                raise
            chunk //= 2
            if q.device.type == "cuda":
                torch.cuda.empty_cache()
