"""`texfarm submit / status / logs / stop`: a manifest run as a Ray Job on a cluster's head.

What travels: the current folder (which must hold the manifest) as the job's working_dir (local inputs of
any image type included),
texfarm's own code as py_modules (so the cluster runs the client's version; torch, Ray and boto3 come
from the cluster's image), and the storage endpoint and region settings of this shell. Credentials
never travel: the nodes use their own credential chain (instance profile)."""
from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path
from typing import Optional

DASHBOARD_VARIABLE = "TEXFARM_DASHBOARD"  # ours: RAY_ADDRESS keeps Ray's meaning (a GCS address)
FORWARDED = ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_REGION", "AWS_DEFAULT_REGION")
EXCLUDES = [".venv/", ".git/", "__pycache__/", "*.pyc", ".pytest_cache/", "out/"]
# Exit codes of `status` (and `logs --follow`, once the job ends): the job's state.
STATE_EXIT = {"SUCCEEDED": 0, "FAILED": 1, "STOPPED": 1, "PENDING": 3, "RUNNING": 3}


class SubmitError(ValueError):
    """A manifest that cannot run as submitted (the message says what to change)."""


def dashboard_address(given: Optional[str]) -> str:
    """--address, else $TEXFARM_DASHBOARD, else Ray's own variables for its job server: the one `ray start`
    tells users to set (RAY_API_SERVER_ADDRESS), or RAY_ADDRESS when it is an http(s) address."""
    ray_address = os.environ.get("RAY_ADDRESS", "")
    address = (given or os.environ.get(DASHBOARD_VARIABLE) or os.environ.get("RAY_API_SERVER_ADDRESS")
               or (ray_address if ray_address.startswith(("http://", "https://")) else None))
    if not address:
        raise SubmitError(f"give --address http://HEAD:8265 (or set {DASHBOARD_VARIABLE}); "
                          "`ray dashboard cluster.yaml` forwards it to http://localhost:8265")
    return address


def _enable_token_auth_if_available() -> None:
    """Ray 2.60 clusters ask for a token by default. When the user has one (RAY_AUTH_TOKEN,
    RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token) and did not choose a mode, send it."""
    if "RAY_AUTH_MODE" in os.environ:
        return
    has_token = (os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN_PATH")
                 or (Path.home() / ".ray" / "auth_token").exists())
    if has_token:
        os.environ["RAY_AUTH_MODE"] = "token"
        if "ray" in sys.modules:  # Ray reads the mode once; refresh it for this process
            from ray._raylet import Config

            Config.initialize("")


def job_client(address: Optional[str]):
    _enable_token_auth_if_available()
    from ray.job_submission import JobSubmissionClient

    address = dashboard_address(address)
    try:
        return JobSubmissionClient(address)
    except Exception as exc:  # unreachable, or a token is missing or wrong
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        hint = ""
        if "token" in text.lower() or "401" in text or "403" in text:
            hint = ("; this cluster asks for a token: set RAY_AUTH_TOKEN (or put it in ~/.ray/auth_token); "
                    "`ray get-auth-token` on the head prints it")
        raise SubmitError(f"cannot reach the Ray job server at {address}: {text}{hint}") from None


def check_submittable(manifest, manifest_path: Path, working_dir: Path) -> None:
    """What would break on the cluster, refused here with the fix."""
    from .storage import is_s3

    if not is_s3(manifest.output):
        raise SubmitError(f"{manifest_path}: output {manifest.output} is a local folder: on a cluster it would land "
                          "in the head's temporary job folder and be lost. Use an s3:// output for `texfarm submit` "
                          "(or `texfarm run` to render here)")
    weights = manifest.model.get("weights")
    if weights not in ("imagenet", "random") and not is_s3(weights):
        raise SubmitError(f"{manifest_path}: model.weights {weights} is a local file: stage it once to s3:// (see "
                          "README, 'Running on a cluster') so that every node reads it from there")
    root = working_dir.resolve()
    for task in manifest.tasks:
        for uris in task.inputs.values():
            for uri in uris:
                if not is_s3(uri) and not Path(uri.removeprefix("file://")).resolve().is_relative_to(root):
                    raise SubmitError(f"{manifest_path}: job {task.job}: input {uri} is outside {root}, the folder "
                                      "uploaded with the job: move it inside, upload it to s3://, or submit from a "
                                      "folder that contains it")


def check_upload_size(working_dir: Path) -> None:
    """Refuse, before uploading, a working_dir over Ray's package limit (Ray refuses it only after zipping
    and sending it, with a traceback); the biggest entries are named. The files counted are the ones Ray
    would pack: EXCLUDES, .gitignore and .rayignore applied by Ray's own walk."""
    try:
        from ray._private import ray_constants
        from ray._private.runtime_env import packaging
    except ImportError:  # a Ray without these helpers: its own check stands
        return
    limit = packaging.GCS_STORAGE_MAX_SIZE
    root = working_dir.resolve()
    sizes: dict[str, int] = {}

    def count(path: Path) -> None:
        if path.is_file() and not path.is_symlink():
            top = path.relative_to(root).parts[0]
            sizes[top] = sizes.get(top, 0) + path.stat().st_size

    include_gitignore = os.environ.get(ray_constants.RAY_RUNTIME_ENV_IGNORE_GITIGNORE, "0") != "1"
    packaging._dir_travel(root, [packaging._get_excludes(root, EXCLUDES)], count, include_gitignore=include_gitignore)
    total = sum(sizes.values())
    if total >= limit:
        biggest = ", ".join(f"{name} ({size / 2**20:.0f} MiB)" for name, size in
                            sorted(sizes.items(), key=lambda item: -item[1])[:5])
        raise SubmitError(f"{root} holds {total / 2**20:.0f} MiB to upload with the job, over Ray's limit of "
                          f"{limit / 2**20:.0f} MiB; the biggest: {biggest}. Put large inputs in s3:// (or list "
                          "them in .rayignore) and submit again")


def runtime_env(working_dir: Path) -> dict:
    import pipelines
    import tasks

    env_vars = {name: os.environ[name] for name in FORWARDED if os.environ.get(name)}
    modules = [str(Path(package.__file__).parent) for package in (pipelines, tasks)]
    return {"working_dir": str(working_dir), "excludes": EXCLUDES, "py_modules": modules, "env_vars": env_vars}


def submit(client, manifest_relative: str, working_dir: Path, wait_seconds: float = 120) -> str:
    entrypoint = f"python -m pipelines.cli run {manifest_relative} --address auto"
    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            return client.submit_job(entrypoint=entrypoint, runtime_env=runtime_env(working_dir))
        except RuntimeError as exc:  # a fresh cluster's dashboard answers before its job agent is up
            if "No available agent" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(2)


def follow_logs(client, job_id: str, out=sys.stdout) -> None:
    async def tail() -> None:
        async for chunk in client.tail_job_logs(job_id):
            out.write(chunk)
            out.flush()

    asyncio.run(tail())


def state_exit_code(status) -> int:
    return STATE_EXIT.get(str(status), 1)
