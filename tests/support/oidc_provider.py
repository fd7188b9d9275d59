"""Start, stop and drive the development OpenID provider (``devprovider/``) in tests.

The provider is a small Node.js program built on ``oidc-provider``; see
``devprovider/README.md``. Typical use::

    with DevProvider(access_token_ttl=5) as op:
        with httpx.Client() as browser:
            final = complete_login(browser, authorize_url, login="alice")
        code = parse_qs(urlsplit(final.headers["location"]).query)["code"][0]
        ...
        assert op.stats()["refresh_grants"] == 1
"""

from __future__ import annotations

import atexit
import html
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import httpx

REPO_ROOT = Path(__file__).resolve().parents[2]
DEVPROVIDER_DIR = REPO_ROOT / "devprovider"

DEFAULT_CLIENTS: list[dict[str, Any]] = [
    {
        "client_id": "demo",
        "client_secret": "demo-secret",
        "redirect_uris": [
            "http://127.0.0.1:8000/auth/callback/demo",
            "http://localhost:8000/auth/callback/demo",
        ],
    }
]

_MAX_LOGIN_STEPS = 20
_FORM_ACTION_RE = re.compile(r"<form\b[^>]*\baction=\"([^\"]*)\"", re.IGNORECASE)


class DevProviderError(RuntimeError):
    """The development provider could not be started or answered unexpectedly."""


class LoginFlowError(RuntimeError):
    """complete_login() met a response it does not know how to handle."""


class _StartupTimeout(DevProviderError):
    """The child printed nothing in time; ``start`` may try once more."""


class DevProvider:
    """A running ``node devprovider/server.mjs`` child process.

    ``start()`` launches it and waits for its ``READY <issuer>`` line;
    ``stop()`` terminates exactly that process. Usable as a context manager.
    """

    def __init__(
        self,
        clients: list[dict[str, Any]] | None = None,
        access_token_ttl: int = 3600,
        rotate_refresh_token: bool = True,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        startup_timeout: float = 30.0,
        start_attempts: int = 3,
        node: str = "node",
        directory: Path | None = None,
        log_requests: bool = False,
    ) -> None:
        source = clients if clients is not None else DEFAULT_CLIENTS
        self.clients: list[dict[str, Any]] = [dict(c) for c in source]
        self.access_token_ttl = access_token_ttl
        self.rotate_refresh_token = rotate_refresh_token
        self.host = host
        self.port = port
        self.startup_timeout = startup_timeout
        self.start_attempts = max(1, start_attempts)
        self.node = node
        self.directory = directory if directory is not None else DEVPROVIDER_DIR
        self.log_requests = log_requests
        self._issuer: str | None = None
        self._proc: subprocess.Popen[str] | None = None
        self._stderr: IO[bytes] | None = None
        self._reader: threading.Thread | None = None
        self._reports: tempfile.TemporaryDirectory[str] | None = None

    # ------------------------------------------------------------ lifecycle

    @property
    def issuer(self) -> str:
        if self._issuer is None:
            raise DevProviderError("DevProvider is not running; call start() first")
        return self._issuer

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> DevProvider:
        """Launch the provider; a child that stays silent past the timeout is stopped and
        launched again (up to ``start_attempts`` times): a loaded CI machine can stall one
        start without anything being wrong with the next."""
        for attempt in range(1, self.start_attempts + 1):
            try:
                return self._start_once()
            except _StartupTimeout as exc:
                if attempt == self.start_attempts:
                    raise DevProviderError(str(exc)) from None
        raise AssertionError("unreachable")

    def _start_once(self) -> DevProvider:
        if self._proc is not None:
            raise DevProviderError("DevProvider already started")
        server = self.directory / "server.mjs"
        if not server.is_file():
            raise DevProviderError(f"{server} not found")
        if not (self.directory / "node_modules" / "oidc-provider").is_dir():
            raise DevProviderError(
                f"{self.directory / 'node_modules'} is missing or incomplete: "
                "run `npm ci --prefix devprovider` from the repository root first"
            )
        node = shutil.which(self.node)
        if node is None:
            raise DevProviderError(f"{self.node!r} (Node.js) not found on PATH")

        env = dict(os.environ)
        env.update(
            {
                "DEVPROVIDER_HOST": self.host,
                "DEVPROVIDER_PORT": str(self.port),
                "DEVPROVIDER_CLIENTS": json.dumps(self.clients),
                "DEVPROVIDER_ACCESS_TOKEN_TTL": str(self.access_token_ttl),
                "DEVPROVIDER_ROTATE_REFRESH_TOKEN": "1" if self.rotate_refresh_token else "0",
                "DEVPROVIDER_LOG": "1" if self.log_requests else "0",
                "DEVPROVIDER_WATCH_PARENT": "1",
            }
        )
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - closed in stop()
        # A start that stalls is asked (SIGUSR2) for Node's diagnostic report, whose
        # JavaScript stack goes into the error: a stall on a CI machine says where it was.
        self._reports = tempfile.TemporaryDirectory(prefix="devprovider-report-")
        report_args = [
            "--report-on-signal",
            "--report-signal=SIGUSR2",
            f"--report-directory={self._reports.name}",
        ]
        lines: queue.Queue[str | None] = queue.Queue()
        try:
            self._proc = subprocess.Popen(
                [node, *report_args, str(server)],
                cwd=self.directory,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=self._stderr,
                text=True,
                encoding="utf-8",
            )
        except BaseException:
            self._stderr.close()
            self._stderr = None
            self._reports.cleanup()
            self._reports = None
            raise
        stdout = self._proc.stdout
        assert stdout is not None

        def read_stdout() -> None:
            for line in stdout:
                lines.put(line)
            lines.put(None)

        self._reader = threading.Thread(
            target=read_stdout, name=f"devprovider-stdout-{self._proc.pid}", daemon=True
        )
        self._reader.start()
        atexit.register(self.stop)

        try:
            self._issuer = self._wait_ready(lines)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self, lines: queue.Queue[str | None]) -> str:
        try:
            line = lines.get(timeout=self.startup_timeout)
        except queue.Empty:
            alive = "still running" if self.running else "exited"
            raise _StartupTimeout(
                f"devprovider did not print READY within {self.startup_timeout:g} s "
                f"(pid {self.pid}, {alive}){self._stderr_excerpt()}{self._stalled_stack()}"
            ) from None
        if line is None or not line.startswith("READY "):
            proc = self._proc
            code = proc.wait(timeout=5) if proc is not None and line is None else None
            raise DevProviderError(
                f"devprovider failed to start (exit code {code}, first line {line!r})"
                f"{self._stderr_excerpt()}"
            )
        return line.split(" ", 1)[1].strip()

    def _stalled_stack(self) -> str:
        """Where a running child's JavaScript is, from a diagnostic report (best effort)."""
        proc, reports = self._proc, self._reports
        if proc is None or reports is None or proc.poll() is not None:
            return ""
        proc.send_signal(signal.SIGUSR2)
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:
            for path in Path(reports.name).glob("*.json"):
                try:
                    report = json.loads(path.read_text(encoding="utf-8"))
                except (OSError, ValueError):
                    continue  # still being written
                js = report.get("javascriptStack") or {}
                frames = [str(frame) for frame in js.get("stack") or []][:20]
                handles = sorted(
                    {
                        str(h.get("type"))
                        for h in report.get("libuv") or []
                        if h.get("is_active") and h.get("is_referenced")
                    }
                )
                return (
                    "\n--- devprovider diagnostic report ---\n"
                    f"javascript: {js.get('message') or '(idle: waiting in the event loop)'}\n"
                    + "".join(f"  {frame}\n" for frame in frames)
                    + f"active libuv handles: {', '.join(handles) or 'none'}"
                )
            time.sleep(0.1)
        return "\n(no diagnostic report within 5 s)"

    def stderr_text(self) -> str:
        """Everything the provider wrote to stderr so far."""
        if self._stderr is None:
            return ""
        self._stderr.flush()
        pos = self._stderr.tell()
        self._stderr.seek(0)
        data = self._stderr.read()
        self._stderr.seek(pos)
        return data.decode("utf-8", "replace")

    def _stderr_excerpt(self) -> str:
        text = self.stderr_text().strip()
        return f"\n--- devprovider stderr ---\n{text[-4000:]}" if text else ""

    def stop(self, timeout: float = 10.0) -> None:
        proc, self._proc = self._proc, None
        self._issuer = None
        if proc is None:
            return
        atexit.unregister(self.stop)
        try:
            if proc.poll() is None:
                proc.terminate()  # this child's pid only
                try:
                    proc.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        finally:
            if self._reader is not None:
                self._reader.join(timeout=5)
                self._reader = None
            if proc.stdout is not None:
                proc.stdout.close()
            if self._stderr is not None:
                self._stderr.close()
                self._stderr = None
            if self._reports is not None:
                self._reports.cleanup()
                self._reports = None

    def __enter__(self) -> DevProvider:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # ------------------------------------------------------------ endpoints

    @property
    def authorization_endpoint(self) -> str:
        return f"{self.issuer}/auth"

    @property
    def token_endpoint(self) -> str:
        return f"{self.issuer}/token"

    @property
    def userinfo_endpoint(self) -> str:
        return f"{self.issuer}/me"

    @property
    def revocation_endpoint(self) -> str:
        return f"{self.issuer}/token/revocation"

    @property
    def discovery_url(self) -> str:
        return f"{self.issuer}/.well-known/openid-configuration"

    def discovery(self) -> dict[str, Any]:
        result: dict[str, Any] = self._request("GET", "/.well-known/openid-configuration")
        return result

    # ------------------------------------------------------------- controls

    def _request(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> Any:
        response = httpx.request(method, f"{self.issuer}{path}", json=body, timeout=10.0)
        if response.status_code != 200:
            raise DevProviderError(
                f"{method} {path} answered {response.status_code}: {response.text[:500]}"
            )
        return response.json()

    def stats(self) -> dict[str, Any]:
        """Counters: authorization_code_grants, refresh_grants, refresh_errors, ..."""
        result: dict[str, Any] = self._request("GET", "/__dev/stats")
        return result

    def reset(self) -> None:
        """Zero every counter."""
        self._request("POST", "/__dev/reset")

    def fail(
        self,
        status: int = 503,
        count: int = 1,
        delay_ms: int = 0,
        body: str | None = None,
        *,
        content_type: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Make the next ``count`` token requests answer ``status`` after ``delay_ms``.

        ``status=0`` only delays, then processes the request normally. ``body``
        replaces the default JSON error with that raw text.
        """
        payload: dict[str, Any] = {"status": status, "count": count, "delay_ms": delay_ms}
        if body is not None:
            payload["body"] = body
        if content_type is not None:
            payload["content_type"] = content_type
        if headers is not None:
            payload["headers"] = dict(headers)
        self._request("POST", "/__dev/fail", payload)

    def clear_failures(self) -> None:
        self._request("POST", "/__dev/fail", {"count": 0})

    def decline_scopes(self, account_id: str, *scopes: str) -> None:
        """At its next consent (a login, or a prompt for scopes not answered yet),
        ``account_id`` declines ``scopes``, as a user unticking them on a consent page:
        the grant and its tokens leave them out. No scopes: cancel."""
        self._request("POST", "/__dev/decline", {"account_id": account_id, "scopes": list(scopes)})

    def revoke_grants(self, account_id: str) -> int:
        """Revoke every grant (and its tokens) of ``account_id``; return how many."""
        result = self._request("POST", "/__dev/revoke_grants", {"account_id": account_id})
        return int(result["revoked_grants"])


# ------------------------------------------------------------------ login flow


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    default = {"http": 80, "https": 443}.get(url.scheme)
    return (url.scheme, url.host, url.port if url.port is not None else default)


def _login_form_action(response: httpx.Response) -> str | None:
    if response.status_code != 200 or "html" not in response.headers.get("content-type", ""):
        return None
    match = _FORM_ACTION_RE.search(response.text)
    if match is None or 'name="login"' not in response.text:
        return None
    return html.unescape(match.group(1))


_HIDDEN_RE = re.compile(
    r"<input\b[^>]*\btype=\"hidden\"[^>]*\bname=\"([^\"]*)\"[^>]*\bvalue=\"([^\"]*)\"",
    re.IGNORECASE,
)


def _auto_submitted_form(response: httpx.Response) -> tuple[str, dict[str, str]] | None:
    """A page that submits its form by script as soon as it loads (the provider's session
    switch): the form's action and hidden fields, as the browser would post them."""
    if response.status_code != 200 or "html" not in response.headers.get("content-type", ""):
        return None
    text = response.text
    if "document.forms[0].submit()" not in text:
        return None
    match = _FORM_ACTION_RE.search(text)
    if match is None:
        return None
    fields = {html.unescape(n): html.unescape(v) for n, v in _HIDDEN_RE.findall(text)}
    return html.unescape(match.group(1)), fields


def _describe(response: httpx.Response) -> str:
    return (
        f"{response.request.method} {response.request.url} -> {response.status_code}: "
        f"{response.text[:1000]}"
    )


def _next_step(
    response: httpx.Response, origin: tuple[str, str, int | None], login: str
) -> tuple[str, str, dict[str, str] | None] | None:
    """Return the next request (method, url, form) or None when done."""
    if response.is_redirect:
        target = response.url.join(response.headers["location"])
        if _origin(target) != origin:
            return None
        return ("GET", str(target), None)
    action = _login_form_action(response)
    if action is not None:
        return ("POST", str(response.url.join(action)), {"login": login})
    submitted = _auto_submitted_form(response)
    if submitted is not None:  # a page whose script posts its hidden form at once
        target = response.url.join(submitted[0])
        if _origin(target) == origin:
            return ("POST", str(target), submitted[1])
    raise LoginFlowError(f"unexpected provider response: {_describe(response)}")


def callback_path(redirect: httpx.Response, base: str) -> str:
    """The provider's redirect back to the app served at ``base`` (what :func:`complete_login`
    returns), as the path the app's own client requests."""
    location = redirect.headers["location"]
    if not location.startswith(base):
        raise LoginFlowError(f"the provider redirected to {location!r}, not to {base}")
    return str(location[len(base) :])


def complete_login(
    client: httpx.Client, authorize_url: str, login: str = "alice"
) -> httpx.Response:
    """Drive the provider's login from ``authorize_url`` to the redirect back to the app.

    Follows redirects that stay on the provider's origin, submits the login
    form with ``login``, and returns the first redirect response that points
    elsewhere (its Location carries ``code``, ``state`` and ``iss``, or an
    ``error``). Cookies stay in ``client``.
    """
    origin = _origin(httpx.URL(authorize_url))
    response = client.get(authorize_url, follow_redirects=False)
    for _ in range(_MAX_LOGIN_STEPS):
        step = _next_step(response, origin, login)
        if step is None:
            return response
        method, url, form = step
        response = client.request(method, url, data=form, follow_redirects=False)
    raise LoginFlowError(f"no redirect back to the app after {_MAX_LOGIN_STEPS} steps")


async def complete_login_async(
    client: httpx.AsyncClient, authorize_url: str, login: str = "alice"
) -> httpx.Response:
    """Async variant of :func:`complete_login`."""
    origin = _origin(httpx.URL(authorize_url))
    response = await client.get(authorize_url, follow_redirects=False)
    for _ in range(_MAX_LOGIN_STEPS):
        step = _next_step(response, origin, login)
        if step is None:
            return response
        method, url, form = step
        response = await client.request(method, url, data=form, follow_redirects=False)
    raise LoginFlowError(f"no redirect back to the app after {_MAX_LOGIN_STEPS} steps")


def redirect_params(response: httpx.Response) -> dict[str, str]:
    """The query parameters of a redirect response's Location (single values)."""
    location = response.url.join(response.headers["location"])
    return {key: value for key, value in location.params.multi_items()}


__all__ = [
    "DEFAULT_CLIENTS",
    "DEVPROVIDER_DIR",
    "DevProvider",
    "DevProviderError",
    "LoginFlowError",
    "callback_path",
    "complete_login",
    "complete_login_async",
    "redirect_params",
]
