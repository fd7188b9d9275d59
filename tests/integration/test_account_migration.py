"""The migration test upgrades a store filled by the previous release while a reader runs.

On SQLite, PostgreSQL and Redis (the throwaway servers from ``tests/support``). The previous
release is the code of :data:`PREVIOUS_RELEASE` (before several accounts per provider), taken
from git (``git archive``) and run in a subprocess with that ``src`` first on ``PYTHONPATH``
(the subprocess checks that it imported it, not the editable install of this tree). There:

1. an in-process testing OpenID provider of that release (served on a loopback port too, so
   this process can refresh against it at the end) grants real token sets through its
   authorization and token endpoints; the store is filled as that release's logins fill it,
   ``storage.link_identity`` and ``vault.put_tokens``: most users with one subject linked,
   some with two (ambiguous), some with none (unlinked). Then the provider grants
   :data:`HOT_TTL`-second access tokens: half of the users' credentials are refreshed once
   (at times spread over a second) and from then on that release refreshes them (with
   rotation, each every second, evenly spread) while it reads;
2. it reads every user's credential in a loop, counting reads, refreshes and errors, until
   told the migration is over and it has read everything :data:`PASSES_AFTER` more times.

Meanwhile this process (the new code) runs ``Vault.migrate_accounts(batch=50)`` on the same
store with the same settings. Then: the previous release read without a single error (and
the provider refused no refresh token) before, during and after the migration; the report
counts what was filled; every singly linked default record names its subject, except those
the previous release refreshed after the migration had rewritten them (its refresh does not
know the field and drops it: a later run sets it again, and then one more migrates nothing);
the new code reads every credential without an account and by its account id; the CLI's
``db migrate-accounts`` then finds nothing left to do.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import queue
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pytest

from oauth_vault_mw import CredentialKey, Settings, Vault
from oauth_vault_mw._sync.accounts import DORMANT_AFTER, AccountMigration
from oauth_vault_mw.cli.main import main as cli_main
from oauth_vault_mw.core.accounts import account_id, legacy_account_id
from oauth_vault_mw.core.records import open_record

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
PREVIOUS_RELEASE = "43c5f64"
"""The last commit before several accounts per provider (its records have no subject)."""
CONNECTION = "demo"
SINGLE = 360  # users with one subject of the connection linked
AMBIGUOUS = 20  # users with two subjects linked (one credential)
UNLINKED = 20  # users with a credential and no subject linked
HOT_EVERY = 2  # every other user is hot: refreshed to HOT_TTL-second tokens (others: an hour)
HOT_TTL = 2  # refreshed at half its life (min_validity 60 > 2): every second while read
PASSES_AFTER = 3  # full reads of every user after the migration ended...
SECONDS_AFTER = 2.5  # ...lasting at least this long (the hot tokens are refreshed meanwhile)
READER_LIMIT = 40.0  # seconds the previous release reads at most...
READER_MAX_READS = 5_000_000  # ...and reads at most (SQLite reads ~50,000 a second)
BATCH = 50


@dataclass(frozen=True)
class Plan:
    """Who is in the store: user ids, the subjects linked to each, and the hot ones."""

    users: list[str]
    linked: dict[str, list[str]]  # user -> subjects linked (0, 1 or 2)
    login: dict[str, str]  # user -> the provider login whose tokens the record holds
    hot: list[str]

    @classmethod
    def make(cls) -> Plan:
        users: list[str] = []
        linked: dict[str, list[str]] = {}
        login: dict[str, str] = {}
        for i in range(SINGLE + AMBIGUOUS + UNLINKED):
            user = f"user-{i:04d}"
            subject = f"acct-{i:04d}"  # the provider's subject (its login) of the account
            users.append(user)
            login[user] = subject
            if i < SINGLE:
                linked[user] = [subject]
            elif i < SINGLE + AMBIGUOUS:
                linked[user] = [subject, f"{subject}-work"]
            else:
                linked[user] = []
        hot = [u for i, u in enumerate(users) if i % HOT_EVERY == 0]
        return cls(users, linked, login, hot)

    def with_links(self, count: int) -> list[str]:
        return [u for u in self.users if len(self.linked[u]) == count]

    def to_json(self) -> str:
        return json.dumps(
            {
                "users": self.users,
                "linked": self.linked,
                "login": self.login,
                "hot": self.hot,
                "hot_ttl": HOT_TTL,
                "passes_after": PASSES_AFTER,
                "seconds_after": SECONDS_AFTER,
                "limit": READER_LIMIT,
                "max_reads": READER_MAX_READS,
            }
        )


# The previous release, in its own interpreter. One JSON line per event on stdout; commands
# on stdin: "migrating", "migrated" (the phase the reads and refreshes are counted in), "exit".
OLD_RELEASE = r"""
import base64, hashlib, json, secrets, sys, threading, time
from collections import Counter
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

extracted, storage_url, plan = Path(sys.argv[1]).resolve(), sys.argv[2], json.loads(sys.argv[3])

import oauth_vault_mw
imported = Path(oauth_vault_mw.__file__).resolve()
if not imported.is_relative_to(extracted):
    sys.exit(f"imported {imported}, not the previous release under {extracted}")

import httpx
from oauth_vault_mw import CredentialKey, Settings, Vault
from oauth_vault_mw.core.model import TokenSet
from oauth_vault_mw.testing import OpenIDProvider

CONNECTION = "demo"
SCOPES = "openid profile email offline_access"


def say(event, **data):
    print(json.dumps({"event": event, **data}), flush=True)


provider = OpenIDProvider(access_token_ttl=3600)
with provider.serve() as issuer:  # the new code refreshes through it at the end
    mapping = provider.settings(CONNECTION, storage_url=storage_url)
    settings = Settings.from_mapping(mapping)
    vault = Vault(settings, http_transport=provider.transport())
    vault.startup()
    redirect_uri = settings.redirect_uri(CONNECTION)
    secret = mapping["connections"][0]["client_secret"]
    browser = httpx.Client(transport=provider.transport())

    def granted(login):
        # what a login gets: an authorization (PKCE) approved for `login`, its code exchanged
        verifier = secrets.token_urlsafe(48)
        digest = hashlib.sha256(verifier.encode()).digest()
        challenge = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
        query = urlencode({
            "response_type": "code", "client_id": CONNECTION, "redirect_uri": redirect_uri,
            "scope": SCOPES, "state": secrets.token_urlsafe(16),
            "code_challenge": challenge, "code_challenge_method": "S256",
        })
        location = provider.approve(f"{issuer}/authorize?{query}", login)
        code = parse_qs(urlsplit(location).query)["code"][0]
        reply = browser.post(f"{issuer}/token", auth=(CONNECTION, secret), data={
            "grant_type": "authorization_code", "code": code,
            "redirect_uri": redirect_uri, "code_verifier": verifier,
        })
        reply.raise_for_status()
        body = reply.json()
        now = time.time()
        return TokenSet(
            access_token=body["access_token"], refresh_token=body["refresh_token"],
            token_type=body["token_type"], expires_at=now + body["expires_in"],
            scope=body["scope"], obtained_at=now, login_at=now, asked_scope=SCOPES,
            profile=(("name", login.title()), ("email", f"{login}@example.test")),
        )

    # -- fill, as this release's logins do: link the identity, store the tokens (an hour)
    last = {}
    for user in plan["users"]:
        for subject in plan["linked"][user]:
            assert vault.storage.link_identity(CONNECTION, subject, user) == user
        tokens = granted(plan["login"][user])
        vault.put_tokens(CredentialKey(CONNECTION, user), tokens)
        last[user] = tokens.access_token
    # From now on the provider grants HOT_TTL-second tokens. The hot users' credentials are
    # refreshed once each (force_refresh) at times spread over half that life, the first
    # second of reading: each is due again at half-life, so their refreshes go on evenly
    # spread rather than all at once.
    provider.access_token_ttl = plan["hot_ttl"]
    say("filled", settings=mapping)
    hot = plan["hot"]
    begun = time.monotonic()
    prime_at = {u: begun + n / len(hot) * plan["hot_ttl"] / 2 for n, u in enumerate(hot)}

    # -- read until told the migration is over, then PASSES_AFTER passes more
    phase = ["filled"]
    exiting = threading.Event()

    def listen():
        for line in sys.stdin:
            word = line.strip()
            if word == "exit":
                break
            phase[0] = word
        exiting.set()

    threading.Thread(target=listen, daemon=True).start()
    reads, refreshes, refreshed = Counter(), Counter(), {}
    errors, error_count, stale, passes_after = [], 0, 0, 0
    migrated_at, cut_short, announced = None, None, False
    started = time.monotonic()
    while not exiting.is_set():
        pass_phase = phase[0]
        if pass_phase == "migrated" and migrated_at is None:
            migrated_at = time.monotonic()
        for user in plan["users"]:
            force = user in prime_at and time.monotonic() >= prime_at[user]
            try:
                creds = vault.get_connection_credentials(CONNECTION, user, force_refresh=force)
                if force:
                    del prime_at[user]
            except Exception as exc:
                error_count += 1
                if len(errors) < 20:
                    errors.append(f"{phase[0]} {user}: {type(exc).__name__}: {exc}")
                continue
            now_phase = phase[0]
            reads[now_phase] += 1
            if creds.expires_at is not None and creds.expires_at <= time.time():
                stale += 1
            if creds.access_token != last[user]:
                refreshes[now_phase] += 1
                refreshed.setdefault(now_phase, []).append(user)
                last[user] = creds.access_token
        if pass_phase == "migrated":
            passes_after += 1
            if passes_after >= plan["passes_after"] and (
                time.monotonic() - migrated_at >= plan["seconds_after"]
            ):
                break
        if not prime_at and not announced:  # every hot one refreshed once
            announced = True
            say("refreshing", refreshes=sum(refreshes.values()))
        if time.monotonic() - started > plan["limit"]:
            cut_short = "time"
            break
        if sum(reads.values()) >= plan["max_reads"]:
            cut_short = "count"
            break
    counts = provider.counts
    say(
        "summary",
        reads=dict(reads), refreshes=dict(refreshes), refreshed=refreshed,
        errors=errors, error_count=error_count, stale=stale, passes_after=passes_after,
        cut_short=cut_short, provider_refreshes=counts.refreshes,
        provider_refusals=dict(counts.refusals),
    )
    exiting.wait(120)  # the provider keeps serving until then
    vault.close()
"""


@pytest.fixture(scope="module")
def previous_release(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The previous release's ``src``, from git, extracted once for the module (a shallow
    clone first fetches the rest of its history from its origin)."""

    def git(*args: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            ["git", "-C", str(ROOT), *args], capture_output=True, check=False, timeout=300
        )

    try:
        archive = git("archive", "--format=tar", PREVIOUS_RELEASE, "src")
        if (
            archive.returncode != 0
            and git("rev-parse", "--is-shallow-repository").stdout.strip() == b"true"
        ):
            git("fetch", "--quiet", "--unshallow")
            archive = git("archive", "--format=tar", PREVIOUS_RELEASE, "src")
    except FileNotFoundError:
        pytest.fail("git is not installed: the previous release is taken from git history")
    if archive.returncode != 0:
        pytest.fail(
            f"commit {PREVIOUS_RELEASE} (the previous release) is not in this clone's history "
            f"(a shallow clone? fetch the full history): {archive.stderr.decode().strip()}"
        )
    target = tmp_path_factory.mktemp("previous-release")
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(target, filter="data")
    src = target / "src"
    assert (src / "oauth_vault_mw" / "testing" / "__init__.py").is_file()
    return src


@pytest.fixture(params=["sqlite", "postgresql", "redis"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty store of each kind."""
    kind: str = request.param
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'shared.db'}"
    fixture = {"postgresql": "postgres_store_url", "redis": "redis_store_url"}[kind]
    return str(request.getfixturevalue(fixture))


class OldRelease:
    """The previous release's process (:data:`OLD_RELEASE`): its events, commands to it."""

    def __init__(self, src: Path, store_url: str, plan: Plan, tmp_path: Path) -> None:
        script = tmp_path / "previous_release_reader.py"
        script.write_text(OLD_RELEASE)
        self.stderr_path = tmp_path / "previous_release.stderr"
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(src), str(ROOT)])}
        with self.stderr_path.open("w") as stderr:
            self.process = subprocess.Popen(
                [sys.executable, str(script), str(src), store_url, plan.to_json()],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
                env=env,
                cwd=tmp_path,
            )
        self._events: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._pump_thread = threading.Thread(target=self._pump, daemon=True)
        self._pump_thread.start()

    def _pump(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._events.put(json.loads(line))
        self._events.put(None)

    def stderr(self) -> str:
        return self.stderr_path.read_text()[-4000:]

    def expect(self, event: str, timeout: float) -> dict[str, Any]:
        try:
            got = self._events.get(timeout=timeout)
        except queue.Empty:
            pytest.fail(f"no {event!r} from the previous release in {timeout} s:\n{self.stderr()}")
        if got is None:
            code = self.process.wait(10)
            pytest.fail(f"the previous release exited ({code}) before {event!r}:\n{self.stderr()}")
        assert got["event"] == event, (got, self.stderr())
        return got

    def send(self, command: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()

    def stop(self) -> int:
        """Tell it to exit (killed if it does not within 30 s); its exit code."""
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        if self.process.poll() is None:
            with contextlib.suppress(OSError):
                self.send("exit")
        with contextlib.suppress(OSError):
            self.process.stdin.close()
        try:
            code = self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait(10)
        self._pump_thread.join(10)
        self.process.stdout.close()
        return code


@pytest.fixture
def old_release(
    previous_release: Path, store_url: str, tmp_path: Path
) -> Iterator[tuple[OldRelease, Plan]]:
    plan = Plan.make()
    old = OldRelease(previous_release, store_url, plan, tmp_path)
    try:
        yield old, plan
    finally:
        old.stop()


def environ(mapping: dict[str, Any]) -> dict[str, str]:
    """Settings as the CLI reads them: ``OAUTH_VAULT_*`` strings."""
    out: dict[str, str] = {}
    for key, value in mapping.items():
        name = f"OAUTH_VAULT_{key.upper()}"
        if key == "encryption_keys":
            out[name] = ",".join(value)
        elif isinstance(value, (list, dict)):
            out[name] = json.dumps(value)
        else:
            out[name] = str(value)
    return out


def without_subject(vault: Vault, users: list[str]) -> set[str]:
    """The users whose default record's token set has no subject."""
    missing = set()
    for user in users:
        record = vault.storage.get_credential(CredentialKey(CONNECTION, user))
        assert record is not None, user
        if open_record(vault.sealer, record).subject is None:
            missing.add(user)
    return missing


def test_migration_upgrades_previous_release_store_while_it_reads(
    old_release: tuple[OldRelease, Plan],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    old, plan = old_release
    single, ambiguous, unlinked = plan.with_links(1), plan.with_links(2), plan.with_links(0)
    total = len(plan.users)
    mapping: dict[str, Any] = old.expect("filled", timeout=60)["settings"]
    # the previous release is reading and has refreshed every hot credential once (from now
    # on it refreshes about 200 of them a second, evenly spread): migrate now
    old.expect("refreshing", timeout=HOT_TTL * 5)
    vault = Vault(Settings.from_mapping(mapping))
    vault.startup()
    try:
        old.send("migrating")
        started = time.monotonic()
        first = vault.migrate_accounts(batch=BATCH)
        migration_seconds = time.monotonic() - started
        old.send("migrated")
        summary = old.expect("summary", timeout=READER_LIMIT + 10)
        shown = {k: v for k, v in summary.items() if k != "refreshed"}
        context = f"migration {migration_seconds:.2f} s, {first}, reader {shown}"

        # the previous release read without an error before, during and after the migration
        assert summary["cut_short"] is None, context
        assert summary["error_count"] == 0, context
        assert summary["stale"] == 0, context  # never served an expired token
        assert summary["provider_refusals"] == {}, context  # no refresh token refused
        assert summary["passes_after"] >= PASSES_AFTER, context
        assert summary["reads"].get("migrated", 0) >= PASSES_AFTER * total, context
        refreshes: dict[str, int] = summary["refreshes"]
        # its refreshes ran before, while and after the migration rewrote the records
        assert refreshes.get("filled", 0) > 0, context
        assert refreshes.get("migrating", 0) > 0, context
        assert refreshes.get("migrated", 0) > 0, context
        assert summary["provider_refreshes"] == sum(refreshes.values()), context

        # the report counts what was filled (nothing had a subject yet)
        assert first.scanned == total, context
        assert first.migrated + first.busy + first.due == len(single), context
        assert first.already == 0, context
        assert (first.ambiguous, first.unlinked, first.unreadable) == (
            len(ambiguous),
            len(unlinked),
            0,
        ), context

        # The previous release's refresh rewrites the token set without the subject (it does
        # not know the field): only records it refreshed once the migration had started lack
        # it now. The next run gives it back to them (and to any left busy), no more.
        missing = without_subject(vault, single)
        refreshed = summary["refreshed"]
        since = set(refreshed.get("migrating", [])) | set(refreshed.get("migrated", []))
        # the rest: those it left, due for a refresh a reader of the previous release may
        # have been waiting for (expiring within a minute, or expired minutes ago)
        assert len(missing - since) <= first.busy + first.due, (sorted(missing - since), context)
        # the records it read after the migration without refreshing them kept the subject:
        # it read them, sealed with a field it does not know, as before
        assert set(single) - since, context
        assert len(missing) >= first.busy
        assert without_subject(vault, ambiguous + unlinked) == set(ambiguous + unlinked)
        # A later run, once the tokens nobody reads any more have been expired for longer
        # than the migration waits (its clock moved on), names every one of them.
        later = Vault(
            Settings.from_mapping(mapping), clock=lambda: time.time() + DORMANT_AFTER + 60
        )
        try:
            second = later.migrate_accounts(batch=BATCH)
        finally:
            later.close()
        assert second == AccountMigration(
            scanned=total,
            migrated=len(missing),
            already=len(single) - len(missing),
            ambiguous=len(ambiguous),
            unlinked=len(unlinked),
        ), (second, context)
        assert without_subject(vault, single) == set()

        # every default record names its account now (ambiguous and unlinked ones stay as
        # they were); the new code reads each without an account and by its account id,
        # refreshing the expired ones at the previous release's provider (rotation intact)
        renewed = 0
        for user in plan.users:
            record = vault.storage.get_credential(CredentialKey(CONNECTION, user))
            assert record is not None
            stored = open_record(vault.sealer, record)
            subject = stored.subject
            if user in single:
                assert subject == plan.linked[user][0], user
                account = account_id(CONNECTION, plan.linked[user][0])
            else:
                assert subject is None, user
                account = legacy_account_id(CONNECTION, user)
            plain = vault.get_connection_credentials(CONNECTION, user)
            read = vault.storage.get_credential(CredentialKey(CONNECTION, user))
            by_id = vault.get_connection_credentials(CONNECTION, user, account=account)
            now_stored = vault.storage.get_credential(CredentialKey(CONNECTION, user))
            assert read is not None, user
            assert now_stored is not None, user
            # both name the one default record: the read by id answers what it holds, and
            # what the plain read answered unless the token came due in between (2 s tokens,
            # refreshed at half their life: a slow moment between the reads refreshes again)
            assert by_id.access_token == open_record(vault.sealer, now_stored).access_token, user
            if now_stored.version == read.version:
                assert by_id.access_token == plain.access_token, user
            renewed += plain.access_token != stored.access_token
            assert (by_id.expires_at or 0) > time.time(), user
            [listed] = vault.accounts(CONNECTION, user)
            assert (listed.account_id, listed.default) == (account, True), user
        # a refresh by the new code keeps the subject
        assert renewed > 0, context
        assert without_subject(vault, single) == set()

        # and a further run, through the CLI, has nothing left to do
        for name, value in environ(mapping).items():
            monkeypatch.setenv(name, value)
        capsys.readouterr()
        assert cli_main(["db", "migrate-accounts", "--batch", str(BATCH)]) == 0
        printed = capsys.readouterr().out
        assert f"scanned {total}, migrated 0, already {len(single)}, " in printed, printed
        assert f"ambiguous {len(ambiguous)}, unlinked {len(unlinked)}, " in printed, printed
        assert "unreadable 0, busy 0" in printed, printed
    finally:
        vault.close()
    assert old.stop() == 0, old.stderr()
    print(
        f"{vault.storage!r}: migration {migration_seconds:.2f} s {asdict(first)}; "
        f"the previous release's refreshes {refreshes}, reads {summary['reads']}; "
        f"subjects its refreshes dropped: {len(missing)}; refreshed by the new code: {renewed}"
    )
