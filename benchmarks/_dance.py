"""The peer: Flask-Dance's token lookup, set up as its storage docs show, behind types.

A Flask app with Flask-SQLAlchemy on a SQLite file, Flask-Login (the ``User`` of the signed
Flask session cookie, loaded by ``user_loader``), and an ``OAuth2ConsumerBlueprint`` named
``demo`` whose storage is ``SQLAlchemyStorage(OAuth, db.session, user=current_user)``, ``OAuth``
being an ``OAuthConsumerMixin`` model with ``user_id``/``user``. One user is logged in and one
token is stored through ``blueprint.token = {...}`` (Flask-Dance's own write path).

What a request does to get the token: ``blueprint.token`` (the ``storage.get`` of its
``token`` property): Flask-Login loads the user (session cookie, ``user_loader`` query), the
storage queries the token row for that user and provider, and ``expires_in`` is recomputed.
No cache (Flask-Dance's default without Flask-Caching).

Flask-Dance and Flask-Login ship no type hints: they are imported here only, and
:func:`build_peer` is all the benchmark sees. :data:`MISSING` says which is not installed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import Flask
from sqlalchemy import ForeignKey
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

__all__ = ["MISSING", "Peer", "build_peer"]

MISSING: str | None = None
try:
    from flask_dance.consumer import OAuth2ConsumerBlueprint  # type: ignore[import-untyped]
    from flask_dance.consumer.storage.sqla import (  # type: ignore[import-untyped]
        OAuthConsumerMixin,
        SQLAlchemyStorage,
    )
    from flask_login import (  # type: ignore[import-untyped]
        LoginManager,
        UserMixin,
        current_user,
        login_user,
    )
    from flask_sqlalchemy import SQLAlchemy
except ImportError as _err:  # pragma: no cover - depends on the environment
    MISSING = f"{_err.name} is not installed (pip install flask-dance flask-sqlalchemy flask-login)"

PROVIDER = "demo"


@dataclass(frozen=True)
class Peer:
    """The peer app and what to time in it."""

    app: Flask
    cookie: str  # the Flask session cookie (name=value) of the logged-in user
    environ_base: dict[str, str]  # the client address and agent the login came from
    token: Callable[[], dict[str, Any] | None]  # ``blueprint.token``, in a request context
    access_token: str  # the stored token's, to check the lookup
    close: Callable[[], None]


def build_peer(directory: Path, secret_key: str, access_token: str) -> Peer:
    """The Flask-Dance app on ``directory / "flask_dance.db"``, one user logged in, one token."""
    if MISSING is not None:
        raise RuntimeError(MISSING)

    class Base(DeclarativeBase):
        pass

    class User(UserMixin, Base):  # type: ignore[misc]
        __tablename__ = "bench_user"
        id: Mapped[int] = mapped_column(primary_key=True)
        name: Mapped[str]

    class OAuth(OAuthConsumerMixin, Base):  # type: ignore[misc]
        user_id: Mapped[int] = mapped_column(ForeignKey(User.id))
        user: Mapped[User] = relationship(User)

    db = SQLAlchemy(model_class=Base)
    app = Flask("bench_flask_dance")
    app.config.update(
        SECRET_KEY=secret_key,
        SQLALCHEMY_DATABASE_URI=f"sqlite:///{directory / 'flask_dance.db'}",
    )
    db.init_app(app)
    login_manager = LoginManager(app)

    @login_manager.user_loader  # type: ignore[untyped-decorator]
    def load_user(user_id: str) -> User | None:
        return db.session.get(User, int(user_id))

    blueprint = OAuth2ConsumerBlueprint(
        PROVIDER,
        __name__,
        client_id="bench-client",
        client_secret="bench-secret",
        base_url="http://127.0.0.1:1/",
        token_url="http://127.0.0.1:1/token",
        authorization_url="http://127.0.0.1:1/authorize",
        storage=SQLAlchemyStorage(OAuth, db.session, user=current_user),
    )
    app.register_blueprint(blueprint, url_prefix="/login")

    @app.get("/profile")
    def profile() -> str:  # the path the timed requests are routed to (the view is not run)
        return "profile"

    @app.post("/bench-login")
    def bench_login() -> str:
        login_user(db.session.get(User, 1))
        return "ok"

    environ_base = {"REMOTE_ADDR": "127.0.0.1", "HTTP_USER_AGENT": "oauth-vault-bench"}
    with app.app_context():
        Base.metadata.create_all(db.engine)
        db.session.add(User(id=1, name="bench-user"))
        db.session.commit()
    client = app.test_client()
    client.environ_base.update(environ_base)
    if client.post("/bench-login").status_code != 200:
        raise RuntimeError("flask-dance peer: login failed")
    found = client.get_cookie("session")
    if found is None:
        raise RuntimeError("flask-dance peer: no session cookie after login")
    cookie = f"session={found.value}"
    with app.test_request_context(headers={"Cookie": cookie}, environ_base=environ_base):
        blueprint.token = {
            "access_token": access_token,
            "refresh_token": "rt-bench",
            "token_type": "Bearer",
            "expires_in": 3600,
            "scope": ["openid"],
        }

    def token() -> dict[str, Any] | None:
        found: dict[str, Any] | None = blueprint.token
        return found

    def close() -> None:
        with app.app_context():
            db.engine.dispose()

    return Peer(app, cookie, environ_base, token, access_token, close)
