"""End to end on real components: a local Ray cluster and an S3 endpoint on 127.0.0.1 (moto server)."""
import io
import json

import pyarrow.parquet as pq
import pytest
from PIL import Image

from pipelines.manifest import parse_manifest
from pipelines.run import run_manifest
from tests.conftest import DATA
from tests.killers import killing_renders

pytestmark = pytest.mark.slow


def _upload_exemplars(client, bucket):
    for name in ("pebbles.jpg", "red_peppers.jpg"):
        client.upload_file(str(DATA / "textures" / name), bucket, f"exemplars/{name}")


def _manifest(tmp_path, bucket, endpoint, seeds=3, size=32, iterations=3, workers=2, depth=1):
    path = tmp_path / "run.yaml"
    path.write_text(f"""\
name: e2e
output: s3://{bucket}/runs/e2e
storage: {{endpoint_url: {endpoint}}}
cluster: {{workers: {workers}, cpus_per_worker: 1, pipeline_depth: {depth}}}
model: {{weights: random}}
jobs:
  - name: pebbles
    kind: texture
    inputs: s3://{bucket}/exemplars/peb*.jpg
    seeds: {seeds}
    params: {{size: {size}, iterations: {iterations}}}
  - name: peppers
    kind: texture
    inputs: s3://{bucket}/exemplars/red_peppers.jpg
    seeds: {seeds}
    params: {{size: {size}, iterations: {iterations}, tileable: true}}
""")
    return parse_manifest(str(path))


def _objects(client, bucket):
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="runs/")
    return {o["Key"]: (o["ETag"], o["LastModified"]) for page in pages for o in page.get("Contents", [])}


@pytest.fixture()
def e2e(tmp_path, ray_cluster, s3_endpoint, bucket):
    name, client = bucket
    _upload_exemplars(client, name)
    return tmp_path, name, client, s3_endpoint


def test_six_tasks_to_s3_then_resume_runs_nothing_then_exactly_one(e2e):
    tmp_path, bucket, client, endpoint = e2e
    manifest = _manifest(tmp_path, bucket, endpoint, depth=2)  # two calls in flight per actor
    summary = run_manifest(manifest, stream=None)
    assert (summary.total, summary.executed, summary.failed) == (6, 6, [])
    objects = _objects(client, bucket)
    pngs = [k for k in objects if k.endswith(".png")]
    records = [k for k in objects if k.endswith(".json")]
    assert len(pngs) == 6 and len(records) == 6
    image = Image.open(io.BytesIO(client.get_object(Bucket=bucket, Key=pngs[0])["Body"].read()))
    assert image.size == (32, 32)
    table = pq.read_table(io.BytesIO(client.get_object(Bucket=bucket, Key="runs/e2e/catalog.parquet")["Body"].read()))
    rows = table.to_pylist()
    assert len(rows) == 6 and {r["status"] for r in rows} == {"done"}
    assert {r["job"] for r in rows} == {"pebbles", "peppers"}
    assert all(r["loss_end"] < r["loss_start"] for r in rows)
    assert "testing-secret-value" not in str(rows)

    again = run_manifest(_manifest(tmp_path, bucket, endpoint), stream=None)
    assert (again.skipped, again.executed) == (6, 0)
    assert _objects(client, bucket) == objects  # nothing rewritten, the catalog included

    client.delete_object(Bucket=bucket, Key=records[0])
    third = run_manifest(_manifest(tmp_path, bucket, endpoint), stream=None)
    assert (third.skipped, third.executed, third.failed) == (5, 1, [])
    assert records[0] in _objects(client, bucket)


def test_killed_actor_does_not_lose_its_task(e2e):
    tmp_path, bucket, client, endpoint = e2e
    manifest = _manifest(tmp_path, bucket, endpoint, seeds=1, size=64, iterations=60)
    with killing_renders(limit=1, delay=0.5) as killed:  # mid-task, not at its very start
        summary = run_manifest(manifest, stream=None)
    assert killed, "no render was seen running"
    assert (summary.executed, summary.failed) == (2, [])
    objects = _objects(client, bucket)
    assert len([k for k in objects if k.endswith(".png")]) == 2
    attempts = [json.loads(client.get_object(Bucket=bucket, Key=k)["Body"].read())["attempts"]
                for k in objects if k.endswith(".json")]
    assert sorted(attempts) == [1, 2]


def test_batched_run_renders_same_job_seeds_together(tmp_path, ray_cluster):
    path = tmp_path / "batch.yaml"
    path.write_text(f"name: batch\noutput: out\nmodel: {{weights: random}}\ncluster: {{workers: 1, batch_size: 3}}\n"
                    f"jobs:\n  - {{name: b, kind: texture, inputs: {DATA / 'textures' / 'pebbles.jpg'}, seeds: 4,"
                    f" params: {{size: 32, iterations: 3}}}}\n")
    summary = run_manifest(parse_manifest(str(path)), stream=None)
    assert summary.failed == [] and summary.executed == 4
    assert sorted(r["batch"] for r in summary.records) == [1, 3, 3, 3]
    assert len(list((tmp_path / "out" / "b").glob("*.png"))) == 4


def test_killing_an_actor_with_two_calls_charges_only_the_running_one(e2e):
    tmp_path, bucket, client, endpoint = e2e
    manifest = _manifest(tmp_path, bucket, endpoint, seeds=1, size=64, iterations=60, workers=1, depth=2)
    with killing_renders(limit=1, delay=0.5) as killed:  # mid-task, not at its very start
        summary = run_manifest(manifest, stream=None)
    assert killed and summary.failed == []
    # Both calls died with the actor; only the one that was computing counts an attempt.
    assert sorted(r["attempts"] for r in summary.records) == [1, 2]


def test_an_exemplar_is_read_once_per_actor_not_once_per_task(tmp_path, s3_endpoint, bucket):
    from pipelines.renderer import Renderer
    from tests.faults.flaky_proxy import FlakyProxy

    name, client = bucket
    _upload_exemplars(client, name)
    with FlakyProxy(s3_endpoint) as proxy:
        renderer = Renderer(model={"weights": "random"}, storage={"endpoint_url": proxy.url})
        for seed in range(4):
            spec = {"task_id": f"t{seed}", "job": "j", "kind": "texture", "seed": seed,
                    "inputs": {"inputs": [f"s3://{name}/exemplars/pebbles.jpg"]},
                    "params": {"size": 32, "iterations": 2}, "output_prefix": f"s3://{name}/runs/j/t{seed}"}
            assert renderer.render(spec)["status"] == "done"
    gets = [path for method, path in proxy.log if method == "GET" and "exemplars/pebbles.jpg" in path]
    assert len(gets) == 1, proxy.log
