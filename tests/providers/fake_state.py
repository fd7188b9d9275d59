"""What the fake provider remembers: the test's clock, each login's grant and its tokens,
the codes it handed out, the refresh grants it saw, and a request as its endpoints read it."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

from .fixtures.spec import ProviderFixture

__all__ = ["FakeClock", "Grant", "Incoming", "PendingCode", "RefreshSeen"]


class FakeClock:
    """The time of a test: the vault and the fake read it, the test moves it."""

    def __init__(self, now: float | None = None) -> None:
        self.now = time.time() if now is None else now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Grant:
    """One login's authorization at the fake: its tokens and what earned them."""

    fixture: ProviderFixture
    params: dict[str, str]
    scope: str | None
    nonce: str | None
    offline: bool
    access_tokens: list[str] = field(default_factory=list)
    refresh_tokens: dict[str, float | None] = field(default_factory=dict)
    latest_refresh: str | None = None
    revoked: bool = False

    @property
    def latest_access(self) -> str:
        return self.access_tokens[-1]

    @property
    def scopes(self) -> list[str]:
        return [s for s in re.split(r"[ ,]", self.scope or "") if s]


@dataclass
class PendingCode:
    """A code handed out at authorize, good once at the token endpoint."""

    grant: Grant
    redirect_uri: str
    challenge: str | None
    used: bool = False


@dataclass(frozen=True)
class RefreshSeen:
    """A refresh grant the fake received: was its token the newest one of its grant?"""

    presented: str
    newest: bool
    refused: bool


@dataclass
class Incoming:
    """A request to the fake, as its endpoints read it."""

    method: str
    headers: Mapping[str, str]
    query: dict[str, str]
    body: bytes

    @property
    def is_json(self) -> bool:
        return "json" in self.headers.get("content-type", "")

    def form(self) -> dict[str, str]:
        if self.is_json:
            try:
                data = json.loads(self.body or b"{}")
            except ValueError:
                return {}
            return {k: str(v) for k, v in data.items()} if isinstance(data, dict) else {}
        return dict(parse_qsl(self.body.decode("utf-8", "replace"), keep_blank_values=True))
