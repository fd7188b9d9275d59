"""The fake provider, served once for the session (``tests/providers/fake_provider.py``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .fake_provider import FakeProvider, serving


@pytest.fixture(scope="session")
def fake() -> Iterator[FakeProvider]:
    with serving(FakeProvider()) as running:
        yield running
