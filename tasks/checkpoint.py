"""Where long trainings put their checkpoints. tasks/ only sees this protocol; pipelines/ backs it
with S3 or a local folder, tests with memory."""
from __future__ import annotations

from typing import Optional, Protocol


class CheckpointStore(Protocol):
    def latest(self) -> Optional[tuple[int, dict[str, bytes]]]:
        """The newest complete checkpoint as (step, {file name: bytes}), or None."""

    def save(self, step: int, files: dict[str, bytes]) -> None:
        """Store a checkpoint; it must become visible to ``latest`` only once complete."""


class MemoryCheckpoints:
    def __init__(self) -> None:
        self.saved: dict[int, dict[str, bytes]] = {}

    def latest(self) -> Optional[tuple[int, dict[str, bytes]]]:
        if not self.saved:
            return None
        step = max(self.saved)
        return step, self.saved[step]

    def save(self, step: int, files: dict[str, bytes]) -> None:
        self.saved[step] = dict(files)
