"""`python -m tests.cluster.watch GCS_ADDRESS`: one JSON line every half second with what the cluster's
GCS says (GPUs free and in all, live GPU nodes), so a test can see the pool breathe from outside the
driver. Runs as its own process: the test process may already hold another Ray connection."""
import json
import sys
import time

import ray


def main(address: str) -> None:
    ray.init(address=address, logging_level="ERROR", log_to_driver=False)
    while True:
        nodes = [n for n in ray.nodes() if n["Alive"] and n["Resources"].get("GPU")]
        line = {"t": time.time(), "gpu_free": ray.available_resources().get("GPU", 0.0),
                "gpu_total": ray.cluster_resources().get("GPU", 0.0), "gpu_nodes": len(nodes)}
        print(json.dumps(line), flush=True)
        time.sleep(0.5)


if __name__ == "__main__":
    main(sys.argv[1])
