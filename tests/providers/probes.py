"""Requests sent straight to the fake provider, as a client of that provider would send them
(or as one that gets something wrong), to check that it answers as the real one does."""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

import httpx

from .fake_provider import FakeProvider
from .fixtures.spec import ClientAuth, ProviderFixture, client_id, client_secret, redirect_uri
from .speech import s256

__all__ = ["Probe", "reply_body"]

AGENT = "web:oauth-vault-mw-tests:1.0 (by /u/oauth-vault-mw)"


def reply_body(response: httpx.Response) -> dict[str, Any]:
    """A token endpoint's reply as a mapping, JSON or form-encoded (GitHub's default)."""
    if "x-www-form-urlencoded" in response.headers.get("content-type", ""):
        return dict(parse_qsl(response.text))
    data = response.json()
    assert isinstance(data, dict), data
    return data


def _basic(user: str, password: str) -> str:
    pair = f"{quote(user, safe='')}:{quote(password, safe='')}"
    return "Basic " + base64.b64encode(pair.encode()).decode()


def redirect_query(response: httpx.Response) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(response.headers["location"]).query))


@dataclass
class Probe:
    """One fixture's endpoints at the fake, and the requests a client makes there."""

    fake: FakeProvider
    fx: ProviderFixture
    http: httpx.Client

    @property
    def root(self) -> str:
        return self.fake.root(self.fx.name)

    def authorize(
        self,
        *,
        drop: Collection[str] = (),
        base: Mapping[str, str] | None = None,
        extra: Mapping[str, str] | None = None,
        pkce: bool = True,
        redirect: str | None = None,
    ) -> tuple[httpx.Response, str]:
        verifier = secrets.token_urlsafe(48)
        params = {
            "response_type": "code",
            "client_id": client_id(self.fx.name),
            "redirect_uri": redirect or redirect_uri(self.fx.name),
            "state": secrets.token_urlsafe(16),
            **(self.fx.login_params if base is None else base),
            **(extra or {}),
        }
        if pkce:
            params.update(code_challenge=s256(verifier), code_challenge_method="S256")
        for name in drop:
            params.pop(name, None)
        return self.http.get(f"{self.root}/authorize", params=params), verifier

    def code(self, **kwargs: Any) -> tuple[str, str]:
        answer, verifier = self.authorize(**kwargs)
        assert answer.status_code == 302, answer.text
        query = redirect_query(answer)
        assert "code" in query, query
        return query["code"], verifier

    def method(self) -> ClientAuth:
        for how in ("basic", "secret_basic", "bearer_secret", "post", "apple_jwt"):
            if how in self.fx.client_auth:
                return how
        raise AssertionError(self.fx.client_auth)

    def token(
        self,
        form: Mapping[str, str],
        *,
        how: ClientAuth | None = None,
        secret: str | None = None,
        accept_json: bool = True,
        user_agent: bool = True,
        as_json: bool = False,
        url: str | None = None,
    ) -> httpx.Response:
        name = self.fx.name
        cid = client_id(name)
        secret = secret or (
            self.fake.apple_client_secret()
            if "apple_jwt" in self.fx.client_auth
            else client_secret(name)
        )
        how = how or self.method()
        body = dict(form)
        headers = {"Accept": "application/json" if accept_json else "*/*"}
        if how == "basic":
            headers["Authorization"] = _basic(cid, secret)
        elif how == "secret_basic":
            headers["Authorization"] = _basic(secret, "")
        elif how == "bearer_secret":
            headers["Authorization"] = f"Bearer {secret}"
        else:
            body.update(client_id=cid, client_secret=secret)
        target = url or f"{self.root}/token"
        request = self.http.build_request(
            "POST",
            target,
            headers=headers,
            content=json.dumps(body).encode() if as_json else None,
            data=None if as_json else body,
        )
        if as_json:
            request.headers["Content-Type"] = "application/json"
        if user_agent:
            request.headers["User-Agent"] = AGENT
        else:
            del request.headers["User-Agent"]
        return self.http.send(request)

    def exchange(
        self, code: str, verifier: str, *, token_params: bool = True, **kwargs: Any
    ) -> httpx.Response:
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri(self.fx.name),
            "code_verifier": verifier,
        }
        offline = self.fx.offline
        if offline.kind == "token_param" and token_params:
            form[offline.name] = offline.values[0]
        return self.token(form, **kwargs)

    def tokens(self) -> dict[str, Any]:
        """A good login's token reply."""
        answer = self.exchange(*self.code())
        assert answer.status_code == 200, answer.text
        body = reply_body(answer)
        assert "error" not in body, body
        assert body.get("ok", True), body
        return body

    def refresh(
        self, refresh_token: str, *, redirect: bool = True, **kwargs: Any
    ) -> httpx.Response:
        form = {"grant_type": "refresh_token", "refresh_token": refresh_token}
        if self.fx.refresh_redirect_uri and redirect:
            form["redirect_uri"] = redirect_uri(self.fx.name)
        if "url" not in kwargs and self.fx.separate_refresh:
            kwargs["url"] = f"{self.root}/refresh"
        return self.token(form, **kwargs)

    def without_offline(self) -> dict[str, str]:
        """The login's parameters minus what earns a refresh token."""
        offline = self.fx.offline
        params = dict(self.fx.login_params)
        if offline.kind == "param":
            allowed = self.fx.authorize_required.get(offline.name, ())
            others = [v for v in allowed if v not in offline.values]
            if others:
                params[offline.name] = others[0]
            else:
                params.pop(offline.name, None)
        elif offline.kind == "scope":
            kept = [s for s in params.get("scope", "").split() if s not in offline.values]
            params["scope"] = " ".join(kept)
        return params
