"""The route table both URL layouts come from: what matches, what is a 404, what is a 405."""

from __future__ import annotations

import pytest

from oauth_vault_mw.core.routes import ROUTES, MethodNotAllowed, RouteTable

TABLE = RouteTable("/auth")


def test_every_route_matches_with_its_parameters() -> None:
    for route in ROUTES:
        path = "/auth" + route.path.replace("{connection_id}", "demo").replace("{user_id}", "u1")
        found = TABLE.match(path, route.method)
        assert isinstance(found, tuple), route
        assert found[0] is route
        values = {"connection_id": "demo", "user_id": "u1"}
        expected = {name: value for name, value in values.items() if name in route.path}
        assert found[1] == expected


def test_get_routes_answer_head() -> None:
    found = TABLE.match("/auth/connections/demo/credentials", "HEAD")
    assert isinstance(found, tuple)
    assert found[0].name == "credentials"


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("GET", "/auth/logout", "POST"),
        ("POST", "/auth/me", "GET, HEAD"),
        ("PUT", "/auth/connections/demo", "DELETE"),
        ("PROPFIND", "/auth/connections/demo/credentials", "GET, HEAD"),
    ],
)
def test_a_known_path_with_another_method_is_405(method: str, path: str, allow: str) -> None:
    assert TABLE.match(path, method) == MethodNotAllowed(allow)


@pytest.mark.parametrize(
    "path",
    [
        "/auth",
        "/auth/",
        "/auth/me/",
        "/auth//me",
        "/auth/login/",
        "/auth/login/demo/x",
        "/authx/me",
        "/other/me",
        "/auth/connections//credentials",
        "/auth/nowhere",
    ],
)
def test_anything_else_under_the_prefix_is_404(path: str) -> None:
    assert TABLE.match(path, "GET") is None
