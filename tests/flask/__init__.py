"""Tests of the Flask shell (``oauth_vault_mw.flask``)."""
