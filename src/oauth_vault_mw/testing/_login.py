"""A whole login through the testing provider, as a browser would do it, on a test client.

1. ``GET {prefix}/login/{connection_id}`` on the app: a redirect to the provider;
2. the provider's authorization endpoint approves at once (:meth:`OpenIDProvider.approve`,
   in process, whether or not the provider is served);
3. ``GET`` the callback URL it redirects to, on the app: the session cookie is set.

Every request to the app is made relative to the client's base URL, so the state cookie of
step 1 and the session cookie of step 3 live on the same host whatever ``OAUTH_VAULT_BASE_URL``
says; only an ``https`` base URL matters (its cookies are ``Secure``): the client's base URL
must be ``https`` too.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import httpx

from ._provider import LoginFailed, OpenIDProvider

if TYPE_CHECKING:
    from flask.testing import FlaskClient
    from werkzeug.test import TestResponse

__all__ = ["log_in", "log_in_async", "log_in_flask"]

_REDIRECTS = (301, 302, 303, 307, 308)


def _start_path(prefix: str, connection_id: str, connect: bool) -> str:
    return f"{prefix}/{'connect' if connect else 'login'}/{connection_id}"


def _start_params(
    return_to: str, scopes: Sequence[str], account: str | None = None
) -> dict[str, str]:
    params = {"return_to": return_to}
    if scopes:
        params["scope"] = " ".join(scopes)
    if account is not None:
        params["account"] = account
    return params


def _callback(location: str, connection_id: str, client_scheme: str | None) -> str:
    """The path and query of the provider's redirect back to the app (``client_scheme``:
    the client's, to check against an https app; ``None``: the client ignores ``Secure``)."""
    parts = urlsplit(location)
    if not parts.path.endswith(f"/callback/{connection_id}"):
        raise LoginFailed(f"the provider redirected to {parts.path!r}, not to a callback")
    if parts.scheme == "https" and client_scheme not in (None, "https"):
        raise LoginFailed(
            f"the app's base URL is {parts.scheme}://{parts.netloc} (Secure cookies): give "
            "the test client an https base_url"
        )
    return f"{parts.path}?{parts.query}"


def log_in(
    client: httpx.Client,
    provider: OpenIDProvider,
    connection_id: str,
    *,
    login: str | None = None,
    prefix: str = "/auth",
    return_to: str = "/",
    connect: bool = False,
    scopes: Sequence[str] = (),
    account: str | None = None,
) -> httpx.Response:
    """Log ``client`` in through ``provider`` (see the module docstring): a
    ``starlette.testclient.TestClient``, or any ``httpx.Client`` on the app (an
    ``httpx.WSGITransport`` for Flask). ``login``: who the provider approves (default: its
    current user). ``connect=True`` links the account to the logged-in user instead;
    ``scopes`` (with ``connect=True``) asks for more scopes (``?scope=``, incremental
    authorization); ``account`` (with ``connect=True``): ``"new"`` links another account of
    the connection (give another ``login``), an account id that account. Returns the app's
    answer to the callback (``303`` to ``return_to``);
    raises :class:`LoginFailed` at any other answer."""
    start_url = _start_path(prefix, connection_id, connect)
    params = _start_params(return_to, scopes, account)
    start = client.get(start_url, params=params, follow_redirects=False)
    if start.status_code not in _REDIRECTS:
        raise LoginFailed(f"GET {start_url} answered {start.status_code}: {start.text[:500]}")
    location = provider.approve(start.headers["location"], login=login)
    back = _callback(location, connection_id, client.base_url.scheme)
    done = client.get(back, follow_redirects=False)
    if done.status_code not in _REDIRECTS:
        raise LoginFailed(f"the callback answered {done.status_code}: {done.text[:500]}")
    return done


async def log_in_async(
    client: httpx.AsyncClient,
    provider: OpenIDProvider,
    connection_id: str,
    *,
    login: str | None = None,
    prefix: str = "/auth",
    return_to: str = "/",
    connect: bool = False,
    scopes: Sequence[str] = (),
    account: str | None = None,
) -> httpx.Response:
    """:func:`log_in` for an ``httpx.AsyncClient`` on the app (``httpx.ASGITransport``), for
    async test suites."""
    start_url = _start_path(prefix, connection_id, connect)
    params = _start_params(return_to, scopes, account)
    start = await client.get(start_url, params=params, follow_redirects=False)
    if start.status_code not in _REDIRECTS:
        raise LoginFailed(f"GET {start_url} answered {start.status_code}: {start.text[:500]}")
    location = provider.approve(start.headers["location"], login=login)
    back = _callback(location, connection_id, client.base_url.scheme)
    done = await client.get(back, follow_redirects=False)
    if done.status_code not in _REDIRECTS:
        raise LoginFailed(f"the callback answered {done.status_code}: {done.text[:500]}")
    return done


def log_in_flask(
    client: FlaskClient,
    provider: OpenIDProvider,
    connection_id: str,
    *,
    login: str | None = None,
    prefix: str = "/auth",
    return_to: str = "/",
    connect: bool = False,
    scopes: Sequence[str] = (),
    account: str | None = None,
) -> TestResponse:
    """:func:`log_in` for Flask's test client (``app.test_client()``)."""
    start_url = _start_path(prefix, connection_id, connect)
    start = client.get(start_url, query_string=_start_params(return_to, scopes, account))
    if start.status_code not in _REDIRECTS:
        text = start.get_data(as_text=True)[:500]
        raise LoginFailed(f"GET {start_url} answered {start.status_code}: {text}")
    location = provider.approve(start.headers["Location"], login=login)
    done = client.get(_callback(location, connection_id, None))  # werkzeug ignores Secure
    if done.status_code not in _REDIRECTS:
        text = done.get_data(as_text=True)[:500]
        raise LoginFailed(f"the callback answered {done.status_code}: {text}")
    return done
