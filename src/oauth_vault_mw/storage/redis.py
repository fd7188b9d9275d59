"""Redis storage: :class:`RedisStorage` (redis-py, sync) and :class:`AsyncRedisStorage`
(``redis.asyncio``, natively async), for several app processes sharing one Redis.

    storage = RedisStorage("redis://:password@redis.internal:6379/0", prefix="oauth_vault")
    storage = storage_from_url("rediss://redis.internal:6380/0?prefix=myapp")  # TLS

Every operation is written once, as a generator that yields batches of Redis commands and
receives their replies (:class:`_Ops`); the sync and async classes only run those batches
(one command alone, several in one pipeline). Redis errors become
:class:`~oauth_vault_mw.StorageUnavailable` naming the error class only; sockets time out after
2 s unless the URL says otherwise: redis-py's URL options (``?socket_timeout=0.5``,
``max_connections``...) win over these defaults; ``?prefix=`` sets the key prefix.

Keys (``P`` is the prefix, default ``oauth_vault``)::

    P:cred:{T}           hash: version, status, expires_at, scope, sealed, updated_at
    P:lease:{T}          string "<until> <owner>", PX ttl  (same hash tag T: same cluster slot)
    P:credentials        sorted set, score 0, members M in key order   (scan_credentials)
    P:expiring           sorted set, active credentials by expires_at  (expiring_before)
    P:user:{U}           set of the user's M                           (list_credentials)
    P:ident:{C,S}        string: user id bound to (connection, subject), SET NX
    P:links:{C,U}        set of the subjects bound to that user         (unlink_identities)
    P:state:H / P:session:H    "<expires_at> <payload>", PX until expiry (+ a grace minute)
    P:records:K          hash: name -> data, the documents of kind K     (put_record...)
    P:events             sorted set, score at, member "<seq, 20 digits>:<data>"  (audit)
    P:events:seq         counter of the events ever appended
    P:schema_version

``M`` is the credential key's parts joined by NUL, escaped so that byte order is key order;
``T`` is ``M`` with ``%`` and ``}`` percent-escaped, so no id can end a hash tag early.

The credential record is the authority; the three indexes live in other cluster slots, so
they are written as separate commands: entries are added before a record is written (a
crash leaves a stale entry, never a missing one), reconciled after every write and delete
until a re-read agrees, and readers skip entries whose record is gone.

An event's member starts with its sequence number, zero-padded: members of equal score sort
by bytes, so events of the same instant keep their append order (and equal events stay
distinct). A batch takes its numbers and is added in one script, atomically.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import re
import time
import weakref
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

try:
    import redis
    import redis.asyncio
    import redis.asyncio.connection
    import redis.connection
    from redis.exceptions import RedisError
except ImportError as _err:  # pragma: no cover - depends on the environment
    raise ImportError("Redis storage needs redis-py: pip install 'oauth-vault-mw[redis]'") from _err

from ..core.errors import ConfigurationError, StorageUnavailable
from ..core.model import ACTIVE, CredentialKey, StoredCredential

__all__ = ["SCHEMA_VERSION", "AsyncRedisStorage", "RedisStorage"]

SCHEMA_VERSION = 1
DEFAULT_PREFIX = "oauth_vault"
MIN_SERVER = (6, 2)  # GETDEL, ZADD LT
_SOCKET_TIMEOUT = 2.0
_POOL_WAIT = 5.0  # seconds a caller waits for a free pooled connection
_GRACE = 60.0  # seconds a state/session key outlives its expiry (the reader checks `now`)
_RECONCILE_ROUNDS = 8

T = TypeVar("T")

# -- Lua: each runs atomically on the one slot its keys share --------------------------------

_CAS = """
local current = tonumber(redis.call('HGET', KEYS[1], 'version') or '0')
if current ~= tonumber(ARGV[1]) then return 0 end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'version', tostring(current + 1), unpack(ARGV, 2))
return current + 1
"""

_ACQUIRE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local held = redis.call('GET', KEYS[2])
if held then
  local sep = string.find(held, ' ', 1, true)
  if sep and string.sub(held, sep + 1) ~= ARGV[1]
      and tonumber(string.sub(held, 1, sep - 1)) > tonumber(ARGV[2]) then
    return 0
  end
end
redis.call('SET', KEYS[2], ARGV[3] .. ' ' .. ARGV[1], 'PX', ARGV[4])
return 1
"""

_RELEASE = """
local held = redis.call('GET', KEYS[1])
if held then
  local sep = string.find(held, ' ', 1, true)
  if sep and string.sub(held, sep + 1) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
end
return 0
"""

_LINK = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX') then return ARGV[1] end
return redis.call('GET', KEYS[1])
"""

_UNLINK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

_APPEND = """
local n = #ARGV / 2
local last = redis.call('INCRBY', KEYS[2], n)
for i = 1, n do
  redis.call('ZADD', KEYS[1], ARGV[2 * i - 1],
             string.format('%020d', last - n + i) .. ':' .. ARGV[2 * i])
end
return last
"""

_SCRIPTS = {
    "cas": _CAS,
    "acquire": _ACQUIRE,
    "release": _RELEASE,
    "link": _LINK,
    "unlink": _UNLINK,
    "append": _APPEND,
}


@dataclass(frozen=True)
class _Eval:
    """A call of one of :data:`_SCRIPTS` (EVALSHA, loading the script when missing)."""

    script: str
    keys: tuple[bytes, ...]
    args: tuple[Any, ...]


_Command = tuple[Any, ...] | _Eval
_Op = Generator[list[_Command], list[Any], T]


@contextlib.contextmanager
def _mapped() -> Iterator[None]:
    try:
        yield
    except RedisError as err:
        raise StorageUnavailable(f"storage error: {type(err).__name__}") from None


# -- key encoding -----------------------------------------------------------------------------


def _esc(part: str) -> bytes:
    return part.encode().replace(b"\x01", b"\x01\x02").replace(b"\x00", b"\x01\x01")


def _unesc(part: bytes) -> str:
    return re.sub(
        rb"\x01(.)", lambda m: b"\x00" if m[1] == b"\x01" else b"\x01", part, flags=re.DOTALL
    ).decode()


def _member(*parts: str) -> bytes:
    return b"\x00".join(map(_esc, parts))


def _key_of(member: bytes) -> CredentialKey:
    cid, uid, account = (_unesc(p) for p in member.split(b"\x00"))
    return CredentialKey(cid, uid, account)


def _num(value: float) -> str:
    return repr(float(value))


def _gc_ms(expires_at: float) -> int:
    """Redis's own expiry for a state/session: a garbage collector, not the check (the reader
    compares the stored ``expires_at`` with its ``now``, so an injected clock still works)."""
    return max(1, math.ceil((max(expires_at - time.time(), 0.0) + _GRACE) * 1000))


_FIELDS = (b"version", b"status", b"expires_at", b"scope", b"sealed", b"updated_at")
_State = tuple[str, float | None] | None  # (status, expires_at) as the indexes see it


def _record(key: CredentialKey, values: Sequence[bytes | None]) -> StoredCredential | None:
    version, status, expires_at, scope, sealed, updated_at = values
    if version is None or status is None or sealed is None:
        return None
    return StoredCredential(
        key=key,
        version=int(version),
        sealed=sealed.decode(),
        status=status.decode(),
        expires_at=None if expires_at is None else float(expires_at),
        scope=None if scope is None else scope.decode(),
        updated_at=0.0 if updated_at is None else float(updated_at),
    )


def _state(values: Sequence[bytes | None]) -> _State:
    status, expires_at = values
    if status is None:
        return None
    return status.decode(), None if expires_at is None else float(expires_at)


class _Ops:
    """Every storage operation, once: generators of command batches (no I/O here)."""

    def __init__(self, prefix: str) -> None:
        if not prefix or "{" in prefix or "}" in prefix:
            raise ConfigurationError(
                "OAUTH_VAULT_STORAGE_URL: the Redis key prefix must be non-empty, without braces"
            )
        self.prefix = prefix
        self._p = prefix.encode() + b":"
        self.all = self._p + b"credentials"
        self.expiring = self._p + b"expiring"
        self.schema = self._p + b"schema_version"
        self.events = self._p + b"events"
        self.event_seq = self._p + b"events:seq"

    def _tagged(self, kind: bytes, *parts: str) -> bytes:
        tag = _member(*parts).replace(b"%", b"%25").replace(b"}", b"%7D")
        return self._p + kind + b":{" + tag + b"}"

    def record(self, key: CredentialKey) -> bytes:
        return self._tagged(b"cred", *key.parts())

    def lease(self, key: CredentialKey) -> bytes:
        return self._tagged(b"lease", *key.parts())

    def user(self, user_id: str) -> bytes:
        return self._tagged(b"user", user_id)

    def identity(self, connection_id: str, subject: str) -> bytes:
        return self._tagged(b"ident", connection_id, subject)

    def links(self, connection_id: str, user_id: str) -> bytes:
        return self._tagged(b"links", connection_id, user_id)

    def state(self, state_hash: str) -> bytes:
        return self._p + b"state:" + state_hash.encode()

    def session(self, session_hash: str) -> bytes:
        return self._p + b"session:" + session_hash.encode()

    def records(self, kind: str) -> bytes:
        return self._p + b"records:" + kind.encode()

    # -- schema -------------------------------------------------------------------------------

    def setup(self) -> _Op[None]:
        _, info, _, found = yield [
            ("PING",),
            ("INFO", "server"),
            ("SET", self.schema, SCHEMA_VERSION, "NX"),
            ("GET", self.schema),
        ]
        version = tuple(int(p) for p in str(info.get("redis_version", "0.0")).split(".")[:2])
        if version < MIN_SERVER:
            raise ConfigurationError(
                f"OAUTH_VAULT_STORAGE_URL: Redis {info.get('redis_version')} is too old "
                f"(oauth-vault-mw needs {MIN_SERVER[0]}.{MIN_SERVER[1]} or newer)"
            )
        if found is not None and int(found) > SCHEMA_VERSION:
            raise ConfigurationError(
                f"OAUTH_VAULT_STORAGE_URL: schema version {int(found)} is newer than this "
                f"library knows ({SCHEMA_VERSION}); upgrade oauth-vault-mw"
            )

    # -- credentials --------------------------------------------------------------------------

    def get_credential(self, key: CredentialKey) -> _Op[StoredCredential | None]:
        (values,) = yield [("HMGET", self.record(key), *_FIELDS)]
        return _record(key, values)

    def _fetch(self, members: Sequence[bytes]) -> _Op[list[StoredCredential]]:
        """The records of index members, in order; a stale member (record gone) is skipped."""
        if not members:
            return []
        keys = [_key_of(m) for m in members]
        replies = yield [("HMGET", self.record(k), *_FIELDS) for k in keys]
        return [r for r in map(_record, keys, replies) if r is not None]

    def _index(self, key: CredentialKey, state: _State) -> list[_Command]:
        member = _member(*key.parts())
        if state is None:
            return [
                ("SREM", self.user(key.user_id), member),
                ("ZREM", self.all, member),
                ("ZREM", self.expiring, member),
            ]
        status, expires_at = state
        expiry: _Command = ("ZREM", self.expiring, member)
        if status == ACTIVE and expires_at is not None:
            expiry = ("ZADD", self.expiring, expires_at, member)
        return [("SADD", self.user(key.user_id), member), ("ZADD", self.all, 0, member), expiry]

    def _reconcile(self, key: CredentialKey, state: _State) -> _Op[None]:
        """Write the indexes for ``state``, re-read the record, repeat until they agree.

        The last index write of all is followed by a re-read that matches it, and any later
        record write is followed by its writer's own reconcile: the indexes end up right.
        """
        for _ in range(_RECONCILE_ROUNDS):
            *_, seen = yield [
                *self._index(key, state),
                ("HMGET", self.record(key), b"status", b"expires_at"),
            ]
            if _state(seen) == state:
                return
            state = _state(seen)

    def save_credential(self, record: StoredCredential, expected_version: int) -> _Op[bool]:
        key, member = record.key, _member(*record.key.parts())
        fields: list[Any] = [
            b"status",
            record.status,
            b"sealed",
            record.sealed,
            b"updated_at",
            _num(record.updated_at),
        ]
        if record.expires_at is not None:
            fields += [b"expires_at", _num(record.expires_at)]
        if record.scope is not None:
            fields += [b"scope", record.scope]
        before: list[_Command] = [
            ("SADD", self.user(key.user_id), member),
            ("ZADD", self.all, 0, member),
        ]
        if record.status == ACTIVE and record.expires_at is not None:
            # LT: the index may say "expires sooner" than the record, never "later"
            before.append(("ZADD", self.expiring, "LT", record.expires_at, member))
        cas = _Eval("cas", (self.record(key),), (expected_version, *fields))
        *_, version = yield [*before, cas]
        state: _State = (record.status, record.expires_at)
        if not version:
            (seen,) = yield [("HMGET", self.record(key), b"status", b"expires_at")]
            state = _state(seen)
        yield from self._reconcile(key, state)
        return bool(version)

    def delete_credential(self, key: CredentialKey) -> _Op[bool]:
        deleted, _ = yield [("DEL", self.record(key)), ("DEL", self.lease(key))]
        yield from self._reconcile(key, None)
        return bool(deleted)

    def list_credentials(self, user_id: str) -> _Op[list[StoredCredential]]:
        (members,) = yield [("SMEMBERS", self.user(user_id))]
        return (yield from self._fetch(sorted(members)))

    def scan_credentials(
        self, after: CredentialKey | None, limit: int, expiring_before: float | None
    ) -> _Op[list[StoredCredential]]:
        if expiring_before is not None:
            return (yield from self._scan_expiring(after, limit, expiring_before))
        rows: list[StoredCredential] = []
        start = b"-" if after is None else b"(" + _member(*after.parts())
        while len(rows) < limit:
            want = limit - len(rows)
            (members,) = yield [("ZRANGEBYLEX", self.all, start, b"+", "LIMIT", 0, want)]
            rows += yield from self._fetch(members)
            if len(members) < want:
                break
            start = b"(" + members[-1]
        return rows

    def _scan_expiring(
        self, after: CredentialKey | None, limit: int, before: float
    ) -> _Op[list[StoredCredential]]:
        """Candidates from the expiry index, put in key order, checked against the records.

        Costs O(candidates) per page: the index is ordered by time, the pages by key.
        """
        (members,) = yield [("ZRANGEBYSCORE", self.expiring, "-inf", "(" + _num(before))]
        low = None if after is None else _member(*after.parts())
        candidates = sorted(m for m in members if low is None or m > low)
        rows: list[StoredCredential] = []
        while candidates and len(rows) < limit:
            chunk, candidates = candidates[:limit], candidates[limit:]
            for found in (yield from self._fetch(chunk)):
                if (
                    found.status == ACTIVE
                    and found.expires_at is not None
                    and found.expires_at < before
                    and len(rows) < limit
                ):
                    rows.append(found)
        return rows

    def acquire_lease(self, key: CredentialKey, owner: str, ttl: float, now: float) -> _Op[bool]:
        args = (owner, _num(now), _num(now + ttl), max(1, math.ceil(ttl * 1000)))
        (won,) = yield [_Eval("acquire", (self.record(key), self.lease(key)), args)]
        return bool(won)

    def release_lease(self, key: CredentialKey, owner: str) -> _Op[None]:
        yield [_Eval("release", (self.lease(key),), (owner,))]

    # -- identities ---------------------------------------------------------------------------

    def get_identity(self, connection_id: str, subject: str) -> _Op[str | None]:
        (user,) = yield [("GET", self.identity(connection_id, subject))]
        return None if user is None else bytes(user).decode()

    def link_identity(self, connection_id: str, subject: str, user_id: str) -> _Op[str]:
        # the reverse index first: a lost race or a crash leaves a stale entry, which
        # unlink_identities skips (it deletes an identity only if it is still this user's)
        _, owner = yield [
            ("SADD", self.links(connection_id, user_id), subject),
            _Eval("link", (self.identity(connection_id, subject),), (user_id,)),
        ]
        return bytes(owner).decode()

    def unlink_identities(self, connection_id: str, user_id: str) -> _Op[None]:
        links = self.links(connection_id, user_id)
        (subjects,) = yield [("SMEMBERS", links)]
        if subjects:
            yield [
                *(
                    _Eval("unlink", (self.identity(connection_id, s.decode()),), (user_id,))
                    for s in subjects
                ),
                ("SREM", links, *subjects),
            ]

    # -- login states and sessions ------------------------------------------------------------

    def put_login_state(self, state_hash: str, data: bytes, expires_at: float) -> _Op[None]:
        value = _num(expires_at).encode() + b" " + data
        yield [("SET", self.state(state_hash), value, "PX", _gc_ms(expires_at))]

    def take_login_state(self, state_hash: str, now: float) -> _Op[bytes | None]:
        (value,) = yield [("GETDEL", self.state(state_hash))]
        if value is None:
            return None
        expires_at, _, data = bytes(value).partition(b" ")
        return data if float(expires_at) > now else None

    def create_session(self, session_hash: str, user_id: str, expires_at: float) -> _Op[None]:
        value = f"{_num(expires_at)} {user_id}"
        yield [("SET", self.session(session_hash), value, "PX", _gc_ms(expires_at))]

    def get_session(self, session_hash: str, now: float) -> _Op[str | None]:
        (value,) = yield [("GET", self.session(session_hash))]
        if value is None:
            return None
        expires_at, _, user_id = bytes(value).decode().partition(" ")
        return user_id if float(expires_at) > now else None

    def delete_session(self, session_hash: str) -> _Op[None]:
        yield [("DEL", self.session(session_hash))]

    # -- records and events -------------------------------------------------------------------

    def put_record(self, kind: str, name: str, data: bytes, only_if_absent: bool) -> _Op[bool]:
        command = "HSETNX" if only_if_absent else "HSET"
        (added,) = yield [(command, self.records(kind), name, data)]
        return bool(added) or not only_if_absent  # HSET counts new fields only

    def get_record(self, kind: str, name: str) -> _Op[bytes | None]:
        (data,) = yield [("HGET", self.records(kind), name)]
        return None if data is None else bytes(data)

    def delete_record(self, kind: str, name: str) -> _Op[bool]:
        (deleted,) = yield [("HDEL", self.records(kind), name)]
        return bool(deleted)

    def list_records(self, kind: str) -> _Op[list[tuple[str, bytes]]]:
        (found,) = yield [("HGETALL", self.records(kind))]
        # UTF-8 byte order is code point order: sorted as the contract sorts names
        return sorted((bytes(n).decode(), bytes(d)) for n, d in dict(found).items())

    def append_events(self, events: Sequence[tuple[float, bytes]]) -> _Op[None]:
        if events:
            args = [part for at, data in events for part in (_num(at), data)]
            yield [_Eval("append", (self.events, self.event_seq), tuple(args))]

    def read_events(self, since: float, limit: int) -> _Op[list[tuple[float, bytes]]]:
        if limit <= 0:
            return []
        (reply,) = yield [
            ("ZREVRANGEBYSCORE", self.events, "+inf", _num(since), "WITHSCORES", "LIMIT", 0, limit)
        ]
        if reply and not isinstance(reply[0], (list, tuple)):  # RESP2: member, score, ...
            reply = list(zip(reply[::2], reply[1::2], strict=True))
        found = [(float(score), bytes(member).partition(b":")[2]) for member, score in reply]
        return found[::-1]


def _pool_options(
    module: Any, url: str, prefix: str | None, max_connections: int
) -> tuple[dict[str, Any], str]:
    """Pool options from the URL (``redis.connection`` or ``redis.asyncio.connection``), checked
    now: a bad option fails at start-up, not in the first request."""
    try:
        parsed: dict[str, Any] = dict(module.parse_url(url))
    except ValueError:
        raise ConfigurationError(
            "OAUTH_VAULT_STORAGE_URL: not a valid redis:// or rediss:// URL"
        ) from None
    url_prefix = parsed.pop("prefix", None)
    options = {
        "socket_timeout": _SOCKET_TIMEOUT,
        "socket_connect_timeout": _SOCKET_TIMEOUT,
        "max_connections": max_connections,
        "timeout": _POOL_WAIT,
        **parsed,
        "decode_responses": False,
    }
    connection = options.get("connection_class", module.Connection)
    try:  # builds a connection object; it connects only when used
        connection(
            **{
                k: v
                for k, v in options.items()
                if k not in ("max_connections", "timeout", "connection_class")
            }
        )
    except TypeError as err:
        name = re.search(r"'(\w+)'", str(err))
        raise ConfigurationError(
            f"OAUTH_VAULT_STORAGE_URL: unsupported Redis URL option {name[0] if name else ''}"
        ) from None
    return options, prefix or url_prefix or DEFAULT_PREFIX


def _describe(cls: str, options: dict[str, Any], prefix: str) -> str:
    where = (
        f"path={options['path']!r}"
        if "path" in options
        else f"host={options.get('host', 'localhost')!r}, port={options.get('port', 6379)}"
    )
    return f"{cls}({where}, db={options.get('db', 0)}, prefix={prefix!r})"


class RedisStorage:
    """Sync Redis storage implementing :class:`~oauth_vault_mw.storage.Storage` (thread-safe).

    ``prefix`` namespaces every key (else the URL's ``?prefix=``, else ``oauth_vault``);
    ``max_connections`` sizes the pool (callers beyond it wait up to 5 s for a connection).
    """

    shared_across_processes = True

    def __init__(self, url: str, *, prefix: str | None = None, max_connections: int = 20) -> None:
        options, prefix = _pool_options(redis.connection, url, prefix, max_connections)
        self._ops = _Ops(prefix)
        self._repr = _describe(type(self).__name__, options, prefix)
        self._pool = redis.BlockingConnectionPool(**options)  # type: ignore[no-untyped-call]
        self._client = redis.Redis(connection_pool=self._pool)
        self._scripts = {name: self._client.register_script(s) for name, s in _SCRIPTS.items()}

    def __repr__(self) -> str:
        return self._repr

    def _call(self, client: Any, command: _Command) -> Any:
        if isinstance(command, _Eval):
            return self._scripts[command.script](command.keys, command.args, client=client)
        return client.execute_command(*command)

    def _run(self, op: _Op[T]) -> T:
        with _mapped():
            replies: Any = None
            try:
                while True:
                    batch = op.send(replies)
                    if len(batch) == 1:
                        replies = [self._call(self._client, batch[0])]
                        continue
                    with self._client.pipeline(transaction=False) as pipe:
                        for command in batch:
                            self._call(pipe, command)
                        replies = pipe.execute()
            except StopIteration as done:
                result: T = done.value
                return result

    def setup(self) -> None:
        self._run(self._ops.setup())

    def close(self) -> None:
        with _mapped():
            self._client.close()
            self._pool.disconnect()

    def get_credential(self, key: CredentialKey) -> StoredCredential | None:
        return self._run(self._ops.get_credential(key))

    def save_credential(self, record: StoredCredential, expected_version: int) -> bool:
        return self._run(self._ops.save_credential(record, expected_version))

    def delete_credential(self, key: CredentialKey) -> bool:
        return self._run(self._ops.delete_credential(key))

    def list_credentials(self, user_id: str) -> list[StoredCredential]:
        return self._run(self._ops.list_credentials(user_id))

    def scan_credentials(
        self, *, after: CredentialKey | None, limit: int, expiring_before: float | None = None
    ) -> list[StoredCredential]:
        return self._run(self._ops.scan_credentials(after, limit, expiring_before))

    def acquire_lease(self, key: CredentialKey, owner: str, ttl: float, now: float) -> bool:
        return self._run(self._ops.acquire_lease(key, owner, ttl, now))

    def release_lease(self, key: CredentialKey, owner: str) -> None:
        self._run(self._ops.release_lease(key, owner))

    def get_identity(self, connection_id: str, subject: str) -> str | None:
        return self._run(self._ops.get_identity(connection_id, subject))

    def link_identity(self, connection_id: str, subject: str, user_id: str) -> str:
        return self._run(self._ops.link_identity(connection_id, subject, user_id))

    def unlink_identities(self, connection_id: str, user_id: str) -> None:
        self._run(self._ops.unlink_identities(connection_id, user_id))

    def put_login_state(self, state_hash: str, data: bytes, expires_at: float) -> None:
        self._run(self._ops.put_login_state(state_hash, data, expires_at))

    def take_login_state(self, state_hash: str, now: float) -> bytes | None:
        return self._run(self._ops.take_login_state(state_hash, now))

    def create_session(self, session_hash: str, user_id: str, expires_at: float) -> None:
        self._run(self._ops.create_session(session_hash, user_id, expires_at))

    def get_session(self, session_hash: str, now: float) -> str | None:
        return self._run(self._ops.get_session(session_hash, now))

    def delete_session(self, session_hash: str) -> None:
        self._run(self._ops.delete_session(session_hash))

    def put_record(
        self, kind: str, name: str, data: bytes, *, only_if_absent: bool = False
    ) -> bool:
        return self._run(self._ops.put_record(kind, name, data, only_if_absent))

    def get_record(self, kind: str, name: str) -> bytes | None:
        return self._run(self._ops.get_record(kind, name))

    def delete_record(self, kind: str, name: str) -> bool:
        return self._run(self._ops.delete_record(kind, name))

    def list_records(self, kind: str) -> list[tuple[str, bytes]]:
        return self._run(self._ops.list_records(kind))

    def append_events(self, events: Sequence[tuple[float, bytes]]) -> None:
        self._run(self._ops.append_events(events))

    def read_events(self, since: float, limit: int) -> list[tuple[float, bytes]]:
        return self._run(self._ops.read_events(since, limit))


class _LoopClient:
    """One ``redis.asyncio`` client, its pool and its scripts: they belong to one event loop."""

    def __init__(self, options: dict[str, Any]) -> None:
        self.pool = redis.asyncio.BlockingConnectionPool(**options)
        self.redis = redis.asyncio.Redis(connection_pool=self.pool)
        self.scripts = {name: self.redis.register_script(s) for name, s in _SCRIPTS.items()}

    async def one(self, command: _Command) -> Any:
        if isinstance(command, _Eval):
            return await self.scripts[command.script](command.keys, command.args)
        return await self.redis.execute_command(*command)  # type: ignore[no-untyped-call]

    async def pipeline(self, batch: list[_Command]) -> list[Any]:
        async with self.redis.pipeline(transaction=False) as pipe:
            for command in batch:
                if isinstance(command, _Eval):
                    script = self.scripts[command.script]
                    await script(command.keys, command.args, client=pipe)
                else:
                    pipe.execute_command(*command)
            replies: list[Any] = await pipe.execute()
            return replies


class AsyncRedisStorage:
    """Async Redis storage on ``redis.asyncio`` implementing
    :class:`~oauth_vault_mw.storage.AsyncStorage`: no worker threads. Same options as
    :class:`RedisStorage`. Connections belong to an event loop, so each loop that uses the
    storage gets its own pool (as the provider client does); :meth:`close` closes the
    current loop's.
    """

    shared_across_processes = True

    def __init__(self, url: str, *, prefix: str | None = None, max_connections: int = 20) -> None:
        self._options, prefix = _pool_options(
            redis.asyncio.connection, url, prefix, max_connections
        )
        self._ops = _Ops(prefix)
        self._repr = _describe(type(self).__name__, self._options, prefix)
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopClient]
        self._clients = weakref.WeakKeyDictionary()

    def __repr__(self) -> str:
        return self._repr

    def _client(self) -> _LoopClient:
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            client = self._clients[loop] = _LoopClient(self._options)
        return client

    async def _run(self, op: _Op[T]) -> T:
        client = self._client()
        with _mapped():
            replies: Any = None
            try:
                while True:
                    batch = op.send(replies)
                    if len(batch) == 1:
                        replies = [await client.one(batch[0])]
                    else:
                        replies = await client.pipeline(batch)
            except StopIteration as done:
                result: T = done.value
                return result

    async def setup(self) -> None:
        await self._run(self._ops.setup())

    async def close(self) -> None:
        client = self._clients.pop(asyncio.get_running_loop(), None)
        if client is not None:
            with _mapped():
                await client.redis.aclose()
                await client.pool.disconnect()

    async def get_credential(self, key: CredentialKey) -> StoredCredential | None:
        return await self._run(self._ops.get_credential(key))

    async def save_credential(self, record: StoredCredential, expected_version: int) -> bool:
        return await self._run(self._ops.save_credential(record, expected_version))

    async def delete_credential(self, key: CredentialKey) -> bool:
        return await self._run(self._ops.delete_credential(key))

    async def list_credentials(self, user_id: str) -> list[StoredCredential]:
        return await self._run(self._ops.list_credentials(user_id))

    async def scan_credentials(
        self, *, after: CredentialKey | None, limit: int, expiring_before: float | None = None
    ) -> list[StoredCredential]:
        return await self._run(self._ops.scan_credentials(after, limit, expiring_before))

    async def acquire_lease(self, key: CredentialKey, owner: str, ttl: float, now: float) -> bool:
        return await self._run(self._ops.acquire_lease(key, owner, ttl, now))

    async def release_lease(self, key: CredentialKey, owner: str) -> None:
        await self._run(self._ops.release_lease(key, owner))

    async def get_identity(self, connection_id: str, subject: str) -> str | None:
        return await self._run(self._ops.get_identity(connection_id, subject))

    async def link_identity(self, connection_id: str, subject: str, user_id: str) -> str:
        return await self._run(self._ops.link_identity(connection_id, subject, user_id))

    async def unlink_identities(self, connection_id: str, user_id: str) -> None:
        await self._run(self._ops.unlink_identities(connection_id, user_id))

    async def put_login_state(self, state_hash: str, data: bytes, expires_at: float) -> None:
        await self._run(self._ops.put_login_state(state_hash, data, expires_at))

    async def take_login_state(self, state_hash: str, now: float) -> bytes | None:
        return await self._run(self._ops.take_login_state(state_hash, now))

    async def create_session(self, session_hash: str, user_id: str, expires_at: float) -> None:
        await self._run(self._ops.create_session(session_hash, user_id, expires_at))

    async def get_session(self, session_hash: str, now: float) -> str | None:
        return await self._run(self._ops.get_session(session_hash, now))

    async def delete_session(self, session_hash: str) -> None:
        await self._run(self._ops.delete_session(session_hash))

    async def put_record(
        self, kind: str, name: str, data: bytes, *, only_if_absent: bool = False
    ) -> bool:
        return await self._run(self._ops.put_record(kind, name, data, only_if_absent))

    async def get_record(self, kind: str, name: str) -> bytes | None:
        return await self._run(self._ops.get_record(kind, name))

    async def delete_record(self, kind: str, name: str) -> bool:
        return await self._run(self._ops.delete_record(kind, name))

    async def list_records(self, kind: str) -> list[tuple[str, bytes]]:
        return await self._run(self._ops.list_records(kind))

    async def append_events(self, events: Sequence[tuple[float, bytes]]) -> None:
        await self._run(self._ops.append_events(events))

    async def read_events(self, since: float, limit: int) -> list[tuple[float, bytes]]:
        return await self._run(self._ops.read_events(since, limit))
