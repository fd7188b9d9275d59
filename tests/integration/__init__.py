"""Vault-level tests against real servers (the development provider, PostgreSQL, Redis) with
no framework in between; the shells' own tests are in tests/starlette and tests/flask."""
