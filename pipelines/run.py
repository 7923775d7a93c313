"""The driver: skip finished tasks, feed a pool of Renderer actors with backpressure, re-queue the
tasks of dead actors up to a retry limit, record failures, write the catalog. No CUDA here."""
from __future__ import annotations

import json
import logging
import shutil
import signal
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Sequence, TextIO

from tasks.registry import get_kind

from . import catalog, records
from .manifest import Manifest, TaskSpec
from .actors import READY, RELEASED, STARTING, ActorPool, Death, WorkerStartError
from .lease import OutputLease
from .elastic import DEFAULT_IDLE_TIMEOUT, Capacity, ClusterCapacity, PoolSize, actors_wanted, fitting
from .storage import Storage, StorageConfig, join
from .words import counted
from .worker import RenderWorker

DEFAULT_MAX_RETRIES = 2  # re-queues after an actor died mid-task (so 3 attempts in all)
PIPELINE_DEPTH = 2  # calls in flight per GPU actor (CPU actors: 1, their I/O would compete with compute)
RESTART_TIMEOUT = 600.0  # seconds an actor may stay unreachable (restarting) before it is given up
# Seconds to wait for the GCS to tell a lost node from a killed worker (Ray reports both alike at
# first; its node health checks take about 15 s) before charging the death to the task.
NODE_GRACE = 30.0
START_TIMEOUT = 900.0  # seconds to wait for a first actor to be placed (an autoscaler bringing up a GPU node)


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
    node_losses: int = 0  # task attempts lost to a node that went away (not charged to the task)
    failed_before: list[dict[str, Any]] = field(default_factory=list)  # not re-run: their own failures
    interrupted: bool = False  # Ctrl-C or SIGTERM (`texfarm stop`): the catalog has what finished
    stop_signal: int = signal.SIGINT  # which one: the exit code is the shell's 128 + its number

    @property
    def exit_code(self) -> int:
        if self.interrupted:
            return 128 + int(self.stop_signal)  # 130 for Ctrl-C, 143 for SIGTERM
        return 1 if self.failed or self.failed_before else 0


def duration(seconds: Optional[float]) -> str:
    """H:MM:SS, with days in front past 24 h (an overnight ETA must not wrap to 00:10:00)."""
    if seconds is None or seconds != seconds:
        return "--:--:--"
    days, rest = divmod(int(round(seconds)), 86400)
    text = f"{rest // 3600:02d}:{rest % 3600 // 60:02d}:{rest % 60:02d}"
    return f"{days}d {text}" if days else text


class Progress:
    """One status line: done / running / failed / ETA. On a terminal it is rewritten in place and fitted
    to the terminal's width; in a log file a line is written when the counts changed, at most once per
    ``LOG_INTERVAL`` seconds (100k tasks must not make 100k lines), and always at the end. A stopped run's
    last line says so instead of an ETA."""

    LOG_INTERVAL = 10.0  # seconds between log-file lines (tqdm's convention for files: throttle by time)

    def __init__(self, total: int, stream: Optional[TextIO], clock: Callable[[], float] = time.monotonic) -> None:
        self.total, self.stream, self.clock = total, stream, clock
        self.start = clock()
        self.done = self.failed = self.running = 0
        self.workers: tuple[int, int, int] = (0, 0, 0)  # actors ready, starting, released so far
        self.tty = bool(stream and stream.isatty())
        self.last_counts: tuple = ()
        self.last_line = float("-inf")

    def show(self, final: bool = False, stopped: bool = False) -> None:
        counts = (self.done, self.failed, self.running, self.workers)
        if not self.stream or (not final and counts == self.last_counts
                                and (not self.tty or self.clock() - self.last_line < 1.0)):
            return  # a terminal's line still ticks once a second (elapsed, ETA)
        if not self.tty and not final and self.clock() - self.last_line < self.LOG_INTERVAL:
            return  # counts stay unshown until the interval is up (the next change or the end shows them)
        self.last_counts, self.last_line = counts, self.clock()
        finished = self.done + self.failed
        elapsed = self.clock() - self.start
        eta = elapsed / finished * (self.total - finished) if finished else None
        rate = f"{finished / elapsed * 3600:.0f} tasks/h" if finished and elapsed > 0 else "- tasks/h"
        timing = {"rate": rate, "elapsed": f"elapsed {duration(elapsed)}",
                  "eta": "stopped" if stopped else f"ETA {duration(eta)}"}
        workers = f"workers: {self.workers[0]} ready, {self.workers[1]} starting, {self.workers[2]} released"

        def line() -> str:
            return "; ".join(part for part in (f"[texfarm] {finished}/{self.total} finished: {self.done} done, "
                                               f"{self.failed} failed, {self.running} running",
                                               ", ".join(timing.values()), workers) if part)

        if self.tty:  # fit the terminal: drop the least telling parts, then cut (a wrapped \r line stacks up)
            width = max(20, shutil.get_terminal_size().columns - 1)
            for drop in ("workers", "rate", "elapsed"):
                if len(line()) <= width:
                    break
                if drop == "workers":
                    workers = ""
                else:
                    del timing[drop]
            self.stream.write("\r" + line()[:width] + "\x1b[K" + ("\n" if final else ""))  # \x1b[K: clear the old tail
        else:  # a log file: each line says when
            self.stream.write(time.strftime("%Y-%m-%dT%H:%M:%S%z ") + line() + "\n")
        self.stream.flush()


def finished_ids(storage: Storage, manifest: Manifest) -> set[str]:
    """Task ids whose completion marker (the success record) exists: one listing per job."""
    return _listed_ids(storage, manifest)[0]


def _listed_ids(storage: Storage, manifest: Manifest) -> tuple[set[str], set[str]]:
    """(ids with a success record, ids with a failed record) from one listing per job."""
    done, failed = set(), set()
    for job in {task.job for task in manifest.tasks}:
        for uri in storage.list(join(manifest.output, job) + "/"):
            name = uri.rsplit("/", 1)[-1]
            if name.endswith(records.FAILED_SUFFIX):
                failed.add(name[: -len(records.FAILED_SUFFIX)])
            elif name.endswith(records.RECORD_SUFFIX):
                done.add(name[: -len(records.RECORD_SUFFIX)])
    return done, failed


ADDRESS_WAIT = 20.0  # seconds a GCS address may take to answer (a head that is still starting)


def _check_address(address: Optional[str], wait: float = ADDRESS_WAIT) -> None:
    """A GCS address `HOST:PORT` that nothing answers within ``wait`` seconds fails, naming it: Ray
    itself retries for minutes, its connection warnings repeating. A head still starting gets the wait."""
    import socket

    if not address or address == "auto" or "://" in address or ":" not in address:
        return
    host, _, port = address.rpartition(":")
    deadline = time.monotonic() + wait
    while True:
        try:
            with socket.create_connection((host, int(port)), timeout=5.0):
                return
        except ValueError as exc:
            error = exc
            break
        except OSError as exc:
            error = exc
            if time.monotonic() > deadline:
                break
            time.sleep(0.5)
    raise WorkerStartError(f"no Ray cluster answers at {address} ({error}) after {wait:.0f} s: check the head's address "
                           "and port (`ray status` on the head), or leave out --address for a local Ray")


def _init_ray(address: Optional[str]):
    import ray

    _check_address(address)
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, logging_level=logging.WARNING,
                 configure_logging=True, log_to_driver=True)
    return ray


@dataclass
class ActorPlan:
    workers: int  # actors asked for at the start
    options: dict  # Ray resources of each actor

    def describe(self) -> str:
        return ", ".join(f"{name}: {self.options[key]:g}" for key, name in (("num_gpus", "GPU"), ("num_cpus", "CPU"))
                         if self.options[key] or key == "num_cpus")


def actor_plan(resources: dict, cluster: dict, pending: int, capacity: Optional[Capacity] = None) -> ActorPlan:
    """Actors from the manifest, not from what the cluster holds at the start: `gpus_per_worker > 0` asks for
    GPU actors, which wait for an autoscaler to bring GPU nodes up. Only `auto` values look at the cluster:
    `gpus_per_worker: auto` (the default) means 1 GPU when the cluster has GPUs now, else CPU actors;
    `workers: auto` means as many actors as the cluster can have (pipelines/elastic.py), never more than
    the tasks. The pool grows and shrinks from there as the run goes."""
    gpus_per = cluster.get("gpus_per_worker", "auto")
    if gpus_per == "auto":
        gpus_per = 1.0 if resources.get("GPU", 0) > 0 else 0.0
    options = {"num_cpus": float(cluster.get("cpus_per_worker", 1)), "num_gpus": float(gpus_per)}
    capacity = capacity or Capacity(fitting(resources, options), autoscaler=False)
    wanted = actors_wanted(PoolSize.parse(cluster.get("workers", "auto")), capacity, pending, ready=0)
    return ActorPlan(max(1, wanted), options)


def run_manifest(
    manifest: Manifest,
    address: Optional[str] = None,
    stream: Optional[TextIO] = sys.stderr,
    on_dispatch: Optional[Callable[[TaskSpec, Any], None]] = None,
    retry_failed: bool = False,
    only: Optional[Sequence[str]] = None,
    force: bool = False,
) -> RunSummary:
    """Execute every unfinished task of ``manifest`` (of the jobs in ``only``, when given); return what
    happened. Tasks that failed before for a reason of their own are not run again unless ``retry_failed``."""
    storage = Storage(StorageConfig.from_dict(manifest.storage))
    done_before, failed_before = _listed_ids(storage, manifest)
    selected = [task for task in manifest.tasks if not only or task.job in only]
    own_failures = {} if retry_failed else _own_failures(storage, selected, failed_before - done_before)
    todo = [task for task in selected if task.task_id not in done_before and task.task_id not in own_failures]
    for task in todo:
        task.clear_failed = task.task_id in failed_before
    summary = RunSummary(total=len(selected), skipped=len(selected) - len(todo) - len(own_failures),
                         failed_before=list(own_failures.values()))
    if stream:
        stream.write(f"[texfarm] {manifest.name}: {counted(summary.total, 'task')}, {summary.skipped} already done, "
                     f"{len(todo)} to run\n")
    new_records: dict[str, dict] = {}
    lease = OutputLease(storage, manifest.output, manifest.name)
    lease.acquire(force)  # one run at a time per output (LeaseHeld otherwise: nothing started)
    try:
        if todo:
            new_records = _execute(manifest, todo, done_before, address, storage, stream, on_dispatch, summary)
            summary.executed = len(todo)
        summary.records = list(new_records.values())
        summary.failed = [r for r in summary.records if r["status"] != "done"]
        summary.catalog_written = _write_catalog(storage, manifest, {**own_failures, **new_records}, done_before)
    finally:
        lease.release()
    summary.catalog_uri = catalog.catalog_uri(manifest.output)
    return summary


def _own_failures(storage: Storage, tasks: list[TaskSpec], failed_ids: set[str]) -> dict[str, dict]:
    """Failed records (by task id) of ``tasks`` whose failure was the task's own (not retryable). One
    GET per failed task; a record from before the flag existed counts as retryable."""
    candidates = [task for task in tasks if task.task_id in failed_ids]
    out = {}
    for task, blob in zip(candidates, storage.read_many(t.output_prefix + records.FAILED_SUFFIX for t in candidates)):
        try:
            record = json.loads(blob)
        except ValueError:
            continue
        if record.get("retryable") is False:
            out[task.task_id] = record
    return out


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


AUTOSCALER_REPORT_WAIT = 15  # s; a fresh head's autoscaler reports within its first update (5 s by default)


def _execute(manifest: Manifest, todo: list[TaskSpec], done_before: set[str], address: Optional[str],
             storage: Storage, stream: Optional[TextIO], on_dispatch, summary: RunSummary) -> dict[str, dict]:
    started = time.perf_counter()
    ray = _init_ray(address)
    from ray.exceptions import RayError

    cluster = manifest.cluster
    resources = ray.cluster_resources()
    size = PoolSize.parse(cluster.get("workers", "auto"))
    capacity = ClusterCapacity(ray, actor_plan(resources, cluster, len(todo)).options)
    if address and size.max is None:  # an existing cluster that `auto` sizes by: hear its autoscaler first
        capacity.wait_reported(AUTOSCALER_REPORT_WAIT)
    plan = actor_plan(resources, cluster, len(todo), capacity.get())
    idle_timeout = float(cluster.get("idle_timeout", DEFAULT_IDLE_TIMEOUT))
    if stream:
        stream.write(f"[texfarm] workers: {size.describe()} ({capacity.get().describe()}); starting {plan.workers}, "
                     f"each {plan.describe()}; the cluster has GPU: {resources.get('GPU', 0):g}, "
                     f"CPU: {resources.get('CPU', 0):g} now\n")
    max_retries = int(cluster.get("max_retries", DEFAULT_MAX_RETRIES))
    start_timeout = float(cluster.get("start_timeout", START_TIMEOUT))
    # On a GPU, two calls in flight per actor: one computes while the other reads its inputs or writes
    # its outputs on the otherwise idle CPU. A CPU actor would only split its cores between them.
    depth = int(cluster.get("pipeline_depth", PIPELINE_DEPTH if plan.options["num_gpus"] else 1))
    # SPREAD: actors of one run go to different nodes where they can, so one reclaimed node takes few.
    actor_cls = ray.remote(RenderWorker).options(max_restarts=-1, max_task_retries=0, max_concurrency=depth,
                                             scheduling_strategy="SPREAD", **plan.options)
    batch_size = int(cluster.get("batch_size", 1))
    threads = max(1, int(plan.options["num_cpus"])) if not plan.options["num_gpus"] else None
    max_pixels = manifest.limits.get("max_input_pixels")
    pool = ActorPool(ray, lambda: actor_cls.remote(model=manifest.model, weights_id=manifest.weights_id,
                                                   storage=manifest.storage, manifest_name=manifest.name,
                                                   threads=threads, max_input_pixels=max_pixels,
                                                   max_exemplar_pixels=manifest.limits.get("max_exemplar_pixels")),
                     plan.workers, depth, float(cluster.get("restart_timeout", RESTART_TIMEOUT)))

    queue = _TaskQueue(todo, done_before)
    attempts: dict[str, int] = {}
    results: dict[str, dict] = {}
    progress = Progress(len(todo), stream)
    warned_unplaced = False

    def finish(task: TaskSpec, record: dict) -> None:
        results[task.task_id] = record
        ok = record["status"] == "done"
        progress.done += ok
        progress.failed += not ok
        for blocked in queue.finished(task.task_id, ok):
            finish(blocked, fail(blocked, f"not run: it needs the output of task {task.task_id} ({task.job}), "
                                          "which failed"))

    def fail(task: TaskSpec, error: str, retryable: bool = True) -> dict:
        record = records.failed_record(task.to_dict(), manifest.name, manifest.weights_id, error,
                                       attempts=attempts.get(task.task_id, 0), retryable=retryable)
        storage.write(task.output_prefix + records.FAILED_SUFFIX, records.dumps(record))
        return record

    held: list[tuple[TaskSpec, Death, Exception]] = []  # computing when their actor died: whose fault?
    lost_nodes: dict[str, int] = {}

    def requeue(task: TaskSpec, death: Death, exc: Exception) -> None:
        """A task whose actor died. Done already (its record landed before the death) → finished. A call
        that was only waiting, or a preempted node → back in the queue, uncharged. A computing call waits
        for its node's fate: a lost node is not the task's fault; a death on a live node is charged."""
        marker = _done_record(storage, task)
        if marker is not None:
            finish(task, marker)
        elif not death.computing or death.preempted:
            uncharge(task, node_lost=death.preempted)
        else:
            held.append((task, death, exc))

    def uncharge(task: TaskSpec, node_lost: bool) -> None:
        attempts[task.task_id] -= 1
        lost_nodes[task.task_id] = lost_nodes.get(task.task_id, 0) + node_lost
        queue.ready.append(task)  # at the END: not the first task of the next restarted actor

    def judge_held() -> None:
        for item in list(held):
            task, death, exc = item
            fate = pool.node_fate(death)
            if fate is None and time.monotonic() - death.seen_at < NODE_GRACE:
                continue
            held.remove(item)
            if fate:
                uncharge(task, node_lost=True)
            elif attempts[task.task_id] <= max_retries:
                queue.ready.append(task)
            else:
                finish(task, fail(task, f"the worker died {attempts[task.task_id]} times running this task "
                                        f"(last: {type(exc).__name__}); giving up after "
                                        f"cluster.max_retries={max_retries}", retryable=False))

    def resize() -> None:
        """Grow the pool towards the work left (queued + running) within the manifest's bounds, release
        actors the work left no longer needs (pipelines/elastic.py says which and when)."""
        work_left = len(queue.ready) + pool.running() + len(held)
        wanted = actors_wanted(size, capacity.get(), work_left, pool.count(READY))
        live = pool.live()
        if live < wanted:
            pool.add(wanted - live)
        elif live > max(wanted, size.min):
            for index in pool.releasable(idle_timeout)[: live - max(wanted, size.min)]:
                pool.release(index)
        progress.workers = (pool.count(READY), pool.count(STARTING), pool.count(RELEASED))

    interrupted: list[int] = []  # the stop signal received, if any
    restore_signals = _flag_stop_signals(interrupted)
    try:
        while queue or pool.running() or held:
            if interrupted:  # a stop whose KeyboardInterrupt a library caught on the way
                raise KeyboardInterrupt
            judge_held()
            if not pool.ever_ready:
                if pool.init_errors:  # the constructor raised (e.g. weights unavailable): the same for every actor
                    pool.kill_all()
                    raise WorkerStartError(f"the render workers could not start: {pool.init_errors[-1]}")
                if pool.starting_for() > start_timeout:
                    pool.kill_all()
                    raise WorkerStartError(_unplaced_message(ray, plan, pool.starting_for()))
            elif not warned_unplaced and pool.count(STARTING) and pool.starting_for() > start_timeout:
                warned_unplaced = True
                if stream:
                    stream.write(f"\n[texfarm] {pool.count(STARTING)} of {pool.live()} workers are not placed after "
                                 f"{pool.starting_for():.0f} s (each asks {plan.describe()}); going on with the others\n")
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
                queue.ready.extend(task for task, _, _ in held)
                held.clear()
                while queue.ready:
                    task = queue.ready.popleft()
                    finish(task, fail(task, error))
                for task in queue.drain_waiting():
                    finish(task, fail(task, error))
                continue
            if not queue.ready and not pool.running() and not held:
                for task in queue.drain_waiting():  # waiting on tasks that will never run here
                    finish(task, fail(task, f"not run: it waits for tasks {task.depends_on} that are not part of this run"))
                continue
            resize()
            if summary.startup_seconds == 0.0 and pool.ever_ready:
                summary.startup_seconds = time.perf_counter() - started
            progress.running = pool.running()
            progress.show()
            for ref in pool.wait(timeout=1.0):
                index, batch = pool.take(ref)
                if pool.state[index] == RELEASED:  # the probe of an actor let go before it answered
                    continue
                try:
                    answer = ray.get(ref)
                except RayError as exc:
                    if not batch:
                        pool.probe_failed(index, exc)
                        continue
                    death = pool.died(index, ref, exc)
                    for task in batch:
                        requeue(task, death, exc)
                    continue
                if not batch:
                    pool.probe_answered(index, answer)
                    if stream and pool.state[index] == READY:
                        stream.write(f"\n[texfarm] worker {index + 1} ready on {answer['device']}"
                                     f"{' (node ' + answer['node'][:8] + ')' if answer.get('node') else ''}: "
                                     f"{pool.count(READY)} of {pool.live()} up\n")
                    continue
                pool.answered(index, ref, batch)
                for task, record in zip(batch, answer):
                    pool.seen(record.get("node"))
                    finish(task, record)
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: abandon what runs (a task without its record is not done)
        summary.interrupted = True
        summary.stop_signal = interrupted[0] if interrupted else signal.SIGINT
        if stream:
            stream.write(f"\n[texfarm] interrupted ({signal.Signals(summary.stop_signal).name}): the running tasks are "
                         "abandoned; writing the catalog of what finished (run again to go on)\n")
    finally:
        restore_signals()
    summary.execute_seconds = time.perf_counter() - started - summary.startup_seconds
    summary.node_losses = sum(lost_nodes.values())
    progress.running = 0
    progress.show(final=True, stopped=summary.interrupted)
    pool.kill_all()
    return results


def _flag_stop_signals(received: list[int]) -> Callable[[], None]:
    """Ctrl-C and SIGTERM (`texfarm stop`, `ray job stop`, a scheduler's kill) both stop the run
    cleanly: the handler raises KeyboardInterrupt and also records the signal in ``received``, which
    the dispatch loop checks every pass (the KeyboardInterrupt alone can be raised inside Ray's client
    code and caught there: seen once in CI). Ray's own SIGTERM handler would abort the driver without a
    catalog. Returns the function that restores the previous handlers. Only the main thread can set
    handlers; elsewhere (a run started from a thread) nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}

    def handler(signum, frame):
        received.append(signum)
        raise KeyboardInterrupt

    def restore() -> None:
        for signum, old in previous.items():
            signal.signal(signum, old)

    for signum in previous:
        signal.signal(signum, handler)
    return restore


def _done_record(storage: Storage, task: TaskSpec) -> Optional[dict]:
    """The task's success record if it is already in storage (its worker died after writing it)."""
    try:
        blob = storage.read(task.output_prefix + records.RECORD_SUFFIX)
    except Exception:  # absent (or unreadable: then running it again is the safe side)
        return None
    try:
        record = json.loads(blob)
    except ValueError:
        return None
    return record if isinstance(record, dict) and record.get("status") == "done" else None


def _unplaced_message(ray, plan: "ActorPlan", waited: float) -> str:
    nodes = [node for node in ray.nodes() if node.get("Alive")]
    kinds = sorted({", ".join(f"{k}: {v:g}" for k, v in sorted(node["Resources"].items())
                              if k in ("CPU", "GPU") or k.startswith("accelerator_type")) or "no CPU/GPU"
                    for node in nodes})
    return (f"no render worker could be placed in {waited:.0f} s: each asks {plan.describe()}, and the cluster's "
            f"nodes offer [{'; '.join(kinds)}]. On an autoscaling cluster, check that a node type with GPUs exists "
            "and that the autoscaler can launch it (`ray status`, the autoscaler log); without GPUs, set "
            "cluster.gpus_per_worker: 0. Raise cluster.start_timeout if nodes take longer to come up")


def _drop_broken_record(storage: Storage, uri: str) -> None:
    """A completion marker that is not a record would make every later run skip its task and fail on
    the catalog: remove it, so the next run renders the task again."""
    print(f"warning: {uri} is not a valid task record (empty or cut short); removed, so the next run "
          "renders this task again", file=sys.stderr)
    try:
        storage.delete(uri)
    except Exception:
        pass


def _write_catalog(storage: Storage, manifest: Manifest, new_records: dict[str, dict],
                   done_before: set[str]) -> bool:
    """Rows for every task of the manifest that has a record; unchanged catalogs are not rewritten."""
    previous = catalog.read_rows(storage, manifest.output, rebuild=False)  # damaged: warned, rewritten
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
        try:
            rows[task.task_id] = catalog.row(json.loads(blob))
        except (ValueError, KeyError, TypeError):  # empty or cut short (a crash outside texfarm's atomic writes)
            _drop_broken_record(storage, task.output_prefix + records.RECORD_SUFFIX)
    # Keep rows of tasks from other manifests sharing this output (e.g. an edited manifest).
    ours = {task.task_id for task in manifest.tasks}
    kept = [row for row in previous if row["task_id"] not in ours]
    return catalog.write(storage, manifest.output, kept + list(rows.values()), previous)
