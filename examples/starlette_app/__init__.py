"""Starlette example app (``uvicorn examples.starlette_app.app:app``)."""
