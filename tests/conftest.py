"""Suite-wide fixtures: the throwaway Redis and PostgreSQL servers live in tests/support."""

pytest_plugins = [
    "tests.support.redis_server",
    "tests.support.postgres_server",
]
