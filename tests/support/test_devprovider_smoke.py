"""Smoke test of the development OpenID provider and its harness (httpx only)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import secrets
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from .oidc_provider import (
    DEVPROVIDER_DIR,
    DevProvider,
    DevProviderError,
    LoginFlowError,
    callback_path,
    complete_login,
    complete_login_async,
    redirect_params,
)

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("node") is None, reason="node (Node.js) is not on PATH"),
]

REDIRECT_URI = "http://127.0.0.1:9/cb"  # never contacted
CLIENT: dict[str, Any] = {
    "client_id": "smoke",
    "client_secret": "smoke-secret",
    "redirect_uris": [REDIRECT_URI],
}
BASIC = (CLIENT["client_id"], CLIENT["client_secret"])
SCOPE = "openid profile email offline_access"


@pytest.fixture(scope="module")
def provider() -> Iterator[DevProvider]:
    with DevProvider(clients=[CLIENT], access_token_ttl=5) as op:
        yield op


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def jwt_payload(token: str) -> dict[str, Any]:
    segment = token.split(".")[1]
    padded = segment + "=" * (-len(segment) % 4)
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(padded))
    return decoded


class AuthRequest:
    def __init__(self, op: DevProvider) -> None:
        self.state = secrets.token_urlsafe(16)
        self.nonce = secrets.token_urlsafe(16)
        self.verifier = secrets.token_urlsafe(48)
        challenge = b64url(hashlib.sha256(self.verifier.encode("ascii")).digest())
        query = urlencode(
            {
                "response_type": "code",
                "client_id": CLIENT["client_id"],
                "redirect_uri": REDIRECT_URI,
                "scope": SCOPE,
                "state": self.state,
                "nonce": self.nonce,
                "code_challenge": challenge,
                "code_challenge_method": "S256",
            }
        )
        self.url = f"{op.authorization_endpoint}?{query}"


def login(op: DevProvider, browser: httpx.Client, name: str = "alice") -> tuple[AuthRequest, str]:
    req = AuthRequest(op)
    final = complete_login(browser, req.url, login=name)
    assert final.status_code in (302, 303)
    assert final.headers["location"].startswith(REDIRECT_URI + "?")
    params = redirect_params(final)
    assert params["state"] == req.state
    assert params["iss"] == op.issuer  # RFC 9207
    return req, params["code"]


def exchange(
    op: DevProvider, req: AuthRequest, code: str, *, post_auth: bool = False
) -> httpx.Response:
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT_URI,
        "code_verifier": req.verifier,
    }
    if post_auth:
        form.update(client_id=CLIENT["client_id"], client_secret=CLIENT["client_secret"])
        return httpx.post(op.token_endpoint, data=form)
    return httpx.post(op.token_endpoint, data=form, auth=BASIC)


def refresh(op: DevProvider, token: str, *, post_auth: bool = False) -> httpx.Response:
    form = {"grant_type": "refresh_token", "refresh_token": token}
    if post_auth:
        form.update(client_id=CLIENT["client_id"], client_secret=CLIENT["client_secret"])
        return httpx.post(op.token_endpoint, data=form)
    return httpx.post(op.token_endpoint, data=form, auth=BASIC)


def test_full_flow(provider: DevProvider) -> None:
    op = provider
    op.reset()
    op.clear_failures()

    disco = httpx.get(op.discovery_url).json()
    assert disco["issuer"] == op.issuer
    assert disco["authorization_response_iss_parameter_supported"] is True
    assert disco["code_challenge_methods_supported"] == ["S256"]
    assert {"client_secret_basic", "client_secret_post"} <= set(
        disco["token_endpoint_auth_methods_supported"]
    )
    assert disco["token_endpoint"] == op.token_endpoint
    assert disco["userinfo_endpoint"] == op.userinfo_endpoint
    assert disco["revocation_endpoint"] == op.revocation_endpoint
    assert disco["authorization_endpoint"] == op.authorization_endpoint

    with httpx.Client() as browser:
        req, code = login(op, browser, "alice")

    tokens = exchange(op, req, code)
    assert tokens.status_code == 200, tokens.text
    body = tokens.json()
    assert body["token_type"].lower() == "bearer"
    assert 4 <= body["expires_in"] <= 5
    assert body["access_token"]
    assert body["refresh_token"]
    claims = jwt_payload(body["id_token"])
    assert claims["iss"] == op.issuer
    assert claims["aud"] == CLIENT["client_id"]
    assert claims["sub"] == "alice"
    assert claims["nonce"] == req.nonce
    old_refresh = body["refresh_token"]

    rotated = refresh(op, old_refresh)
    assert rotated.status_code == 200, rotated.text
    new = rotated.json()
    assert new["refresh_token"] != old_refresh  # rotation
    assert new["access_token"] != body["access_token"]
    assert 4 <= new["expires_in"] <= 5

    info = httpx.get(
        op.userinfo_endpoint, headers={"Authorization": f"Bearer {new['access_token']}"}
    )
    assert info.status_code == 200, info.text
    assert info.json() == {
        "sub": "alice",
        "name": "Alice",
        "preferred_username": "alice",
        "email": "alice@example.test",
        "email_verified": True,
    }

    revoked = httpx.post(
        op.revocation_endpoint,
        data={"token": new["access_token"], "token_type_hint": "access_token"},
        auth=BASIC,
    )
    assert revoked.status_code == 200, revoked.text
    after = httpx.get(
        op.userinfo_endpoint, headers={"Authorization": f"Bearer {new['access_token']}"}
    )
    assert after.status_code == 401

    reuse = refresh(op, old_refresh)
    assert reuse.status_code == 400
    assert reuse.json()["error"] == "invalid_grant"

    stats = op.stats()
    assert stats["authorization_code_grants"] == 1
    assert stats["authorization_code_errors"] == {}
    assert stats["refresh_grants"] == 1
    assert stats["refresh_errors"] == {"invalid_grant": 1}
    assert stats["revocations"] == 1
    assert stats["userinfo_calls"] == 2
    assert stats["token_requests"] == 3

    # reuse detection revoked the whole grant: the rotated token is dead too
    family = refresh(op, new["refresh_token"])
    assert family.status_code == 400
    assert family.json()["error"] == "invalid_grant"

    op.fail()  # next token request: 503
    down = refresh(op, "whatever")
    assert down.status_code == 503
    assert down.json()["error"] == "temporarily_unavailable"
    normal = refresh(op, "whatever")
    assert normal.status_code == 400
    assert normal.json()["error"] == "invalid_grant"

    op.reset()
    assert op.stats()["refresh_grants"] == 0


def test_post_auth_session_reuse_and_failure_modes(provider: DevProvider) -> None:
    op = provider
    op.clear_failures()
    with httpx.Client() as browser:
        req, code = login(op, browser, "bob")
        # second authorization in the same browser: session exists, no form
        req2, code2 = login(op, browser, "ignored")

    tokens = exchange(op, req, code, post_auth=True)
    assert tokens.status_code == 200, tokens.text
    assert jwt_payload(tokens.json()["id_token"])["sub"] == "bob"
    tokens2 = exchange(op, req2, code2)
    assert tokens2.status_code == 200, tokens2.text
    assert jwt_payload(tokens2.json()["id_token"])["sub"] == "bob"

    rotated = refresh(op, tokens.json()["refresh_token"], post_auth=True)
    assert rotated.status_code == 200, rotated.text

    wrong = httpx.post(
        op.token_endpoint,
        data={"grant_type": "refresh_token", "refresh_token": rotated.json()["refresh_token"]},
        auth=(CLIENT["client_id"], "wrong"),
    )
    assert wrong.status_code == 401
    assert wrong.json()["error"] == "invalid_client"

    op.fail(status=200, count=1, body="<html>garbage</html>")
    garbage = refresh(op, rotated.json()["refresh_token"])
    assert garbage.status_code == 200
    assert garbage.text == "<html>garbage</html>"
    assert garbage.headers["content-type"].startswith("text/plain")

    op.fail(status=0, count=1, delay_ms=400)  # slow, then processed normally
    started = time.monotonic()
    slow = refresh(op, rotated.json()["refresh_token"])
    assert time.monotonic() - started >= 0.4
    assert slow.status_code == 200, slow.text

    op.fail(status=502, count=2, headers={"Retry-After": "1"})
    assert refresh(op, "x").status_code == 502
    second = refresh(op, "x")
    assert second.status_code == 502
    assert second.headers["retry-after"] == "1"
    assert refresh(op, "x").status_code == 400

    op.fail(status=503, count=5)
    op.clear_failures()
    assert refresh(op, "x").status_code == 400

    # both of bob's authorizations share one grant (same browser session)
    assert op.revoke_grants("bob") == 1
    dead = refresh(op, slow.json()["refresh_token"])
    assert dead.json()["error"] == "invalid_grant"
    assert refresh(op, tokens2.json()["refresh_token"]).json()["error"] == "invalid_grant"

    # replaying an authorization code fails and revokes what it issued
    with httpx.Client() as browser:
        req3, code3 = login(op, browser, "dave")
    first = exchange(op, req3, code3)
    assert first.status_code == 200, first.text
    replay = exchange(op, req3, code3)
    assert replay.status_code == 400
    assert replay.json()["error"] == "invalid_grant"
    assert refresh(op, first.json()["refresh_token"]).json()["error"] == "invalid_grant"


def test_no_rotation_and_concurrency() -> None:
    n = 200
    with DevProvider(clients=[CLIENT], rotate_refresh_token=False) as op:
        pid = op.pid
        assert pid is not None

        async def run() -> tuple[str, list[httpx.Response]]:
            async with httpx.AsyncClient() as browser:
                req = AuthRequest(op)
                final = await complete_login_async(browser, req.url, login="carol")
            code = redirect_params(final)["code"]
            tokens = exchange(op, req, code)
            assert tokens.status_code == 200, tokens.text
            rt = tokens.json()["refresh_token"]
            limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
            async with httpx.AsyncClient(limits=limits, timeout=60.0) as client:
                form = {"grant_type": "refresh_token", "refresh_token": rt}
                responses = await asyncio.gather(
                    *(client.post(op.token_endpoint, data=form, auth=BASIC) for _ in range(n))
                )
            return rt, list(responses)

        op.reset()
        rt, responses = asyncio.run(run())
        assert [r.status_code for r in responses] == [200] * n
        # without rotation the same refresh token is handed back every time
        assert {r.json()["refresh_token"] for r in responses} == {rt}
        stats = op.stats()
        assert stats["refresh_grants"] == n
        assert stats["refresh_errors"] == {}
        assert stats["authorization_code_grants"] == 1

    assert not op.running
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_refuses_non_loopback_host() -> None:
    with pytest.raises(DevProviderError, match="loopback"):
        DevProvider(host="0.0.0.0").start()


def test_missing_node_modules_is_a_clear_error(tmp_path: Path) -> None:
    shutil.copy(DEVPROVIDER_DIR / "server.mjs", tmp_path / "server.mjs")
    with pytest.raises(DevProviderError, match=r"npm ci --prefix devprovider"):
        DevProvider(directory=tmp_path).start()


def test_a_start_that_hangs_is_stopped_and_tried_again(tmp_path: Path) -> None:
    """A child that prints nothing in time is killed and launched once more."""
    node = shutil.which("node")
    assert node is not None
    marker = tmp_path / "first-launch-done"
    hung_pid = tmp_path / "hung.pid"
    wrapper = tmp_path / "node-wrapper"
    wrapper.write_text(
        "#!/bin/sh\n"
        f'if [ ! -e "{marker}" ]; then\n'
        f'  touch "{marker}"; echo $$ > "{hung_pid}"; exec sleep 60\n'
        "fi\n"
        f'exec "{node}" "$@"\n'
    )
    wrapper.chmod(0o755)
    op = DevProvider(clients=[CLIENT], node=str(wrapper), startup_timeout=3)
    with op:
        assert marker.exists()
        discovery = httpx.get(f"{op.issuer}/.well-known/openid-configuration", timeout=10)
        assert discovery.status_code == 200
    with pytest.raises(ProcessLookupError):
        os.kill(int(hung_pid.read_text()), 0)


def test_a_start_that_always_hangs_fails_with_the_reason(tmp_path: Path) -> None:
    wrapper = tmp_path / "node-wrapper"
    wrapper.write_text("#!/bin/sh\nexec sleep 60\n")
    wrapper.chmod(0o755)
    op = DevProvider(clients=[CLIENT], node=str(wrapper), startup_timeout=1)
    with pytest.raises(DevProviderError, match=r"did not print READY within 1 s \(pid \d+, still"):
        op.start()
    assert not op.running


def test_callback_path_is_relative_to_the_app_and_refuses_another_origin() -> None:
    back = httpx.Response(302, headers={"location": "http://127.0.0.1:8000/auth/callback/x?code=c"})
    assert callback_path(back, "http://127.0.0.1:8000") == "/auth/callback/x?code=c"
    with pytest.raises(LoginFlowError, match=r"not to http://127\.0\.0\.1:9000"):
        callback_path(back, "http://127.0.0.1:9000")
