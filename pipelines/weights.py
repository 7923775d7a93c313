"""Resolve a weights setting to something tasks/vgg can load: s3:// URIs are staged to a local cache
once per node, so a cluster does not download ImageNet weights on every node."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

from .storage import Storage, is_s3

CACHE_DIR = Path(os.environ.get("TEXFARM_CACHE", Path.home() / ".cache" / "texfarm"))


def local_weights(weights: str, storage: Storage) -> str:
    """``imagenet`` / ``random`` / a local path unchanged; an s3:// URI downloaded to the cache."""
    if not is_s3(weights):
        return weights
    name = Path(weights).name
    target = CACHE_DIR / "weights" / f"{hashlib.sha256(weights.encode()).hexdigest()[:12]}-{name}"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + f".{os.getpid()}.tmp")
        tmp.write_bytes(storage.read(weights))
        os.replace(tmp, target)
    return str(target)
