"""`texfarm export`: a run's finished renders as dataset shards other tools read directly.

- ``parquet``: ``part-00000.parquet`` ...: the catalog's columns plus ``image`` (the encoded bytes) and
  ``image_ext``; pandas, pyarrow and ``ray.data.read_parquet`` read them.
- ``webdataset``: ``shard-00000.tar`` ...: per task ``{task_id}.{ext}`` (the image) and
  ``{task_id}.json`` (its catalog row); ``webdataset`` and ``ray.data.read_webdataset`` read them.

Only done tasks are exported, in catalog order, ``shard_size`` per shard. Shards are written whole (a
reader never sees half of one), in parallel reads of ``storage.config.max_concurrency`` images.
"""
from __future__ import annotations

import io
import json
import tarfile
from typing import Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from . import catalog
from .storage import Storage, StorageError, join

FORMATS = ("parquet", "webdataset")


def _chunks(rows: list[dict], size: int) -> Iterator[list[dict]]:
    for start in range(0, len(rows), size):
        yield rows[start:start + size]


def _ext(row: dict) -> str:
    return (row.get("output_uri") or ".png").rsplit(".", 1)[-1].lower()


def _row_json(row: dict) -> bytes:
    return json.dumps(row, sort_keys=True, default=str).encode()  # timestamps as ISO text


def _parquet(rows: list[dict], images: list[bytes]) -> bytes:
    schema = catalog.SCHEMA.append(pa.field("image", pa.binary())).append(pa.field("image_ext", pa.string()))
    table = pa.Table.from_pylist([{**row, "image": image, "image_ext": _ext(row)} for row, image in zip(rows, images)],
                                 schema=schema)
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue()


def _tar(rows: list[dict], images: list[bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for row, image in zip(rows, images):
            for name, data in ((f"{row['task_id']}.{_ext(row)}", image), (f"{row['task_id']}.json", _row_json(row))):
                info = tarfile.TarInfo(name)
                info.size = len(data)
                info.mode = 0o644
                tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def export(storage: Storage, output: str, dest: str, fmt: str, shard_size: int = 1000) -> list[str]:
    """Write the shards under ``dest``; return their URIs."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; use one of {', '.join(FORMATS)}")
    if shard_size < 1:
        raise ValueError("--shard-size must be at least 1")
    rows = catalog.read_rows(storage, output)
    if not rows:
        raise StorageError(f"no catalog and no task records under {output}: run the manifest first")
    done = [row for row in rows if row["status"] == "done" and row.get("output_uri")]
    written = []
    for index, chunk in enumerate(_chunks(done, shard_size)):
        images = storage.read_many(row["output_uri"] for row in chunk)
        if fmt == "parquet":
            uri, data = join(dest, f"part-{index:05d}.parquet"), _parquet(chunk, images)
        else:
            uri, data = join(dest, f"shard-{index:05d}.tar"), _tar(chunk, images)
        storage.write(uri, data)
        written.append(uri)
    return written
