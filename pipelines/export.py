"""`texfarm export`: a run's finished renders as dataset shards other tools read directly.

- ``parquet``: ``part-00000.parquet`` ...: the catalog's columns plus ``image`` (the encoded bytes) and
  ``image_ext``; pandas, pyarrow and ``ray.data.read_parquet`` read them.
- ``webdataset``: ``shard-00000.tar`` ...: per task ``{task_id}.{ext}`` (the image) and
  ``{task_id}.json`` (its catalog row); ``webdataset`` and ``ray.data.read_webdataset`` read them.

Only done tasks are exported, in catalog order, ``shard_size`` per shard. Shards are written whole (a
reader never sees half of one), in parallel reads of ``storage.config.max_concurrency`` images. Each
shard has a ``_{shard}_stats.json`` beside it (count, bytes, image sizes, as img2dataset writes), and
``_shards.json`` lists them all (the leading ``_`` keeps folder readers such as pyarrow's dataset,
pandas and Ray Data from taking them for data). Rows carry each image's ``width`` and ``height``. A destination that holds anything is refused: a second export into
it would leave the first one's extra shards and a reader would see those samples twice;
``overwrite`` deletes an earlier export's files first (never files an export does not write).
"""
from __future__ import annotations

import io
import json
import re
import tarfile
from typing import Iterator, Optional

from PIL import Image

import pyarrow as pa
import pyarrow.parquet as pq

from . import catalog
from .storage import Storage, StorageError, join

FORMATS = ("parquet", "webdataset")
# What an export writes: its shards, their stats and the shard list; nothing else is ever deleted.
EXPORT_FILE = re.compile(r"^_?(part-\d{5}\.parquet|shard-\d{5}\.tar)(_stats\.json)?$|^_shards\.json$")


def _size(image: bytes) -> tuple[Optional[int], Optional[int]]:
    """(width, height) from the image header (no decoding)."""
    try:
        with Image.open(io.BytesIO(image)) as opened:
            return opened.size
    except Exception:
        return None, None


def _prepare(storage: Storage, dest: str, overwrite: bool) -> None:
    """Refuse a destination with files in it, or with ``overwrite`` delete an earlier export's files."""
    present = storage.list(dest + "/")
    if not present:
        return
    names = [uri[len(dest) + 1:] for uri in present]
    foreign = [name for name in names if not EXPORT_FILE.match(name)]
    if foreign:
        raise ValueError(f"{dest} holds files an export does not write ({', '.join(foreign[:3])}"
                         f"{', ...' if len(foreign) > 3 else ''}): give an empty or new destination")
    if not overwrite:
        raise ValueError(f"{dest} already holds an export ({len(names)} files, e.g. {names[0]}): a second one "
                         "there would mix old and new shards, and a reader would see samples twice; give an empty "
                         "destination, or --overwrite to delete the earlier export first")
    for uri in present:
        storage.delete(uri)


def _chunks(rows: list[dict], size: int) -> Iterator[list[dict]]:
    for start in range(0, len(rows), size):
        yield rows[start:start + size]


def _ext(row: dict) -> str:
    return (row.get("output_uri") or ".png").rsplit(".", 1)[-1].lower()


def _row_json(row: dict) -> bytes:
    return json.dumps(row, sort_keys=True, default=str).encode()  # timestamps as ISO text


def _parquet(rows: list[dict], images: list[bytes]) -> bytes:
    schema = catalog.SCHEMA.append(pa.field("image", pa.binary())).append(pa.field("image_ext", pa.string()))
    schema = schema.append(pa.field("width", pa.int64())).append(pa.field("height", pa.int64()))
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


def export(storage: Storage, output: str, dest: str, fmt: str, shard_size: int = 1000,
           overwrite: bool = False) -> list[str]:
    """Write the shards under ``dest``; return their URIs."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; use one of {', '.join(FORMATS)}")
    if shard_size < 1:
        raise ValueError("--shard-size must be at least 1")
    rows = catalog.read_rows(storage, output)
    if not rows:
        raise StorageError(f"no catalog and no task records under {output}: run the manifest first")
    done = [row for row in rows if row["status"] == "done" and row.get("output_uri")]
    _prepare(storage, dest, overwrite)
    written, listing = [], []
    for index, chunk in enumerate(_chunks(done, shard_size)):
        images = storage.read_many(row["output_uri"] for row in chunk)
        sizes = [_size(image) for image in images]
        chunk = [{**row, "width": w, "height": h} for row, (w, h) in zip(chunk, sizes)]
        if fmt == "parquet":
            name, data = f"part-{index:05d}.parquet", _parquet(chunk, images)
        else:
            name, data = f"shard-{index:05d}.tar", _tar(chunk, images)
        storage.write(join(dest, name), data)
        stats = {"shard": name, "count": len(chunk), "bytes": len(data), "image_bytes": sum(map(len, images)),
                 "widths": sorted({w for w, _ in sizes if w}), "heights": sorted({h for _, h in sizes if h})}
        storage.write(join(dest, f"_{name}_stats.json"), json.dumps(stats, indent=1).encode())
        written.append(join(dest, name))
        listing.append(stats)
    storage.write(join(dest, "_shards.json"), json.dumps({"format": fmt, "shards": listing}, indent=1).encode())
    return written
