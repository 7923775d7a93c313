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


def _halved_after_oom(exc: BaseException, chunk: int, device: torch.device) -> int:
    """The chunk to retry with after ``exc``: half, if it was an out-of-memory and can shrink; else re-raise."""
    if not is_out_of_memory(exc) or chunk <= 1:
        raise exc
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return chunk // 2


def nearest_patches(
    query: torch.Tensor,
    exemplar: torch.Tensor,
    chunk: int = 4096,
    penalty: Optional[torch.Tensor] = None,
    exemplar_normalized: bool = False,
    normalized_query: bool = False,
) -> Match:
    """For each row of ``query`` (N, D) the row of ``exemplar`` (M, D) with the highest cosine
    similarity, minus ``penalty`` (M,) if given. One matrix product per chunk of exemplar rows;
    exemplar rows are normalized chunk by chunk unless ``exemplar_normalized`` (precomputed), the
    query unless ``normalized_query`` (rows that carry more than unit features: semantic maps)."""
    q = query if normalized_query else F.normalize(query, dim=1)
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
            chunk = _halved_after_oom(exc, chunk, q.device)


def top_candidates(query: torch.Tensor, keys: torch.Tensor, count: int, chunk: int,
                   excluded: Optional[torch.Tensor] = None,
                   normalized_query: bool = False) -> tuple[torch.Tensor, torch.Tensor, int]:
    """The ``count`` most similar rows of ``keys`` (normalized) for each row of ``query``, best
    first, skipping keys where ``excluded`` is true. Chunked over keys like nearest_patches."""
    q = query if normalized_query else F.normalize(query, dim=1)
    count = min(count, keys.shape[0])
    while True:
        try:
            best = torch.full((q.shape[0], 0), -float("inf"), device=q.device, dtype=q.dtype)
            index = torch.zeros((q.shape[0], 0), dtype=torch.long, device=q.device)
            for start in range(0, keys.shape[0], chunk):
                scores = q @ keys[start : start + chunk].T  # (N, chunk)
                if excluded is not None:
                    scores.masked_fill_(excluded[None, start : start + chunk], -float("inf"))
                top = scores.topk(min(count, scores.shape[1]), dim=1)
                best, order = torch.cat([best, top.values], 1).topk(min(count, best.shape[1] + top.values.shape[1]), 1)
                index = torch.cat([index, top.indices + start], 1).gather(1, order)
                del scores
            return best, index, chunk
        except (RuntimeError, torch.cuda.OutOfMemoryError) as exc:
            chunk = _halved_after_oom(exc, chunk, q.device)


def sample_capacity(queries: int, keys: int, generator: torch.Generator) -> torch.Tensor:
    """How many image patches each exemplar patch may take so that the targets are a uniform
    sample of the exemplar's patches, as many as there are image patches: every key
    ``queries // keys`` times, plus once more for a random ``queries % keys`` of them."""
    capacity = torch.full((keys,), queries // keys, dtype=torch.long)
    capacity[torch.randperm(keys, generator=generator)[: queries % keys]] += 1
    return capacity


def grouped_capacity(query_groups: torch.Tensor, key_groups: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """``sample_capacity`` within each group (a semantic map's region): the image patches of a group
    take a uniform sample of that group's exemplar patches. A group the exemplar lacks (a region too
    small to hold a patch at this layer) takes a sample of all of them."""
    capacity = torch.zeros(key_groups.shape[0], dtype=torch.long)
    orphans = 0
    for group in query_groups.unique().tolist():
        queries = int((query_groups == group).sum())
        keys = (key_groups == group).nonzero().squeeze(1)
        if keys.numel() == 0:
            orphans += queries
            continue
        capacity[keys] += sample_capacity(queries, keys.numel(), generator)
    if orphans:
        capacity += sample_capacity(orphans, key_groups.shape[0], generator)
    return capacity


def balanced_patches(query: torch.Tensor, keys: torch.Tensor, capacity: torch.Tensor, chunk: int = 4096,
                     candidates: int = 64, max_rounds: int = 200, normalized_query: bool = False) -> Match:
    """Assign each image patch an exemplar patch, most similar pairs first, using no exemplar patch
    more than ``capacity`` times (capacities sum to the number of image patches, so every unit is
    used: the targets keep the exemplar's patch distribution, a background-dominated exemplar
    included). ``keys`` are normalized rows. Greedy in rounds: every unassigned patch proposes its
    best key with room among its ``candidates`` nearest; each key accepts its most similar
    proposals up to its room; patches whose candidates are all full look again among the keys
    with room. Past ``max_rounds`` the rest take their nearest key with room, and may overfill."""
    n = query.shape[0]
    room = capacity.to(query.device).clone()
    assigned = torch.full((n,), -1, dtype=torch.long, device=query.device)
    score = torch.zeros(n, dtype=query.dtype, device=query.device)
    if not normalized_query:
        query = F.normalize(query, dim=1)
    cand_score, cand_index, chunk = top_candidates(query, keys, candidates, chunk, normalized_query=True)
    for _ in range(max_rounds):
        active = (assigned < 0).nonzero().squeeze(1)
        if active.numel() == 0:
            break
        open_ = room[cand_index[active]] > 0
        stuck = ~open_.any(dim=1)
        if stuck.any():  # every candidate is full: look among the keys that still have room
            rows = active[stuck]
            s, i, chunk = top_candidates(query[rows], keys, candidates, chunk, excluded=room <= 0,
                                         normalized_query=True)
            cand_score[rows], cand_index[rows] = s, i
            open_[stuck] = (room[i] > 0) & s.isfinite()  # -inf: fewer keys with room than candidates
        # Patches that want the same key spread over their open candidates by their rank among its
        # suitors (identical patches, as in a flat region, would otherwise fill one key per round).
        first = cand_index[active, open_.float().argmax(dim=1)]
        suitor = _rank_within(first, cand_score[active, 0])
        nth = suitor % open_.sum(dim=1)
        pick = (open_ & (open_.cumsum(dim=1) == (nth + 1)[:, None])).float().argmax(dim=1)
        key = cand_index[active, pick]
        sim = cand_score[active, pick]
        rank = _rank_within(key, sim)
        accept = (rank < room[key]).nonzero().squeeze(1)
        assigned[active[accept]] = key[accept]
        score[active[accept]] = sim[accept]
        room -= torch.bincount(key[accept], minlength=room.numel())
    rest = (assigned < 0).nonzero().squeeze(1)
    if rest.numel():
        s, i, chunk = top_candidates(query[rest], keys, 1, chunk, excluded=room <= 0 if (room > 0).any() else None,
                                     normalized_query=True)
        assigned[rest], score[rest] = i[:, 0], s[:, 0]
    return Match(assigned, score, chunk)


def _rank_within(group: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """Each element's rank (0 = largest ``value``) among the elements with the same ``group``."""
    order = torch.argsort(value, descending=True, stable=True)
    order = order[torch.argsort(group[order], stable=True)]
    sorted_group = group[order]
    rank_sorted = torch.arange(order.numel(), device=group.device) - torch.searchsorted(sorted_group, sorted_group)
    return torch.empty_like(rank_sorted).scatter_(0, order, rank_sorted)
