"""The pipeline's own cost: the same texture tasks run directly, then through ``texfarm run`` with
storage on a local S3 endpoint (moto server) and one actor, in the same process and run.

Per task = the driver's time from first dispatch to last result, over the tasks (dispatch, input
download, decode, compute, encode, upload, record); the one-time actor start-up (Ray worker, model
load) is reported apart, since an overnight run pays it once per actor."""
from __future__ import annotations

import logging
import socket
import tempfile
import time
from pathlib import Path

from pipelines.manifest import parse_manifest
from pipelines.run import run_manifest

DATA = Path(__file__).resolve().parents[1] / "data"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def direct_seconds(vgg, exemplar, size: int, iterations: int, tasks: int) -> float:
    """Mean wall time of the same tasks (same seeds) called in this process, after a warm-up."""
    from tasks.gatys import texture
    from tasks.params import TextureParams

    texture({"inputs": [exemplar]}, TextureParams(size=size, iterations=2), vgg, 0)
    start = time.perf_counter()
    for seed in range(tasks):
        texture({"inputs": [exemplar]}, TextureParams(size=size, iterations=iterations), vgg, seed)
    return (time.perf_counter() - start) / tasks


def pipeline_rows(sizes: list[int], iterations: int, tasks: int, vgg, exemplar) -> list[dict]:
    """For each size: per-task wall time through Ray + S3 against the same tasks run directly."""
    import os

    import boto3
    import ray
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's server logs every request
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    client.create_bucket(Bucket="bench")
    client.upload_file(str(DATA / "textures" / "pebbles.jpg"), "bench", "in/pebbles.jpg")
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False, configure_logging=False)
    rows = []
    try:
        with tempfile.TemporaryDirectory() as folder:
            for size in sizes:
                path = Path(folder) / f"bench-{size}.yaml"
                path.write_text(
                    f"name: bench-{size}\noutput: s3://bench/out\nstorage: {{endpoint_url: {endpoint}}}\n"
                    f"cluster: {{workers: 1}}\nmodel: {{weights: random}}\njobs:\n"
                    f"  - {{name: s{size}, kind: texture, inputs: s3://bench/in/pebbles.jpg, seeds: {tasks},"
                    f" params: {{size: {size}, iterations: {iterations}}}}}\n")
                manifest = parse_manifest(str(path))
                # Warm: Ray workers and the actor's model load are one-time costs, reported apart.
                start = time.perf_counter()
                run_manifest(manifest, stream=None)
                first_run = time.perf_counter() - start
                for task in manifest.tasks:  # delete the records so the timed run redoes the tasks
                    client.delete_object(Bucket="bench", Key=task.output_prefix.split("bench/", 1)[1] + ".json")
                summary = run_manifest(manifest, stream=None)
                per_task = summary.execute_seconds / tasks
                direct = direct_seconds(vgg, exemplar, size, iterations, tasks)
                in_actor = sum(r["wall_seconds"] - r["seconds"] - r["queue_seconds"] for r in summary.records) / tasks
                storage = sum(r["read_seconds"] + r["write_seconds"] for r in summary.records) / tasks
                rows.append({"size": size, "iterations": iterations, "tasks": tasks,
                             "direct_s_per_task": direct, "pipeline_s_per_task": per_task,
                             "overhead_s_per_task": per_task - direct, "ratio": per_task / direct,
                             "storage_s_per_task": storage,
                             # Storage time over wall time: what waiting on storage costs at most (a
                             # second call in flight overlaps it with compute).
                             "storage_share": storage / per_task, "in_actor_overhead_s": in_actor,
                             "actor_startup_s": summary.startup_seconds, "first_run_s": first_run})
    finally:
        ray.shutdown()
        server.stop()
    return rows
