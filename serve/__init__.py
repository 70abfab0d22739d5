"""The check service: ``hnn serve INDEX``, an HTTP API over one open index (FastAPI on uvicorn)."""
