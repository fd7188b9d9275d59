"""Redis storage operations, written once for the sync and async classes of ``redis.py``.

Each operation is a generator that yields batches of Redis commands and receives their
replies; ``RedisStorage`` and ``AsyncRedisStorage`` only run the batches.

Keys (``P`` is the prefix, default ``oauth_vault``)::

    P:cred:{T}           hash: version, status, expires_at, scope, sealed, updated_at
    P:lease:{T}          string "<until> <owner>", PX ttl  (same hash tag T: same cluster slot)
    P:credentials        sorted set, score 0, members M in key order   (scan_credentials)
    P:expiring           sorted set, active credentials by expires_at  (expiring_before)
    P:user:{U}           set of the user's M                           (list_credentials)
    P:ident:{C,S}        string: user id bound to (connection, subject), SET NX
    P:links:{C,U}        set of the subjects bound to that user         (unlink_/list_identities)
    P:state:H / P:session:H    "<expires_at> <payload>", PX until expiry (+ a grace minute)
    P:records:K          hash: name -> data, the documents of kind K     (put_record...)
    P:events             sorted set, score at, member "<seq, 20 digits>:<data>"  (audit)
    P:events:seq:{P:events}   counter of the events ever appended (tag: P:events's slot)
    P:schema_version

``M`` is the credential key's parts joined by NUL, escaped so that byte order is key order;
``T`` is ``M`` with ``%`` and ``}`` percent-escaped, so no id can end a hash tag early.

Redis Cluster (``redis+cluster://``): every script touches the keys of one hash slot only
(``acquire``, ``cas_release``: the record and its lease share the tag ``T``; ``append``: the
event counter's tag is the name of the events key, whose slot is that of its whole name).
Everything else is one key per command. The credential record is the authority; the three
indexes live in other cluster slots, so they are written as separate commands: entries are
added before a record is written (a crash leaves a stale entry, never a missing one),
reconciled after every write and delete until a re-read agrees, and readers skip entries
whose record is gone.

Those orders are written into the batches: a :data:`FENCE` in a batch says that the
commands after it may run only once the commands before it have been applied. One Redis
pipeline keeps them in order anyway (one connection); a cluster pipeline sends each node its
commands at once, so the cluster runner waits for the replies at each fence.

An event's member starts with its sequence number, zero-padded: members of equal score sort
by bytes, so events of the same instant keep their append order (and equal events stay
distinct). A batch takes its numbers and is added in one script, atomically.
"""

from __future__ import annotations

import contextlib
import math
import re
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from redis.exceptions import RedisClusterException, RedisError

from ..core.errors import ConfigurationError, StorageUnavailable
from ..core.model import ACTIVE, CredentialKey, StoredCredential

__all__ = [
    "DEFAULT_PREFIX",
    "FENCE",
    "PER_KEY_SCRIPTS",
    "POOL_WAIT",
    "REDIS_ERRORS",
    "SCHEMA_VERSION",
    "SCRIPTS",
    "SINGLE_SERVER_SCRIPTS",
    "SOCKET_TIMEOUT",
    "Command",
    "Eval",
    "Fence",
    "Op",
    "RedisOps",
    "eval_command",
    "mapped_errors",
    "merge_reads",
    "stages",
    "unavailable",
]

SCHEMA_VERSION = 1
DEFAULT_PREFIX = "oauth_vault"
MIN_SERVER = (6, 2)  # GETDEL, ZADD LT
SOCKET_TIMEOUT = 2.0
POOL_WAIT = 5.0  # seconds a caller waits for a free pooled connection
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

_CAS_RELEASE = """
local current = tonumber(redis.call('HGET', KEYS[1], 'version') or '0')
if current ~= tonumber(ARGV[1]) then return 0 end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'version', tostring(current + 1), unpack(ARGV, 3))
local held = redis.call('GET', KEYS[2])
if held then
  local sep = string.find(held, ' ', 1, true)
  if sep and string.sub(held, sep + 1) == ARGV[2] then redis.call('DEL', KEYS[2]) end
end
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
local members = {}
for i = 1, n do
  members[#members + 1] = ARGV[2 * i - 1]
  members[#members + 1] = string.format('%020d', last - n + i) .. ':' .. ARGV[2 * i]
  if #members == 512 or i == n then  -- one ZADD per 256 events (unpack's stack is bounded)
    redis.call('ZADD', KEYS[1], unpack(members))
    members = {}
  end
end
return last
"""

# Sessions and their users' credentials in one round trip, on a single server only: the
# record's key comes from the session's value, so it is not among KEYS (a cluster refuses
# that). One entry per key of KEYS (false: no session), so that the reads of one batch that
# share ARGV go as one call (see PER_KEY_SCRIPTS). The user id is escaped as RedisOps.record
# escapes it: ARGV[1] and ARGV[2] are the key's escaped parts before and after it, ARGV[3...]
# the fields.
_SESSION_CREDENTIAL = r"""
local found = {}
for i, key in ipairs(KEYS) do
  local session = redis.call('GET', key)
  if session then
    local user = string.sub(session, string.find(session, ' ', 1, true) + 1)
    local part = string.gsub(string.gsub(user, '\1', '\1\2'), '%z', '\1\1')
    part = string.gsub(string.gsub(part, '%%', '%%25'), '}', '%%7D')
    found[i] = {session, unpack(redis.call('HMGET', ARGV[1] .. part .. ARGV[2], unpack(ARGV, 3)))}
  else
    found[i] = false
  end
end
return found
"""

SCRIPTS = {
    "cas": _CAS,
    "cas_release": _CAS_RELEASE,
    "acquire": _ACQUIRE,
    "release": _RELEASE,
    "link": _LINK,
    "unlink": _UNLINK,
    "append": _APPEND,
    "session_credential": _SESSION_CREDENTIAL,
}
SINGLE_SERVER_SCRIPTS = frozenset({"session_credential"})
"""Scripts whose keys are not all among their KEYS: never run on a cluster."""
PER_KEY_SCRIPTS = frozenset({"session_credential"})
"""Scripts that answer a list with one entry per key, each from its key and ARGV alone: calls
of one with the same ARGV can go as one call over all their keys (:func:`merge_reads`)."""


@dataclass(frozen=True)
class Eval:
    """A call of one of :data:`SCRIPTS` (EVALSHA, loading the script when missing)."""

    script: str
    keys: tuple[bytes, ...]
    args: tuple[Any, ...]


@dataclass(frozen=True)
class Fence:
    """In a batch: the commands after it run after those before it have been applied."""


FENCE = Fence()

Command = tuple[Any, ...] | Eval | Fence
Op = Generator[list[Command], list[Any], T]


def merge_reads(
    commands: Sequence[tuple[Any, ...] | Eval],
) -> tuple[list[tuple[Any, ...] | Eval], Callable[[Sequence[Any]], list[Any]]]:
    """What to send for a batch of reads: the calls of a :data:`PER_KEY_SCRIPTS` script
    with the same ARGV become one call over all their keys (each key once); the other
    commands go as they are. Also returned: what turns the replies to those into one reply
    per command of ``commands``, each a script call's own list."""
    sent: list[tuple[Any, ...] | Eval] = []
    keys: dict[int, dict[bytes, int]] = {}  # merged call (its index in sent): key -> position
    groups: dict[tuple[str, tuple[Any, ...]], int] = {}
    where: list[tuple[int, tuple[bytes, ...] | None]] = []
    for command in commands:
        if isinstance(command, Eval) and command.script in PER_KEY_SCRIPTS:
            at = groups.setdefault((command.script, command.args), len(sent))
            if at == len(sent):
                sent.append(command)
                keys[at] = {}
            positions = keys[at]
            for key in command.keys:
                positions.setdefault(key, len(positions))
            where.append((at, command.keys))
        else:
            where.append((len(sent), None))
            sent.append(command)
    for at, positions in keys.items():
        call = sent[at]
        assert isinstance(call, Eval)
        if tuple(positions) != call.keys:
            sent[at] = Eval(call.script, tuple(positions), call.args)

    def split(replies: Sequence[Any]) -> list[Any]:
        answers: list[Any] = []
        for at, own in where:
            reply = replies[at]
            if own is None:
                answers.append(reply)
            else:
                positions = keys[at]
                answers.append([reply[positions[key]] for key in own])
        return answers

    return sent, split


def stages(batch: Sequence[Command]) -> list[list[tuple[Any, ...] | Eval]]:
    """The batch cut at its fences: the commands of a stage may run in any order."""
    cut: list[list[tuple[Any, ...] | Eval]] = [[]]
    for command in batch:
        if isinstance(command, Fence):
            cut.append([])
        else:
            cut[-1].append(command)
    return [stage for stage in cut if stage]


def eval_command(command: Eval) -> tuple[Any, ...]:
    """The script call as a plain ``EVAL`` with the script's text: a cluster pipeline cannot
    load a script that a node is missing (``NOSCRIPT``), so a script runs there by text."""
    return ("EVAL", SCRIPTS[command.script], len(command.keys), *command.keys, *command.args)


REDIS_ERRORS = (RedisError, RedisClusterException)
"""What redis-py raises for a store that fails: :func:`unavailable` maps each."""


def unavailable(err: BaseException) -> StorageUnavailable:
    """The :class:`StorageUnavailable` for one of :data:`REDIS_ERRORS` (its class name only:
    never the URL or its password)."""
    return StorageUnavailable(f"storage error: {type(err).__name__}")


@contextlib.contextmanager
def mapped_errors() -> Iterator[None]:
    try:
        yield
    except REDIS_ERRORS as err:
        raise unavailable(err) from None


# -- key encoding -----------------------------------------------------------------------------


def _esc(part: str) -> bytes:
    return part.encode().replace(b"\x01", b"\x01\x02").replace(b"\x00", b"\x01\x01")


def _unesc(part: bytes) -> str:
    return re.sub(
        rb"\x01(.)", lambda m: b"\x00" if m[1] == b"\x01" else b"\x01", part, flags=re.DOTALL
    ).decode()


def _member(*parts: str) -> bytes:
    return b"\x00".join(map(_esc, parts))


def _tag(member: bytes) -> bytes:
    """``member`` as a hash tag: no closing brace in it."""
    return member.replace(b"%", b"%25").replace(b"}", b"%7D")


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


class RedisOps:
    """Every storage operation, once: generators of command batches (no I/O here)."""

    def __init__(self, prefix: str) -> None:
        if not prefix or "{" in prefix or "}" in prefix:
            raise ConfigurationError(
                "OAUTH_VAULT_STORAGE_URL: the Redis key prefix must be non-empty, without braces"
            )
        self.prefix = prefix
        self._p = prefix.encode() + b":"
        # get_session_credential's script arguments per (connection, account), at most 1,024
        self._session_args: dict[tuple[str, str], tuple[bytes, ...]] = {}
        self.all = self._p + b"credentials"
        self.expiring = self._p + b"expiring"
        self.schema = self._p + b"schema_version"
        self.events = self._p + b"events"
        # a hash tag naming the events key: the same slot as the events key (no tag, so its
        # whole name is hashed), for the append script that touches both
        self.event_seq = self.events + b":seq:{" + self.events + b"}"
        self.old_event_seq = self._p + b"events:seq"  # its name before cluster support

    def _tagged(self, kind: bytes, *parts: str) -> bytes:
        return self._p + kind + b":{" + _tag(_member(*parts)) + b"}"

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

    def setup(self) -> Op[None]:
        _, info, _, found, old_seq = yield [
            ("PING",),
            ("INFO", "server"),
            ("SET", self.schema, SCHEMA_VERSION, "NX"),
            ("GET", self.schema),
            ("GET", self.old_event_seq),
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
        if old_seq is not None:  # a store written before the counter moved: carry it over
            yield [("SET", self.event_seq, old_seq, "NX")]

    # -- credentials --------------------------------------------------------------------------

    def get_credential(self, key: CredentialKey) -> Op[StoredCredential | None]:
        (values,) = yield [("HMGET", self.record(key), *_FIELDS)]
        return _record(key, values)

    def _fetch(self, members: Sequence[bytes]) -> Op[list[StoredCredential]]:
        """The records of index members, in order; a stale member (record gone) is skipped."""
        if not members:
            return []
        keys = [_key_of(m) for m in members]
        replies = yield [("HMGET", self.record(k), *_FIELDS) for k in keys]
        return [r for r in map(_record, keys, replies) if r is not None]

    def _index(self, key: CredentialKey, state: _State) -> list[Command]:
        member = _member(*key.parts())
        if state is None:
            return [
                ("SREM", self.user(key.user_id), member),
                ("ZREM", self.all, member),
                ("ZREM", self.expiring, member),
            ]
        status, expires_at = state
        expiry: Command = ("ZREM", self.expiring, member)
        if status == ACTIVE and expires_at is not None:
            expiry = ("ZADD", self.expiring, expires_at, member)
        return [("SADD", self.user(key.user_id), member), ("ZADD", self.all, 0, member), expiry]

    def _reconcile(self, key: CredentialKey, state: _State) -> Op[None]:
        """Write the indexes for ``state``, re-read the record, repeat until they agree.

        The last index write of all is followed by a re-read that matches it, and any later
        record write is followed by its writer's own reconcile: the indexes end up right.
        """
        for _ in range(_RECONCILE_ROUNDS):
            *_, seen = yield [
                *self._index(key, state),
                FENCE,
                ("HMGET", self.record(key), b"status", b"expires_at"),
            ]
            if _state(seen) == state:
                return
            state = _state(seen)

    def save_credential(
        self, record: StoredCredential, expected_version: int, owner: str | None = None
    ) -> Op[bool]:
        """Compare-and-set; with ``owner``, the write also releases that owner's lease."""
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
        before: list[Command] = [
            ("SADD", self.user(key.user_id), member),
            ("ZADD", self.all, 0, member),
        ]
        if record.status == ACTIVE and record.expires_at is not None:
            # LT: the index may say "expires sooner" than the record, never "later"
            before.append(("ZADD", self.expiring, "LT", record.expires_at, member))
        if owner is None:
            cas = Eval("cas", (self.record(key),), (expected_version, *fields))
        else:
            keys = (self.record(key), self.lease(key))
            cas = Eval("cas_release", keys, (expected_version, owner, *fields))
        *_, version = yield [*before, FENCE, cas]
        state: _State = (record.status, record.expires_at)
        if not version:
            (seen,) = yield [("HMGET", self.record(key), b"status", b"expires_at")]
            state = _state(seen)
        yield from self._reconcile(key, state)
        return bool(version)

    def delete_credential(self, key: CredentialKey) -> Op[bool]:
        deleted, _ = yield [("DEL", self.record(key)), ("DEL", self.lease(key))]
        yield from self._reconcile(key, None)
        return bool(deleted)

    def list_credentials(self, user_id: str) -> Op[list[StoredCredential]]:
        (members,) = yield [("SMEMBERS", self.user(user_id))]
        return (yield from self._fetch(sorted(members)))

    def scan_credentials(
        self, after: CredentialKey | None, limit: int, expiring_before: float | None
    ) -> Op[list[StoredCredential]]:
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
    ) -> Op[list[StoredCredential]]:
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

    def acquire_lease(self, key: CredentialKey, owner: str, ttl: float, now: float) -> Op[bool]:
        args = (owner, _num(now), _num(now + ttl), max(1, math.ceil(ttl * 1000)))
        (won,) = yield [Eval("acquire", (self.record(key), self.lease(key)), args)]
        return bool(won)

    def release_lease(self, key: CredentialKey, owner: str) -> Op[None]:
        yield [Eval("release", (self.lease(key),), (owner,))]

    # -- identities ---------------------------------------------------------------------------

    def get_identity(self, connection_id: str, subject: str) -> Op[str | None]:
        (user,) = yield [("GET", self.identity(connection_id, subject))]
        return None if user is None else bytes(user).decode()

    def link_identity(self, connection_id: str, subject: str, user_id: str) -> Op[str]:
        # the reverse index first: a lost race or a crash leaves a stale entry, which
        # unlink_identities skips (it deletes an identity only if it is still this user's)
        _, owner = yield [
            ("SADD", self.links(connection_id, user_id), subject),
            FENCE,
            Eval("link", (self.identity(connection_id, subject),), (user_id,)),
        ]
        return bytes(owner).decode()

    def unlink_identities(self, connection_id: str, user_id: str) -> Op[None]:
        links = self.links(connection_id, user_id)
        (subjects,) = yield [("SMEMBERS", links)]
        if subjects:
            yield [
                *(
                    Eval("unlink", (self.identity(connection_id, s.decode()),), (user_id,))
                    for s in subjects
                ),
                FENCE,
                ("SREM", links, *subjects),
            ]

    def list_identities(self, connection_id: str, user_id: str) -> Op[list[str]]:
        """The reverse index's subjects whose identity still names this user: an entry may be
        stale (a lost race, a crash, the identity unlinked from its owner). One GET per
        subject, each key in its own slot, so a cluster pipeline takes them all at once."""
        (members,) = yield [("SMEMBERS", self.links(connection_id, user_id))]
        subjects = sorted(bytes(m).decode() for m in members)
        if not subjects:
            return []
        owners = yield [("GET", self.identity(connection_id, s)) for s in subjects]
        wanted = user_id.encode()
        return [
            s
            for s, owner in zip(subjects, owners, strict=True)
            if owner is not None and bytes(owner) == wanted
        ]

    # -- login states and sessions ------------------------------------------------------------

    def put_login_state(self, state_hash: str, data: bytes, expires_at: float) -> Op[None]:
        value = _num(expires_at).encode() + b" " + data
        yield [("SET", self.state(state_hash), value, "PX", _gc_ms(expires_at))]

    def take_login_state(self, state_hash: str, now: float) -> Op[bytes | None]:
        (value,) = yield [("GETDEL", self.state(state_hash))]
        if value is None:
            return None
        expires_at, _, data = bytes(value).partition(b" ")
        return data if float(expires_at) > now else None

    def create_session(self, session_hash: str, user_id: str, expires_at: float) -> Op[None]:
        value = f"{_num(expires_at)} {user_id}"
        yield [("SET", self.session(session_hash), value, "PX", _gc_ms(expires_at))]

    def get_session(self, session_hash: str, now: float) -> Op[str | None]:
        (value,) = yield [("GET", self.session(session_hash))]
        if value is None:
            return None
        expires_at, _, user_id = bytes(value).decode().partition(" ")
        return user_id if float(expires_at) > now else None

    def get_session_credential(
        self, session_hash: str, now: float, connection_id: str, account: str
    ) -> Op[tuple[str, StoredCredential | None] | None]:
        """The session and its user's credential in one script (a single server only)."""
        args = self._session_args.get((connection_id, account))
        if args is None:  # the record key's escaped parts around the user id, and the fields
            before = self._p + b"cred:{" + _tag(_esc(connection_id)) + b"\x00"
            after = b"\x00" + _tag(_esc(account)) + b"}"
            if len(self._session_args) >= 1024:
                self._session_args.clear()
            args = self._session_args[connection_id, account] = (before, after, *_FIELDS)
        ((found,),) = yield [Eval("session_credential", (self.session(session_hash),), args)]
        if found is None:
            return None
        session, *values = found
        expires_at, _, user_id = bytes(session).decode().partition(" ")
        if float(expires_at) <= now:
            return None
        return user_id, _record(CredentialKey(connection_id, user_id, account), values)

    def delete_session(self, session_hash: str) -> Op[None]:
        yield [("DEL", self.session(session_hash))]

    # -- records and events -------------------------------------------------------------------

    def put_record(self, kind: str, name: str, data: bytes, only_if_absent: bool) -> Op[bool]:
        command = "HSETNX" if only_if_absent else "HSET"
        (added,) = yield [(command, self.records(kind), name, data)]
        return bool(added) or not only_if_absent  # HSET counts new fields only

    def get_record(self, kind: str, name: str) -> Op[bytes | None]:
        (data,) = yield [("HGET", self.records(kind), name)]
        return None if data is None else bytes(data)

    def delete_record(self, kind: str, name: str) -> Op[bool]:
        (deleted,) = yield [("HDEL", self.records(kind), name)]
        return bool(deleted)

    def list_records(self, kind: str) -> Op[list[tuple[str, bytes]]]:
        (found,) = yield [("HGETALL", self.records(kind))]
        # UTF-8 byte order is code point order: sorted as the contract sorts names
        return sorted((bytes(n).decode(), bytes(d)) for n, d in dict(found).items())

    def append_events(self, events: Sequence[tuple[float, bytes]]) -> Op[None]:
        if events:
            args = [part for at, data in events for part in (_num(at), data)]
            yield [Eval("append", (self.events, self.event_seq), tuple(args))]

    def read_events(self, since: float, limit: int) -> Op[list[tuple[float, bytes]]]:
        if limit <= 0:
            return []
        (reply,) = yield [
            ("ZREVRANGEBYSCORE", self.events, "+inf", _num(since), "WITHSCORES", "LIMIT", 0, limit)
        ]
        if reply and not isinstance(reply[0], (list, tuple)):  # RESP2: member, score, ...
            reply = list(zip(reply[::2], reply[1::2], strict=True))
        found = [(float(score), bytes(member).partition(b":")[2]) for member, score in reply]
        return found[::-1]
