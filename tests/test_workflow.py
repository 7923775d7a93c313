"""The day-to-day around a run: failures that are not re-run by accident, --retry-failed, --only,
the failures listing, and Ctrl-C."""
import json
import re
import os
import signal
import subprocess
import sys
import time

import pyarrow.parquet as pq
import pytest

from pipelines.cli import main
from pipelines.manifest import parse_manifest
from pipelines.run import run_manifest
from tests.conftest import DATA, REPO

pytestmark = pytest.mark.slow


def _manifest(tmp_path, seeds=1, iterations=2):
    (tmp_path / "broken.png").write_bytes(b"not an image")
    path = tmp_path / "run.yaml"
    path.write_text(f"""\
name: workflow
output: out
model: {{weights: random}}
cluster: {{workers: 1}}
jobs:
  - name: good
    kind: texture
    inputs: {DATA / 'textures' / 'pebbles.jpg'}
    seeds: {seeds}
    params: {{size: 32, iterations: {iterations}}}
  - name: bad
    kind: texture
    inputs: broken.png
    params: {{size: 32, iterations: 2}}
""")
    return path


def test_a_task_that_failed_on_its_own_is_listed_and_only_retried_when_asked(tmp_path, ray_cluster, capsys):
    path = _manifest(tmp_path)
    first = run_manifest(parse_manifest(str(path)), stream=None)
    assert first.exit_code == 1 and [r["job"] for r in first.failed] == ["bad"]
    assert first.failed[0]["retryable"] is False  # a bad input fails the same way every time

    again = run_manifest(parse_manifest(str(path)), stream=None)  # a plain re-run leaves it alone
    assert (again.executed, again.exit_code, len(again.failed_before)) == (0, 1, 1)
    table = pq.read_table(tmp_path / "out" / "catalog.parquet")
    rows = table.to_pylist()
    assert sorted((r["job"], r["status"]) for r in rows) == [("bad", "failed"), ("good", "done")]
    # Timestamps are timestamps; params carry every resolved default; the versions are there.
    assert str(table.schema.field("finished_at").type) == "timestamp[ms, tz=UTC]"
    good = next(r for r in rows if r["job"] == "good")
    assert good["started_at"] <= good["finished_at"]
    assert json.loads(good["params"])["octaves"] == 1 and json.loads(good["params"])["optimizer"] == "lbfgs"
    assert "torch" in json.loads(good["versions"])

    assert main(["failures", str(tmp_path / "out"), "--json"]) == 0
    listed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(listed) == 1 and listed[0]["job"] == "bad" and "not a readable image" in listed[0]["error"]
    assert listed[0]["inputs"]["inputs"][0].endswith("broken.png") and listed[0]["seed"] == 0

    retried = run_manifest(parse_manifest(str(path)), stream=None, retry_failed=True)
    assert retried.executed == 1 and [r["job"] for r in retried.failed] == ["bad"]


def test_only_runs_the_named_jobs(tmp_path, ray_cluster, capsys):
    path = _manifest(tmp_path, seeds=2)
    assert main(["validate", str(path), "--only", "good"]) == 0
    assert "total" in capsys.readouterr().out
    assert main(["validate", str(path), "--only", "godo"]) == 2
    assert "has no job 'godo'; did you mean 'good'?" in capsys.readouterr().err
    summary = run_manifest(parse_manifest(str(path)), stream=None, only=["good"])
    assert (summary.total, summary.executed, summary.failed) == (2, 2, [])
    assert not list((tmp_path / "out").glob("bad/*"))


@pytest.mark.parametrize("stop, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_ctrl_c_or_sigterm_stops_cleanly_with_the_catalog_of_what_finished(tmp_path, stop, code):
    """SIGTERM is what `texfarm stop` (Ray's job stop) sends: the same clean stop as Ctrl-C."""
    path = _manifest(tmp_path, seeds=30, iterations=60)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    driver = subprocess.Popen([sys.executable, "-m", "pipelines.cli", "run", str(path), "--only", "good"], cwd=REPO,
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    job_dir = tmp_path / "out" / "good"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not list(job_dir.glob("*.json")) and driver.poll() is None:
        time.sleep(0.2)
    driver.send_signal(stop)  # the driver only, as a terminal's Ctrl-C reaches the foreground process
    out, err = driver.communicate(timeout=120)
    assert driver.returncode == code, err[-3000:]
    assert "Traceback" not in err and "interrupted" in err
    done = {p.stem for p in job_dir.glob("*.json")}
    rows = pq.read_table(tmp_path / "out" / "catalog.parquet").to_pylist()
    cataloged = {r["task_id"] for r in rows}
    # Every cataloged task is done; a task in flight at Ctrl-C may land its record after the catalog.
    assert 1 <= len(done) < 30 and cataloged <= done and len(done - cataloged) <= 1
    assert {p.stem for p in job_dir.glob("*.png")} >= done


def _png_samples(data: bytes):
    """(bit depth, first pixel's samples of a 16-bit PNG) read from its chunks (Pillow reduces 16-bit RGB)."""
    import struct
    import zlib

    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, depth = 8, b"", None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            depth = body[8]
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw = zlib.decompress(idat)
    if depth != 16:
        return depth, None
    assert raw[0] == 0  # filter type 0 on the first row (ours): its bytes are the samples
    return depth, struct.unpack(">3H", raw[1:7])


def test_jobs_write_the_image_format_they_ask_for(tmp_path, ray_cluster):
    from PIL import Image

    from pipelines.report import build_report
    from pipelines.storage import Storage

    path = tmp_path / "fmt.yaml"
    pebbles = DATA / "textures" / "pebbles.jpg"
    path.write_text(f"""\
name: formats
output: out
model: {{weights: random}}
jobs:
  - {{name: jpg, kind: texture, inputs: {pebbles}, format: jpeg, quality: 80, params: {{size: 32, iterations: 2}}}}
  - {{name: deep, kind: texture, inputs: {pebbles}, format: png16, params: {{size: 32, iterations: 2}}}}
  - {{name: plain, kind: texture, inputs: {pebbles}, params: {{size: 32, iterations: 2}}}}
""")
    manifest = parse_manifest(str(path))
    ids = {t.job: t.task_id for t in manifest.tasks}
    assert len(set(ids.values())) == 3  # the same render in another format is another task
    assert run_manifest(manifest, stream=None).failed == []
    out = tmp_path / "out"
    with Image.open(out / "jpg" / f"{ids['jpg']}.jpg") as image:
        assert image.format == "JPEG" and image.size == (32, 32)
    depth, samples = _png_samples((out / "deep" / f"{ids['deep']}.png").read_bytes())
    assert depth == 16 and any(v % 257 for v in samples)  # real 16-bit values, not 8-bit ones scaled
    assert _png_samples((out / "plain" / f"{ids['plain']}.png").read_bytes())[0] == 8
    report = build_report(Storage(), str(out), "formats")
    assert report.new_thumbnails == 3
    assert f"../../../jpg/{ids['jpg']}.jpg" in (out / "_report" / "jobs" / "jpg" / "1.html").read_text()


def test_progress_says_rate_elapsed_and_an_eta_past_a_day():
    import io

    from pipelines.run import Progress, duration

    assert duration(93784) == "1d 02:03:04" and duration(59) == "00:00:59" and duration(None) == "--:--:--"
    log = io.StringIO()
    progress = Progress(10_000, log)
    progress.start -= 3600  # an hour in, one task done: the rest takes over 400 days
    progress.done = 1
    progress.show()
    line = log.getvalue()
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", line)  # a log file line carries its time
    assert "1 tasks/h" in line and "elapsed 01:00:00" in line and "ETA 416d 15:00:00" in line, line


def test_progress_fits_the_terminal_throttles_log_lines_and_gives_no_eta_once_stopped(monkeypatch):
    """The \\r line wrapped in an 80-column terminal (stacking up), a log file got one line per change
    (100k lines for 100k tasks), and the last line after Ctrl-C still gave an ETA."""
    import io
    import os
    import shutil

    from pipelines.run import Progress

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    now = [0.0]
    monkeypatch.setattr(shutil, "get_terminal_size", lambda *a, **k: os.terminal_size((80, 24)))
    screen = Terminal()
    progress = Progress(100_000, screen, clock=lambda: now[0])
    progress.workers = (12, 3, 40)
    for done in range(1, 50):
        now[0] += 0.5
        progress.done, progress.running = done, 12
        progress.show()
    lines = screen.getvalue().split("\r")[1:]
    assert len(lines) == 49 and all(len(line.removesuffix("\x1b[K")) <= 79 for line in lines), max(map(len, lines))
    assert "ETA" in lines[-1] and "49/100000 finished" in lines[-1]

    log = io.StringIO()
    progress = Progress(100_000, log, clock=lambda: now[0])
    for done in range(1, 1001):  # a task every 0.1 s for 100 s
        now[0] += 0.1
        progress.done = done
        progress.show()
    progress.show(final=True, stopped=True)
    lines = log.getvalue().splitlines()
    assert 10 <= len(lines) <= 12, len(lines)  # one per LOG_INTERVAL (10 s), and the last
    assert "1000/100000 finished" in lines[-1] and "stopped" in lines[-1] and "ETA" not in lines[-1], lines[-1]


def test_a_job_that_differs_only_by_name_is_its_own_work(tmp_path, ray_cluster):
    """Two jobs with one definition are two folders of outputs and two catalog rows each; a job added
    later with the same definition as a finished one is rendered, not taken as done."""
    job = "kind: texture, inputs: {inputs}, seeds: 1, params: {{size: 32, iterations: 2}}".format(
        inputs=DATA / "textures" / "pebbles.jpg")
    path = tmp_path / "run.yaml"
    path.write_text(f"name: twins\noutput: out\nmodel: {{weights: random}}\ncluster: {{workers: 1}}\n"
                    f"jobs:\n  - {{name: a, {job}}}\n")
    assert run_manifest(parse_manifest(str(path)), stream=None).exit_code == 0
    path.write_text(path.read_text() + f"  - {{name: b, {job}}}\n  - {{name: c, {job}}}\n")
    second = run_manifest(parse_manifest(str(path)), stream=None)
    assert (second.skipped, second.executed, second.exit_code) == (1, 2, 0)
    for name in "abc":
        assert len(list((tmp_path / "out" / name).glob("*.png"))) == 1, name
    rows = pq.read_table(tmp_path / "out" / "catalog.parquet").to_pylist()
    assert sorted(r["job"] for r in rows) == ["a", "b", "c"]


def test_a_missing_or_damaged_catalog_or_record_is_rebuilt_and_named(tmp_path, ray_cluster, capsys):
    path = _manifest(tmp_path, seeds=2)
    assert run_manifest(parse_manifest(str(path)), stream=None).exit_code == 1  # the bad job fails
    out = tmp_path / "out"
    catalog_file = out / "catalog.parquet"
    expected = sorted((r["job"], r["status"]) for r in pq.read_table(catalog_file).to_pylist())

    catalog_file.unlink()  # a run killed before its catalog (SIGKILL, a lost head)
    assert main(["catalog", str(out)]) == 0
    assert "good" in capsys.readouterr().out
    assert sorted((r["job"], r["status"]) for r in pq.read_table(catalog_file).to_pylist()) == expected

    catalog_file.write_bytes(catalog_file.read_bytes()[:40])  # cut short
    assert main(["failures", str(out)]) == 0
    captured = capsys.readouterr()
    assert f"{catalog_file} is not a readable catalog" in captured.err and "bad" in captured.out

    assert main(["catalog", str(out), "--rebuild"]) == 0
    assert "rebuilt" in capsys.readouterr().err

    broken = sorted((out / "good").glob("*[0-9a-f].json"))[0]
    broken.write_bytes(b"")  # a record cut short by a crash outside texfarm
    catalog_file.write_bytes(b"PAR1 not really")
    again = run_manifest(parse_manifest(str(path)), stream=None)
    assert again.catalog_written and f"{broken} is not a valid task record" in capsys.readouterr().err
    last = run_manifest(parse_manifest(str(path)), stream=None)  # the task is rendered again
    assert last.executed == 1 and json.loads(broken.read_text())["status"] == "done"
    assert sorted((r["job"], r["status"]) for r in pq.read_table(catalog_file).to_pylist()) == expected


def test_a_second_run_on_one_output_waits_for_the_first_to_be_gone(tmp_path, ray_cluster, capsys):
    """Two runs of one manifest at once rendered every task twice (issue 26). A run holds a lease on its
    output: a second one is refused while the holder lives, and takes over once it is gone."""
    import socket

    from pipelines.lease import LEASE_NAME, LEASE_STALE

    path = tmp_path / "run.yaml"
    path.write_text(f"name: leased\noutput: out\nmodel: {{weights: random}}\ncluster: {{workers: 1}}\njobs:\n"
                    f"  - {{name: t, kind: texture, inputs: {DATA / 'textures' / 'pebbles.jpg'},"
                    f" params: {{size: 32, iterations: 2}}}}\n")
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])  # another live driver
    lease = tmp_path / "out" / LEASE_NAME
    lease.parent.mkdir()
    lease.write_text(json.dumps({"run": "leased", "host": socket.gethostname(), "pid": holder.pid,
                                 "heartbeat": time.time()}))
    try:
        assert main(["run", str(path)]) == 2
        err = capsys.readouterr().err
        assert f"another texfarm run ('leased', pid {holder.pid} on {socket.gethostname()}" in err and "--force" in err
        assert not list((tmp_path / "out").glob("t/*.png"))  # nothing rendered
    finally:
        holder.kill()
        holder.wait()
    assert main(["run", str(path)]) == 0  # the holder's process is gone: its lease is stale, taken over
    assert len(list((tmp_path / "out").glob("t/*.png"))) == 1 and not lease.exists()  # released at the end
    # a holder on another host is gone once its heartbeat is older than LEASE_STALE; --force overrides
    lease.write_text(json.dumps({"run": "x", "host": "elsewhere", "pid": 1, "heartbeat": time.time()}))
    assert main(["run", str(path)]) == 2
    lease.write_text(json.dumps({"run": "x", "host": "elsewhere", "pid": 1, "heartbeat": time.time() - LEASE_STALE - 1}))
    assert main(["run", str(path)]) == 0
    lease.write_text(json.dumps({"run": "x", "host": "elsewhere", "pid": 1, "heartbeat": time.time()}))
    assert main(["run", str(path), "--force"]) == 0 and not lease.exists()
