"""When the vault purges expired sessions and login states: a pure schedule, no I/O.

Every login adds at most one session row; the vault deletes expired rows in bounded batches
at the first login of a process, then at every ``every``-th login or the first one after
``interval`` seconds, whichever comes first. One batch is one short statement of at most
``batch`` rows, so a login never waits long for it, and since ``batch`` is well above
``every`` the purge keeps up with any login rate. ``oauth-vault db prune`` empties the
backlog on demand (a cron job, after an outage). Redis needs neither: its keys expire.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

__all__ = ["PurgeSchedule"]


@dataclass
class PurgeSchedule:
    """Counts logins; :meth:`due` says when a batch should run (thread-safe)."""

    every: int = 50
    interval: float = 600.0
    batch: int = 500
    _logins: int = field(default=0, repr=False)
    _last: float | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def due(self, now: float) -> bool:
        """Note one login at ``now``; True when it should run a purge batch."""
        with self._lock:
            self._logins += 1
            last = self._last
            if last is None or self._logins >= self.every or not 0 <= now - last < self.interval:
                self._logins = 0
                self._last = now
                return True
            return False
