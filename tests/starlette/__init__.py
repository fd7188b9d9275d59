"""Tests of the Starlette and FastAPI shells (``oauth_vault_mw.starlette``, ``.fastapi``)."""
