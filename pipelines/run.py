"""The driver: skip finished tasks, feed a pool of Renderer actors with backpressure, re-queue the
tasks of dead actors up to a retry limit, record failures, write the catalog. No CUDA here."""
from __future__ import annotations

import json
import logging
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, TextIO

from tasks.registry import get_kind

from . import catalog, records
from .manifest import Manifest, TaskSpec
from .renderer import Renderer
from .storage import Storage, StorageConfig, join

DEFAULT_MAX_RETRIES = 2  # re-queues after an actor died mid-task (so 3 attempts in all)
PIPELINE_DEPTH = 2  # calls in flight per GPU actor (CPU actors: 1, their I/O would compete with compute)
RESTART_TIMEOUT = 600.0  # seconds an actor may stay unreachable (restarting) before it is given up


class WorkerStartError(RuntimeError):
    """The Renderer actors could not start (e.g. the weights cannot be loaded)."""


@dataclass
class RunSummary:
    total: int
    skipped: int
    executed: int = 0
    failed: list[dict[str, Any]] = field(default_factory=list)
    records: list[dict[str, Any]] = field(default_factory=list)  # of the tasks run this time
    catalog_written: bool = False
    catalog_uri: str = ""
    startup_seconds: float = 0.0  # Ray start and actors loading the model
    execute_seconds: float = 0.0  # first dispatch to last result

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0


class Progress:
    """One status line: done / running / failed / ETA (rewritten in place on a terminal)."""

    def __init__(self, total: int, stream: Optional[TextIO]) -> None:
        self.total, self.stream = total, stream
        self.start = time.monotonic()
        self.done = self.failed = self.running = 0
        self.tty = bool(stream and stream.isatty())
        self.last_counts: tuple = ()

    def show(self, final: bool = False) -> None:
        counts = (self.done, self.failed, self.running)
        if not self.stream or (not self.tty and not final and counts == self.last_counts):
            return  # in a log file, one line per change
        self.last_counts = counts
        finished = self.done + self.failed
        elapsed = time.monotonic() - self.start
        eta = elapsed / finished * (self.total - finished) if finished else float("nan")
        eta_text = time.strftime("%H:%M:%S", time.gmtime(eta)) if eta == eta else "--:--:--"
        line = (f"[texfarm] {finished}/{self.total} finished: {self.done} done, {self.failed} failed, "
                f"{self.running} running, ETA {eta_text}")
        end = "\n" if final or not self.tty else ""
        self.stream.write(("\r" if self.tty else "") + line + end)
        self.stream.flush()


def finished_ids(storage: Storage, manifest: Manifest) -> set[str]:
    """Task ids whose completion marker (the success record) exists: one listing per job."""
    done = set()
    for job in {task.job for task in manifest.tasks}:
        for uri in storage.list(join(manifest.output, job) + "/"):
            name = uri.rsplit("/", 1)[-1]
            if name.endswith(records.RECORD_SUFFIX) and not name.endswith(records.FAILED_SUFFIX):
                done.add(name[: -len(records.RECORD_SUFFIX)])
    return done


def _init_ray(address: Optional[str]):
    import ray

    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, logging_level=logging.WARNING,
                 configure_logging=True, log_to_driver=True)
    return ray


def _actor_plan(ray, cluster: dict, pending: int) -> tuple[int, dict]:
    """How many actors, and the resources of each: GPUs when the cluster has them, else CPUs."""
    resources = ray.cluster_resources()
    gpus = resources.get("GPU", 0)
    gpus_per = float(cluster.get("gpus_per_worker", 1))
    cpus_per = float(cluster.get("cpus_per_worker", 1))
    workers = cluster.get("workers", "auto")
    use_gpu = gpus > 0 and gpus_per > 0
    if workers == "auto":
        workers = int(gpus // gpus_per) if use_gpu else int(resources.get("CPU", 1) // cpus_per)
    options = {"num_cpus": cpus_per, "num_gpus": gpus_per if use_gpu else 0}
    return max(1, min(int(workers), pending)), options


def run_manifest(
    manifest: Manifest,
    address: Optional[str] = None,
    stream: Optional[TextIO] = sys.stderr,
    on_dispatch: Optional[Callable[[TaskSpec, Any], None]] = None,
) -> RunSummary:
    """Execute every unfinished task of ``manifest``; return what happened."""
    storage = Storage(StorageConfig.from_dict(manifest.storage))
    done_before = finished_ids(storage, manifest)
    todo = [task for task in manifest.tasks if task.task_id not in done_before]
    summary = RunSummary(total=len(manifest.tasks), skipped=len(manifest.tasks) - len(todo))
    if stream:
        stream.write(f"[texfarm] {manifest.name}: {summary.total} tasks, {summary.skipped} already done, "
                     f"{len(todo)} to run\n")
    new_records: dict[str, dict] = {}
    if todo:
        new_records = _execute(manifest, todo, done_before, address, storage, stream, on_dispatch, summary)
        summary.executed = len(todo)
    summary.records = list(new_records.values())
    summary.failed = [r for r in summary.records if r["status"] != "done"]
    summary.catalog_written = _write_catalog(storage, manifest, new_records, done_before)
    summary.catalog_uri = catalog.catalog_uri(manifest.output)
    return summary


def _batch_key(task: TaskSpec) -> str:
    return json.dumps([task.job, task.kind, task.inputs, task.params], sort_keys=True)


class _TaskQueue:
    """Ready tasks in manifest order; a task that needs others' outputs (a generator being trained)
    waits and becomes ready when they are done, or is handed back as blocked when one fails."""

    def __init__(self, todo: list[TaskSpec], done_before: set[str]) -> None:
        self.ready: deque[TaskSpec] = deque()
        self.waiting: dict[str, tuple[TaskSpec, set[str]]] = {}
        self.dependents: dict[str, list[str]] = {}
        for task in todo:
            missing = {dep for dep in task.depends_on if dep not in done_before}
            if not missing:
                self.ready.append(task)
                continue
            self.waiting[task.task_id] = (task, missing)
            for dep in missing:
                self.dependents.setdefault(dep, []).append(task.task_id)

    def __bool__(self) -> bool:
        return bool(self.ready or self.waiting)

    def finished(self, task_id: str, ok: bool) -> list[TaskSpec]:
        """Release the tasks waiting on ``task_id``; return those that can no longer run."""
        blocked = []
        for waiter in self.dependents.pop(task_id, []):
            if waiter not in self.waiting:
                continue
            task, missing = self.waiting[waiter]
            missing.discard(task_id)
            if not ok:
                del self.waiting[waiter]
                blocked.append(task)
            elif not missing:
                del self.waiting[waiter]
                self.ready.append(task)
        return blocked

    def take_batch(self, size: int) -> list[TaskSpec]:
        """The next ready task and up to ``size - 1`` that follow it and differ only by seed
        (expansion puts a job's seeds next to each other), when its kind can batch."""
        first = self.ready.popleft()
        batch = [first]
        if size > 1 and get_kind(first.kind).batch_run is not None:
            key = _batch_key(first)
            while self.ready and len(batch) < size and _batch_key(self.ready[0]) == key:
                batch.append(self.ready.popleft())
        return batch

    def drain_waiting(self) -> list[TaskSpec]:
        tasks = [task for task, _ in self.waiting.values()]
        self.waiting.clear()
        return tasks


def _execute(manifest: Manifest, todo: list[TaskSpec], done_before: set[str], address: Optional[str],
             storage: Storage, stream: Optional[TextIO], on_dispatch, summary: RunSummary) -> dict[str, dict]:
    started = time.perf_counter()
    ray = _init_ray(address)
    from ray.exceptions import RayError

    count, options = _actor_plan(ray, manifest.cluster, len(todo))
    max_retries = int(manifest.cluster.get("max_retries", DEFAULT_MAX_RETRIES))
    # On a GPU, two calls in flight per actor: one computes while the other reads its inputs or writes
    # its outputs on the otherwise idle CPU. A CPU actor would only split its cores between them.
    depth = int(manifest.cluster.get("pipeline_depth", PIPELINE_DEPTH if options["num_gpus"] else 1))
    actor_cls = ray.remote(Renderer).options(max_restarts=-1, max_task_retries=0, max_concurrency=depth, **options)
    batch_size = int(manifest.cluster.get("batch_size", 1))
    threads = max(1, int(options["num_cpus"])) if not options["num_gpus"] else None
    max_pixels = manifest.limits.get("max_input_pixels")
    actors = [actor_cls.remote(manifest.model, manifest.storage, manifest.name, None, threads,
                               *([max_pixels] if max_pixels else [])) for _ in range(count)]
    # Fail fast and clearly when the model cannot load (e.g. weights unavailable), before any task.
    try:
        ray.get([actor.ready.remote() for actor in actors])
    except RayError as exc:
        for actor in actors:
            ray.kill(actor)
        cause = getattr(exc, "cause", None) or exc
        raise WorkerStartError(f"the render workers could not start: {str(cause).strip().splitlines()[-1]}") from None
    summary.startup_seconds = time.perf_counter() - started
    started = time.perf_counter()

    queue = _TaskQueue(todo, done_before)
    pool = _ActorPool(ray, actors, depth, float(manifest.cluster.get("restart_timeout", RESTART_TIMEOUT)))
    attempts: dict[str, int] = {}
    results: dict[str, dict] = {}
    progress = Progress(len(todo), stream)

    def finish(task: TaskSpec, record: dict) -> None:
        results[task.task_id] = record
        ok = record["status"] == "done"
        progress.done += ok
        progress.failed += not ok
        for blocked in queue.finished(task.task_id, ok):
            finish(blocked, fail(blocked, f"not run: it needs the output of task {task.task_id} ({task.job}), "
                                          "which failed"))

    def fail(task: TaskSpec, error: str) -> dict:
        record = records.failed_record(task.to_dict(), manifest.name, manifest.weights_id, error,
                                       attempts=attempts.get(task.task_id, 0))
        storage.write(task.output_prefix + records.FAILED_SUFFIX, records.dumps(record))
        return record

    while queue or pool.running():
        while queue.ready and pool.has_slot():
            batch = queue.take_batch(batch_size)
            for task in batch:
                attempts[task.task_id] = attempts.get(task.task_id, 0) + 1
            actor = pool.submit(batch, max(attempts[task.task_id] for task in batch))
            for task in batch:
                if on_dispatch:
                    on_dispatch(task, actor)
        if not pool.alive:
            error = "not run: every render worker died and could not be restarted (see the Ray logs)"
            while queue.ready:
                task = queue.ready.popleft()
                finish(task, fail(task, error))
            for task in queue.drain_waiting():
                finish(task, fail(task, error))
            continue
        if not queue.ready and not pool.running():
            for task in queue.drain_waiting():  # waiting on tasks that will never run here
                finish(task, fail(task, f"not run: it waits for tasks {task.depends_on} that are not part of this run"))
            continue
        progress.running = pool.running()
        progress.show()
        for ref in pool.wait(timeout=5.0):
            index, batch = pool.take(ref)
            try:
                batch_records = ray.get(ref)
            except RayError as exc:
                was_computing = pool.died(index, ref, batch)
                for task in reversed(batch):
                    if not was_computing:  # only the actor's oldest call was computing; the others waited
                        attempts[task.task_id] -= 1
                    if attempts[task.task_id] <= max_retries:
                        queue.ready.appendleft(task)
                    else:
                        finish(task, fail(task, f"the worker died {attempts[task.task_id]} times running this task "
                                                f"(last: {type(exc).__name__}); giving up after "
                                                f"cluster.max_retries={max_retries}"))
                continue
            pool.answered(index, ref, batch)
            for task, record in zip(batch, batch_records):
                finish(task, record)
    summary.execute_seconds = time.perf_counter() - started
    progress.running = 0
    progress.show(final=True)
    pool.kill_all()
    return results


class _ActorPool:
    """Renderer actors with ``depth`` call slots each. An actor that died takes no calls until a
    readiness probe answers (Ray restarts it and it reloads the model meanwhile); one that stays
    unreachable for ``restart_timeout`` seconds (its restart keeps failing) is given up."""

    def __init__(self, ray, actors: list, depth: int, restart_timeout: float = RESTART_TIMEOUT) -> None:
        self.ray, self.actors, self.depth, self.restart_timeout = ray, actors, depth, restart_timeout
        self.free = [depth] * len(actors)
        self.calls: list[list[Any]] = [[] for _ in actors]  # task calls in flight per actor, oldest first
        self.probing: set[int] = set()
        self.down_since: dict[int, float] = {}
        self.dead_oldest: dict[int, Any] = {}  # per dead actor: its oldest call when the death was seen
        self.lost: set[int] = set()
        self.in_flight: dict[Any, tuple[int, list[TaskSpec]]] = {}  # ref -> (actor, tasks); [] for a probe

    @property
    def alive(self) -> bool:
        return len(self.lost) < len(self.actors)

    def _usable(self) -> list[int]:
        return [i for i in range(len(self.actors)) if i not in self.probing and self.free[i] > 0]

    def has_slot(self) -> bool:
        return bool(self._usable())

    def running(self) -> int:
        return sum(len(tasks) for _, tasks in self.in_flight.values())

    def submit(self, batch: list[TaskSpec], attempt: int):
        """Send ``batch`` to the least busy usable actor; return that actor."""
        index = max(self._usable(), key=self.free.__getitem__)
        self.free[index] -= 1
        ref = self.actors[index].render_batch.remote([task.to_dict() for task in batch], attempt)
        self.in_flight[ref] = (index, batch)
        self.calls[index].append(ref)
        return self.actors[index]

    def wait(self, timeout: float) -> list:
        ready, _ = self.ray.wait(list(self.in_flight), num_returns=1, timeout=timeout)
        return ready

    def take(self, ref) -> tuple[int, list[TaskSpec]]:
        """The actor and tasks of a finished call (no tasks for a probe)."""
        return self.in_flight.pop(ref)

    def died(self, index: int, ref, batch: list[TaskSpec]) -> bool:
        """A call failed because its actor died or is restarting: probe the actor (one probe at a
        time). Returns whether this call was the one computing: the actor's oldest call when the
        death was first seen; the others were waiting for the compute lock."""
        computing = False
        down_for = time.monotonic() - self.down_since.setdefault(index, time.monotonic())
        if batch:
            oldest = self.dead_oldest.setdefault(index, self.calls[index][0])
            computing = oldest == ref
            self.calls[index].remove(ref)
        elif down_for > self.restart_timeout:
            self.lost.add(index)
            return computing
        if index not in self.probing or not batch:
            self.probing.add(index)
            time.sleep(min(0.2 + down_for / 10, 2.0))  # back off while the restart takes its time
            self.in_flight[self.actors[index].ready.remote()] = (index, [])
        return computing

    def answered(self, index: int, ref, batch: list[TaskSpec]) -> None:
        if batch:
            self.calls[index].remove(ref)
            self.free[index] += 1
        else:  # a probe: the restarted actor takes calls again
            self.probing.discard(index)
            self.down_since.pop(index, None)
            self.dead_oldest.pop(index, None)
            self.free[index] = self.depth - len(self.calls[index])

    def kill_all(self) -> None:
        for actor in self.actors:
            self.ray.kill(actor)


def _write_catalog(storage: Storage, manifest: Manifest, new_records: dict[str, dict],
                   done_before: set[str]) -> bool:
    """Rows for every task of the manifest that has a record; unchanged catalogs are not rewritten."""
    previous = catalog.read_rows(storage, manifest.output)
    previous_by_id = {row["task_id"]: row for row in previous}
    rows, missing = {}, []
    for task in manifest.tasks:
        if task.task_id in new_records:
            rows[task.task_id] = catalog.row(new_records[task.task_id])
        elif task.task_id in done_before and previous_by_id.get(task.task_id, {}).get("status") == "done":
            rows[task.task_id] = previous_by_id[task.task_id]
        elif task.task_id in done_before:
            missing.append(task)
    for task, blob in zip(missing, storage.read_many(t.output_prefix + records.RECORD_SUFFIX for t in missing)):
        rows[task.task_id] = catalog.row(json.loads(blob))
    # Keep rows of tasks from other manifests sharing this output (e.g. an edited manifest).
    ours = {task.task_id for task in manifest.tasks}
    kept = [row for row in previous if row["task_id"] not in ours]
    return catalog.write(storage, manifest.output, kept + list(rows.values()), previous)
