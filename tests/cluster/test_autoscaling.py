"""A run asking for GPU actors on a cluster whose GPU nodes scale from zero (Ray's fake multi-node
autoscaler, started by the test): the autoscaler brings GPU nodes up and the renders happen there."""
import json

import pytest

from tests.cluster.harness import ClusterWatch, autoscaling_head, finish_driver, start_driver, wait_for
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
    assert "starting 2, each GPU: 1, CPU: 1; the cluster has GPU: 0, CPU: 0 now" in log
    assert "ready on cpu (node" in log  # the actor holds a (fake) GPU and runs on the CPU device


def test_workers_auto_scales_from_zero_past_one_node_and_the_idle_nodes_go(tmp_path):
    """`workers: auto` under an autoscaler (GPU node type: min 0, max 3): the pool's pending actors bring
    more than one GPU node up, renders happen there, and the nodes are removed once idle (the
    autoscaler's idle timeout set to 6 s here), with every task done once."""
    manifest = tmp_path / "run.yaml"
    manifest.write_text(
        f"name: breathe\noutput: {tmp_path / 'out'}\nmodel: {{weights: random}}\n"
        f"cluster: {{workers: auto, gpus_per_worker: 1, start_timeout: 240, idle_timeout: 1}}\n"
        f"jobs:\n  - {{name: t, kind: texture, inputs: {DATA / 'textures' / 'pebbles.jpg'}, seeds: 24,"
        f" params: {{size: 32, iterations: 20}}}}\n")
    with autoscaling_head(tmp_path, max_gpu_nodes=3, idle_minutes=0.1) as address:
        with ClusterWatch(address) as watch:
            driver = start_driver(manifest, address, tmp_path / "driver.log")
            log = finish_driver(driver, tmp_path / "driver.log", timeout=500)
            assert driver.returncode == 0, log[-3000:] + (tmp_path / "head.log").read_text()[-2000:]
            wait_for(lambda: watch.lines and watch.lines[-1]["gpu_nodes"] == 0, 120, "the idle GPU nodes removed")
            most = max(line["gpu_nodes"] for line in watch.lines)
    records = [json.loads(p.read_text()) for p in (tmp_path / "out" / "t").glob("*.json")]
    assert len(records) == 24 and {r["status"] for r in records} == {"done"}
    assert len({r["task_id"] for r in records}) == 24  # each output once
    nodes = {r["node"] for r in records}
    print(f"auto under the autoscaler: up to {most} GPU nodes, renders on {len(nodes)}; all removed when idle")
    assert most >= 2 and len(nodes) >= 2, log[-3000:]
    assert "workers: auto (an autoscaler can grow it)" in log
