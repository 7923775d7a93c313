"""Multi-node Ray clusters on this machine (real GCS and raylets, fake GPU resources) and a texfarm
driver run against them as its own process. Each helper stops only the processes it started."""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Callable, Iterator

from tests.conftest import REPO


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(condition: Callable[[], bool], timeout: float, what: str, poll: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {timeout:.0f} s for {what}")
        time.sleep(poll)


@contextlib.contextmanager
def ray_cluster(gpu_nodes: int) -> Iterator:
    """A head that runs nothing (CPU: 0, like cluster.yaml's) plus ``gpu_nodes`` worker nodes of one
    fake GPU and one CPU each (torch sees no CUDA there: actors hold the GPU and run on the CPU)."""
    from ray.cluster_utils import Cluster

    temp = tempfile.mkdtemp(prefix="rayc", dir="/tmp")
    # Cluster writes (and later deletes) the machine's "current cluster" file, which a plain ray.init()
    # of any other process would follow: keep it, and every node's files, in a folder of our own.
    saved = os.environ.get("RAY_TMPDIR")
    os.environ["RAY_TMPDIR"] = temp
    os.makedirs(os.path.join(temp, "ray"))
    cluster = Cluster(initialize_head=False, shutdown_at_exit=False)
    try:
        cluster.add_node(num_cpus=0, gcs_server_port=free_port(), include_dashboard=False,
                         temp_dir=os.path.join(temp, "ray"))
        for _ in range(gpu_nodes):
            add_gpu_node(cluster)
        yield cluster
    finally:
        cluster.shutdown()
        if saved is None:
            os.environ.pop("RAY_TMPDIR", None)
        else:
            os.environ["RAY_TMPDIR"] = saved
        shutil.rmtree(temp, ignore_errors=True)


def add_gpu_node(cluster):
    return cluster.add_node(num_cpus=1, num_gpus=1)


def node_id(node) -> str:
    return node.node_id


def start_driver(manifest: Path, address: str, log: Path) -> subprocess.Popen:
    """`texfarm run MANIFEST --address GCS` as its own process (the tests' own Ray holds this one)."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "RAY_ADDRESS": ""}
    return subprocess.Popen([sys.executable, "-m", "pipelines.cli", "run", str(manifest), "--address", address],
                            cwd=REPO, env=env, start_new_session=True, stdout=log.open("w"),
                            stderr=subprocess.STDOUT)


def finish_driver(driver: subprocess.Popen, log: Path, timeout: float = 300) -> str:
    try:
        driver.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(driver.pid, signal.SIGKILL)
        driver.wait()
        raise AssertionError(f"the driver did not finish in {timeout} s:\n{log.read_text()[-3000:]}")
    return log.read_text()


def s3_records(client, bucket: str, prefix: str) -> list[dict]:
    keys = [o["Key"] for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
            for o in page.get("Contents", []) if o["Key"].endswith(".json") and ".failed" not in o["Key"]]
    return [json.loads(client.get_object(Bucket=bucket, Key=key)["Body"].read()) for key in keys]


def versions_per_key(client, bucket: str, prefix: str) -> dict[str, int]:
    """How many times each key was written (the bucket has versioning on)."""
    counts: dict[str, int] = {}
    for page in client.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=prefix):
        for version in page.get("Versions", []):
            counts[version["Key"]] = counts.get(version["Key"], 0) + 1
    return counts


def timestamp(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()
