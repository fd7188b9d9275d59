"""In-memory storage: the reference backend, for tests and single-process development.

It serves one process only: sessions and credentials vanish on restart and are not seen by
other workers (the vault logs this once at start-up).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import replace

from ..core.model import ACTIVE, CredentialKey, StoredCredential
from ._protocol import Purged, session_credential_by_two_reads

__all__ = ["MemoryStorage"]


class MemoryStorage:
    """Thread-safe dict storage implementing :class:`~oauth_vault_mw.storage.Storage`."""

    url = "memory://"
    shared_across_processes = False

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._credentials: dict[CredentialKey, StoredCredential] = {}
        self._identities: dict[tuple[str, str], str] = {}
        self._states: dict[str, tuple[bytes, float]] = {}
        self._sessions: dict[str, tuple[str, float]] = {}
        self._leases: dict[CredentialKey, tuple[str, float]] = {}
        self._records: dict[tuple[str, str], bytes] = {}
        self._events: list[tuple[float, bytes]] = []

    def __repr__(self) -> str:
        return "MemoryStorage()"

    def setup(self) -> None:
        return None

    def close(self) -> None:
        return None

    def get_credential(self, key: CredentialKey) -> StoredCredential | None:
        return self._credentials.get(key)

    def save_credential(self, record: StoredCredential, expected_version: int) -> bool:
        with self._lock:
            return self._save_unlocked(record, expected_version)

    def _save_unlocked(self, record: StoredCredential, expected_version: int) -> bool:
        current = self._credentials.get(record.key)
        if (current.version if current else 0) != expected_version:
            return False
        self._credentials[record.key] = replace(record, version=expected_version + 1)
        return True

    def save_credential_releasing(
        self, record: StoredCredential, expected_version: int, owner: str
    ) -> bool:
        with self._lock:
            if not self._save_unlocked(record, expected_version):
                return False
            held = self._leases.get(record.key)
            if held is not None and held[0] == owner:
                del self._leases[record.key]
            return True

    def delete_credential(self, key: CredentialKey) -> bool:
        with self._lock:
            return self._credentials.pop(key, None) is not None

    def list_credentials(self, user_id: str) -> list[StoredCredential]:
        with self._lock:
            rows = [r for k, r in self._credentials.items() if k.user_id == user_id]
        return sorted(rows, key=lambda r: r.key)

    def all_credentials(self) -> list[StoredCredential]:
        with self._lock:
            return sorted(self._credentials.values(), key=lambda r: r.key)

    def scan_credentials(
        self,
        *,
        after: CredentialKey | None,
        limit: int,
        expiring_before: float | None = None,
    ) -> list[StoredCredential]:
        rows = []
        for record in self.all_credentials():
            if after is not None and record.key <= after:
                continue
            if expiring_before is not None and not (
                record.status == ACTIVE
                and record.expires_at is not None
                and record.expires_at < expiring_before
            ):
                continue
            rows.append(record)
            if len(rows) >= limit:
                break
        return rows

    def acquire_lease(self, key: CredentialKey, owner: str, ttl: float, now: float) -> bool:
        with self._lock:
            if key not in self._credentials:
                return False
            held = self._leases.get(key)
            if held is not None and held[0] != owner and held[1] > now:
                return False
            self._leases[key] = (owner, now + ttl)
            return True

    def release_lease(self, key: CredentialKey, owner: str) -> None:
        with self._lock:
            held = self._leases.get(key)
            if held is not None and held[0] == owner:
                del self._leases[key]

    def get_identity(self, connection_id: str, subject: str) -> str | None:
        return self._identities.get((connection_id, subject))

    def link_identity(self, connection_id: str, subject: str, user_id: str) -> str:
        with self._lock:
            return self._identities.setdefault((connection_id, subject), user_id)

    def unlink_identities(self, connection_id: str, user_id: str) -> None:
        with self._lock:
            for ident in [
                k for k, v in self._identities.items() if k[0] == connection_id and v == user_id
            ]:
                del self._identities[ident]

    def list_identities(self, connection_id: str, user_id: str) -> list[str]:
        with self._lock:
            return sorted(
                k[1] for k, v in self._identities.items() if k[0] == connection_id and v == user_id
            )

    def put_login_state(self, state_hash: str, data: bytes, expires_at: float) -> None:
        with self._lock:
            self._states[state_hash] = (data, expires_at)

    def take_login_state(self, state_hash: str, now: float) -> bytes | None:
        with self._lock:
            for h in [h for h, (_, exp) in self._states.items() if exp <= now]:
                del self._states[h]
            entry = self._states.pop(state_hash, None)
        return entry[0] if entry else None

    def purge_expired(self, now: float, limit: int) -> Purged:
        with self._lock:
            sessions = [h for h, (_, exp) in self._sessions.items() if exp <= now][:limit]
            for h in sessions:
                del self._sessions[h]
            states = [h for h, (_, exp) in self._states.items() if exp <= now][:limit]
            for h in states:
                del self._states[h]
        return Purged(len(sessions), len(states))

    def create_session(self, session_hash: str, user_id: str, expires_at: float) -> None:
        with self._lock:
            self._sessions[session_hash] = (user_id, expires_at)

    def get_session(self, session_hash: str, now: float) -> str | None:
        entry = self._sessions.get(session_hash)
        if entry is None or entry[1] <= now:
            return None
        return entry[0]

    def get_session_credential(
        self, session_hash: str, now: float, connection_id: str, account: str = "default"
    ) -> tuple[str, StoredCredential | None] | None:
        return session_credential_by_two_reads(self, session_hash, now, connection_id, account)

    def delete_session(self, session_hash: str) -> None:
        with self._lock:
            self._sessions.pop(session_hash, None)

    def put_record(
        self, kind: str, name: str, data: bytes, *, only_if_absent: bool = False
    ) -> bool:
        with self._lock:
            if only_if_absent and (kind, name) in self._records:
                return False
            self._records[(kind, name)] = data
            return True

    def get_record(self, kind: str, name: str) -> bytes | None:
        return self._records.get((kind, name))

    def delete_record(self, kind: str, name: str) -> bool:
        with self._lock:
            return self._records.pop((kind, name), None) is not None

    def list_records(self, kind: str) -> list[tuple[str, bytes]]:
        with self._lock:
            return sorted((n, d) for (k, n), d in self._records.items() if k == kind)

    def append_events(self, events: Sequence[tuple[float, bytes]]) -> None:
        with self._lock:
            self._events.extend(events)

    def read_events(self, since: float, limit: int) -> list[tuple[float, bytes]]:
        with self._lock:
            found = [e for e in self._events if e[0] >= since]
        found.sort(key=lambda e: e[0])  # stable: ties stay in append order
        return found[-limit:] if limit > 0 else []
