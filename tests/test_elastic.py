"""The elastic pool's policy (how many actors a run wants, which ones go) and the light driver (no torch
in the process that runs the manifest). The multi-node behaviour is in tests/cluster/."""
import json
import subprocess
import sys

import pytest

from pipelines.actors import READY, RELEASED, STARTING, ActorPool
from pipelines.elastic import AUTO_PENDING, Capacity, PoolSize, actors_wanted
from pipelines.manifest import ManifestError, parse_manifest
from tests.conftest import DATA, REPO


def test_workers_is_a_count_auto_or_a_range():
    assert PoolSize.parse(8) == PoolSize(0, 8)
    assert PoolSize.parse("auto") == PoolSize.parse(None) == PoolSize(0, None)
    assert PoolSize.parse({"min": 1, "max": 4}) == PoolSize(1, 4)
    assert PoolSize.parse({"min": 2}) == PoolSize(2, None)


def test_the_pool_follows_the_work_left_within_its_bounds():
    no_autoscaler = Capacity(fits_now=2, autoscaler=False)
    # A count: that many at once, never more than the work left; released down to 0 at the tail.
    assert actors_wanted(PoolSize(0, 8), no_autoscaler, work_left=100, ready=0) == 8
    assert actors_wanted(PoolSize(0, 8), no_autoscaler, work_left=3, ready=8) == 3
    assert actors_wanted(PoolSize(0, 8), no_autoscaler, work_left=0, ready=8) == 0
    # A range asks for its max while tasks are queued (pending actors are the autoscaler's demand),
    # and keeps its min when idle.
    assert actors_wanted(PoolSize(1, 4), no_autoscaler, work_left=20, ready=2) == 4
    assert actors_wanted(PoolSize(1, 4), no_autoscaler, work_left=0, ready=4) == 1
    # auto without an autoscaler: what fits now, re-read as nodes join.
    assert actors_wanted(PoolSize(0, None), no_autoscaler, work_left=20, ready=2) == 2
    assert actors_wanted(PoolSize(0, None), Capacity(4, False), work_left=20, ready=2) == 4
    assert actors_wanted(PoolSize(0, None), Capacity(0, False), work_left=20, ready=0) == 1  # one to wait for
    # auto under an autoscaler that states its largest cluster: up to that, from zero GPUs.
    assert actors_wanted(PoolSize(0, None), Capacity(0, True, autoscaler_max=64), work_left=500, ready=0) == 64
    # auto under an autoscaler that does not: unplaced actors paced like the autoscaler's upscaling.
    grows = Capacity(0, True)
    assert actors_wanted(PoolSize(0, None), grows, work_left=500, ready=0) == AUTO_PENDING
    assert actors_wanted(PoolSize(0, None), grows, work_left=500, ready=10) == 20
    assert actors_wanted(PoolSize(0, None), grows, work_left=3, ready=10) == 3


@pytest.mark.parametrize("workers, message", [
    ("{min: 3, max: 2}", "min (3) must not be above max (2)"),
    ("{min: -1, max: 2}", "workers.min: must be a count"),
    ("{max: 0}", "workers.max: must be 'auto' or a positive count"),
    ("{most: 4}", "unknown key"),
    ("lots", "must be 'auto', a positive count or a range"),
])
def test_a_bad_workers_value_names_the_key_and_the_fix(tmp_path, workers, message):
    path = tmp_path / "run.yaml"
    path.write_text(f"name: w\noutput: out\ncluster: {{workers: {workers}}}\n"
                    f"jobs:\n  - {{name: p, kind: texture, inputs: {DATA / 'textures' / 'pebbles.jpg'}}}\n")
    with pytest.raises(ManifestError) as info:
        parse_manifest(str(path))
    assert message in str(info.value) and "run.yaml:3" in str(info.value)


class FakeRay:
    """Only what ActorPool calls: handles whose methods return refs, kill."""

    class Handle:
        def __init__(self, name):
            self.name = name
            self.ready = self.render_batch = self

        def remote(self, *args):
            return object()

    def __init__(self):
        self.killed = []

    def kill(self, actor):
        self.killed.append(actor.name)


def test_release_takes_unplaced_actors_first_then_the_longest_idle_never_a_busy_one():
    now = [0.0]
    ray, names = FakeRay(), iter(range(100))
    pool = ActorPool(ray, lambda: FakeRay.Handle(next(names)), 4, depth=1, restart_timeout=60, clock=lambda: now[0])
    for index in (0, 1, 2):
        pool.probe_answered(index, {"node": f"n{index}"})
    busy = pool.submit([type("T", (), {"to_dict": lambda self: {}})()], attempt=1)
    assert pool.calls[busy.name]
    now[0] = 5.0
    # actor 3 never answered: it goes first; ready ones only after the idle timeout, never the busy one
    assert pool.releasable(idle_timeout=10) == [3]
    now[0] = 20.0
    order = pool.releasable(idle_timeout=10)
    assert order[0] == 3 and busy.name not in order and set(order[1:]) == {0, 1, 2} - {busy.name}
    pool.release(3)
    assert pool.state[3] == RELEASED and ray.killed == [3] and pool.live() == 3
    pool.add(1)
    assert pool.state[4] == STARTING and pool.count(READY) == 3 and pool.alive
    pool.kill_all()
    assert ray.killed.count(3) == 1  # a released actor is not killed twice


def _import_probe(code: str) -> dict:
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_the_driver_modules_import_no_torch():
    found = _import_probe(
        "import json, sys\n"
        "import pipelines.cli, pipelines.run, pipelines.worker, pipelines.catalog, pipelines.report\n"
        "print(json.dumps(sorted(m for m in ('torch', 'torchvision') if m in sys.modules)))")
    assert found == []


@pytest.mark.slow
def test_a_run_reaches_its_first_actor_and_resumes_without_torch_in_the_driver(tmp_path, ray_cluster):
    """The whole `texfarm run` path in a driver process of its own (connected to the tests' Ray): no
    torch when the first task is dispatched, none at the end, none in a resume with nothing to do."""
    path = tmp_path / "run.yaml"
    path.write_text(f"name: light\noutput: out\nmodel: {{weights: random}}\ncluster: {{workers: 1}}\njobs:\n"
                    f"  - {{name: p, kind: texture, inputs: {DATA / 'textures' / 'pebbles.jpg'}, seeds: 2,"
                    f" params: {{size: 32, iterations: 2}}}}\n")
    address = ray_cluster.get_runtime_context().gcs_address
    driver = (
        "import json, sys\n"
        "from pipelines.manifest import parse_manifest\n"
        "from pipelines.run import run_manifest\n"
        "seen = []\n"
        f"summary = run_manifest(parse_manifest({str(path)!r}), address={address!r}, stream=None,\n"
        "                       on_dispatch=lambda task, actor: seen.append('torch' in sys.modules))\n"
        "print(json.dumps({'executed': summary.executed, 'exit': summary.exit_code, 'torch_at_dispatch': seen,\n"
        "                  'torch_at_end': 'torch' in sys.modules}))\n")
    first = _import_probe(driver)
    assert first == {"executed": 2, "exit": 0, "torch_at_dispatch": [False, False], "torch_at_end": False}
    resume = _import_probe(
        "import json, sys\n"
        "from pipelines.cli import main\n"
        f"code = main(['run', {str(path)!r}])\n"
        "peak = next(line for line in open('/proc/self/status') if line.startswith('VmHWM'))\n"
        "print(json.dumps({'exit': code, 'torch': 'torch' in sys.modules, 'rss_mb': int(peak.split()[1]) / 1024}))\n")
    assert resume["exit"] == 0 and resume["torch"] is False
    # This process's own peak (VmHWM; ru_maxrss would include pytest's, inherited across exec)
    assert resume["rss_mb"] < 300, resume  # torch alone would take it past 1 GB


class ActorDiedError(Exception):
    """Named as Ray's: what a probe of an actor whose worker keeps dying on start raises."""


def test_an_actor_that_dies_before_it_is_ever_ready_gives_its_reason_fast():
    ray, names = FakeRay(), iter(range(100))
    pool = ActorPool(ray, lambda: FakeRay.Handle(next(names)), 1, depth=1, restart_timeout=600, clock=lambda: 0.0)
    reason = "The actor died because its worker exited: Missing authorization header"
    for _ in range(2):
        pool.probe_failed(0, ActorDiedError(f"ActorDiedError\n{reason}"))
        assert pool.state[0] == STARTING and not pool.init_errors  # Ray restarts it; not yet judged
    pool.probe_failed(0, ActorDiedError(f"ActorDiedError\n{reason}"))
    assert pool.state[0] != STARTING and not pool.alive  # no 600 s restart wait
    assert "Missing authorization header" in pool.init_errors[0] and "3 times" in pool.init_errors[0]


def test_auto_waits_for_a_fresh_heads_autoscaler_to_report():
    """A run submitted right after `ray up` used to read "no autoscaler" before the autoscaler's first
    report and print it (seen in the from-zero test under load); it now waits for the report."""
    from pipelines.elastic import ClusterCapacity

    readings = iter([Capacity(0, None), Capacity(0, None), Capacity(0, True)])

    class Fresh(ClusterCapacity):
        def _read(self):
            return next(readings)

    capacity = Fresh(ray=None, options={"num_gpus": 1})
    assert capacity.wait_reported(timeout=10).autoscaler is True
    assert Capacity(0, None).describe() == "no autoscaler has reported yet"
    silent = Fresh(ray=None, options={"num_gpus": 1})
    readings = iter([Capacity(1, None)] * 100)
    assert silent.wait_reported(timeout=0.6).autoscaler is None  # never reported: go on without it
