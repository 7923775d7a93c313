"""The Renderer: holds one VGG19 and one storage client, executes many tasks.

A plain class so it can be used without Ray (the single-render command, tests, benchmarks);
pipelines/run.py wraps it as a Ray actor pinned to a GPU (or CPUs).
"""
from __future__ import annotations

import dataclasses
import sys
import threading
import time
import traceback
from collections import OrderedDict
from typing import Any, Optional

from tasks.device import describe, free_memory, is_out_of_memory, pick_device, set_threads
from tasks.imageio import DEFAULT_MAX_PIXELS, FORMATS, decode_image, encode_image
from tasks.imageops import DEFAULT_MAX_EXEMPLAR_PIXELS, bounded
from tasks.kind import build_params
from tasks.registry import get_kind
from tasks.model import ModelSettings
from tasks.vgg import VGGFeatures

from . import records
from .redact import redact
from .checkpoints import StorageCheckpoints
from .storage import Storage, StorageConfig, StorageError
from .weights import local_weights

INPUT_CACHE_BYTES = 1 << 30  # decoded exemplars and generator files kept per actor (LRU)


class Renderer:
    def __init__(self, *, model: dict, weights_id: Optional[str] = None, storage: Optional[dict] = None,
                 manifest_name: str = "", device: Optional[str] = None, threads: Optional[int] = None,
                 max_input_pixels: Optional[int] = None, max_exemplar_pixels: Optional[int] = None) -> None:
        """``model``: the manifest's `model:` section (ModelSettings' fields); ``weights_id``: the id the
        driver put in the task ids (default: the settings' own)."""
        set_threads(threads)
        self.storage = Storage(StorageConfig.from_dict(storage))
        self.device = pick_device(device)
        self.manifest_name = manifest_name
        self.max_input_pixels = max_input_pixels or DEFAULT_MAX_PIXELS
        self.max_exemplar_pixels = max_exemplar_pixels or DEFAULT_MAX_EXEMPLAR_PIXELS
        self.scaled: dict[str, dict] = {}  # exemplar URI -> how it was scaled down (for its tasks' records)
        self.input_cache: OrderedDict[str, Any] = OrderedDict()  # URI -> decoded image or raw bytes
        self.cache_bytes: dict[str, int] = {}
        self.compute_lock = threading.Lock()  # one task computes at a time; I/O of another may overlap
        self.cache_lock = threading.Lock()
        settings = ModelSettings(**model)
        weights = local_weights(settings.weights, self.storage)
        self.vgg = VGGFeatures(weights, settings.pooling, settings.seed, "relu5_4", self.device, settings.precision,
                               settings.channels_last, settings.compile)
        # The id is of the weights as named in the manifest (a URI), not of the local cache path.
        self.weights_id = weights_id or settings.weights_id

    def ready(self) -> dict[str, Any]:
        """Answered once the model is loaded: the device, and the Ray node this actor runs on."""
        return {"device": describe(self.device), "node": self.node_id}

    @property
    def node_id(self) -> Optional[str]:
        try:
            import ray  # only under Ray; the class also runs without it

            return ray.get_runtime_context().get_node_id() if ray.is_initialized() else None
        except ImportError:
            return None

    def _read_inputs(self, inputs: dict[str, list[str]], raw_roles: tuple[str, ...], alpha_roles: tuple[str, ...] = (),
                     exemplar_roles: tuple[str, ...] = ()):
        """Images decoded, raw roles (generator files) as bytes; both kept per actor by URI (within
        INPUT_CACHE_BYTES), so 16 seeds of one exemplar make one GET and one decode, not 16. An image
        decoded with its alpha channel is cached apart from its RGB decoding, an exemplar scaled down to
        max_exemplar_pixels apart from the image at full size (the same file may be a content image)."""
        def key(role: str, uri: str) -> str:
            return uri + "\0alpha" if role in alpha_roles else uri + "\0exemplar" if role in exemplar_roles else uri

        wanted = {key(role, uri): uri for role, role_uris in inputs.items() for uri in role_uris}
        with self.cache_lock:
            cached = {k: self.input_cache[k] for k in wanted if k in self.input_cache}
            for k in cached:
                self.input_cache.move_to_end(k)
        missing = list(dict.fromkeys(uri for k, uri in wanted.items() if k not in cached))
        fetched = dict(zip(missing, self.storage.read_many(missing)))
        out = {}
        for role, role_uris in inputs.items():
            values = []
            for uri in role_uris:
                k = key(role, uri)
                if k not in cached:
                    blob = fetched[uri]
                    cached[k] = blob if role in raw_roles else decode_image(blob, self.max_input_pixels, name=uri,
                                                                            alpha=role in alpha_roles)
                    if role in exemplar_roles:
                        cached[k] = self._bounded(uri, cached[k])
                    self._remember(k, cached[k])
                value = cached[k]
                values.append(value if isinstance(value, bytes) else value.clone())  # tasks get their own copy
            out[role] = values
        return out

    def _bounded(self, uri: str, image):
        """The exemplar within max_exemplar_pixels; when scaled, a warning line (the worker's log reaches
        the driver's) and a note for the records of the tasks that use it."""
        small, factor = bounded(image, self.max_exemplar_pixels)
        if factor < 1.0:
            height, width = image.shape[-2:]
            note = {"size": [width, height], "used": [small.shape[-1], small.shape[-2]], "scale": round(factor, 4)}
            self.scaled[uri] = note
            print(f"[texfarm] warning: exemplar {redact(uri)} is {width}x{height}, over limits.max_exemplar_pixels "
                  f"({self.max_exemplar_pixels:,}): used at {small.shape[-1]}x{small.shape[-2]} (scale {factor:.3f}), "
                  "so its elements come out smaller; crop it, or raise the limit", file=sys.stderr, flush=True)
        return small

    def _remember(self, uri: str, value) -> None:
        size = len(value) if isinstance(value, bytes) else value.numel() * value.element_size()
        with self.cache_lock:
            self.input_cache[uri] = value
            self.cache_bytes[uri] = size
            while sum(self.cache_bytes.values()) > INPUT_CACHE_BYTES and len(self.input_cache) > 1:
                old, _ = self.input_cache.popitem(last=False)
                self.cache_bytes.pop(old, None)

    def render(self, spec: dict[str, Any], attempt: int = 1) -> dict[str, Any]:
        """Run one task end to end; always returns its record (status done or failed), never raises."""
        return self.render_batch([spec], attempt)[0]

    def render_batch(self, specs: list[dict[str, Any]], attempt: int = 1) -> list[dict[str, Any]]:
        """Run tasks that differ only by seed, together when their kind can batch. Reading and writing
        happen outside the compute lock, so with two calls in flight (Ray's max_concurrency=2) one
        call's storage I/O overlaps the other's compute."""
        recs = [self._new_record(spec, attempt) for spec in specs]
        clock = time.perf_counter()
        try:
            kind = get_kind(specs[0]["kind"])
            params = build_params(kind.params, specs[0]["params"])
            for record in recs:  # every value the task ran with, defaults included (the catalog's params)
                record["resolved_params"] = dataclasses.asdict(params)
            t0 = time.perf_counter()
            inputs = self._read_inputs(specs[0]["inputs"], kind.raw, kind.alpha, kind.exemplars)
            scaled = {uri: self.scaled[uri] for role in kind.exemplars for uri in specs[0]["inputs"].get(role, [])
                      if uri in self.scaled}
            read_seconds = time.perf_counter() - t0
            t0 = time.perf_counter()
            with self.compute_lock:
                queue_seconds = time.perf_counter() - t0
                try:
                    results = self._compute(kind, params, inputs, specs)
                finally:
                    free_memory(self.device)
            t0 = time.perf_counter()
            outputs = [self._encode(spec["output_prefix"], result, spec.get("image"))
                       for spec, result in zip(specs, results)]
            # Write-once outputs: a task id names one result, so an output already there (from an attempt
            # whose worker died before its record) is that same result and is kept, never written twice.
            kept = self.storage.write_many_new(item for _, items in outputs for item in items)
            write_seconds = time.perf_counter() - t0
            for record, result, (names, _) in zip(recs, results, outputs):
                record.update(result.record)
                if scaled:
                    record["exemplars_scaled"] = scaled
                record.update(status="done", output_uri=names[0], outputs=names,
                              kept_outputs=[name for name in names if name in kept], read_seconds=round(read_seconds, 4),
                              write_seconds=round(write_seconds, 4), queue_seconds=round(queue_seconds, 4))
        except Exception as exc:  # recorded, not raised: one bad task must not stop the others
            error = redact(f"{type(exc).__name__}: {exc}")
            if is_out_of_memory(exc):
                error = (f"out of memory on {describe(self.device)}; lower `size` (or `chunk` for mrf), or give "
                         f"each worker more memory (a whole GPU: cluster.gpus_per_worker: 1). {error[:300]}")
            for record in recs:  # storage trouble may pass; the task's own errors would happen again
                record.update(status="failed", error=error, traceback=redact(traceback.format_exc(limit=6)),
                              retryable=isinstance(exc, StorageError))
        for spec, record in zip(specs, recs):
            record.update(wall_seconds=round(time.perf_counter() - clock, 4), finished_at=records.now())
            self._write_record(spec, record)
        return recs

    def _new_record(self, spec: dict[str, Any], attempt: int) -> dict[str, Any]:
        record = records.base_record(spec, self.manifest_name, self.weights_id)
        record.update(attempts=attempt, device=describe(self.device), node=self.node_id, started_at=records.now())
        return record

    def _compute(self, kind, params, inputs, specs: list[dict[str, Any]]) -> list:
        if len(specs) > 1:
            if kind.batch_run is None:
                raise ValueError(f"kind {kind.name!r} cannot render a batch")
            return kind.function("batch_run")(inputs, params, self.vgg, [spec["seed"] for spec in specs])
        extra = {"checkpoints": StorageCheckpoints(self.storage, specs[0]["output_prefix"])} if kind.checkpoints else {}
        return [kind.function()(inputs, params, self.vgg, specs[0]["seed"], **extra)]

    @staticmethod
    def _encode(prefix: str, result, image: Optional[dict] = None) -> tuple[list[str], list[tuple[str, bytes]]]:
        """Output names (first image first) and the (key, bytes) items to upload, in the job's format."""
        fmt = (image or {}).get("format", "png")
        ext = FORMATS[fmt]
        pngs = [encode_image(out, fmt, (image or {}).get("quality", 95)) for out in result.images]
        names = [f"{prefix}{ext}"] + [f"{prefix}_{i}{ext}" for i in range(1, len(pngs))]
        files = [(prefix + suffix, data) for suffix, data in result.files.items()]
        return names + [uri for uri, _ in files], [*zip(names, pngs), *files]

    def _write_record(self, spec: dict[str, Any], record: dict[str, Any]) -> None:
        """The success record goes last, after the images: it is the completion marker, written only if
        no other attempt wrote it first (a worker presumed dead may still finish)."""
        prefix = spec["output_prefix"]
        try:
            if record["status"] != "done":
                self.storage.write(prefix + records.FAILED_SUFFIX, records.dumps(record))
                return
            if not self.storage.write_new(prefix + records.RECORD_SUFFIX, records.dumps(record)):
                record.update(duplicate=True)  # another attempt finished first; its record stands
        except Exception as exc:
            record.update(status="failed", error=redact(f"could not write the record: {exc}"), retryable=True)
            return
        if spec.get("clear_failed"):  # a failed record from an earlier run; the done record wins anyway
            try:
                self.storage.delete(prefix + records.FAILED_SUFFIX)
            except Exception:
                pass
