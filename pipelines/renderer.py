"""The Renderer: holds one VGG19 and one storage client, executes many tasks.

A plain class so it can be used without Ray (the single-render command, tests, benchmarks);
pipelines/run.py wraps it as a Ray actor pinned to a GPU (or CPUs).
"""
from __future__ import annotations

import os
import time
import traceback
from collections import OrderedDict
from typing import Any, Optional

from tasks.device import describe, free_memory, is_out_of_memory, pick_device, set_threads
from tasks.imageio import DEFAULT_MAX_PIXELS, decode_image, encode_png
from tasks.params import build_params
from tasks.registry import get_kind
from tasks.vgg import VGGFeatures

from . import records
from .checkpoints import StorageCheckpoints
from .storage import Storage, StorageConfig
from .weights import local_weights

RAW_CACHE_SIZE = 8  # trained generators kept per actor (a few MB each)


class Renderer:
    def __init__(self, model: dict, storage: Optional[dict] = None, manifest_name: str = "",
                 device: Optional[str] = None, threads: Optional[int] = None,
                 max_input_pixels: int = DEFAULT_MAX_PIXELS) -> None:
        set_threads(threads)
        self.storage = Storage(StorageConfig.from_dict(storage))
        self.device = pick_device(device)
        self.manifest_name = manifest_name
        self.max_input_pixels = max_input_pixels
        self.raw_cache: OrderedDict[str, bytes] = OrderedDict()
        weights = local_weights(model.get("weights", "imagenet"), self.storage)
        self.vgg = VGGFeatures(weights, model.get("pooling", "avg"), model.get("seed", 0), "relu5_4", self.device)
        # The id is of the weights as named in the manifest (a URI), not of the local cache path.
        from tasks.vgg import weights_id

        self.weights_id = weights_id(model.get("weights", "imagenet"), model.get("seed", 0), model.get("pooling", "avg"))

    def pid(self) -> int:
        return os.getpid()

    def ready(self) -> str:
        return describe(self.device)

    def _read_inputs(self, inputs: dict[str, list[str]], raw_roles: tuple[str, ...]):
        """Images decoded; raw roles (generator files) as bytes, cached per actor by URI."""
        uris = [uri for role_uris in inputs.values() for uri in role_uris if uri not in self.raw_cache]
        blobs = dict(zip(uris, self.storage.read_many(uris)))
        out = {}
        for role, role_uris in inputs.items():
            if role in raw_roles:
                for uri in role_uris:
                    self.raw_cache.setdefault(uri, blobs.get(uri))
                    self.raw_cache.move_to_end(uri)
                out[role] = [self.raw_cache[uri] for uri in role_uris]
                while len(self.raw_cache) > RAW_CACHE_SIZE:
                    self.raw_cache.popitem(last=False)
            else:
                out[role] = [decode_image(blobs[uri], self.max_input_pixels, name=uri) for uri in role_uris]
        return out

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
            inputs = self._read_inputs(spec["inputs"], kind.raw)
            read_seconds = time.perf_counter() - t0
            extra = {"checkpoints": StorageCheckpoints(self.storage, prefix)} if kind.checkpoints else {}
            result = kind.run(inputs, params, self.vgg, spec["seed"], **extra)
            t0 = time.perf_counter()
            pngs = [encode_png(image) for image in result.images]
            names = [f"{prefix}.png"] + [f"{prefix}_{i}.png" for i in range(1, len(pngs))]
            files = [(prefix + suffix, data) for suffix, data in result.files.items()]
            self.storage.write_many([*zip(names, pngs), *files])
            record.update(result.record)
            record.update(status="done", output_uri=names[0], outputs=names + [uri for uri, _ in files],
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
