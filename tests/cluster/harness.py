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


def autoscaling_config(path: Path, gcs_address: str, max_gpu_nodes: int, idle_minutes: float = 5) -> Path:
    """Ray's fake multi-node provider: the autoscaler "launches" a node by starting a raylet here.
    The head has no CPU for actors; the GPU node type scales from zero, like cluster.yaml's."""
    config = {
        "cluster_name": "texfarm-fake", "max_workers": max_gpu_nodes, "upscaling_speed": 1.0,
        "idle_timeout_minutes": idle_minutes,
        "provider": {"type": "fake_multinode", "gcs_address": gcs_address, "use_node_id_as_ip": True,
                     "disable_node_updaters": True, "disable_launch_config_check": True},
        "auth": {"ssh_user": "ubuntu"},
        "available_node_types": {
            "ray.head.default": {"resources": {"CPU": 0}, "node_config": {}, "max_workers": 0},
            "gpu_spot": {"resources": {"CPU": 1, "GPU": 1}, "node_config": {}, "min_workers": 0,
                         "max_workers": max_gpu_nodes},
        },
        "head_node_type": "ray.head.default",
        "file_mounts": {}, "cluster_synced_files": [], "file_mounts_sync_continuously": False,
        "initialization_commands": [], "setup_commands": [], "head_setup_commands": [],
        "worker_setup_commands": [], "head_start_ray_commands": [], "worker_start_ray_commands": [],
    }
    path.write_text(json.dumps(config))
    return path


@contextlib.contextmanager
def autoscaling_head(tmp: Path, max_gpu_nodes: int = 2, idle_minutes: float = 5) -> Iterator[str]:
    """`ray start --head --autoscaling-config ...` with RAY_FAKE_CLUSTER=1 and a temp dir of its own, in
    its own process group; the nodes the autoscaler starts are its children. Yields the GCS address.
    Afterwards the whole group is killed: only what this started."""
    import ray._private.services

    temp = tempfile.mkdtemp(prefix="raya", dir="/tmp")
    port = free_port()
    address = f"{ray._private.services.get_node_ip_address()}:{port}"
    config = autoscaling_config(tmp / "autoscaler.json", address, max_gpu_nodes, idle_minutes)
    env = {**os.environ, "RAY_FAKE_CLUSTER": "1", "AUTOSCALER_UPDATE_INTERVAL_S": "1", "RAY_TMPDIR": temp,
           "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"}
    head = subprocess.Popen(
        [str(Path(sys.executable).parent / "ray"), "start", "--head", f"--port={port}", "--num-cpus=0",
         f"--autoscaling-config={config}", "--include-dashboard=false", f"--temp-dir={temp}/ray",
         f"--dashboard-agent-listen-port={free_port()}", f"--dashboard-agent-grpc-port={free_port()}",
         f"--metrics-export-port={free_port()}", f"--runtime-env-agent-port={free_port()}",
         f"--ray-client-server-port={free_port()}", "--block"],  # not the default 10001 another head may hold
        env=env, start_new_session=True, stdout=(tmp / "head.log").open("w"), stderr=subprocess.STDOUT)
    try:
        yield address
    finally:
        os.killpg(head.pid, signal.SIGKILL)
        head.wait()
        shutil.rmtree(temp, ignore_errors=True)


class ClusterWatch:
    """The cluster's GPU state over time, read by tests/cluster/watch.py in a process of its own."""

    def __init__(self, address: str) -> None:
        import threading

        env = {**os.environ, "PYTHONPATH": str(REPO), "RAY_ADDRESS": ""}
        self.proc = subprocess.Popen([sys.executable, "-m", "tests.cluster.watch", address], cwd=REPO, env=env,
                                     start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     text=True)
        self.lines: list[dict] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            try:
                self.lines.append(json.loads(line))
            except ValueError:
                pass

    def close(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def __enter__(self) -> "ClusterWatch":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
