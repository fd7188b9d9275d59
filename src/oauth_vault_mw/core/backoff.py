"""Per-credential failure backoff: a failing provider is not hammered. Pure (clock injected)."""

from __future__ import annotations

import threading

__all__ = ["Backoff"]


class Backoff:
    """Exponential delay after consecutive failures: 1 s, 2 s, 4 s... capped at ``maximum``."""

    def __init__(self, maximum: float, base: float = 1.0) -> None:
        self.maximum = maximum
        self.base = base
        self._state: dict[object, tuple[int, float]] = {}
        self._lock = threading.Lock()  # the sync vault shares one Backoff across threads

    def blocked_for(self, key: object, now: float) -> float:
        """Seconds before the provider may be asked again for ``key`` (0: now)."""
        entry = self._state.get(key)
        if entry is None:
            return 0.0
        return max(0.0, entry[1] - now)

    def failed(self, key: object, now: float) -> float:
        with self._lock:
            count = self._state.get(key, (0, 0.0))[0] + 1
            delay = float(min(self.maximum, self.base * 2.0 ** min(count - 1, 64)))
            self._state[key] = (count, now + delay)
            if len(self._state) > 10_000:  # bounded memory under many failing credentials
                oldest = min(self._state, key=lambda k: self._state[k][1])
                del self._state[oldest]
        return delay

    def succeeded(self, key: object) -> None:
        with self._lock:
            self._state.pop(key, None)
