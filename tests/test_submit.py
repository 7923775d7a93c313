"""`texfarm submit / status / logs` against a real Ray head with its dashboard (job server) on 127.0.0.1."""
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from pipelines.cli import main
from tests.conftest import DATA

pytestmark = pytest.mark.slow


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture()
def ray_head():
    """A separate Ray cluster (its own temp dir, so no other test joins it), killed afterwards."""
    temp = tempfile.mkdtemp(prefix="rayh", dir="/tmp")
    dashboard = _port()
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"}
    head = subprocess.Popen(
        [str(Path(sys.executable).parent / "ray"), "start", "--head", f"--port={_port()}", "--num-cpus=2",
         "--include-dashboard=true", "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard}",
         # Ports of its own: the test session's Ray already holds the default agent ports.
         f"--dashboard-agent-listen-port={_port()}", f"--dashboard-agent-grpc-port={_port()}",
         f"--metrics-export-port={_port()}", f"--runtime-env-agent-port={_port()}",
         f"--temp-dir={temp}", "--block"],
        env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{dashboard}"
    deadline = time.monotonic() + 120
    while True:
        try:
            urllib.request.urlopen(f"{url}/api/version", timeout=2)
            break
        except OSError:
            if time.monotonic() > deadline or head.poll() is not None:
                os.killpg(head.pid, signal.SIGKILL)
                raise RuntimeError("the Ray head did not start")
            time.sleep(1)
    yield url
    os.killpg(head.pid, signal.SIGTERM)
    try:
        head.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(head.pid, signal.SIGKILL)
    shutil.rmtree(temp, ignore_errors=True)


def test_submit_runs_the_manifest_as_a_ray_job(tmp_path, monkeypatch, capsys, ray_head):
    job_dir = tmp_path / "job"
    job_dir.mkdir()
    (job_dir / "run.yaml").write_text(
        f"name: submitted\noutput: {tmp_path / 'out'}\nmodel: {{weights: random}}\ncluster: {{workers: 1}}\n"
        f"jobs:\n  - {{name: t, kind: texture, inputs: {DATA / 'textures' / 'pebbles.jpg'}, seeds: 2,"
        f" params: {{size: 32, iterations: 2}}}}\n")
    monkeypatch.chdir(job_dir)
    assert main(["submit", "run.yaml", "--address", ray_head]) == 0
    job_id = capsys.readouterr().out.strip().splitlines()[-1]
    status = ""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        main(["status", job_id, "--address", ray_head])
        status = capsys.readouterr().out.strip()
        if status in ("SUCCEEDED", "FAILED", "STOPPED"):
            break
        time.sleep(2)
    main(["logs", job_id, "--address", ray_head])
    logs = capsys.readouterr().out
    assert status == "SUCCEEDED", logs[-3000:]
    assert "submitted: 2 tasks, 0 already done, 2 to run" in logs
    assert len(list((tmp_path / "out" / "t").glob("*.png"))) == 2
    assert (tmp_path / "out" / "report" / "index.html").exists()
