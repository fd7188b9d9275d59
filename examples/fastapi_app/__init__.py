"""FastAPI example app (``uvicorn examples.fastapi_app.app:app``)."""
