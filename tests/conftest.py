"""Suite-wide fixtures, from tests/support: the development provider the integration suites
share, and the throwaway Redis and PostgreSQL servers."""

pytest_plugins = [
    "tests.support.suite",
    "tests.support.redis_server",
    "tests.support.postgres_server",
]
