"""Alembic environment of oauth_vault_mw's own migrations (version table
``oauth_vault_alembic_version``), for the ``alembic.command`` functions.

:func:`oauth_vault_mw.storage.migrations.upgrade` (what ``setup()`` runs) does not come here.
``alembic.command.X(alembic_config(connection), ...)`` passes the connection in
``config.attributes["connection"]``; ``alembic_config(url=...)``, or an ini file whose
``script_location`` is this directory, names the database in ``sqlalchemy.url``.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import context

from oauth_vault_mw.storage.migrations import context_options


def _configure(dialect: str, **options: Any) -> None:
    context.configure(**context_options(dialect), **options)


def _online(connection: sa.Connection) -> None:
    _configure(connection.dialect.name, connection=connection)
    with context.begin_transaction():
        context.run_migrations()


def _url() -> str:
    url = context.config.get_main_option("sqlalchemy.url") or ""
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


if context.is_offline_mode():
    url = _url()
    dialect = sa.make_url(url).get_backend_name()
    _configure(dialect, url=url, literal_binds=True, dialect_opts={"paramstyle": "named"})
    with context.begin_transaction():
        context.run_migrations()
else:
    given = context.config.attributes.get("connection")
    if given is not None:
        _online(given)
    else:
        engine = sa.create_engine(_url(), poolclass=sa.pool.NullPool)
        try:
            with engine.connect() as connection:
                _online(connection)
                connection.commit()
        finally:
            engine.dispose()
