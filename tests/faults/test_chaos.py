"""Chaos at CI scale: 24 tiny tasks on a 2-node Ray cluster, a render worker SIGKILLed every few seconds,
a storage outage, and the driver SIGKILLed once and run again. Every task must end written exactly once,
counted by object versions at a real S3 endpoint (bucket versioning on). `bench/chaos.py` runs the same
harness at full scale."""
import pytest

from tests.faults.chaos import run_chaos

pytestmark = pytest.mark.slow


def test_chaos_ends_with_every_task_written_exactly_once(tmp_path, s3_endpoint, bucket):
    # At most max_retries kills in all: even if every one hit the same task, no task may be given up.
    result = run_chaos(tmp_path, s3_endpoint, bucket, tasks=24, kill_every=10.0, outage_seconds=5.0,
                       max_kills=4, max_retries=5)
    print(result.summary())
    assert result.worker_kills >= 1 and result.driver_kills == 1 and result.outage_faults > 0, result.summary()
    assert result.done == 24 and result.lost == 0, result.summary()
    assert result.duplicates == 0, result.summary()  # no PNG or record written twice
