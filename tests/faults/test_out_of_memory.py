"""Out of memory: the matching halves its chunk and retries; a task that cannot fit fails with a
clear reason and the worker keeps going. Allocations fail for real under a capped address space."""
import json
import os
import subprocess
import sys

import pytest

from tests.conftest import DATA, REPO

pytestmark = pytest.mark.slow


def test_out_of_memory_is_recovered_or_reported(tmp_path):
    result = subprocess.run([sys.executable, "-m", "tests.faults.oom_probe", str(DATA), str(tmp_path)],
                            cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    assert outcome["same"] and outcome["chunk_used"] < 40000  # halved, then exactly the same matches
    status, error = outcome["huge"]
    assert status == "failed" and error.startswith("out of memory on cpu") and "lower `size`" in error
    assert outcome["small"] == "done"  # the same worker renders the next task
