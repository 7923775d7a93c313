"""SIGKILL render workers mid-task, the way a spot reclaim or the OOM killer would. Only workers of the
Ray cluster this test process is connected to are touched: their PIDs come from Ray's actor table
(never from a search by process name, which would hit any other texfarm run on the machine)."""
from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from typing import Callable, Iterator, Optional

import psutil


def our_render_pids(rendering_only: bool = True) -> list[int]:
    """PIDs of this cluster's live Renderer actors; with ``rendering_only``, those executing a task now
    (Ray names the process after the method it runs)."""
    import ray._private.state as state

    pids = [info["Pid"] for info in state.actors().values()
            if info.get("ActorClassName") == "RenderWorker" and info.get("State") == "ALIVE" and info.get("Pid")]
    return rendering(pids) if rendering_only else pids


def rendering(pids: list[int]) -> list[int]:
    """Those of ``pids`` executing a Renderer task now (Ray names the process after the method it runs)."""
    busy = []
    for pid in pids:
        try:
            if "RenderWorker.render" in " ".join(psutil.Process(pid).cmdline()):
                busy.append(pid)
        except psutil.Error:
            pass
    return busy


@contextlib.contextmanager
def killing_renders(limit: int = 1, delay: float = 0.0, after: Optional[Callable[[], bool]] = None) -> Iterator[list]:
    """While the block runs, kill up to ``limit`` render processes, each ``delay`` seconds after it
    is first seen (mid-task), starting once ``after()`` is true. Yields the killed pids."""
    stop, killed = threading.Event(), []

    def loop() -> None:
        while after is not None and not stop.is_set() and not after():
            stop.wait(0.2)
        while not stop.is_set() and len(killed) < limit:
            for pid in our_render_pids():
                if pid in killed or len(killed) >= limit:
                    continue
                time.sleep(delay)
                try:
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
                except ProcessLookupError:
                    pass
            stop.wait(0.05)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield killed
    finally:
        stop.set()
        thread.join()
