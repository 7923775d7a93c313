"""How many Renderer actors a run wants at each moment: the manifest's `cluster.workers` (a count,
`auto`, or a range `{min, max}`), the work left, and what the cluster can hold. Ray-free arithmetic
plus one small reader of the cluster's state, so the policy is tested without a cluster.

The policy, in the way of Ray Data's ``ActorPoolStrategy(min_size, max_size)``:
- grow while tasks are queued: the pool asks for actors up to the upper bound; actors Ray cannot place
  yet stay pending, which is the demand an autoscaler sees and answers with new nodes;
- shrink when the work left (queued + running) is less than the pool: actors that were never placed go
  at once (they hold nothing, and left pending they keep the autoscaler launching nodes), idle ready
  actors after ``idle_timeout`` seconds without a task (an actor start costs a VGG19 load: a short
  lull between two waves of tasks must not cost it), never below ``min``; a released GPU lets the
  autoscaler remove its node before the run ends.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any, Callable, Optional

DEFAULT_IDLE_TIMEOUT = 30.0  # seconds an idle actor beyond the work left keeps its GPU
AUTO_PENDING = 4  # `auto` under an autoscaler of unknown size: unplaced actors asked for at once, at least
CAPACITY_REFRESH = 2.0  # seconds between two looks at the cluster's resources (nodes join and leave)


@dataclass(frozen=True)
class PoolSize:
    """``cluster.workers`` read: ``max`` None is `auto` (as many as the cluster can have)."""
    min: int
    max: Optional[int]

    @classmethod
    def parse(cls, workers: Any) -> "PoolSize":
        if workers in (None, "auto"):
            return cls(0, None)
        if isinstance(workers, dict):
            upper = workers.get("max", "auto")
            return cls(int(workers.get("min", 0)), None if upper == "auto" else int(upper))
        return cls(0, int(workers))  # a count: that many at once while there is work for them

    def describe(self) -> str:
        upper = "auto" if self.max is None else str(self.max)
        return upper if self.min == 0 else f"{self.min}..{upper}"


@dataclass(frozen=True)
class Capacity:
    """Actors the cluster holds room for now, and what an autoscaler could add."""
    fits_now: int  # actors of this shape the cluster's nodes hold in all (placed or not)
    autoscaler: Optional[bool]  # an autoscaler runs (it adds nodes for pending actors); None: not reported yet
    autoscaler_max: Optional[int] = None  # actors the autoscaler's largest cluster holds, when it says

    def describe(self) -> str:
        if self.autoscaler_max is not None:
            return f"the autoscaler can grow it to {self.autoscaler_max}"
        if self.autoscaler is None:
            return "no autoscaler has reported yet"
        return "an autoscaler can grow it" if self.autoscaler else "no autoscaler"


def actors_wanted(size: PoolSize, capacity: Capacity, work_left: int, ready: int) -> int:
    """The pool size to aim for: the work left (tasks queued or running), bounded by the manifest's
    max, or for `auto` by the cluster: the autoscaler's largest cluster when it says, unplaced actors
    no more than the ready ones (at least AUTO_PENDING; the autoscaler's own upscaling_speed 1.0) when
    it does not, what fits now without an autoscaler (re-read as nodes join). At least ``min``."""
    if size.max is not None:
        upper = size.max
    elif capacity.autoscaler_max is not None:
        upper = max(capacity.autoscaler_max, capacity.fits_now)
    elif capacity.autoscaler:
        upper = max(capacity.fits_now, ready + max(AUTO_PENDING, ready))
    else:
        upper = capacity.fits_now
    return max(size.min, min(work_left, max(upper, 1)))


def fitting(resources: dict, options: dict) -> int:
    """How many actors asking ``options`` (num_gpus, num_cpus) ``resources`` hold."""
    if options.get("num_gpus"):
        return int(resources.get("GPU", 0) // options["num_gpus"])
    return int(resources.get("CPU", 0) // options["num_cpus"]) if options.get("num_cpus") else 1


class ClusterCapacity:
    """Reads the cluster's total resources and its autoscaler (at most every CAPACITY_REFRESH s)."""

    def __init__(self, ray, options: dict, clock: Callable[[], float] = time.monotonic) -> None:
        self.ray, self.options, self.clock = ray, options, clock
        self.checked = float("-inf")
        self.value = Capacity(0, False)

    def get(self) -> Capacity:
        if self.clock() - self.checked >= CAPACITY_REFRESH:
            self.checked = self.clock()
            try:
                self.value = self._read()
            except Exception:  # the GCS did not answer: keep the last reading
                pass
        return self.value

    def wait_reported(self, timeout: float) -> Capacity:
        """The first reading once an autoscaler has reported (a head's autoscaler reports a few seconds
        after it starts: a run submitted at once would otherwise take the cluster as fixed), or after
        ``timeout`` s the last one."""
        deadline = self.clock() + timeout
        while self.get().autoscaler is None and self.clock() < deadline:
            time.sleep(0.5)
            self.checked = float("-inf")
        return self.value

    def _read(self) -> Capacity:
        fits = fitting(self.ray.cluster_resources(), self.options)
        from ray._private.state import state  # the autoscaler's reports to the GCS (no public API yet)

        try:  # autoscaler v2 (KubeRay, `RAY_enable_autoscaler_v2`) reports its node types' max counts
            largest = state.get_max_resources_from_cluster_config()
        except Exception:
            largest = None
        if largest:
            return Capacity(fits, True, fitting(largest, self.options))
        from ray.experimental.internal_kv import _internal_kv_get

        status = _internal_kv_get("__autoscaling_status")  # autoscaler v1 (the cluster launcher's) reports here
        report = (json.loads(status) if status else {}).get("autoscaler_report") or {}
        node_types = report.get("node_type_mapping")
        if not node_types:  # every autoscaler, the read-only one included, maps the head once it has reported
            return Capacity(fits, None)
        return Capacity(fits, launches_nodes(node_types))


def launches_nodes(node_types: dict) -> bool:
    """Whether the v1 autoscaler's report comes from a real autoscaler (node types of a cluster config,
    e.g. `gpu_spot`) rather than the read-only one every Ray head runs, which only watches the nodes
    it is given and names each its own type, `node_<node id>`."""
    return any(kind != f"node_{node}" for node, kind in node_types.items())
