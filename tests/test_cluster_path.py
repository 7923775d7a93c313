"""The parts of the cluster path that need no extra cluster: actors asked from the manifest, a clear
stop when none can be placed, and task ids that do not depend on where the project sits."""
import shutil

import pytest

from pipelines.manifest import parse_manifest
from pipelines.run import WorkerStartError, actor_plan, run_manifest
from tests.conftest import DATA


def test_gpu_actors_are_asked_for_even_when_the_cluster_has_no_gpu_yet():
    # A cluster whose GPU workers scale from zero has only the head's CPUs when the run starts.
    head_only = {"CPU": 4.0}
    plan = actor_plan(head_only, {"workers": 8, "gpus_per_worker": 1}, pending=100)
    assert plan.workers == 8 and plan.options["num_gpus"] == 1.0
    assert actor_plan(head_only, {"gpus_per_worker": 0.5}, pending=100).options["num_gpus"] == 0.5
    # auto: GPUs when there are some, CPU actors on a laptop; never more actors than tasks
    assert actor_plan({"CPU": 8.0, "GPU": 2.0}, {}, pending=100).workers == 2
    assert actor_plan({"CPU": 8.0}, {}, pending=3) == actor_plan({"CPU": 8.0}, {"gpus_per_worker": 0}, pending=3)
    assert actor_plan({"CPU": 8.0}, {}, pending=3).options["num_gpus"] == 0.0


def _project(root, output="out", cluster="{workers: 1}"):
    (root / "inputs").mkdir(parents=True)
    shutil.copy(DATA / "textures" / "pebbles.jpg", root / "inputs" / "pebbles.jpg")
    (root / "manifests").mkdir()
    path = root / "manifests" / "run.yaml"
    path.write_text(f"name: moved\noutput: ../{output}\nmodel: {{weights: random}}\ncluster: {cluster}\njobs:\n"
                    f"  - {{name: p, kind: texture, inputs: ../inputs/*.jpg, seeds: 2, params: {{size: 32, iterations: 2}}}}\n")
    return path


def test_task_ids_do_not_depend_on_where_the_project_sits(tmp_path):
    here = parse_manifest(str(_project(tmp_path / "a")))
    there = parse_manifest(str(_project(tmp_path / "elsewhere" / "b")))
    assert [t.task_id for t in here.tasks] == [t.task_id for t in there.tasks]
    assert here.tasks[0].inputs != there.tasks[0].inputs  # each reads its own copy


def test_a_moved_project_resumes_completely(tmp_path, ray_cluster):
    first = run_manifest(parse_manifest(str(_project(tmp_path / "a"))), stream=None)
    assert (first.executed, first.failed) == (2, [])
    shutil.move(tmp_path / "a", tmp_path / "moved")
    again = run_manifest(parse_manifest(str(tmp_path / "moved" / "manifests" / "run.yaml")), stream=None)
    assert (again.skipped, again.executed) == (2, 0)


def test_actors_that_cannot_be_placed_stop_the_run_with_what_was_asked(tmp_path, ray_cluster):
    path = _project(tmp_path, cluster="{workers: 2, gpus_per_worker: 1, start_timeout: 3}")  # no GPU here
    with pytest.raises(WorkerStartError, match=r"no render worker could be placed in \d+ s: each asks GPU: 1, CPU: 1"):
        run_manifest(parse_manifest(str(path)), stream=None)
    assert not (tmp_path / "out").exists()


def test_weights_are_staged_once_per_node_however_many_actors_start_together(tmp_path, monkeypatch):
    import threading
    import time
    from concurrent.futures import ThreadPoolExecutor

    from pipelines import weights

    monkeypatch.setattr(weights, "CACHE_DIR", tmp_path / "cache")
    reads, lock = [], threading.Lock()

    class SlowStorage:  # an S3 GET that takes a while, as a 548 MB state dict does
        def read(self, uri):
            with lock:
                reads.append(uri)
            time.sleep(0.3)
            return b"state dict bytes"

    with ThreadPoolExecutor(4) as pool:
        paths = list(pool.map(lambda _: weights.local_weights("s3://b/vgg19.pth", SlowStorage()), range(4)))
    assert reads == ["s3://b/vgg19.pth"] and len(set(paths)) == 1
    assert open(paths[0], "rb").read() == b"state dict bytes"


def test_an_address_nobody_answers_fails_in_seconds_naming_it(tmp_path, capsys):
    import socket
    import time

    from pipelines.cli import main

    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens on it
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    path = _project(tmp_path)
    started = time.monotonic()
    assert main(["run", str(path), "--address", f"127.0.0.1:{port}"]) == 2
    assert time.monotonic() - started < 40  # ADDRESS_WAIT (20 s) for a head still starting, not Ray's minutes
    assert f"no Ray cluster answers at 127.0.0.1:{port}" in capsys.readouterr().err
