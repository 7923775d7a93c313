"""The chaos harness at full scale (`tests/faults/chaos.py`; CI runs it with 24 tasks):

    python -m bench.chaos --tasks 200 --kill-every 10 --outage 10      # from a checkout, test extras installed

Starts its own S3 endpoint on 127.0.0.1 (moto) and a 2-node Ray cluster on this machine, SIGKILLs a render
worker every --kill-every seconds, refuses every S3 request for --outage seconds, SIGKILLs the driver at
half way and runs it again; prints tasks done, lost and keys written more than once (object versions)."""
from __future__ import annotations

import argparse
import os
import socket
import tempfile
from pathlib import Path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.chaos")
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument("--kill-every", type=float, default=10.0)
    parser.add_argument("--outage", type=float, default=10.0)
    parser.add_argument("--max-retries", type=int, default=5)
    args = parser.parse_args(argv)
    for name, value in (("AWS_ACCESS_KEY_ID", "bench"), ("AWS_SECRET_ACCESS_KEY", "bench-secret"),
                        ("AWS_DEFAULT_REGION", "us-east-1")):
        os.environ.setdefault(name, value)
    import boto3
    from moto.server import ThreadedMotoServer

    from tests.faults.chaos import run_chaos

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        endpoint = f"http://127.0.0.1:{port}"
        client = boto3.client("s3", endpoint_url=endpoint)
        client.create_bucket(Bucket="chaos-bench")
        tmp = tempfile.mkdtemp(prefix="texfarm-chaos-")
        print(f"driver logs: {tmp}")
        result = run_chaos(Path(tmp), endpoint, ("chaos-bench", client), tasks=args.tasks,
                           kill_every=args.kill_every, outage_seconds=args.outage, max_retries=args.max_retries)
    finally:
        server.stop()
    print(result.summary())
    return 0 if result.lost == 0 and result.duplicates == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
