"""What a person in a browser sees when a login or connect fails: a small HTML page, or a
redirect to the app's own ``error_url``; an API caller keeps the JSON error.

Which requests get the page (:func:`is_navigation`): a browser navigation, known by
``Sec-Fetch-Mode: navigate`` (every current browser sends it on navigations, and ``cors``,
``no-cors``, ``same-origin`` on ``fetch()``), else, from a client that sends no
``Sec-Fetch-Mode``, by an ``Accept`` header that prefers ``text/html`` to JSON. ``curl``,
httpx and ``fetch()`` (``*/*``) keep the JSON error.

Neither the page nor the redirect holds the callback's ``code`` or ``state``, or any token:
only the error's code and its description, which never hold one (``errors.py``).
"""

from __future__ import annotations

from html import escape
from urllib.parse import urlencode, urlsplit

from .cookies import CookieSpec
from .errors import VaultError
from .inputs import NO_STORE
from .routes import Reply

__all__ = [
    "PAGE_HEADERS",
    "error_page_reply",
    "error_redirect_reply",
    "host_mismatch",
    "is_navigation",
]

MAX_DESCRIPTION = 200
"""An ``error_description`` in a redirect to ``error_url`` is cut to this many characters."""

PAGE_HEADERS = {
    **NO_STORE,
    "Content-Type": "text/html; charset=utf-8",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}

_HTML_TYPES = ("text/html", "application/xhtml+xml")
_MAX_ACCEPT = 1024  # a longer Accept header is not parsed: JSON

_HEADLINES = {
    "access_denied": "The login was cancelled or refused at the provider.",
    "invalid_state": "This login could not be matched to one started in this browser.",
    "invalid_grant": "The provider did not accept the login's authorization code.",
    "invalid_client": "The provider did not accept this app's client credentials.",
    "invalid_id_token": "The provider's answer failed its identity checks.",
    "not_authenticated": "You need to be logged in first.",
    "unknown_connection": "This app has no such login provider.",
    "identity_already_linked": "That account is already linked to another user.",
    "provider_unavailable": "The provider is not answering; try again in a moment.",
    "storage_unavailable": "The app cannot reach its storage; try again in a moment.",
    "forbidden": "The login was refused by this app.",
}
_DEFAULT_HEADLINE = "The login could not be completed."


def _q_values(accept: str) -> dict[str, float]:
    """Each media range of ``accept`` and its quality (``q``, default 1)."""
    found: dict[str, float] = {}
    for item in accept.split(","):
        media, *params = (part.strip() for part in item.split(";"))
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = min(max(float(value), 0.0), 1.0)
                except ValueError:
                    q = 0.0
        if media:
            found.setdefault(media.lower(), q)
    return found


def _quality(found: dict[str, float], media: str) -> float:
    """The quality ``found`` gives ``media``: its own range, else ``type/*``, else ``*/*``."""
    kind = media.split("/")[0]
    for key in (media, f"{kind}/*", "*/*"):
        if key in found:
            return found[key]
    return 0.0


def is_navigation(sec_fetch_mode: str | None, accept: str | None) -> bool:
    """Whether the request is a browser navigation (the person sees the answer): see the
    module's docstring."""
    if sec_fetch_mode:
        return sec_fetch_mode.strip().lower() == "navigate"
    if not accept or len(accept) > _MAX_ACCEPT:
        return False
    found = _q_values(accept)
    html = max(_quality(found, media) for media in _HTML_TYPES)
    return html > 0 and html > _quality(found, "application/json")


def _origin_host(base_url: str) -> str:
    """``base_url``'s host and port as a ``Host`` header names it (default port left out)."""
    parts = urlsplit(base_url)
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    default = 443 if parts.scheme == "https" else 80
    return host if parts.port in (None, default) else f"{host}:{parts.port}"


def host_mismatch(host: str | None, base_url: str) -> tuple[str, str] | None:
    """``(the request's host, BASE_URL's host)`` when the ``Host`` header names another host
    than ``base_url`` (a cookie set on one is not sent to the other); else None."""
    if not host:
        return None
    expected = _origin_host(base_url)
    scheme = urlsplit(base_url).scheme
    given = host.strip().lower()
    if given.endswith(":443" if scheme == "https" else ":80"):
        given = given.rsplit(":", 1)[0]
    if given == expected:
        return None
    return _shown(host.strip(), 100), expected


def _shown(text: str, limit: int) -> str:
    """Request input or a description fit for one line: printable, at most ``limit``."""
    clean = "".join(ch if ch.isprintable() else "?" for ch in text)
    return clean if len(clean) <= limit else clean[: limit - 3] + "..."


def error_redirect_reply(exc: VaultError, error_url: str, cookies: tuple[CookieSpec, ...]) -> Reply:
    """A ``303`` to ``error_url`` (same-site: checked at start-up) with ``error`` and a short
    ``error_description`` added to its query."""
    query = urlencode(
        {"error": exc.error, "error_description": _shown(exc.description, MAX_DESCRIPTION)}
    )
    separator = "&" if "?" in error_url else "?"
    return Reply(303, None, NO_STORE, f"{error_url}{separator}{query}", cookies)


def error_page_reply(
    exc: VaultError,
    cookies: tuple[CookieSpec, ...],
    *,
    home: str,
    retry: str | None,
    connect: bool = False,
) -> Reply:
    """The small HTML page, with ``exc``'s status and headers (``Retry-After``...): what went
    wrong in one line, the error's code and description, a link to ``home`` and, when given,
    one to ``retry`` (the login's start). No external asset; every text is escaped."""
    title = "Connecting the account failed" if connect else "Login failed"
    links = f'<a href="{escape(home)}">Back to the app</a>'
    if retry is not None:
        links += f' &middot; <a href="{escape(retry)}">Try again</a>'
    page = _PAGE.format(
        title=escape(title),
        headline=escape(_HEADLINES.get(exc.error, _DEFAULT_HEADLINE)),
        code=escape(exc.error),
        description=escape(_shown(exc.description, 500)),
        links=links,
    )
    headers = {**PAGE_HEADERS, **exc.headers()}
    return Reply(exc.status_code, None, headers, None, cookies, page)


_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>{title}</title>
<style>
body {{ font: 16px/1.5 system-ui, sans-serif; color: #222; background: #f6f6f6; margin: 0; }}
main {{ max-width: 34rem; margin: 4rem auto; padding: 1.5rem 2rem; background: #fff;
  border: 1px solid #ddd; border-radius: 8px; }}
h1 {{ font-size: 1.3rem; margin: 0 0 .75rem; }}
code {{ background: #eee; padding: 0 .3em; border-radius: 3px; }}
.detail {{ color: #555; font-size: .95rem; overflow-wrap: anywhere; }}
a {{ color: #0a58ca; }}
</style>
</head>
<body>
<main>
<h1>{title}</h1>
<p>{headline}</p>
<p class="detail"><code>{code}</code>: {description}</p>
<p>{links}</p>
</main>
</body>
</html>
"""
