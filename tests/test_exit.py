"""Reading commands against S3 exit cleanly every time (issue 26: `catalog s3://...` printed the right
output and then aborted in 5 runs of 49, "terminate called without an active exception", exit 134)."""
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

from pipelines import catalog, records
from pipelines.storage import Storage, StorageConfig
from tests.conftest import REPO

pytestmark = pytest.mark.slow


def test_catalog_and_failures_on_s3_exit_0_thirty_times(s3_endpoint, bucket):
    name, _ = bucket
    output = f"s3://{name}/out"
    storage = Storage(StorageConfig(endpoint_url=s3_endpoint))
    done = [{**records.base_record({"task_id": f"{i:016x}", "job": "t", "kind": "texture", "seed": i, "inputs": {},
                                    "params": {}}, "m", "random"), "status": "done", "seconds": 1.0 + i,
             "output_uri": f"{output}/t/{i:016x}.png"} for i in range(40)]
    failed = {**done[0], "task_id": "f" * 16, "status": "failed", "error": "ValueError: broken input"}
    for record in done:
        storage.write(f"{output}/t/{record['task_id']}.json", records.dumps(record))
    storage.write(f"{output}/t/{failed['task_id']}.failed.json", records.dumps(failed))
    catalog.write(storage, output, [catalog.row(r) for r in [*done, failed]])
    env = {**os.environ, "AWS_ENDPOINT_URL": s3_endpoint, "PYTHONPATH": str(REPO)}

    def once(command: str) -> tuple[int, str]:
        result = subprocess.run([sys.executable, "-m", "pipelines.cli", command, output], cwd=REPO, env=env,
                                capture_output=True, text=True, timeout=120)
        return result.returncode, result.stdout + result.stderr

    with ThreadPoolExecutor(max_workers=3) as pool:  # 3 at a time: a loaded machine is where it aborted
        results = list(pool.map(once, ["catalog", "failures"] * 15))
    codes = [code for code, _ in results]
    assert codes.count(0) + codes.count(1) == 30, [text[-500:] for code, text in results if code not in (0, 1)]
    catalog_lines = [[line.split() for line in text.splitlines() if line.startswith("t ")] for _, text in results[::2]]
    assert all(lines and lines[0][1:3] == ["40", "1"] for lines in catalog_lines), results[0][1]
    assert all("broken input" in text for _, text in results[1::2]), results[1][1]
