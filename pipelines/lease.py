"""One run at a time per output: a lease object `{output}/_lease.json`.

Two `texfarm run` of one manifest at once used to render every task twice (the second write was
refused, but the GPU time was spent twice). A run takes the lease with a conditional create (S3
`If-None-Match: *`, a hard link locally), renews it every LEASE_RENEW seconds and deletes it at the
end. A lease is stale, and taken over, when its heartbeat is older than LEASE_STALE or when its
holder ran on this host and its process is gone (a killed driver resumed at once). `--force` takes
it regardless.
"""
from __future__ import annotations

import json
import os
import socket
import threading
import time
from datetime import datetime, timezone
from typing import Optional

from .storage import Storage, StorageError, join

LEASE_NAME = "_lease.json"
LEASE_RENEW = 30.0  # seconds between heartbeats
LEASE_STALE = 120.0  # a heartbeat older than this: the holder is gone (its host, or the network to it)


class LeaseHeld(RuntimeError):
    """Another live run holds the output."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    return True


class OutputLease:
    def __init__(self, storage: Storage, output: str, run_name: str, clock=time.time) -> None:
        self.storage, self.uri, self.run_name, self.clock = storage, join(output, LEASE_NAME), run_name, clock
        self.host, self.pid = socket.gethostname(), os.getpid()
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._created: Optional[str] = None

    def _body(self) -> bytes:
        return json.dumps({"run": self.run_name, "host": self.host, "pid": self.pid, "heartbeat": self.clock(),
                           "renewed_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}).encode()

    def holder(self) -> Optional[dict]:
        """The current lease's content, or None (none, or unreadable: taken as none)."""
        try:
            return json.loads(self.storage.read(self.uri))
        except Exception:
            return None

    def stale(self, held: dict) -> bool:
        if self.clock() - float(held.get("heartbeat", 0)) > LEASE_STALE:
            return True
        return held.get("host") == self.host and not _alive(int(held.get("pid", 0)))

    def acquire(self, force: bool = False) -> None:
        folder = None if self.uri.startswith("s3://") else os.path.dirname(self.uri.removeprefix("file://"))
        self._created = folder if folder and not os.path.exists(folder) else None  # removed again if left empty
        try:
            created = self.storage.write_new(self.uri, self._body())
        except StorageError as exc:  # the run's first write: read-only credentials fail here, before any render
            denied = "AccessDenied" in str(exc) or "Forbidden" in str(exc)
            raise StorageError(f"{exc}" + ("; these credentials may not write under the output: use ones that may "
                                           "(s3:PutObject, s3:DeleteObject), or choose another output" if denied
                                           else "")) from exc
        if not created:
            held = self.holder()
            if held and not force and not self.stale(held) and not (held.get("host") == self.host
                                                                   and held.get("pid") == self.pid):
                age = self.clock() - float(held.get("heartbeat", 0))
                raise LeaseHeld(f"another texfarm run ({held.get('run')!r}, pid {held.get('pid')} on "
                                f"{held.get('host')}, heard from {age:.0f} s ago) is writing to "
                                f"{self.uri.rsplit('/', 1)[0]}: wait for it to end, or pass --force if it is gone "
                                f"(a lease not renewed for {LEASE_STALE:.0f} s expires by itself)")
            self.storage.write(self.uri, self._body())  # stale or forced: take it over
        self._thread = threading.Thread(target=self._renew, name="texfarm-lease", daemon=True)
        self._thread.start()

    def _renew(self) -> None:
        while not self._stop.wait(LEASE_RENEW):
            try:
                self.storage.write(self.uri, self._body())
            except Exception:  # storage trouble: the next beat tries again; tasks report their own
                pass

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        try:
            held = self.holder()
            if held is None or (held.get("host") == self.host and held.get("pid") == self.pid):
                self.storage.delete(self.uri)
            if self._created and not os.listdir(self._created):  # a run that wrote nothing leaves nothing
                os.rmdir(self._created)
        except Exception:
            pass
