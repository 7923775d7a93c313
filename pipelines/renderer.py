"""The Renderer: holds one VGG19 and one storage client, executes many tasks.

A plain class so it can be used without Ray (the single-render command, tests, benchmarks);
pipelines/run.py wraps it as a Ray actor pinned to a GPU (or CPUs).
"""
from __future__ import annotations

import os
import time
import traceback
from typing import Any, Optional

from tasks.device import describe, free_memory, is_out_of_memory, pick_device, set_threads
from tasks.imageio import DEFAULT_MAX_PIXELS, decode_image, encode_png
from tasks.params import build_params
from tasks.registry import get_kind
from tasks.vgg import VGGFeatures

from . import records
from .storage import Storage, StorageConfig
from .weights import local_weights


class Renderer:
    def __init__(self, model: dict, storage: Optional[dict] = None, manifest_name: str = "",
                 device: Optional[str] = None, threads: Optional[int] = None,
                 max_input_pixels: int = DEFAULT_MAX_PIXELS) -> None:
        set_threads(threads)
        self.storage = Storage(StorageConfig.from_dict(storage))
        self.device = pick_device(device)
        self.manifest_name = manifest_name
        self.max_input_pixels = max_input_pixels
        weights = local_weights(model.get("weights", "imagenet"), self.storage)
        self.vgg = VGGFeatures(weights, model.get("pooling", "avg"), model.get("seed", 0), "relu5_4", self.device)
        # The id is of the weights as named in the manifest (a URI), not of the local cache path.
        from tasks.vgg import weights_id

        self.weights_id = weights_id(model.get("weights", "imagenet"), model.get("seed", 0), model.get("pooling", "avg"))

    def pid(self) -> int:
        return os.getpid()

    def ready(self) -> str:
        return describe(self.device)

    def _read_inputs(self, inputs: dict[str, list[str]]):
        uris = [uri for role_uris in inputs.values() for uri in role_uris]
        blobs = dict(zip(uris, self.storage.read_many(uris)))
        return {role: [decode_image(blobs[uri], self.max_input_pixels, name=uri) for uri in role_uris]
                for role, role_uris in inputs.items()}

    def render(self, spec: dict[str, Any], attempt: int = 1) -> dict[str, Any]:
        """Run one task end to end; always returns its record (status done or failed), never raises."""
        record = records.base_record(spec, self.manifest_name, self.weights_id)
        record.update(attempts=attempt, device=describe(self.device), started_at=records.now())
        prefix = spec["output_prefix"]
        clock = time.perf_counter()
        try:
            kind = get_kind(spec["kind"])
            params = build_params(kind.params, spec["params"])
            t0 = time.perf_counter()
            inputs = self._read_inputs(spec["inputs"])
            read_seconds = time.perf_counter() - t0
            result = kind.run(inputs, params, self.vgg, spec["seed"])
            t0 = time.perf_counter()
            pngs = [encode_png(image) for image in result.images]
            names = [f"{prefix}.png"] + [f"{prefix}_{i}.png" for i in range(1, len(pngs))]
            self.storage.write_many(zip(names, pngs))
            record.update(result.record)
            record.update(status="done", output_uri=names[0], outputs=names,
                          read_seconds=round(read_seconds, 4), write_seconds=round(time.perf_counter() - t0, 4))
        except Exception as exc:  # recorded, not raised: one bad task must not stop the others
            error = f"{type(exc).__name__}: {exc}"
            if is_out_of_memory(exc):
                error = (f"out of memory on {describe(self.device)}; lower `size` (or `chunk` for mrf), or give "
                         f"each worker more memory (a whole GPU: cluster.gpus_per_worker: 1). {error[:300]}")
            record.update(status="failed", error=error, traceback=traceback.format_exc(limit=6))
        finally:
            free_memory(self.device)
        record.update(wall_seconds=round(time.perf_counter() - clock, 4), finished_at=records.now())
        self._write_record(prefix, record)
        return record

    def _write_record(self, prefix: str, record: dict[str, Any]) -> None:
        """The success record goes last, after the images: it is the completion marker."""
        try:
            if record["status"] == "done":
                self.storage.write(prefix + records.RECORD_SUFFIX, records.dumps(record))
                self.storage.delete(prefix + records.FAILED_SUFFIX)
            else:
                self.storage.write(prefix + records.FAILED_SUFFIX, records.dumps(record))
        except Exception as exc:
            record.update(status="failed", error=f"could not write the record: {exc}")
