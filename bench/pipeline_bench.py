"""The pipeline's own cost: the same texture tasks run directly, then through ``texfarm run`` with
storage on a local S3 endpoint (moto server) and one actor, in the same process and run; then the
same pipeline with several actors against one, which is the scaling an overnight farm relies on.

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
    from tasks.kinds.texture import TextureParams

    texture({"inputs": [exemplar]}, TextureParams(size=size, iterations=2), vgg, 0)
    start = time.perf_counter()
    for seed in range(tasks):
        texture({"inputs": [exemplar]}, TextureParams(size=size, iterations=iterations), vgg, seed)
    return (time.perf_counter() - start) / tasks


def _manifest(folder: str, endpoint: str, name: str, size: int, iterations: int, tasks: int, workers: int):
    path = Path(folder) / f"{name}.yaml"
    path.write_text(
        f"name: {name}\noutput: s3://bench/out\nstorage: {{endpoint_url: {endpoint}}}\n"
        f"cluster: {{workers: {workers}}}\nmodel: {{weights: random}}\njobs:\n"
        f"  - {{name: {name}, kind: texture, inputs: s3://bench/in/pebbles.jpg, seeds: {tasks},"
        f" params: {{size: {size}, iterations: {iterations}}}}}\n")
    return parse_manifest(str(path))


def _warm_then_timed(manifest, client, warm_up: bool = True):
    """Run once to warm up (Ray workers, model load: one-time costs, reported apart), delete the
    records so the tasks are redone, run again; return the timed summary and the first run's seconds.
    Without ``warm_up`` (a smoke test of the code path) the one run is timed, one-time costs included."""
    start = time.perf_counter()
    if not warm_up:
        summary = run_manifest(manifest, stream=None)
        return summary, time.perf_counter() - start
    run_manifest(manifest, stream=None)
    first_run = time.perf_counter() - start
    for task in manifest.tasks:
        client.delete_object(Bucket="bench", Key=task.output_prefix.split("bench/", 1)[1] + ".json")
    return run_manifest(manifest, stream=None), first_run


def pipeline_rows(sizes: list[int], iterations: int, tasks: int, vgg, exemplar,
                  workers: int = 2, warm_up: bool = True) -> tuple[list[dict], list[dict]]:
    """For each size: per-task wall time through Ray + S3 with one actor against the same tasks run
    directly; then the throughput of ``workers`` actors against one (CPU actors of one thread each)."""
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
    ray.init(num_cpus=max(1, workers), include_dashboard=False, log_to_driver=False, configure_logging=False)
    rows, scaling = [], []
    try:
        with tempfile.TemporaryDirectory() as folder:
            for size in sizes:
                manifest = _manifest(folder, endpoint, f"s{size}", size, iterations, tasks, 1)
                summary, first_run = _warm_then_timed(manifest, client, warm_up)
                per_task = summary.execute_seconds / tasks
                direct = direct_seconds(vgg, exemplar, size, iterations, tasks)
                in_actor = sum(r["wall_seconds"] - r["seconds"] - r["queue_seconds"] for r in summary.records) / tasks
                storage = sum(r["read_seconds"] + r["write_seconds"] for r in summary.records) / tasks
                # A fresh actor's first task runs cold (first-call allocations and kernels) where the
                # direct calls were warmed up: a once-per-actor cost that a few tasks amortize poorly.
                computes = [r["seconds"] for r in summary.records]  # one actor: in the order they ran
                cold = computes[0] - sum(computes[1:]) / (len(computes) - 1) if len(computes) > 1 else float("nan")
                rows.append({"size": size, "iterations": iterations, "tasks": tasks,
                             "direct_s_per_task": direct, "pipeline_s_per_task": per_task,
                             "overhead_s_per_task": per_task - direct, "ratio": per_task / direct,
                             "storage_s_per_task": storage,
                             # Storage time over wall time: what waiting on storage costs at most (a
                             # second call in flight overlaps it with compute).
                             "storage_share": storage / per_task, "in_actor_overhead_s": in_actor,
                             "first_task_extra_s": cold,
                             "actor_startup_s": summary.startup_seconds, "first_run_s": first_run})
                if workers > 1:
                    # As many tasks per actor as the one actor ran: each pays one cold first task,
                    # and the rounds come out even.
                    count = workers * tasks
                    many = _manifest(folder, endpoint, f"w{workers}s{size}", size, iterations, count, workers)
                    wide, _ = _warm_then_timed(many, client, warm_up)
                    one_per_hour, many_per_hour = 3600 / per_task, 3600 * count / wide.execute_seconds
                    scaling.append({"size": size, "iterations": iterations, "workers": workers, "tasks": count,
                                    "tasks_per_hour_1": one_per_hour, f"tasks_per_hour_{workers}": many_per_hour,
                                    "speedup": many_per_hour / one_per_hour,
                                    "efficiency": many_per_hour / one_per_hour / workers})
    finally:
        ray.shutdown()
        server.stop()
    return rows, scaling
