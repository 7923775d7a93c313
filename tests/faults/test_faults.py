"""Faults an overnight run meets: dying workers, a dying driver, flaky storage, divergence."""
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from PIL import Image

from pipelines.manifest import parse_manifest
from pipelines.report import build_report
from pipelines.run import WorkerStartError, run_manifest
from pipelines.storage import Storage, StorageConfig
from tests.conftest import DATA, REPO
from tests.faults.flaky_proxy import FlakyProxy
from tests.killers import killing_renders, our_render_pids

pytestmark = pytest.mark.slow


def _local_manifest(tmp_path, seeds=2, size=32, iterations=3, extra_params="", cluster="{workers: 2}"):
    path = tmp_path / "run.yaml"
    path.write_text(
        f"name: faults\noutput: {tmp_path / 'out'}\nmodel: {{weights: random}}\ncluster: {cluster}\njobs:\n"
        f"  - name: pebbles\n    kind: texture\n    inputs: {DATA / 'textures' / 'pebbles.jpg'}\n"
        f"    seeds: {seeds}\n    params: {{size: {size}, iterations: {iterations}{extra_params}}}\n")
    return path


def test_a_task_that_kills_its_worker_every_time_fails_after_the_retry_limit(tmp_path, ray_cluster):
    manifest = parse_manifest(str(_local_manifest(tmp_path, seeds=1, size=64, iterations=200,
                                                  cluster="{workers: 1, max_retries: 1}")))
    with killing_renders(limit=10) as killed:
        summary = run_manifest(manifest, stream=None)
    assert len(killed) == 2, (killed, [(r["status"], r["attempts"], r["error"]) for r in summary.records])  # the first attempt and the one retry, then no more
    assert summary.exit_code == 1 and len(summary.failed) == 1
    record = summary.failed[0]
    assert record["attempts"] == 2 and "worker died 2 times" in record["error"]
    failed_marker = Path(manifest.tasks[0].output_prefix + ".failed.json")
    assert json.loads(failed_marker.read_text())["status"] == "failed"


def test_a_killed_driver_is_resumed_without_duplicates_or_half_outputs(tmp_path):
    path = _local_manifest(tmp_path, seeds=6, size=48, iterations=40, cluster="{workers: 1}")
    texfarm = [sys.executable, "-m", "pipelines.cli", "run", str(path)]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    driver = subprocess.Popen(texfarm, cwd=REPO, env=env, start_new_session=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    job_dir = tmp_path / "out" / "pebbles"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and len(list(job_dir.glob("*.json"))) < 2:
        time.sleep(0.2)
    # The driver and the local Ray it started die together, mid-run (as when their machine goes).
    family = [driver.pid] + [p.pid for p in psutil.Process(driver.pid).children(recursive=True)]
    for pid in family:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    driver.wait()
    done_before = {p.stem for p in job_dir.glob("*.json")}
    assert 2 <= len(done_before) < 6

    rerun = subprocess.run(texfarm, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert f"{len(done_before)} already done, {6 - len(done_before)} to run" in rerun.stderr
    records = sorted(job_dir.glob("*.json"))
    pngs = sorted(job_dir.glob("*.png"))
    assert len(records) == 6 and len(pngs) == 6  # nothing duplicated, nothing lost
    for png in pngs:  # every output complete and decodable
        with Image.open(png) as image:
            image.load()
            assert image.size == (48, 48)
    for record in records:
        assert json.loads(record.read_text())["status"] == "done"


def _s3_manifest(tmp_path, bucket, endpoint, attempts=6):
    path = tmp_path / "s3.yaml"
    path.write_text(
        f"name: flaky\noutput: s3://{bucket}/out\nstorage: {{endpoint_url: {endpoint}, max_attempts: {attempts}}}\n"
        f"model: {{weights: random}}\ncluster: {{workers: 2}}\njobs:\n"
        f"  - {{name: a, kind: texture, inputs: s3://{bucket}/in/pebbles.jpg, seeds: 2, params: {{size: 32, iterations: 2}}}}\n"
        f"  - {{name: b, kind: texture, inputs: s3://{bucket}/in/red_peppers.jpg, seeds: 2, params: {{size: 32, iterations: 2}}}}\n")
    return str(path)


def _upload(client, bucket):
    for name in ("pebbles.jpg", "red_peppers.jpg"):
        client.upload_file(str(DATA / "textures" / name), bucket, f"in/{name}")


@pytest.mark.parametrize("mode", ["throttle", "drop"])
def test_throttling_and_dropped_connections_are_retried(tmp_path, ray_cluster, s3_endpoint, bucket, mode):
    name, client = bucket
    _upload(client, name)
    with FlakyProxy(s3_endpoint) as proxy:
        manifest = parse_manifest(_s3_manifest(tmp_path, name, proxy.url))
        proxy.mode = mode  # every other request fails from here on
        summary = run_manifest(manifest, stream=None)
    assert proxy.faults > 10, (proxy.faults, proxy.requests)
    assert (summary.executed, summary.failed) == (4, [])
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=name, Prefix="out/")["Contents"]]
    assert len([k for k in keys if k.endswith(".png")]) == 4 and "out/catalog.parquet" in keys


def test_storage_that_stays_down_fails_the_affected_tasks_clearly(tmp_path, ray_cluster, s3_endpoint, bucket):
    name, client = bucket
    _upload(client, name)
    with FlakyProxy(s3_endpoint) as proxy:
        manifest = parse_manifest(_s3_manifest(tmp_path, name, proxy.url, attempts=3))
        proxy.mode = "down:red_peppers"  # job b's input is unreachable for good
        log = io.StringIO()
        summary = run_manifest(manifest, stream=log)
        build_report(Storage(StorageConfig.from_dict(manifest.storage)), manifest.output, manifest.name)
    assert summary.exit_code == 1
    assert {r["job"] for r in summary.failed} == {"b"} and len(summary.failed) == 2
    error = summary.failed[0]["error"]
    assert "cannot read s3://" in error and "red_peppers.jpg" in error and "SlowDown" in error
    # The planted secret (this session's key) is in no record, catalog, report page or log line.
    secret = os.environ["AWS_SECRET_ACCESS_KEY"].encode()
    stored = {o["Key"]: client.get_object(Bucket=name, Key=o["Key"])["Body"].read()
              for o in client.list_objects_v2(Bucket=name, Prefix="out/")["Contents"]}
    assert any(k.endswith("catalog.parquet") for k in stored) and any(k.endswith(".html") for k in stored), sorted(stored)
    assert any(k.endswith(".failed.json") for k in stored)
    assert [k for k, body in stored.items() if secret in body] == []
    assert secret.decode() not in log.getvalue() + json.dumps(summary.records)
    assert sum(r["status"] == "done" for r in summary.records) == 2


def test_divergence_that_cannot_recover_fails_clearly_and_writes_no_image(tmp_path, ray_cluster):
    manifest = parse_manifest(str(_local_manifest(tmp_path, seeds=1, size=32, iterations=20,
                                                  extra_params=", lr: 1.0e+30")))
    summary = run_manifest(manifest, stream=None)
    assert summary.exit_code == 1
    assert "Diverged" in summary.failed[0]["error"] and "lower `lr`" in summary.failed[0]["error"]
    assert not list((tmp_path / "out" / "pebbles").glob("*.png"))


def test_weights_that_cannot_load_stop_the_run_before_any_task(tmp_path, ray_cluster):
    bad = tmp_path / "vgg19.pth"
    bad.write_bytes(b"this is not a state dict")
    path = _local_manifest(tmp_path)
    path.write_text(path.read_text().replace("model: {weights: random}", f"model: {{weights: {bad}}}"))
    with pytest.raises(WorkerStartError, match="could not start: .*cannot read weights file"):
        run_manifest(parse_manifest(str(path)), stream=None)
    assert not (tmp_path / "out" / "pebbles").exists()


def test_weights_that_cannot_load_give_one_line_not_every_actors_traceback(tmp_path):
    """A constructor that raised made Ray print each actor's traceback (~90 lines each, e.g. offline
    without `model:`) before texfarm's one line; the actor now answers its probe with the reason."""
    bad = tmp_path / "vgg19.pth"
    bad.write_bytes(b"this is not a state dict")
    path = _local_manifest(tmp_path)
    path.write_text(path.read_text().replace("model: {weights: random}", f"model: {{weights: {bad}}}"))
    repo = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-m", "pipelines.cli", "run", str(path)], cwd=repo, capture_output=True,
                          text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(repo)})
    assert done.returncode == 2, done.stderr[-3000:]
    assert "error: the render workers could not start: WeightsUnavailable: cannot read weights file" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout, done.stderr[-3000:]


def test_workers_that_cannot_restart_fail_the_remaining_tasks_clearly(tmp_path, ray_cluster):
    import torch

    from tasks.vgg import build_vgg19

    weights = tmp_path / "vgg19.pth"
    torch.save(build_vgg19("random", seed=3).state_dict(), weights)
    path = _local_manifest(tmp_path, seeds=2, size=64, iterations=300, cluster="{workers: 1, restart_timeout: 5}")
    path.write_text(path.read_text().replace("model: {weights: random}", f"model: {{weights: {weights}}}"))
    manifest = parse_manifest(str(path))

    def weights_gone_once_rendering() -> bool:  # the restarted worker will not find its weights
        if our_render_pids():
            weights.unlink()
            return True
        return False

    with killing_renders(limit=1, after=weights_gone_once_rendering) as killed:
        summary = run_manifest(manifest, stream=None)
    assert killed and summary.exit_code == 1 and len(summary.failed) == 2
    assert all("could not be restarted" in r["error"] for r in summary.failed)


def test_credentials_that_read_but_cannot_write_stop_the_run_before_any_render(tmp_path, ray_cluster, s3_endpoint,
                                                                                bucket, capsys):
    """Every task used to render and then the run failed on the catalog with no summary: the output's
    lease is the run's first write, so a read-only key fails there, naming the output and the denial."""
    from pipelines.cli import main

    name, client = bucket
    _upload(client, name)
    with FlakyProxy(s3_endpoint) as proxy:
        path = _s3_manifest(tmp_path, name, proxy.url, attempts=2)
        proxy.mode = "readonly"
        code = main(["run", path])
    err = capsys.readouterr().err
    assert code == 2, err
    assert f"s3://{name}/out" in err and "AccessDenied" in err and "may not write under the output" in err, err
    assert not [p for method, p in proxy.log if method == "GET" and "/in/" in p], "an input was read: a task ran"
    assert "Traceback" not in err
