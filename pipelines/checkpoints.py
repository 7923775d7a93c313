"""Training checkpoints in storage: ``{task prefix}.ckpt/{step:09d}/{file}``. A checkpoint counts
only once its ``complete`` marker is written (last), so a preempted upload is never resumed from."""
from __future__ import annotations

from typing import Optional

from .storage import Storage

MARKER = "complete"
KEEP = 2  # older checkpoints are deleted once a newer one is complete


class StorageCheckpoints:
    def __init__(self, storage: Storage, task_prefix: str) -> None:
        self.storage = storage
        self.root = task_prefix + ".ckpt"

    def _complete_steps(self) -> list[int]:
        steps = []
        for uri in self.storage.list(self.root + "/"):
            parts = uri[len(self.root) + 1 :].split("/")
            if len(parts) == 2 and parts[1] == MARKER and parts[0].isdigit():
                steps.append(int(parts[0]))
        return sorted(steps)

    def latest(self) -> Optional[tuple[int, dict[str, bytes]]]:
        steps = self._complete_steps()
        if not steps:
            return None
        folder = f"{self.root}/{steps[-1]:09d}/"
        uris = [u for u in self.storage.list(folder) if not u.endswith("/" + MARKER)]
        blobs = self.storage.read_many(uris)
        return steps[-1], {uri[len(folder):]: blob for uri, blob in zip(uris, blobs)}

    def save(self, step: int, files: dict[str, bytes]) -> None:
        folder = f"{self.root}/{step:09d}/"
        self.storage.write_many((folder + name, data) for name, data in files.items())
        self.storage.write(folder + MARKER, str(step).encode())
        for old in self._complete_steps()[:-KEEP]:
            for uri in self.storage.list(f"{self.root}/{old:09d}/"):
                self.storage.delete(uri)
