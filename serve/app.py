"""The HTTP API of ``hnn serve``: FastAPI routes over one :class:`~hnn.serve.service.CheckService`.

    POST   /v1/check          an uploaded model (multipart field ``file``; a .zip is a model folder):
                              the verdict and neighbours, as `hnn check --json`
    POST   /v1/models         add an uploaded model (fields ``file``, ``label``): as `hnn index add --json`
    GET    /v1/models         the entries, ``?offset=&limit=``
    GET    /v1/models/{id}    one entry
    DELETE /v1/models/{id}    remove one entry
    GET    /healthz           liveness, the index's size, the conversion slots
    GET    /docs, /openapi.json   served by FastAPI

Errors are JSON ``{"error": "<one line>"}``: 400 a bad option, 401 no or a wrong
token, 403 writes disabled (no token configured), 404 no such entry, 413 a body
over the limit, 422 a model that cannot be used (the reason the CLI would print),
429 every conversion slot and waiting place taken, 500 a bug (the service stays up).
Writes need ``Authorization: Bearer <token>``; reads too with ``--private-reads``.
"""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import Depends, FastAPI, File, Form, HTTPException, Query, Request, UploadFile
from fastapi import Path as FastAPIPath
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from hnn._version import __version__
from hnn.errors import HnnError, UsageError, printable
from hnn.index.store import IndexBusy
from hnn.ingest.forkserver import WorkerUnavailable
from hnn.serve.auth import refusal
from hnn.serve.gate import Conversions, Gate
from hnn.serve.service import CheckService
from hnn.serve.settings import DEFAULT_K, MAX_K, ServeSettings
from hnn.serve.uploads import UNPACKED, model_path, request_folder, safe_name, save_upload

LOG = logging.getLogger("hnn.serve")
MAX_LISTED = 1000
MAX_ID = 2**63 - 1  # SQLite's largest integer


def _status(exc: HnnError) -> int:
    """400 a usage error; 503 what is the service's trouble, not the upload's (the index busy or not
    writable, the conversion server gone); 422 a model that cannot be used."""
    if isinstance(exc, (IndexBusy, WorkerUnavailable)) or "cannot write to the index" in str(exc):
        return 503
    return 400 if isinstance(exc, UsageError) else 422


def create_app(settings: ServeSettings, service: CheckService | None = None):
    """The ASGI application: the FastAPI app inside its :class:`~hnn.serve.gate.Gate`. The service
    (index, checkpoint) is opened here unless given, and closed when the application shuts down."""
    service = service or CheckService(settings)
    conversions = Conversions(settings.max_conversions, settings.waiting)

    @asynccontextmanager
    async def lifespan(_app):
        try:
            yield
        finally:  # after uvicorn has finished the requests in flight (SIGTERM)
            service.close()

    api = FastAPI(title="hnn check service", version=__version__, lifespan=lifespan,
                  description="Is an uploaded model derived from a model the index holds? hnn's `check` over HTTP.")

    def authorised(request: Request) -> None:  # the gate checked already; this holds for every route
        refused = refusal(settings, request.method, request.url.path, request.headers.get("authorization"))
        if refused is not None:
            raise HTTPException(*refused, headers={"WWW-Authenticate": "Bearer"} if refused[0] == 401 else None)

    async def converted(upload: UploadFile, request: Request, work):
        """Save the upload in a private folder, wait for a conversion slot, run ``work(path, name)``
        in a thread; the folder is removed afterwards."""
        name = safe_name(upload.filename)
        request.state.model = printable(upload.filename or name)[:200]
        with request_folder(service.scratch) as folder:
            saved = await run_in_threadpool(save_upload, upload, folder, name)
            await upload.close()  # the framework's spooled copy: one copy on disk per upload, not two
            async with conversions:
                if await request.is_disconnected():  # gone while it waited: nobody to answer
                    raise HTTPException(499, "the client closed the connection before the conversion")
                try:
                    return await run_in_threadpool(lambda: work(model_path(saved, settings.limits.max_memory), name))
                except HnnError as exc:  # the one line the CLI prints, without the service's own paths
                    reason = str(exc).replace(f"{folder}/{UNPACKED}/", "").replace(f"{folder}/", "")
                    raise HTTPException(_status(exc), reason) from None

    @api.post("/v1/check", dependencies=[Depends(authorised)], summary="Check an uploaded model against the index")
    async def check(request: Request, file: Annotated[UploadFile, File(description="The model file, or a .zip of a "
                                                                                    "model folder")],
                    k: Annotated[int, Query(ge=1, le=MAX_K, description="Neighbours to list")] = DEFAULT_K,
                    framework: Annotated[str | None, Query(description="Front-end to read it with (default: "
                                                                       "detected)")] = None):
        result = await converted(file, request, lambda path, name: service.check(path, name, k, framework))
        request.state.verdict = result["verdict"]
        return result

    @api.post("/v1/models", dependencies=[Depends(authorised)], summary="Add an uploaded model to the index")
    async def add(request: Request, file: Annotated[UploadFile, File(description="The model file, or a .zip of a "
                                                                                  "model folder")],
                  label: Annotated[str | None, Form(description="Family or owner label")] = None,
                  framework: Annotated[str | None, Query(description="Front-end to read it with")] = None):
        result = await converted(file, request, lambda path, name: service.add(path, name, label, framework))
        request.state.outcome = result["status"]
        if result["status"] == "failed":
            raise HTTPException(503 if "cannot write to the index" in result["reason"] else 422, result["reason"])
        return JSONResponse(result, status_code=201 if result["status"] == "added" else 200)

    @api.get("/v1/models", dependencies=[Depends(authorised)], summary="List the entries")
    async def entries(offset: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
                      limit: Annotated[int, Query(ge=1, le=MAX_LISTED)] = 100):
        total, listed = await run_in_threadpool(service.entries, offset, limit)
        return {"total": total, "offset": offset, "limit": limit, "entries": listed}

    @api.get("/v1/models/{entry_id}", dependencies=[Depends(authorised)], summary="One entry")
    async def entry(entry_id: Annotated[int, FastAPIPath(ge=1, le=MAX_ID)]):
        found = await run_in_threadpool(service.entry, entry_id)
        if found is None:
            raise HTTPException(404, f"no entry #{entry_id}")
        return found

    @api.delete("/v1/models/{entry_id}", dependencies=[Depends(authorised)], summary="Remove one entry")
    async def remove(entry_id: Annotated[int, FastAPIPath(ge=1, le=MAX_ID)]):
        removed = await run_in_threadpool(service.remove, entry_id)
        if removed is None:
            raise HTTPException(404, f"no entry #{entry_id}")
        return {"removed": removed}

    @api.get("/healthz", summary="Liveness and the conversion slots")
    async def healthz():
        return {**await run_in_threadpool(service.health), "conversions": conversions.to_dict()}

    @api.exception_handler(StarletteHTTPException)
    async def http_error(_request, exc: StarletteHTTPException):
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers)

    @api.exception_handler(RequestValidationError)
    async def invalid(_request, exc: RequestValidationError):
        errors = exc.errors()
        first = errors[0] if errors else {}
        where = ".".join(str(part) for part in first.get("loc", ()))
        return JSONResponse({"error": f"{where}: {first.get('msg', 'invalid request')}"}, status_code=400)

    return Gate(api, conversions, settings)
