"""The run's catalog: one row per task in ``{output}/catalog.parquet`` (pyarrow)."""
from __future__ import annotations

import io
import json
import re
import statistics
import sys
from datetime import datetime
from typing import Any, Callable, Iterable, Optional

import pyarrow as pa
import pyarrow.parquet as pq

from .storage import Storage, StorageError, join, readable

CATALOG_NAME = "catalog.parquet"
SCHEMA = pa.schema([
    ("task_id", pa.string()), ("job", pa.string()), ("kind", pa.string()), ("status", pa.string()),
    ("output_uri", pa.string()), ("seed", pa.int64()), ("params", pa.string()), ("inputs", pa.string()),
    ("seconds", pa.float64()), ("wall_seconds", pa.float64()), ("loss_start", pa.float64()),
    ("loss_end", pa.float64()), ("iterations", pa.int64()), ("device", pa.string()), ("weights", pa.string()),
    ("attempts", pa.int64()), ("error", pa.string()),
    ("started_at", pa.timestamp("ms", tz="UTC")), ("finished_at", pa.timestamp("ms", tz="UTC")),
    ("quality", pa.float64()),  # texture kinds: 0 = like the exemplar, 1 = like noise or a blank ground (tasks/quality.py)
    ("colour_coverage", pa.float64()),  # texture kinds: share of the exemplar's colours the render has
    ("versions", pa.string()),  # JSON: python, texfarm, torch, torchvision, ray, boto3, pyarrow, pillow
])
TIMESTAMPS = ("started_at", "finished_at")
# `{job}/{task_id}.json` or `.failed.json`; job folders never start with `_` (the report's is `_report`)
_RECORD = re.compile(r"^(?!_)[^/]+/([0-9a-f]{16})(\.failed)?\.json$")


def _timestamp(value: Any) -> Optional[datetime]:
    """Records carry ISO-8601 text; catalogs written before this schema carry text too."""
    if value is None or isinstance(value, datetime):
        return value
    try:
        return datetime.fromisoformat(str(value))
    except ValueError:
        return None


def _normalized(row_: dict[str, Any]) -> dict[str, Any]:
    """A row in the current schema, from a record or from an older catalog's row."""
    out = {name: row_.get(name) for name in SCHEMA.names}
    for name in TIMESTAMPS:
        out[name] = _timestamp(out[name])
    return out


def row(record: dict[str, Any]) -> dict[str, Any]:
    """The catalog row of a task record. `params` holds every parameter the task ran with, defaults
    resolved (records written since this version; older ones only the keys the manifest set)."""
    out = _normalized(record)
    out["params"] = json.dumps(record.get("resolved_params") or record.get("params", {}), sort_keys=True)
    out["inputs"] = json.dumps(record.get("inputs", {}), sort_keys=True)
    out["versions"] = json.dumps(record["versions"], sort_keys=True) if record.get("versions") else None
    # an error quoting an input whose file name is not UTF-8 (Parquet strings must be)
    return {k: readable(v) if isinstance(v, str) else v for k, v in out.items()}


def catalog_uri(output: str) -> str:
    return join(output, CATALOG_NAME)


def read_rows(storage: Storage, output: str, rebuild: bool = True,
              warn: Optional[Callable[[str], None]] = None) -> list[dict[str, Any]]:
    """The catalog's rows. A catalog that is missing (a run stopped before writing it, e.g. killed) or
    unreadable (cut short) is rebuilt from the per-task records when ``rebuild``, and written back;
    a damaged one is named in a warning, never an error that blocks the next run."""
    warn = warn or _stderr
    uri = catalog_uri(output)
    try:
        data = storage.read(uri)
    except StorageError:
        data = None
    if data is not None:
        try:
            # One thread: a catalog is small, and Arrow's thread pool torn down at interpreter exit while
            # a worker is alive aborts the process (apache/arrow#34314; seen with S3 outputs, exit 134).
            return pq.read_table(io.BytesIO(data), use_threads=False).to_pylist()
        except Exception as exc:  # pyarrow's errors for a cut or foreign file vary
            warn(f"warning: {uri} is not a readable catalog ({type(exc).__name__}); "
                 f"{'rebuilding it from the task records' if rebuild else 'it will be rewritten'}")
    if not rebuild:
        return []
    rows = rebuild_rows(storage, output, warn)
    if rows:
        try:
            write(storage, output, rows)
        except StorageError as exc:  # read-only access: the rows still serve this reader
            warn(f"warning: could not write the rebuilt catalog: {exc}")
    return rows


def record_name(uri: str) -> Optional[tuple[str, bool]]:
    """(task id, done?) when ``uri`` is a task record `{output}/{job}/{task_id}[.failed].json`."""
    match = _RECORD.search(uri)
    return (match.group(1), match.group(2) is None) if match else None


def rebuild_rows(storage: Storage, output: str, warn: Optional[Callable[[str], None]] = None) -> list[dict[str, Any]]:
    """Catalog rows from the records in the job folders (a done record wins over a failed one of the
    same task); a record that does not parse is skipped, naming its file."""
    warn = warn or _stderr
    found: dict[tuple[str, str], tuple[str, bool]] = {}
    for uri in storage.list(output.rstrip("/") + "/"):
        named = record_name(uri[len(output.rstrip("/")) + 1:])
        if named:
            job = uri[len(output.rstrip("/")) + 1:].split("/", 1)[0]
            task_id, done = named
            if done or (job, task_id) not in found:
                found[(job, task_id)] = (uri, done)
    uris = [uri for uri, _ in found.values()]
    rows = []
    for uri, blob in zip(uris, storage.read_many(uris)):
        try:
            rows.append(row(json.loads(blob)))
        except (ValueError, KeyError, TypeError):
            warn(f"warning: {uri} is not a valid task record (empty or cut short); skipped")
    return rows


def _stderr(message: str) -> None:
    print(message, file=sys.stderr)


def write(storage: Storage, output: str, rows: Iterable[dict[str, Any]], previous: list[dict] | None = None) -> bool:
    """Write the catalog sorted by job and task id; skip the write when nothing changed."""
    rows = sorted((_normalized(r) for r in rows), key=lambda r: (r["job"], r["task_id"]))
    if previous is not None and rows == sorted((_normalized(r) for r in previous), key=lambda r: (r["job"], r["task_id"])):
        return False
    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows, schema=SCHEMA), buffer)
    storage.write(catalog_uri(output), buffer.getvalue())
    return True


def summary(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per job: done / failed counts, median seconds and median final loss of the done tasks."""
    jobs: dict[str, list[dict]] = {}
    for r in rows:
        jobs.setdefault(r["job"], []).append(r)
    out = []
    for job, items in sorted(jobs.items()):
        done = [r for r in items if r["status"] == "done"]
        secs = [r["seconds"] for r in done if r["seconds"] is not None]
        losses = [r["loss_end"] for r in done if r["loss_end"] is not None]
        out.append({"job": job, "done": len(done), "failed": len(items) - len(done),
                    "median_seconds": statistics.median(secs) if secs else None,
                    "median_loss": statistics.median(losses) if losses else None})
    return out


def format_summary(rows: list[dict[str, Any]]) -> str:
    lines = [f"{'job':24} {'done':>6} {'failed':>6} {'median s':>10} {'median loss':>12}"]
    for s in summary(rows):
        secs = f"{s['median_seconds']:.2f}" if s["median_seconds"] is not None else "-"
        loss = f"{s['median_loss']:.4g}" if s["median_loss"] is not None else "-"
        lines.append(f"{s['job']:24} {s['done']:>6} {s['failed']:>6} {secs:>10} {loss:>12}")
    return "\n".join(lines)
