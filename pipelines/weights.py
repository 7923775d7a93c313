"""Resolve a weights setting to something tasks/vgg can load: s3:// URIs are staged to a local cache
once per node, so a cluster does not download ImageNet weights on every node."""
from __future__ import annotations

import fcntl
import hashlib
import os
import threading
from pathlib import Path

from .storage import Storage, is_s3

CACHE_DIR = Path(os.environ.get("TEXFARM_CACHE", Path.home() / ".cache" / "texfarm"))


def local_weights(weights: str, storage: Storage) -> str:
    """``imagenet`` / ``random`` / a local path unchanged; an s3:// URI downloaded to the cache."""
    if not is_s3(weights):
        return weights
    name = Path(weights).name
    target = CACHE_DIR / "weights" / f"{hashlib.sha256(weights.encode()).hexdigest()[:12]}-{name}"
    if target.exists():
        return str(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    # One download per node: the actors of a node that start together wait for the first one's copy.
    with open(target.with_name(target.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not target.exists():
            tmp = target.with_name(target.name + f".{os.getpid()}.{threading.get_ident()}.tmp")
            tmp.write_bytes(storage.read(weights))
            os.replace(tmp, target)
    return str(target)
