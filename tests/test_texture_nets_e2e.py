"""Texture Networks through the real pipeline: local Ray, S3 on 127.0.0.1."""
import io
import json

import pytest
from PIL import Image

from pipelines.manifest import parse_manifest
from pipelines.report import build_report
from pipelines.run import run_manifest
from pipelines.storage import Storage, StorageConfig
from tests.conftest import DATA
from tests.killers import killing_renders

pytestmark = pytest.mark.slow


def _manifest(tmp_path, bucket, endpoint, iterations=20):
    path = tmp_path / "nets.yaml"
    path.write_text(f"""\
name: nets
output: s3://{bucket}/nets
storage: {{endpoint_url: {endpoint}}}
cluster: {{workers: 2}}
model: {{weights: random}}
jobs:
  - name: render
    kind: generate
    generator: {{job: train}}
    seeds: 2
    params: {{size: 64, count: 2}}
  - name: train
    kind: train_texture_net
    inputs: [s3://{bucket}/in/pebbles.jpg, s3://{bucket}/in/red_peppers.jpg]
    params: {{size: 32, iterations: {iterations}, batch_size: 2, scales: 3, channels: 4, checkpoint_every: 5}}
""")
    return parse_manifest(str(path))


def _keys(client, bucket, prefix="nets/"):
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return [o["Key"] for page in pages for o in page.get("Contents", [])]


def test_train_two_generators_in_parallel_then_render_from_both(tmp_path, ray_cluster, s3_endpoint, bucket):
    name, client = bucket
    for image in ("pebbles.jpg", "red_peppers.jpg"):
        client.upload_file(str(DATA / "textures" / image), name, f"in/{image}")
    manifest = _manifest(tmp_path, name, s3_endpoint)
    trains = [t for t in manifest.tasks if t.job == "train"]
    renders = [t for t in manifest.tasks if t.job == "render"]
    assert len(trains) == 2 and len(renders) == 2 * 2
    assert {tuple(t.depends_on) for t in renders} == {(t.task_id,) for t in trains}

    starts = []
    summary = run_manifest(manifest, stream=None, on_dispatch=lambda task, _: starts.append(task.job))
    assert summary.failed == [], summary.failed
    assert starts[:2] == ["train", "train"]  # both trainings first, in parallel on the 2 actors
    keys = _keys(client, name)
    assert len([k for k in keys if k.startswith("nets/train/") and k.endswith(".safetensors") and ".ckpt/" not in k]) == 2
    assert any("/" in k.split(".ckpt/")[-1] for k in keys if ".ckpt/" in k)  # checkpoints were written
    render_pngs = [k for k in keys if k.startswith("nets/render/") and k.endswith(".png")]
    assert len(render_pngs) == 4 * 2  # 4 tasks x count 2
    image = Image.open(io.BytesIO(client.get_object(Bucket=name, Key=render_pngs[0])["Body"].read()))
    assert image.size == (64, 64)
    used = {json.loads(client.get_object(Bucket=name, Key=f"nets/render/{t.task_id}.json")["Body"].read())
            ["inputs"]["generator"][0] for t in renders}
    assert used == {f"s3://{name}/nets/train/{t.task_id}.safetensors" for t in trains}
    # The report handles kinds without a loss (generate) beside trainings: every task has its card.
    report = build_report(Storage(StorageConfig.from_dict(manifest.storage)), manifest.output, manifest.name)
    assert report.new_thumbnails == 6 and set(report.pages_written) >= {"jobs/render/1.html", "jobs/train/1.html"}
    page = client.get_object(Bucket=name, Key="nets/_report/jobs/render/1.html")["Body"].read().decode()
    assert page.count("data-task-id=") == 4 and "failed:" not in page


def test_a_preempted_training_resumes_from_its_newest_checkpoint(tmp_path, ray_cluster, s3_endpoint, bucket):
    name, client = bucket
    client.upload_file(str(DATA / "textures" / "pebbles.jpg"), name, "in/pebbles.jpg")
    client.upload_file(str(DATA / "textures" / "red_peppers.jpg"), name, "in/red_peppers.jpg")
    manifest = _manifest(tmp_path, name, s3_endpoint, iterations=200)
    trains = {t.task_id for t in manifest.tasks if t.job == "train"}

    def both_checkpointed() -> bool:
        # Both trainings run at once and either worker may be the one killed: wait until each has a
        # complete checkpoint, else the killed one may rightly start again from step 0.
        done = {k.split("nets/train/")[1].split(".ckpt/")[0] for k in _keys(client, name, "nets/train/")
                if k.endswith("/complete")}
        return done >= trains

    with killing_renders(limit=1, after=both_checkpointed) as killed:
        summary = run_manifest(manifest, stream=None)
    assert killed and summary.failed == []
    resumed = [r for r in summary.records if r["job"] == "train" and r["attempts"] == 2]
    assert resumed and resumed[0]["resumed_from"] >= 5 and resumed[0]["iterations"] == 200
