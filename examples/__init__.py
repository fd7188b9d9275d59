"""Runnable example apps: ``uvicorn examples.starlette_app.app:app`` (see README.md)."""
