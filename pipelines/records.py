"""Task records: the JSON written after a task's images (the completion marker) and its provenance."""
from __future__ import annotations

import json
import math
import platform
from datetime import datetime, timezone
from functools import lru_cache
from importlib import metadata
from typing import Any

from .redact import redact

RECORD_SUFFIX = ".json"
FAILED_SUFFIX = ".failed.json"  # a failed attempt; never taken as completion


@lru_cache(maxsize=1)
def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for package in ("texfarm", "torch", "torchvision", "ray", "boto3", "pyarrow", "pillow"):
        try:
            out[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            pass
    return out


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def base_record(spec: dict[str, Any], manifest_name: str, weights_id: str) -> dict[str, Any]:
    """Provenance every record carries, success or failure."""
    return {
        "task_id": spec["task_id"],
        "manifest": manifest_name,
        "job": spec["job"],
        "kind": spec["kind"],
        "seed": spec["seed"],
        "inputs": spec["inputs"],
        "params": spec["params"],
        "weights": weights_id,
        "versions": versions(),
        "output_uri": None,
        "status": "running",
        "error": None,
    }


def failed_record(spec: dict[str, Any], manifest_name: str, weights_id: str, error: str,
                  attempts: int = 1, device: str | None = None, retryable: bool = True) -> dict[str, Any]:
    """``retryable``: the failure came from outside the task (storage, workers that could not run it),
    so a plain re-run tries again; False for the task's own failures (a bad input, divergence, a task
    that kills its workers), which only `run --retry-failed` runs again."""
    record = base_record(spec, manifest_name, weights_id)
    record.update(status="failed", error=redact(error), attempts=attempts, device=device, finished_at=now(),
                  retryable=retryable)
    return record


def dumps(record: dict[str, Any]) -> bytes:
    """Strict JSON: a non-finite float (a loss that blew up) is written as null, never as `NaN` or
    `Infinity`, which JSON readers other than Python's reject."""
    return json.dumps(_finite(record), indent=1, sort_keys=True, default=str, allow_nan=False).encode()


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    return value
