"""The HTML of the example apps, shared by the Starlette, FastAPI and Flask examples.

Plain functions from data to HTML, no framework: every value shown goes through
``html.escape``, and no page shows a token (only its expiry, status and refresh count).
"""

from __future__ import annotations

import html
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

if TYPE_CHECKING:
    from oauth_vault_mw import CurrentUser

FLASHES = {  # ?flash=... after a redirect; anything else is ignored, never echoed
    "logged_in": "You are logged in.",
    "connected": "Account connected.",
    "disconnected": "Disconnected: the grant was revoked at the provider and the tokens deleted.",
    "logged_out": "You are logged out.",
}

e = html.escape


@dataclass(frozen=True)
class ConnectionView:
    """What the pages show of one connection of the user; ``status`` is ``None`` when the
    user has not connected it."""

    connection_id: str
    status: str | None = None
    expires_at: float | None = None
    refreshed_at: float | None = None
    login_at: float | None = None
    refresh_count: int = 0
    profile: Mapping[str, Any] = field(default_factory=dict)
    other_accounts: int = 0
    """The user's other linked accounts of this connection (``docs/accounts.md``)."""

    @classmethod
    def all_of(
        cls, me: Mapping[str, Any] | None, connection_ids: Iterable[str]
    ) -> list[ConnectionView]:
        """One view per configured connection, from ``vault.me(user_id)`` (the JSON of
        ``GET /auth/me``: no token in it); not connected ones have no status."""
        entries = {c["connection_id"]: c for c in (me or {}).get("connections", ())}
        views = []
        for connection_id in connection_ids:
            c = entries.get(connection_id)
            if c is None:
                views.append(cls(connection_id))
                continue
            views.append(
                cls(
                    connection_id,
                    c["status"],
                    c["expires_at"],
                    c["refreshed_at"],
                    c["login_at"],
                    c["refresh_count"],
                    c["profile"],
                    len(c.get("accounts", ())) - 1 if c.get("accounts") else 0,
                )
            )
        return views


def clock(at: float | None) -> str:
    return "-" if at is None else time.strftime("%H:%M:%S", time.localtime(at))


def back_to(flash: str) -> str:
    """A ``return_to`` value: the home page with a flash message, URL-encoded."""
    return quote(f"/?flash={flash}", safe="")


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body{{font-family:sans-serif;max-width:52rem;margin:2rem auto;padding:0 1rem;color:#222}}
table{{border-collapse:collapse;margin:1rem 0}}td,th{{border:1px solid #ccc;padding:.35rem .6rem;
text-align:left;vertical-align:top}}th{{background:#f3f3f3}}.flash{{background:#e7f6e7;
border:1px solid #9c9;padding:.5rem .8rem}}.error{{background:#fbeaea;border-color:#d99}}
.muted{{color:#777}}button{{margin-left:.3rem}}
</style></head><body>
<h1>{title}</h1>{body}
<script>
function tick() {{  // the countdown of each access token
  const now = Date.now() / 1000;
  document.querySelectorAll("[data-expires]").forEach(el => {{
    const left = Math.round(Number(el.dataset.expires) - now);
    el.textContent = left > 0 ? "expires in " + left + " s"
                              : "expired: the next API call refreshes it";
  }});
}}
tick(); setInterval(tick, 1000);
const buttons = document.querySelectorAll("button[data-url]");
buttons.forEach(b => b.addEventListener("click", async () => {{
  // disconnect and log out: a DELETE or POST from the page, then home with a message
  const r = await fetch(b.dataset.url, {{method: b.dataset.method, credentials: "same-origin"}});
  if (!r.ok) {{ alert(b.dataset.method + " " + b.dataset.url + ": " + r.status); return; }}
  location.href = b.dataset.then;
}}));
</script></body></html>
"""


def page(title: str, body: str) -> str:
    return PAGE.format(title=e(title), body=body)


def countdown(expires_at: float | None) -> str:
    if expires_at is None:
        return "does not expire"
    left = round(expires_at - time.time())
    text = f"expires in {left} s" if left > 0 else "expired: the next API call refreshes it"
    return f'<span class="countdown" data-expires="{expires_at:.0f}">{e(text)}</span>'


def display_name(profile: Mapping[str, Any], fallback: str) -> str:
    return str(profile.get("name") or profile.get("preferred_username") or fallback)


def connections_table(views: Sequence[ConnectionView], prefix: str, actions: bool = True) -> str:
    rows = []
    for view in views:
        cid = e(view.connection_id)
        if view.status is None:
            link = (
                f'<a href="{e(prefix)}/connect/{cid}?return_to={back_to("connected")}">connect</a>'
            )
            cells = f'<td colspan="4" class="muted">not connected</td><td>{link}</td>'
        else:
            who = display_name(view.profile, "?")
            email = view.profile.get("email")
            account = e(who) + (f"<br><span class=muted>{e(str(email))}</span>" if email else "")
            if view.other_accounts:
                more = "account" if view.other_accounts == 1 else "accounts"
                account += f"<br><span class=muted>+{view.other_accounts} other {more}</span>"
            times = "time" if view.refresh_count == 1 else "times"
            refreshed = (
                f"{view.refresh_count} {times}, last at {clock(view.refreshed_at)}"
                if view.refresh_count
                else "not yet"
            )
            refreshed += f'<br><span class="muted">logged in at {clock(view.login_at)}</span>'
            add = f"{e(prefix)}/connect/{cid}?account=new&amp;return_to={back_to('connected')}"
            buttons = (
                f'<a href="/demo/profile/{cid}">userinfo</a> '
                f'<a href="{add}">add account</a>'
                f'<button data-method="DELETE" data-url="{e(prefix)}/connections/{cid}" '
                f'data-then="/?flash=disconnected">disconnect</button>'
            )
            cells = (
                f'<td>{account}</td><td class="status">{e(view.status)}</td>'
                f"<td>{countdown(view.expires_at)}</td>"
                f'<td class="refreshes" data-count="{view.refresh_count}">{refreshed}</td>'
                f"<td>{buttons if actions else ''}</td>"
            )
        rows.append(f'<tr id="connection-{cid}"><th>{cid}</th>{cells}</tr>')
    head = (
        "<tr><th>connection</th><th>account</th><th>status</th><th>access token</th>"
        "<th>refreshed</th><th></th></tr>"
    )
    return f'<table id="connections">{head}{"".join(rows)}</table>'


def home(
    framework: str,
    user: CurrentUser | None,
    views: Sequence[ConnectionView],
    prefix: str,
    flash: str | None = None,
) -> str:
    """The home page: who is logged in, each connection and its token, the buttons."""
    parts = []
    if flash in FLASHES:
        parts.append(f'<p class="flash" id="flash">{e(FLASHES[flash])}</p>')
    if user is None:
        parts.append("<p>You are not logged in.</p><ul>")
        for view in views:
            cid = e(view.connection_id)
            href = f"{e(prefix)}/login/{cid}?return_to={back_to('logged_in')}"
            parts.append(f'<li><a href="{href}">Log in with {cid}</a></li>')
        parts.append("</ul>")
    else:
        email = user.profile.get("email")
        if user.profile:
            name = display_name(user.profile, user.user_id)
            who = f'Logged in as <strong id="user-name">{e(name)}</strong>'
            who += f" ({e(str(email))})" if email else ""
        else:  # their accounts are all disconnected: no profile left
            who = "Logged in, with no account connected"
        parts.append(
            f'<p>{who} <button data-method="POST" data-url="{e(prefix)}/logout" '
            'data-then="/?flash=logged_out">log out</button></p>'
        )
        parts.append(connections_table(views, prefix))
        parts.append(
            '<p class="muted">A token is refreshed when an API call needs it and it is past half '
            "its lifetime: open <i>userinfo</i> after the countdown passed the middle. "
            f'Raw state: <a href="{e(prefix)}/me">{e(prefix)}/me</a> (JSON).</p>'
        )
    return page(f"oauth_vault_mw demo ({framework})", "".join(parts))


def wants_page(accept: str | None, fetch_mode: str | None) -> bool:
    """A browser navigating (``Sec-Fetch-Mode: navigate``) or a client asking for HTML: the
    page; any other caller gets the provider's JSON, as the examples' API contract says."""
    return fetch_mode == "navigate" or "text/html" in (accept or "")


def userinfo_json(status: int, claims: Any) -> tuple[Any, int]:
    """The provider's userinfo answer for an API caller: its JSON (a placeholder when it
    sent none) and the status to answer with (502 when the provider failed)."""
    body = claims if claims is not None else {"error": "bad_provider_response", "status": status}
    return body, status if 200 <= status < 300 else 502


def userinfo(
    connection_id: str, status: int, claims: Mapping[str, Any], view: ConnectionView, prefix: str
) -> str:
    """The provider's userinfo answer as a table, with the token's state after the call."""
    if 200 <= status < 300:
        intro = (
            f"<p>The provider's userinfo endpoint, called with the vault's access token for "
            f"<b>{e(connection_id)}</b>, answered HTTP {status}:</p>"
        )
    else:
        intro = f'<p class="flash error">The provider answered HTTP {status}.</p>'
    rows = "".join(
        f"<tr><th>{e(str(k))}</th><td>{e(str(v))}</td></tr>" for k, v in sorted(claims.items())
    )
    body = (
        f'{intro}<table id="userinfo">{rows}</table>'
        "<h2>The token after this call</h2>"
        f"{connections_table([view], prefix, actions=False)}"
        '<p><a href="/">Back to the home page</a></p>'
    )
    return page(f"Userinfo: {connection_id}", body)
