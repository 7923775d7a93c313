"""`texfarm submit / status / logs` against a real Ray head with its job server on this machine."""
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from pipelines.cli import main
from tests.conftest import DATA, REPO

pytestmark = pytest.mark.slow


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]

def _start_head(env_overrides: dict):
    """A separate Ray cluster (its own temp dir and ports, so no other test joins it)."""
    temp = tempfile.mkdtemp(prefix="rayh", dir="/tmp")
    dashboard = _port()
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}", **env_overrides}
    head = subprocess.Popen(
        [str(Path(sys.executable).parent / "ray"), "start", "--head", f"--port={_port()}", "--num-cpus=2",
         "--include-dashboard=true", "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard}",
         f"--dashboard-agent-listen-port={_port()}", f"--dashboard-agent-grpc-port={_port()}",
         f"--metrics-export-port={_port()}", f"--runtime-env-agent-port={_port()}",
         # Ray's client server defaults to port 10001: another Ray head on this machine would hold it.
         f"--ray-client-server-port={_port()}", f"--temp-dir={temp}", "--block"],
        env=env, start_new_session=True, stdout=(Path(temp) / "head.log").open("w"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{dashboard}"
    deadline = time.monotonic() + 120
    while True:
        try:
            # No proxy: a user's http_proxy (or one cached by an earlier urlopen) must not take localhost.
            urllib.request.build_opener(urllib.request.ProxyHandler({})).open(f"{url}/api/version", timeout=2)
            return url, head, temp
        except urllib.error.HTTPError:  # it answers (a token-auth head asks for the token)
            return url, head, temp
        except OSError:
            if time.monotonic() > deadline or head.poll() is not None:
                os.killpg(head.pid, signal.SIGKILL)
                log = (Path(temp) / "head.log").read_text()[-2000:]
                raise RuntimeError(f"the Ray head did not start (exit {head.poll()}):\n{log}")
            time.sleep(1)


def _stop_head(head, temp) -> None:
    os.killpg(head.pid, signal.SIGTERM)
    try:
        head.wait(timeout=5)  # `ray start --block` often ignores SIGTERM: do not wait long for it
    except subprocess.TimeoutExpired:
        os.killpg(head.pid, signal.SIGKILL)
    shutil.rmtree(temp, ignore_errors=True)


@pytest.fixture(scope="module")
def ray_head():
    """The head knows the credentials (as a node's instance profile would) but no endpoint: that must
    come with the job. One head for the module's jobs (each submits its own, to its own bucket)."""
    url, head, temp = _start_head({"AWS_ENDPOINT_URL": "", "AWS_REGION": ""})
    yield url
    _stop_head(head, temp)


def _project(root: Path, output: str) -> Path:
    """A manifest with local inputs of two image types, in its own folder."""
    (root / "images").mkdir(parents=True)
    shutil.copy(DATA / "textures" / "pebbles.jpg", root / "images" / "pebbles.jpg")
    shutil.copy(DATA / "textures" / "dots.png", root / "images" / "dots.png")
    (root / "run.yaml").write_text(
        f"name: submitted\noutput: {output}\nmodel: {{weights: random}}\ncluster: {{workers: 1}}\n"
        f"jobs:\n  - {{name: t, kind: texture, inputs: images/, seeds: 1, params: {{size: 32, iterations: 2}}}}\n")
    return root / "run.yaml"


def _wait_final(job_id: str, address: str, capsys) -> tuple[str, int]:
    deadline = time.monotonic() + 300
    while True:
        code = main(["status", job_id, "--address", address])
        status = capsys.readouterr().out.strip().split(":")[0]  # FAILED: Ray's message (as `ray job status`)
        if status not in ("PENDING", "RUNNING") or time.monotonic() > deadline:
            return status, code
        assert code == 3  # still going
        time.sleep(2)


def test_submit_runs_the_manifest_as_a_ray_job_and_resumes_a_local_run(tmp_path, monkeypatch, capsys, ray_head,
                                                                        s3_endpoint, bucket):
    name, client = bucket
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)  # this shell's endpoint, forwarded with the job
    monkeypatch.setenv("AWS_REGION", "eu-west-3")
    monkeypatch.setenv("TEXFARM_DASHBOARD", ray_head)
    # One of the two tasks rendered locally first, from another folder: the submitted run resumes it.
    elsewhere = shutil.copytree(_project(tmp_path / "here", f"s3://{name}/runs").parent, tmp_path / "elsewhere")
    (elsewhere / "images" / "pebbles.jpg").unlink()
    local = subprocess.run([sys.executable, "-m", "pipelines.cli", "run", str(elsewhere / "run.yaml")], cwd=REPO,
                           env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=300)
    assert local.returncode == 0, local.stderr[-3000:]

    monkeypatch.chdir(tmp_path / "here")
    assert main(["submit", "run.yaml"]) == 0
    job_id = capsys.readouterr().out.strip().splitlines()[-1]
    assert main(["logs", job_id, "--follow"]) == 0  # follows until the job ends; exit code of its state
    logs = capsys.readouterr().out
    assert _wait_final(job_id, ray_head, capsys) == ("SUCCEEDED", 0), logs[-3000:]
    assert "submitted: 2 tasks, 1 already done, 1 to run" in logs, logs[:3000]  # same ids as the local run
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=name, Prefix="runs/")["Contents"]]
    assert len([k for k in keys if k.startswith("runs/t/") and k.endswith(".png")]) == 2  # .jpg and .png inputs
    from ray.job_submission import JobSubmissionClient

    env_vars = JobSubmissionClient(ray_head).get_job_info(job_id).runtime_env.get("env_vars", {})
    assert env_vars["AWS_ENDPOINT_URL"] == s3_endpoint and env_vars["AWS_REGION"] == "eu-west-3"
    assert set(env_vars) <= {"AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_REGION", "AWS_DEFAULT_REGION"}
    assert os.environ["AWS_SECRET_ACCESS_KEY"] not in str(JobSubmissionClient(ray_head).get_job_info(job_id))


def test_a_failed_or_stopped_job_gives_a_failing_status(tmp_path, monkeypatch, capsys, ray_head, s3_endpoint, bucket):
    name, _ = bucket
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    path = _project(tmp_path, f"s3://{name}/runs")
    path.write_text(path.read_text().replace("params: {", "params: {lr: 1.0e+30, "))  # diverges: exit 1
    monkeypatch.chdir(tmp_path)
    assert main(["submit", "run.yaml", "--address", ray_head]) == 0
    job_id = capsys.readouterr().out.strip().splitlines()[-1]
    assert _wait_final(job_id, ray_head, capsys) == ("FAILED", 1)
    assert main(["status", job_id, "--address", ray_head]) == 1
    assert "FAILED: Job entrypoint command failed with exit code 1" in capsys.readouterr().out  # Ray's reason
    # an id the head does not know: one line, exit 2 (it was a 404 traceback, exit 1)
    assert main(["status", "raysubmit_nonexistent", "--address", ray_head]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no job 'raysubmit_nonexistent'") and len(err.strip().splitlines()) == 1, err
    # and a job stopped by the user
    path.write_text(path.read_text().replace("lr: 1.0e+30, ", "").replace("iterations: 2", "iterations: 100000"))
    assert main(["submit", "run.yaml", "--address", ray_head]) == 0
    job_id = capsys.readouterr().out.strip().splitlines()[-1]
    assert main(["stop", job_id, "--address", ray_head]) == 0
    assert capsys.readouterr().out.strip() == "stopped"
    assert _wait_final(job_id, ray_head, capsys) == ("STOPPED", 1)


def test_submit_refuses_what_would_break_on_the_cluster(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(_project(tmp_path / "p", str(tmp_path / "local-out")).parent)
    assert main(["submit", "run.yaml", "--address", "http://127.0.0.1:9"]) == 2
    err = capsys.readouterr().err
    assert "is a local folder" in err and "s3:// output" in err
    assert not (tmp_path / "local-out").exists()


def test_a_folder_over_rays_upload_limit_is_refused_before_uploading(tmp_path, monkeypatch, capsys, s3_endpoint,
                                                                      bucket):
    """Ray refused it only after zipping and sending it, with a traceback. A sparse file stands in for
    a folder of photos: Ray's limit counts bytes, the test's disk holds none of them."""
    from ray._private.runtime_env.packaging import GCS_STORAGE_MAX_SIZE

    name, _ = bucket
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    root = _project(tmp_path / "p", f"s3://{name}/runs").parent
    with open(root / "images" / "scans.tar", "wb") as big:
        big.truncate(GCS_STORAGE_MAX_SIZE + 2**20)
    monkeypatch.chdir(root)
    assert main(["submit", "run.yaml", "--address", "http://127.0.0.1:9"]) == 2
    err = capsys.readouterr().err
    assert "over Ray's limit" in err and "the biggest: images (" in err and ".rayignore" in err, err
    (root / ".rayignore").write_text("images/scans.tar\n")  # what Ray would not pack is not counted
    assert main(["submit", "run.yaml", "--address", "http://127.0.0.1:9"]) == 2
    err = capsys.readouterr().err
    assert "over Ray's limit" not in err and "cannot reach the Ray job server at http://127.0.0.1:9" in err, err


def test_token_auth_is_sent_when_the_user_has_a_token(tmp_path, monkeypatch, capsys):
    token = "texfarm-test-token-0123456789abcdef"
    url, head, temp = _start_head({"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token})
    try:
        monkeypatch.delenv("RAY_AUTH_MODE", raising=False)  # the user chose no mode
        monkeypatch.setenv("HOME", str(tmp_path))  # and has no token file
        monkeypatch.delenv("RAY_AUTH_TOKEN", raising=False)
        assert main(["status", "raysubmit_none", "--address", url]) == 2
        err = capsys.readouterr().err
        assert "asks for a token" in err and "RAY_AUTH_TOKEN" in err
        monkeypatch.setenv("RAY_AUTH_TOKEN", token)
        # authenticated: the server looks for the job, and says it has none
        assert main(["status", "raysubmit_none", "--address", url]) == 2
        assert "error: no job 'raysubmit_none'" in capsys.readouterr().err
    finally:
        _stop_head(head, temp)


def test_the_job_server_address_falls_back_to_rays_own_variables(monkeypatch):
    from pipelines.jobs import SubmitError, dashboard_address

    for name in ("TEXFARM_DASHBOARD", "RAY_API_SERVER_ADDRESS", "RAY_ADDRESS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:6379")  # a GCS address is not the job server's
    with pytest.raises(SubmitError, match="give --address"):
        dashboard_address(None)
    monkeypatch.setenv("RAY_ADDRESS", "http://head:8265")
    assert dashboard_address(None) == "http://head:8265"
    monkeypatch.setenv("RAY_API_SERVER_ADDRESS", "http://api:8265")  # what `ray start` tells users to set
    assert dashboard_address(None) == "http://api:8265"
    monkeypatch.setenv("TEXFARM_DASHBOARD", "http://ours:8265")
    assert dashboard_address(None) == "http://ours:8265" and dashboard_address("http://given:1") == "http://given:1"
