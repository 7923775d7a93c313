"""The chaos harness (CI test and bench): a texfarm driver process on a multi-node Ray cluster of this
machine, S3 behind a fault proxy, render workers SIGKILLed on a timer (PIDs from the cluster's own actor
table), one storage outage, one driver SIGKILL and a re-run. Counts what storage holds at the end."""
from __future__ import annotations

import os
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from tests.cluster.harness import finish_driver, ray_cluster, s3_records, start_driver, versions_per_key, wait_for
from tests.conftest import DATA
from tests.faults.flaky_proxy import FlakyProxy
from tests.killers import rendering


@dataclass
class ChaosResult:
    tasks: int
    done: int
    lost: int  # no record at all, neither done nor failed
    duplicates: int  # keys written more than once
    worker_kills: int
    driver_kills: int
    outage_faults: int
    seconds: float
    failed: int = 0  # a failed record: e.g. out of retries (with one task left, every kill lands on it)

    def summary(self) -> str:
        return (f"{self.tasks} tasks: {self.done} done, {self.failed} failed, {self.lost} lost, "
                f"{self.duplicates} written twice; "
                f"{self.worker_kills} worker kills, {self.driver_kills} driver kill, {self.outage_faults} requests "
                f"refused in the outage; {self.seconds:.0f} s")


def _rendering_pids(cluster) -> list[int]:
    """This cluster's Renderer workers (from its actor table) that are executing a task now."""
    actors = cluster.global_state.actor_table(None)
    pids = [a["Pid"] for a in actors.values() if a["ActorClassName"] == "RenderWorker" and a["State"] == "ALIVE"
            and a["Pid"]]
    return rendering(pids)


def run_chaos(tmp: Path, endpoint: str, bucket, tasks: int = 40, kill_every: float = 10.0,
              outage_seconds: float = 10.0, max_kills: int = 1000, max_retries: int = 5) -> ChaosResult:
    name, client = bucket
    client.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    client.upload_file(str(DATA / "textures" / "pebbles.jpg"), name, "in/pebbles.jpg")
    started = time.monotonic()
    with FlakyProxy(endpoint) as proxy, ray_cluster(gpu_nodes=0) as cluster:
        for _ in range(2):
            cluster.add_node(num_cpus=1)
        manifest = tmp / "chaos.yaml"
        manifest.write_text(
            f"name: chaos\noutput: s3://{name}/out\nstorage: {{endpoint_url: {proxy.url}}}\nmodel: {{weights: random}}\n"
            f"cluster: {{workers: 2, gpus_per_worker: 0, max_retries: {max_retries}}}\njobs:\n"
            f"  - {{name: c, kind: texture, inputs: s3://{name}/in/pebbles.jpg, seeds: {tasks},"
            f" params: {{size: 32, iterations: 10}}}}\n")
        done_keys = lambda: len(s3_records(client, name, "out/c/"))  # noqa: E731
        stop, kills = threading.Event(), []

        def killer() -> None:  # a worker SIGKILL every kill_every seconds, mid-task
            while not stop.wait(kill_every) and len(kills) < max_kills:
                while not stop.is_set() and not _rendering_pids(cluster):
                    stop.wait(0.1)
                for pid in _rendering_pids(cluster)[:1]:
                    try:
                        os.kill(pid, signal.SIGKILL)
                        kills.append(pid)
                    except ProcessLookupError:
                        pass

        thread = threading.Thread(target=killer, daemon=True)
        thread.start()
        try:
            driver = start_driver(manifest, cluster.address, tmp / "driver1.log")
            # A worker killed every 10 s on a 2-core machine leaves about one task in 5 s: scale the waits.
            patience = max(300, 5 * tasks)
            wait_for(lambda: done_keys() >= tasks // 4 or driver.poll() is not None, patience, "a quarter of the tasks")
            proxy.mode = "down:"  # every request refused (503) for a while
            time.sleep(outage_seconds)
            proxy.mode = "ok"
            wait_for(lambda: done_keys() >= tasks // 2 or driver.poll() is not None, patience, "half of the tasks")
            driver_kills = 0
            if driver.poll() is None:
                os.killpg(driver.pid, signal.SIGKILL)  # the driver's machine goes away
                driver.wait()
                driver_kills = 1
            rerun = start_driver(manifest, cluster.address, tmp / "driver2.log")
            finish_driver(rerun, tmp / "driver2.log", timeout=2 * patience)
        finally:
            stop.set()
            thread.join()
    records = s3_records(client, name, "out/c/")
    versions = versions_per_key(client, name, "out/c/")
    done = {key.rsplit("/", 1)[-1][: -len(".json")] for key in versions if key.endswith(".json")
            and not key.endswith(".failed.json")}
    failed = {key.rsplit("/", 1)[-1][: -len(".failed.json")] for key in versions if key.endswith(".failed.json")}
    return ChaosResult(tasks=tasks, done=sum(r["status"] == "done" for r in records), failed=len(failed - done),
                       lost=tasks - len(done | failed), duplicates=sum(count > 1 for count in versions.values()),
                       worker_kills=len(kills), driver_kills=driver_kills, outage_faults=proxy.faults,
                       seconds=time.monotonic() - started)
