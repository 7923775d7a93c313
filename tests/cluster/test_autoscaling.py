"""A run asking for GPU actors on a cluster whose GPU nodes scale from zero (Ray's fake multi-node
autoscaler, started by the test): the autoscaler brings GPU nodes up and the renders happen there."""
import json

import pytest

from tests.cluster.harness import autoscaling_head, finish_driver, start_driver
from tests.conftest import DATA

pytestmark = pytest.mark.slow


def test_gpu_actors_bring_gpu_nodes_up_from_zero_and_render_there(tmp_path):
    manifest = tmp_path / "run.yaml"
    manifest.write_text(
        f"name: fromzero\noutput: {tmp_path / 'out'}\nmodel: {{weights: random}}\n"
        f"cluster: {{workers: 2, gpus_per_worker: 1, start_timeout: 240}}\n"
        f"jobs:\n  - {{name: t, kind: texture, inputs: {DATA / 'textures' / 'pebbles.jpg'}, seeds: 4,"
        f" params: {{size: 32, iterations: 5}}}}\n")
    with autoscaling_head(tmp_path, max_gpu_nodes=2) as address:
        driver = start_driver(manifest, address, tmp_path / "driver.log")
        log = finish_driver(driver, tmp_path / "driver.log", timeout=400)
    assert driver.returncode == 0, log[-3000:] + (tmp_path / "head.log").read_text()[-2000:]
    records = [json.loads(p.read_text()) for p in (tmp_path / "out" / "t").glob("*.json")]
    assert len(records) == 4 and {r["status"] for r in records} == {"done"}
    assert all(r["node"] for r in records)
    # GPU actors were asked of a cluster that had no GPU; the head cannot hold them (no CPU, no GPU),
    # so every render ran on a GPU node the autoscaler launched.
    assert "2 workers, each GPU: 1, CPU: 1; the cluster has GPU: 0, CPU: 0 now" in log
    assert "ready on cpu (node" in log  # the actor holds a (fake) GPU and runs on the CPU device
