"""SIGKILL the worker processes Ray shows executing Renderer.render_batch (its process title), the
way a spot reclaim or the OOM killer would."""
from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from typing import Callable, Iterator, Optional

import psutil


def _renders() -> list[int]:
    return [p.info["pid"] for p in psutil.process_iter(["pid", "cmdline"])
            if "Renderer.render" in " ".join(p.info["cmdline"] or [])]


@contextlib.contextmanager
def killing_renders(limit: int = 1, delay: float = 0.0, after: Optional[Callable[[], bool]] = None) -> Iterator[list]:
    """While the block runs, kill up to ``limit`` render processes, each ``delay`` seconds after it
    is first seen (mid-task), starting once ``after()`` is true. Yields the killed pids."""
    stop, killed = threading.Event(), []

    def loop() -> None:
        while after is not None and not stop.is_set() and not after():
            stop.wait(0.2)
        while not stop.is_set() and len(killed) < limit:
            for pid in _renders():
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
