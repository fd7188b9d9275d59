"""A fake OAuth 2.0 / OpenID Connect provider that speaks each catalogue provider's dialect.

One Starlette app serves every fixture under ``/{preset}/``: ``authorize``, ``token``,
``refresh`` (where the provider has a separate refresh URL), ``userinfo[/<path>]`` (and
Salesforce's ``id/...`` URL), ``revoke``, ``jwks`` and ``<issuer path>/.well-known/
openid-configuration``. It checks what the real provider checks (client, redirect URI, state,
PKCE S256, required parameters, client authentication, ``User-Agent``, body type...), refuses
as that provider refuses, and answers with the reply shapes of its fixture
(``tests/providers/fixtures``). Time is the test's clock (:attr:`FakeProvider.clock`), the one
the vault under test runs on. The tests read the counters and grants directly (same process).

Serve it with :func:`serving` (uvicorn in a thread, on a free loopback port).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import json
import re
import secrets
import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlencode

import jwt
import uvicorn
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from tests.support.ports import free_port

from .fake_state import FakeClock, Grant, Incoming, PendingCode, RefreshSeen
from .fixtures import FIXTURES
from .fixtures.spec import ProviderFixture, client_id, client_secret, redirect_uri
from .speech import DROP, drop_path, error_body, generic_user_agent, read_basic, render, s256

__all__ = ["APPLE_KEY_ID", "APPLE_TEAM_ID", "FakeClock", "FakeProvider", "Grant", "serving"]

APPLE_TEAM_ID = "TEAMID1234"
APPLE_KEY_ID = "KEYID56789"
_CHALLENGE = re.compile(r"^[A-Za-z0-9_-]{43}$")


class FakeProvider:
    """The provider every preset's connection is pointed at (see the module docstring)."""

    def __init__(self) -> None:
        self.base = ""
        self.clock = FakeClock()
        self._lock = threading.Lock()
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self._kid = "fake-" + secrets.token_hex(4)
        self._apple_key = ec.generate_private_key(ec.SECP256R1())
        self._codes: dict[str, PendingCode] = {}
        self._by_refresh: dict[str, Grant] = {}
        self._by_access: dict[str, Grant] = {}
        self._grants: dict[str, list[Grant]] = {}
        self._counts: dict[str, Counter[str]] = {}
        self._refreshes: dict[str, list[RefreshSeen]] = {}
        self.app = Starlette(
            routes=[
                Route("/{preset}/{rest:path}", self._endpoint, methods=["GET", "POST", "DELETE"])
            ]
        )

    # ------------------------------------------------------------------ for the tests

    def root(self, preset: str) -> str:
        """The fake's URL for ``preset`` (``$root`` in the fixtures)."""
        return f"{self.base}/{preset}"

    def reset(self, preset: str) -> None:
        with self._lock:
            self._counts.pop(preset, None)
            self._refreshes.pop(preset, None)
            self._grants.pop(preset, None)

    def count(self, preset: str, what: str) -> int:
        """Requests seen since :meth:`reset`: ``authorize``, ``code``, ``refresh``,
        ``refused``, ``userinfo``, ``discovery``, ``jwks``, ``revoke``."""
        with self._lock:
            return self._counts.get(preset, Counter())[what]

    def refreshes(self, preset: str) -> list[RefreshSeen]:
        with self._lock:
            return list(self._refreshes.get(preset, ()))

    def grants(self, preset: str) -> list[Grant]:
        with self._lock:
            return list(self._grants.get(preset, ()))

    def revoke_all(self, preset: str) -> None:
        """The user revoked the app: every refresh token of ``preset`` is refused from now."""
        with self._lock:
            for grant in self._grants.get(preset, ()):
                grant.revoked = True

    def apple_private_key(self) -> str:
        """The PEM of the Sign in with Apple key the fake knows (the developer's .p8)."""
        pem = self._apple_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return pem.decode()

    def apple_client_secret(self, lifetime: int = 86400) -> str:
        """The ES256 client secret a Sign in with Apple client signs with that key (3 Apple:
        ``kid`` the key id, ``iss`` the team id, ``sub`` the client id, ``aud`` Apple's issuer
        (here: the fake's), six months at most)."""
        now = int(self.clock())
        claims = {
            "iss": APPLE_TEAM_ID,
            "iat": now,
            "exp": now + lifetime,
            "aud": self._issuer(FIXTURES["apple"]),
            "sub": client_id("apple"),
        }
        return jwt.encode(claims, self._apple_key, algorithm="ES256", headers={"kid": APPLE_KEY_ID})

    # ------------------------------------------------------------------ dispatch

    async def _endpoint(self, request: Request) -> Response:
        fixture = FIXTURES.get(request.path_params["preset"])
        if fixture is None:
            return JSONResponse({"error": "not_found"}, 404)
        incoming = Incoming(
            request.method,
            {k.lower(): v for k, v in request.headers.items()},
            dict(request.query_params),
            await request.body(),
        )
        rest: str = request.path_params["rest"]
        with self._lock:
            return self._route(fixture, rest, incoming)

    def _route(self, fx: ProviderFixture, rest: str, req: Incoming) -> Response:
        if rest.endswith(".well-known/openid-configuration"):
            self._count(fx, "discovery")
            return JSONResponse(self._discovery(fx))
        if rest == "jwks":
            self._count(fx, "jwks")
            return JSONResponse(self._jwks())
        if rest == "authorize" and req.method == "GET":
            return self._authorize(fx, req.query)
        if rest == "token" and req.method == "POST":
            return self._token(fx, req, refresh_url=False)
        if rest == "refresh" and req.method == "POST" and fx.separate_refresh:
            return self._token(fx, req, refresh_url=True)
        if rest == "userinfo" or rest.startswith(("userinfo/", "id/")):
            variant = rest[len("userinfo") :] if rest.startswith("userinfo") else ""
            return self._userinfo(fx, req, variant)
        if rest == "revoke" and req.method == "POST":
            self._count(fx, "revoke")
            return JSONResponse({})
        return JSONResponse({"error": "not_found"}, 404)

    def _count(self, fx: ProviderFixture, what: str) -> None:
        self._counts.setdefault(fx.name, Counter())[what] += 1

    # ------------------------------------------------------------------ OpenID Connect

    def _issuer(self, fx: ProviderFixture, tid: object = None) -> str:
        issuer = fx.issuer.replace("$root", self.root(fx.name))
        return issuer.replace("{tenantid}", str(tid)) if tid is not None else issuer

    def _discovery(self, fx: ProviderFixture) -> dict[str, Any]:
        root = self.root(fx.name)
        methods = {"basic": "client_secret_basic", "post": "client_secret_post"}
        return {
            "issuer": self._issuer(fx),
            "authorization_endpoint": f"{root}/authorize",
            "token_endpoint": f"{root}/token",
            "userinfo_endpoint": f"{root}/userinfo",
            "jwks_uri": f"{root}/jwks",
            "revocation_endpoint": f"{root}/revoke",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": sorted(
                methods[m] for m in fx.client_auth if m in methods
            ),
        }

    def _jwks(self) -> dict[str, Any]:
        key: dict[str, Any] = jwt.algorithms.RSAAlgorithm.to_jwk(
            self._key.public_key(), as_dict=True
        )
        key.update(kid=self._kid, alg="RS256", use="sig")
        return {"keys": [key]}

    def _id_token(self, grant: Grant, access_token: str) -> str:
        fx = grant.fixture
        now = int(self.clock())
        digest = hashlib.sha256(access_token.encode()).digest()
        claims: dict[str, Any] = {
            "sub": fx.subjects[0],
            "aud": client_id(fx.name),
            "iat": now,
            "exp": now + 3600,
            "at_hash": base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode(),
            **fx.id_token_claims,
        }
        claims["iss"] = self._issuer(fx, claims.get("tid"))
        if grant.nonce is not None:
            claims["nonce"] = grant.nonce
        return jwt.encode(claims, self._key, algorithm="RS256", headers={"kid": self._kid})

    # ------------------------------------------------------------------ authorize

    def _authorize(self, fx: ProviderFixture, query: dict[str, str]) -> Response:
        self._count(fx, "authorize")
        if query.get("client_id") != client_id(fx.name):
            return HTMLResponse("<p>Unknown client</p>", 400)
        back = query.get("redirect_uri")
        if back != redirect_uri(fx.name):
            return HTMLResponse("<p>redirect_uri does not match the registered one</p>", 400)
        state = query.get("state")

        def refuse(error: str, description: str) -> Response:
            params = {"error": error, "error_description": description}
            if state:
                params["state"] = state
            return RedirectResponse(f"{back}?{urlencode(params)}", 302)

        if query.get("response_type") != "code":
            return refuse("unsupported_response_type", "response_type must be code")
        if not state:
            return refuse("invalid_request", "state is required")
        for name, allowed in fx.authorize_required.items():
            if query.get(name) not in allowed:
                return refuse("invalid_request", f"{name} must be one of {', '.join(allowed)}")
        challenge = query.get("code_challenge")
        if challenge is None and fx.pkce_required:
            return refuse("invalid_request", "code_challenge is required")
        if challenge is not None and (
            query.get("code_challenge_method") != "S256" or not _CHALLENGE.match(challenge)
        ):
            return refuse("invalid_request", "code_challenge must be S256")
        for name in ("scope", "user_scope"):
            value = query.get(name, "")
            wrong = {",": " ", " ": ","}.get(fx.scope_separator)
            if wrong is not None and wrong in value:
                return refuse("invalid_scope", f"{name} is {fx.scope_separator!r}-separated")
        grant = Grant(
            fixture=fx,
            params=dict(query),
            scope=query.get("scope"),
            nonce=query.get("nonce"),
            offline=False,
        )
        form_post = bool(set(grant.scopes) & set(fx.form_post_scopes))
        if form_post and query.get("response_mode") != "form_post":
            return refuse("invalid_request", "response_mode must be form_post with these scopes")
        grant.offline = self._earns_refresh(fx, grant)
        code = "code-" + secrets.token_urlsafe(24)
        self._codes[code] = PendingCode(grant, back, challenge)
        params = {"code": code, "state": state, **fx.callback_extra}
        if fx.callback_scope and grant.scope:
            params["scope"] = grant.scope
        if fx.shopify_hmac:
            params["timestamp"] = str(int(self.clock()))
            # 3 Shopify: the callback's HMAC over its other parameters, with the secret
            message = urlencode(sorted(params.items()))
            key = client_secret(fx.name).encode()
            params["hmac"] = hmac.new(key, message.encode(), hashlib.sha256).hexdigest()
        if query.get("response_mode") == "form_post":
            return HTMLResponse(_auto_post(back, {**params, **fx.form_post_fields}))
        return RedirectResponse(f"{back}?{urlencode(params)}", 302)

    @staticmethod
    def _earns_refresh(fx: ProviderFixture, grant: Grant) -> bool:
        offline = fx.offline
        if offline.kind == "param":
            return grant.params.get(offline.name) in offline.values
        if offline.kind == "scope":
            return bool(set(grant.scopes) & set(offline.values))
        return offline.kind == "always"  # token_param: decided at the token endpoint

    # ------------------------------------------------------------------ token

    def _error(
        self, fx: ProviderFixture, req: Incoming, error: str, description: str, status: int = 400
    ) -> Response:
        code, body = error_body(fx, error, description, status)
        return self._reply(fx, req, body, code)

    def _reply(
        self, fx: ProviderFixture, req: Incoming, body: Mapping[str, Any], status: int = 200
    ) -> Response:
        headers = {"Cache-Control": "no-store", "Pragma": "no-cache"}
        if fx.form_unless_accept_json and "application/json" not in req.headers.get("accept", ""):
            # 3 GitHub: "Default reply is application/x-www-form-urlencoded"
            flat = {k: v if isinstance(v, str) else json.dumps(v) for k, v in body.items()}
            return Response(
                urlencode(flat),
                status,
                headers=headers,
                media_type="application/x-www-form-urlencoded; charset=utf-8",
            )
        return JSONResponse(dict(body), status, headers=headers)

    def _client_ok(self, fx: ProviderFixture, req: Incoming, form: dict[str, str]) -> bool:
        cid, secret = client_id(fx.name), client_secret(fx.name)
        authorization = req.headers.get("authorization")
        basic = read_basic(authorization)
        if basic is not None:
            if "basic" in fx.client_auth and (basic.user, basic.password) == (cid, secret):
                return True
            return "secret_basic" in fx.client_auth and (basic.user, basic.password) == (
                secret,
                "",
            )
        if authorization and authorization[:7].lower() == "bearer ":
            return "bearer_secret" in fx.client_auth and authorization[7:] == secret
        if form.get("client_id") != cid:
            return False
        if "post" in fx.client_auth and form.get("client_secret") == secret:
            return True
        return "apple_jwt" in fx.client_auth and self._apple_secret_ok(
            fx, form.get("client_secret")
        )

    def _apple_secret_ok(self, fx: ProviderFixture, value: str | None) -> bool:
        if not value:
            return False
        try:
            if jwt.get_unverified_header(value).get("kid") != APPLE_KEY_ID:
                return False
            claims = jwt.decode(
                value,
                self._apple_key.public_key(),
                algorithms=["ES256"],
                audience=self._issuer(fx),
                issuer=APPLE_TEAM_ID,
                options={"verify_exp": False, "verify_iat": False, "require": ["exp", "iat"]},
            )
        except jwt.PyJWTError:
            return False
        now = self.clock()
        iat, exp = claims["iat"], claims["exp"]
        return bool(
            claims.get("sub") == client_id("apple")
            and iat <= now + 60
            and exp > now
            and exp - iat <= 15777000
        )

    def _token(self, fx: ProviderFixture, req: Incoming, *, refresh_url: bool) -> Response:
        if req.is_json and "json" not in fx.token_bodies:
            return self._error(fx, req, "invalid_request", "the body must be form-encoded")
        if "token" in fx.user_agent_required and generic_user_agent(req.headers.get("user-agent")):
            return JSONResponse({"message": "Too Many Requests", "error": 429}, 429)
        form = {**req.query, **req.form()}
        grant_type = form.get("grant_type")
        if grant_type == "refresh_token":
            self._count(fx, "refresh")
        if not self._client_ok(fx, req, form):
            # RFC 6749 5.2: 401 when the client tried the Authorization header, else 400
            status = 401 if "authorization" in req.headers else 400
            return self._error(fx, req, "invalid_client", "client authentication failed", status)
        if grant_type == "authorization_code" and not refresh_url:
            return self._code_grant(fx, req, form)
        if grant_type == "refresh_token" and refresh_url == fx.separate_refresh:
            return self._refresh_grant(fx, req, form)
        return self._error(fx, req, "unsupported_grant_type", f"{grant_type} is not served here")

    def _code_grant(self, fx: ProviderFixture, req: Incoming, form: dict[str, str]) -> Response:
        self._count(fx, "code")
        pending = self._codes.get(form.get("code", ""))
        if pending is None or pending.used or pending.grant.fixture is not fx:
            return self._error(fx, req, "invalid_code", "the code is invalid or was used")
        pending.used = True
        if form.get("redirect_uri") != pending.redirect_uri:
            return self._error(fx, req, "invalid_redirect_uri", "redirect_uri does not match")
        if pending.challenge is not None:
            verifier = form.get("code_verifier")
            if not verifier or s256(verifier) != pending.challenge:
                return self._error(fx, req, "invalid_verifier", "code_verifier does not match")
        grant = pending.grant
        if fx.offline.kind == "token_param":
            grant.offline = form.get(fx.offline.name) in fx.offline.values
        self._grants.setdefault(fx.name, []).append(grant)
        values = self._issue(grant, presented=None)
        body = render(fx.code_reply, values)
        if not grant.offline:
            for key in fx.offline_only:
                body.pop(key, None)
        for dotted, needed in fx.conditional.items():
            if needed not in grant.params:
                drop_path(body, dotted)
        return self._reply(fx, req, body)

    def _refresh_grant(self, fx: ProviderFixture, req: Incoming, form: dict[str, str]) -> Response:
        presented = form.get("refresh_token", "")
        if fx.refresh_redirect_uri and "redirect_uri" not in form:
            return self._error(fx, req, "invalid_request", "redirect_uri is required")
        grant = self._by_refresh.get(presented)
        usable = (
            grant is not None
            and grant.fixture is fx
            and not grant.revoked
            and fx.refresh_reply is not None
            and self._still_valid(grant, presented)
            and (not fx.refresh_redirect_uri or form.get("redirect_uri") == redirect_uri(fx.name))
        )
        seen = RefreshSeen(presented, grant is not None and grant.latest_refresh == presented, True)
        if not usable or grant is None or fx.refresh_reply is None:
            self._refreshes.setdefault(fx.name, []).append(seen)
            self._count(fx, "refused")
            return self._reply(fx, req, fx.refused_refresh, fx.refused_status)
        self._refreshes.setdefault(fx.name, []).append(
            RefreshSeen(seen.presented, seen.newest, False)
        )
        return self._reply(fx, req, render(fx.refresh_reply, self._issue(grant, presented)))

    def _still_valid(self, grant: Grant, token: str) -> bool:
        if token not in grant.refresh_tokens:
            return False
        until = grant.refresh_tokens[token]
        return until is None or self.clock() < until

    def _issue(self, grant: Grant, presented: str | None) -> dict[str, Any]:
        """New tokens for ``grant`` (a code grant when ``presented`` is None) and the
        placeholder values of its reply."""
        fx = grant.fixture
        now = self.clock()
        if presented is not None and fx.rotation == "strict":
            for old in grant.access_tokens:
                self._by_access.pop(old, None)
        access = fx.access_prefix + secrets.token_urlsafe(24)
        grant.access_tokens.append(access)
        self._by_access[access] = grant
        refresh: Any = DROP
        rotates = presented is not None and fx.rotation != "none"
        if (presented is None and grant.offline) or rotates:
            refresh = fx.refresh_prefix + secrets.token_urlsafe(24)
            grant.refresh_tokens[refresh] = None
            grant.latest_refresh = refresh
            self._by_refresh[refresh] = grant
            if presented is not None and fx.rotation == "strict":
                grant.refresh_tokens.pop(presented, None)
            elif presented is not None and fx.grace is not None:
                grant.refresh_tokens[presented] = now + fx.grace
        elif presented is not None:
            refresh = presented  # no rotation: the same refresh token comes back, if at all
        wants_id = fx.id_token == "always" or "openid" in grant.scopes
        scopes = grant.scopes
        return {
            "$access_token": access,
            "$refresh_token": refresh,
            "$bot_access_token": "xoxb-" + secrets.token_urlsafe(16),
            "$bot_refresh_token": "xoxe-1-" + secrets.token_urlsafe(16),
            "$id_token": self._id_token(grant, access) if wants_id and presented is None else DROP,
            "$scope": grant.scope if grant.scope else DROP,
            "$scope_list": scopes,
            "$now": int(now),
            "$now_ms": str(int(now * 1000)),
            "$root": self.root(fx.name),
        }

    # ------------------------------------------------------------------ identity

    def _userinfo(self, fx: ProviderFixture, req: Incoming, variant: str) -> Response:
        self._count(fx, "userinfo")
        if "userinfo" in fx.user_agent_required and generic_user_agent(
            req.headers.get("user-agent")
        ):
            status = 429 if fx.error_style == "reddit" else 403
            return JSONResponse({"message": "a User-Agent header is required"}, status)
        if fx.userinfo_method == "POST" and req.method != "POST":
            return JSONResponse({"error": "this endpoint takes POST"}, 405)
        if fx.userinfo_method == "GRAPHQL" and "viewer" not in (
            req.query.get("query", "") + req.body.decode("utf-8", "replace")
        ):
            return JSONResponse({"errors": [{"message": "Must provide query string."}]}, 400)
        grant = self._by_access.get(self._presented_access_token(fx, req, variant) or "")
        if grant is None or grant.fixture is not fx:
            return JSONResponse({"error": "invalid_token"}, 401)
        if any(grant.params.get(k) != v for k, v in fx.userinfo_requires.items()):
            return JSONResponse({"code": 401, "message": "Unauthorized"}, 401)
        missing = [h for h in fx.userinfo_headers if h.lower() not in req.headers]
        if missing:
            return JSONResponse({"message": f"{missing[0]} header is required"}, 400)
        body = fx.userinfo_variants.get(variant, fx.userinfo)
        if "path" in fx.userinfo_schemes:
            body = fx.userinfo
        if body is None:
            return JSONResponse({"error": "not_found"}, 404)
        return JSONResponse(render(body, {"$root": self.root(fx.name)}))

    @staticmethod
    def _presented_access_token(
        fx: ProviderFixture, req: Incoming, variant: str = ""
    ) -> str | None:
        authorization = req.headers.get("authorization", "")
        for scheme in fx.userinfo_schemes:
            if scheme == "path":  # the token names the resource (HubSpot's token info)
                token = variant.rsplit("/", 1)[-1]
                if token and not authorization:
                    return token
            elif "-" in scheme:  # a header of its own (X-Shopify-Access-Token)
                value = req.headers.get(scheme.lower())
                if value:
                    return value
            elif authorization.lower().startswith(scheme.lower() + " "):
                return authorization[len(scheme) + 1 :].strip()
        return None


def _auto_post(action: str, fields: Mapping[str, str]) -> str:
    """The page a provider answers with ``response_mode=form_post``: a form the browser posts
    back to the app."""
    inputs = "".join(
        f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
        for k, v in fields.items()
    )
    return (
        '<html><body onload="document.forms[0].submit()">'
        f'<form method="post" action="{html.escape(action)}">{inputs}</form></body></html>'
    )


@contextmanager
def serving(fake: FakeProvider) -> Iterator[FakeProvider]:
    """Serve ``fake`` with uvicorn in a background thread on a free 127.0.0.1 port."""
    port = free_port()
    fake.base = f"http://127.0.0.1:{port}"
    server = uvicorn.Server(
        uvicorn.Config(fake.app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, name="fake-provider", daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the fake provider did not start")
        time.sleep(0.01)
    try:
        yield fake
    finally:
        server.should_exit = True
        thread.join(10)
