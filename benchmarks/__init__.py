"""Benchmarks of oauth_vault_mw: ``./scripts/bench`` (or ``python -m benchmarks [--quick]``)."""
