"""The report at scale, on a synthetic finished run (tiny PNGs, records, catalog; no rendering):

    python -m bench.report_scale --tasks 10000        # a 2-axis sweep job of that many tasks

Prints: the first report (thumbnails made), a second report with nothing new, one after 4 more tasks,
the index and page sizes, and the peak memory of this process."""
from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path

from PIL import Image

from pipelines import catalog
from pipelines.report import build_report
from pipelines.storage import Storage


def _add_tasks(output: Path, start: int, count: int, rows: list) -> None:
    job = output / "sweep"
    job.mkdir(parents=True, exist_ok=True)
    for i in range(start, start + count):
        task_id = f"{i:016x}"
        Image.new("RGB", (64, 64), (i % 256, (i * 7) % 256, 90)).save(job / f"{task_id}.png")
        record = {"task_id": task_id, "job": "sweep", "kind": "texture", "status": "done", "seed": i % 4,
                  "params": {"size": 64, "a": i % 50, "b": (i // 50) % 50}, "inputs": {"inputs": []},
                  "loss_start": 1.0, "loss_end": 1.0 / (i + 1), "seconds": 0.1, "quality": 0.3,
                  "octaves": [{"history": [3.0, 2.0, 1.0]}], "output_uri": str(job / f"{task_id}.png")}
        (job / f"{task_id}.json").write_text(json.dumps(record))
        rows.append(catalog.row(record))
    catalog.write(Storage(), str(output), rows)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.report_scale")
    parser.add_argument("--tasks", type=int, default=10_000)
    args = parser.parse_args(argv)
    output = Path(tempfile.mkdtemp(prefix="texfarm-report-")) / "out"
    rows: list = []
    _add_tasks(output, 0, args.tasks, rows)
    for label, extra in (("first report", 0), ("again, nothing new", 0), ("after 4 more tasks", 4)):
        if extra:
            _add_tasks(output, args.tasks, extra, rows)
        clock = time.perf_counter()
        summary = build_report(Storage(), str(output), "scale")
        print(f"{label:22} {time.perf_counter() - clock:7.2f} s  {summary.new_thumbnails:6} thumbnails  "
              f"{len(summary.pages_written):4} pages written  {len(summary.contact_sheets)} sheets")
    report = output / "_report"
    pages = sorted((report / "jobs" / "sweep").glob("*.html"))
    print(f"index {(report / 'index.html').stat().st_size / 1e3:.0f} kB; {len(pages)} job pages of "
          f"{max(p.stat().st_size for p in pages) / 1e3:.0f} kB at most; state.json "
          f"{(report / 'state.json').stat().st_size / 1e6:.1f} MB; peak RSS "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3:.0f} MB")
    print(f"files under {output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
