"""The schema migrations of the SQL storage (Alembic), shipped in the package.

:meth:`~oauth_vault_mw.storage.sql.SQLStorage.setup` (and ``oauth-vault db init|upgrade``, and
the vault at start-up) calls :func:`upgrade`: no ``alembic.ini`` is needed. Revision ids are
stable (``oauth_vault_0001``, ...; branch label ``oauth_vault``) and the applied revision is
kept in its own table, :data:`VERSION_TABLE`, so a host app's ``alembic_version`` is never
touched. To run these migrations from a host app's own Alembic ``env.py``, and to keep the
host's autogenerate away from these tables, see docs/storage.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from ...core.errors import ConfigurationError

if TYPE_CHECKING:
    from alembic.config import Config

__all__ = [
    "BASELINE",
    "HEAD",
    "LOCK_KEY",
    "MIGRATIONS_DIR",
    "VERSION_TABLE",
    "alembic_config",
    "context_options",
    "current_revisions",
    "host_include_name",
    "upgrade",
    "vault_include_name",
]

MIGRATIONS_DIR = Path(__file__).resolve().parent
VERSION_TABLE = "oauth_vault_alembic_version"
HEAD = "oauth_vault_0003"
"""The newest revision (a test checks it against the scripts): at head, :func:`upgrade` does
not even import Alembic."""
BASELINE = "oauth_vault_0001"
"""The schema created before migrations existed (``metadata.create_all``): adopted, not
re-created, when its tables exist without a version row."""
LOCK_KEY = 8025825153780182132
"""The PostgreSQL advisory lock (``b"oauthvlt"``) that serialises concurrent upgrades."""

_version = sa.table(VERSION_TABLE, sa.column("version_num", sa.String))
_PREFIX = "oauth_vault_"


def alembic_config(connection: sa.Connection | None = None, url: str | None = None) -> Config:
    """An Alembic ``Config`` for these migrations, built in code (no ``alembic.ini``), for
    the ``alembic.command`` functions (``downgrade``, ``history``, ``revision`` when writing a
    new migration): they run env.py, which uses ``connection``, in its transaction if one is
    open, or else connects to ``url``. :func:`upgrade` needs none of this.
    """
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    config.set_main_option("path_separator", "os")
    if url is not None:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def current_revisions(connection: sa.Connection) -> tuple[str, ...]:
    """The revisions recorded in :data:`VERSION_TABLE` (empty before the first upgrade)."""
    if not sa.inspect(connection).has_table(VERSION_TABLE):
        return ()
    return tuple(str(v) for v in connection.execute(sa.select(_version.c.version_num)).scalars())


def context_options(dialect: str) -> dict[str, Any]:
    """The migration context of these migrations: here and in env.py alike."""
    from .._sql_statements import metadata

    return {
        "version_table": VERSION_TABLE,
        "target_metadata": metadata,
        "include_name": vault_include_name,
        "render_as_batch": dialect == "sqlite",  # ALTERs as SQLite table rebuilds
    }


def upgrade(connection: sa.Connection) -> None:
    """Bring the vault's tables on ``connection`` to :data:`HEAD`; idempotent.

    Runs in the connection's transaction and commits nothing: call it inside
    ``with connection.begin():`` (on PostgreSQL the DDL then rolls back as a whole on error),
    or from a host app's Alembic ``env.py`` inside ``context.begin_transaction()``. On
    PostgreSQL it first takes the advisory lock :data:`LOCK_KEY` for that transaction, so
    processes that start together upgrade one after the other and the later ones find the work
    done; SQLite callers serialise with ``BEGIN IMMEDIATE`` instead (as ``SQLStorage.setup``
    does).

    It drives Alembic's migration context directly rather than through ``alembic.command``
    and env.py, so it also works nested in another Alembic run (Alembic's module-level
    ``context`` proxy does not nest).

    Raises :class:`ConfigurationError` when the database holds a revision this library does not
    know: a newer oauth-vault-mw migrated it.
    """
    if connection.dialect.name == "postgresql":
        connection.execute(sa.select(sa.func.pg_advisory_xact_lock(LOCK_KEY)))
    current = current_revisions(connection)
    if current == (HEAD,):
        return
    from alembic.operations import Operations
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    script = ScriptDirectory(str(MIGRATIONS_DIR))
    known = {revision.revision for revision in script.walk_revisions()}
    for revision in current:
        if revision not in known:
            raise ConfigurationError(
                f"OAUTH_VAULT_STORAGE_URL: the database schema (revision {revision[:64]}) is "
                "newer than this library knows; upgrade oauth-vault-mw"
            )

    def to_head(heads: Any, _context: MigrationContext) -> Any:
        return script._upgrade_revs("head", heads)  # what alembic.command.upgrade runs

    options = {**context_options(connection.dialect.name), "script": script, "fn": to_head}
    context = MigrationContext.configure(connection, opts=options)
    if not current and sa.inspect(connection).has_table("oauth_vault_credentials"):
        context.stamp(script, BASELINE)
    with Operations.context(context):
        context.run_migrations()


def host_include_name(name: str | None, type_: str, parent_names: object) -> bool:
    """For a host app's Alembic ``env.py``: ``context.configure(..., include_name=
    host_include_name)`` keeps autogenerate from proposing to drop the vault's tables."""
    return not (type_ == "table" and name is not None and name.startswith(_PREFIX))


def vault_include_name(name: str | None, type_: str, parent_names: object) -> bool:
    """The opposite filter, for these migrations' own autogenerate (``env.py``)."""
    return type_ != "table" or (name is not None and name.startswith(_PREFIX))
