"""The driver's pool of Renderer actors. Nothing here ever blocks the dispatch loop: an actor takes
calls once its readiness probe has answered, probes of starting and restarting actors are ordinary
in-flight calls, and a re-probe after a failed one is scheduled, not slept on."""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Optional

STARTING, READY, DOWN, LOST, RELEASED = "starting", "ready", "down", "lost", "released"
LIVE = (STARTING, READY, DOWN)  # states that hold (or wait for) a place on the cluster
PROBE_BACKOFF_MAX = 2.0  # seconds between readiness probes of an actor whose probe failed
START_DEATHS = 3  # deaths of a never-ready actor before its reason ends the run's start


class WorkerStartError(RuntimeError):
    """The Renderer actors could not start (the weights cannot be loaded, or no actor was placed)."""


@dataclass
class Death:
    """How a call ended when its actor died."""
    computing: bool  # the call was the actor's oldest one, so it was computing; the others waited
    preempted: bool  # Ray says the node was drained for preemption: not the task's fault
    node: Optional[str]  # the node the actor ran on
    seen_at: float  # when the driver saw the death (pool clock)


class ActorPool:
    """Actors with ``depth`` call slots each, in states starting / ready / down / lost / released. The
    pool grows (``add``) and shrinks (``release``) during a run; an actor's index never changes."""

    def __init__(self, ray, make_actor: Callable[[], Any], count: int, depth: int, restart_timeout: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ray, self.depth, self.restart_timeout, self.clock = ray, depth, restart_timeout, clock
        self.make_actor = make_actor
        self.actors: list[Any] = []
        self.state: list[str] = []
        self.free: list[int] = []
        self.node: list[Optional[str]] = []  # Ray node id where the actor last started
        self.calls: list[list[Any]] = []  # per actor: task calls in flight, oldest first
        self.idle_since: list[float] = []  # per actor: when its last call ended (or it became ready)
        self.in_flight: dict[Any, tuple[int, list]] = {}  # ref -> (actor, tasks); [] for a probe
        self.probe_due: dict[int, float] = {}  # actor -> when to send its next probe
        self.backoff: dict[int, float] = {}
        self.down_since: dict[int, float] = {}
        self.dead_oldest: dict[int, Any] = {}  # per down actor: its oldest call when the death was seen
        self.init_errors: list[str] = []
        self.start_deaths: dict[int, int] = {}  # deaths of actors that never answered their probe
        self.started = clock()
        self.ever_ready = False
        self.last_seen: dict[str, float] = {}  # node id -> when something answered from it
        self.dead_nodes: set[str] = set()
        self.nodes_checked = float("-inf")
        self.add(count)

    def add(self, count: int) -> None:
        """Ask Ray for ``count`` more actors; each takes calls once its probe answers."""
        for _ in range(count):
            self.actors.append(self.make_actor())
            self.state.append(STARTING)
            self.free.append(0)
            self.node.append(None)
            self.calls.append([])
            self.idle_since.append(self.clock())
            self._probe(len(self.actors) - 1)

    def release(self, index: int) -> None:
        """Kill an actor that holds no task call (Ray does not restart it): its GPU, or its pending
        request for one, goes back to the cluster. Its probe, if any, fails and is ignored."""
        assert not self.calls[index], "release only actors without task calls"
        self.ray.kill(self.actors[index])
        self.state[index] = RELEASED
        self.free[index] = 0
        for table in (self.probe_due, self.down_since, self.dead_oldest, self.backoff):
            table.pop(index, None)

    def releasable(self, idle_timeout: float) -> list[int]:
        """Actors that could go now, cheapest loss first: never placed (newest first), then restarting
        ones without calls, then ready ones idle for ``idle_timeout`` (longest idle first)."""
        now = self.clock()
        unplaced = [i for i in reversed(range(len(self.actors))) if self.state[i] == STARTING]
        down = [i for i in range(len(self.actors)) if self.state[i] == DOWN and not self.calls[i]]
        idle = sorted((i for i in range(len(self.actors)) if self.state[i] == READY and not self.calls[i]
                       and now - self.idle_since[i] >= idle_timeout), key=self.idle_since.__getitem__)
        return unplaced + down + idle

    # --- what the driver asks ------------------------------------------------------------
    @property
    def alive(self) -> bool:
        """False once every actor asked for is lost (none left, none coming back); released ones were
        let go on purpose and are asked for again when work comes."""
        return self.live() > 0 or LOST not in self.state

    def live(self) -> int:
        return sum(state in LIVE for state in self.state)

    def count(self, state: str) -> int:
        return sum(s == state for s in self.state)

    def has_slot(self) -> bool:
        return any(self.state[i] == READY and self.free[i] > 0 for i in range(len(self.actors)))

    def running(self) -> int:
        return sum(len(tasks) for _, tasks in self.in_flight.values())

    def submit(self, batch: list, attempt: int):
        """Send ``batch`` to the ready actor with the most free slots; return that actor."""
        index = max((i for i in range(len(self.actors)) if self.state[i] == READY and self.free[i] > 0),
                    key=self.free.__getitem__)
        self.free[index] -= 1
        ref = self.actors[index].render_batch.remote([task.to_dict() for task in batch], attempt)
        self.in_flight[ref] = (index, batch)
        self.calls[index].append(ref)
        return self.actors[index]

    def wait(self, timeout: float) -> list:
        """Send the probes that are due, then wait for one call or probe to finish."""
        now = self.clock()
        for index, since in self.down_since.items():  # a restart that cannot be placed (no node left)
            if self.state[index] == DOWN and now - since > self.restart_timeout:
                self.state[index] = LOST  # its probe stays in flight: if it ever answers, it is used again
        for index, due in list(self.probe_due.items()):
            if due <= now:
                del self.probe_due[index]
                self._probe(index)
        if self.probe_due:
            timeout = max(0.0, min(timeout, min(self.probe_due.values()) - now))
        if not self.in_flight:
            time.sleep(timeout)  # only scheduled probes left: nothing else can happen meanwhile
            return []
        ready, _ = self.ray.wait(list(self.in_flight), num_returns=1, timeout=timeout)
        return ready

    def take(self, ref) -> tuple[int, list]:
        return self.in_flight.pop(ref)

    # --- events --------------------------------------------------------------------------
    def answered(self, index: int, ref, batch: list) -> None:
        self.calls[index].remove(ref)
        self.free[index] += 1
        if not self.calls[index]:
            self.idle_since[index] = self.clock()

    def probe_answered(self, index: int, info: Any) -> None:
        """The actor is up (first start or a restart) and takes calls again; or it says why it cannot
        render (its constructor met an error of the user's making: see worker.UNDERSTOOD)."""
        if isinstance(info, dict) and info.get("start_error"):
            self.state[index] = LOST
            self.init_errors.append(info["start_error"])
            return
        self.state[index] = READY
        self.ever_ready = True
        self.node[index] = info.get("node") if isinstance(info, dict) else None
        self.seen(self.node[index])
        for table in (self.down_since, self.dead_oldest, self.backoff):
            table.pop(index, None)
        self.free[index] = self.depth - len(self.calls[index])
        self.idle_since[index] = self.clock()

    def probe_failed(self, index: int, exc: Exception) -> None:
        """A probe failed: the constructor raised (the actor is gone for good), or the actor is still
        restarting; probe again later, and give it up after ``restart_timeout``."""
        if getattr(exc, "actor_init_failed", False):
            self.state[index] = LOST
            cause = getattr(exc, "cause", None) or exc
            self.init_errors.append(str(cause).strip().splitlines()[-1])
            return
        if self.state[index] == STARTING and type(exc).__name__ == "ActorDiedError":
            # Died before it ever answered (its worker could not join the cluster: a token-auth
            # mismatch, a broken image): Ray restarts it to die again. After a few such deaths the
            # reason is the same for every actor; say it now rather than after restart_timeout.
            self.start_deaths[index] = self.start_deaths.get(index, 0) + 1
            if self.start_deaths[index] >= START_DEATHS:
                self.state[index] = LOST
                self.init_errors.append(_death_reason(exc))
                return
        since = self.down_since.setdefault(index, self.clock())
        if self.clock() - since > self.restart_timeout:
            self.state[index] = LOST
            return
        delay = min(self.backoff.get(index, 0.1) * 2, PROBE_BACKOFF_MAX)
        self.backoff[index] = delay
        self.probe_due[index] = self.clock() + delay

    def died(self, index: int, ref, exc: Exception) -> Death:
        """A task call failed because its actor died or is restarting."""
        oldest = self.dead_oldest.setdefault(index, self.calls[index][0] if self.calls[index] else ref)
        self.calls[index].remove(ref)
        if self.state[index] == READY:
            self.state[index] = DOWN
            self.down_since.setdefault(index, self.clock())
            self._probe(index)  # answers once Ray has restarted the actor (on any node that fits it)
        return Death(computing=oldest == ref, preempted=bool(getattr(exc, "preempted", False)),
                     node=self.node[index], seen_at=self.clock())

    def seen(self, node: Optional[str]) -> None:
        """Something answered from ``node``: it is alive."""
        if node:
            self.last_seen[node] = self.clock()

    def node_fate(self, death: Death) -> Optional[bool]:
        """Whether the dead actor's node was lost (True), is alive (False), or not known yet (None).
        Ray reports a killed worker and a lost node alike at first; the node's fate settles it: an
        answer from it since the death (the restarted actor, another actor), or the GCS marking it dead
        (its health checks take some seconds)."""
        if not death.node:
            return False
        if self.last_seen.get(death.node, float("-inf")) >= death.seen_at:
            return False
        if self.clock() - self.nodes_checked >= 1.0:  # one GCS query a second at most
            self.nodes_checked = self.clock()
            try:
                self.dead_nodes = {node["NodeID"] for node in self.ray.nodes() if not node["Alive"]}
            except Exception:  # the GCS did not answer: ask again later
                pass
        return True if death.node in self.dead_nodes else None

    def starting_for(self) -> float:
        return self.clock() - self.started

    def kill_all(self) -> None:
        for actor, state in zip(self.actors, self.state):
            if state != RELEASED:
                self.ray.kill(actor)

    # --- helpers -------------------------------------------------------------------------
    def _probe(self, index: int) -> None:
        self.in_flight[self.actors[index].ready.remote()] = (index, [])


def _death_reason(exc: Exception) -> str:
    """Ray's own words for an actor's death (its error text names the cause, e.g. the worker's exit)."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    telling = [line for line in lines if any(word in line.lower() for word in ("because", "detail", "reason"))]
    reason = (telling or lines or [""])[-1]
    return f"the worker died before it was ready, {START_DEATHS} times: {reason[:500]}"
