"""What every request passes before the routes: the access log, the body-size limit, the admission limit.

A pure ASGI middleware (outermost, so it sees every request, even those it
turns away, and its answers never pass through the framework's error pages):

* **access log**: one JSON line per request on the ``hnn.serve.access`` logger
  (method, path without the query string, status, duration, the verdict or add
  status the route left in the request's state, the client address). Headers are
  never logged, so neither is the bearer token.
* **the token** (hnn.serve.auth), from the headers alone: a write without it is
  refused (401, 403) before it is admitted or its body read;
* **body size**: a declared ``Content-Length`` over the limit is refused (413)
  before a byte is read; a body that turns out longer (chunked uploads) is cut off
  at the limit: reading it raises the framework's HTTPException(413), which the
  routes' error handler words like every other error. A body that stops arriving
  for ``--body-timeout`` seconds is cut off the same way (408): a stalled client cannot hold
  its place for ever, nor hold up a shutdown;
* **admission**: the routes that convert an upload (POST /v1/check, POST /v1/models)
  are admitted only while fewer than ``max_conversions + max_waiting`` are in the
  service; beyond that a 429 with Retry-After answers without saving the body
  (it is read and dropped, as for a 401, so that a client still sending its
  upload reads the answer rather than a reset connection). So the queue is bounded: the admitted ones wait for one of
  ``max_conversions`` conversion slots (:class:`Conversions`);
* **bugs**: an exception that escapes the application is answered 500 (when no
  answer was started) and logged as one line, not a traceback per layer.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time

from fastapi import HTTPException

from hnn.errors import summary
from hnn.serve.auth import refusal
from hnn.serve.settings import ServeSettings

ACCESS_LOG = logging.getLogger("hnn.serve.access")
LOG = logging.getLogger("hnn.serve")
CONVERTING_ROUTES = {("POST", "/v1/check"), ("POST", "/v1/models")}
RETRY_AFTER_S = 1


class Conversions:
    """The conversion slots: ``limit`` running at once, ``waiting`` more admitted to wait for one."""

    def __init__(self, limit: int, waiting: int):
        self.limit, self.waiting = limit, waiting
        self.admitted = 0  # in the service: running or waiting (one event loop: no lock needed)
        self.running = 0
        self._slots = asyncio.Semaphore(limit)

    def admit(self) -> bool:
        if self.admitted >= self.limit + self.waiting:
            return False
        self.admitted += 1
        return True

    def leave(self) -> None:
        self.admitted -= 1

    async def __aenter__(self):
        await self._slots.acquire()
        self.running += 1

    async def __aexit__(self, *exc):
        self.running -= 1
        self._slots.release()

    def to_dict(self) -> dict:
        return {"running": self.running, "waiting": self.admitted - self.running, "limit": self.limit,
                "max_waiting": self.waiting}


class Gate:
    def __init__(self, app, conversions: Conversions, settings: ServeSettings):
        self.app, self.conversions, self.settings = app, conversions, settings
        self.max_body, self.body_idle_s = settings.max_upload, settings.body_timeout

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = {"code": None}

        async def send_logged(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        converting = (scope["method"], scope["path"]) in CONVERTING_ROUTES
        admitted = False
        try:
            declared = _content_length(scope)
            refused = refusal(self.settings, scope["method"], scope["path"], _header(scope, b"authorization"))
            if refused is not None:
                await self._drain(receive)
                await _refuse(send_logged, *refused, [(b"www-authenticate", b"Bearer")] if refused[0] == 401 else None)
            elif declared is not None and declared > self.max_body:
                await _refuse(send_logged, 413, f"request body of {declared} bytes is over the "
                                                f"{self.max_body}-byte limit (--max-upload)")
            elif converting and not self.conversions.admit():
                await self._drain(receive)
                busy = self.conversions.to_dict()
                await _refuse(send_logged, 429, f"busy: all {busy['limit']} conversion slots and {busy['max_waiting']} "
                                                f"waiting places are taken ({busy['running']} running, "
                                                f"{busy['waiting']} waiting); retry later",
                              [(b"retry-after", str(RETRY_AFTER_S).encode())])
            else:
                admitted = converting
                await self.app(scope, self._limited(receive), send_logged)
        except Exception as exc:  # noqa: BLE001  (a bug: the service answers and stays up)
            LOG.error("internal error on %s %s: %s", scope["method"], scope["path"], summary(exc))
            if status["code"] is None:
                await _refuse(send_logged, 500, f"internal error: {summary(exc)}")
        finally:
            if admitted:
                self.conversions.leave()
            _log(scope, status["code"], time.perf_counter() - started)

    async def _drain(self, receive) -> None:
        """Read and drop a refused request's body (at most the size limit, with the stall timeout), so
        that the client, still sending its upload, reads the answer instead of a reset connection."""
        seen = 0
        while seen <= self.max_body:
            try:
                message = await asyncio.wait_for(receive(), self.body_idle_s)
            except TimeoutError:
                return
            if message["type"] != "http.request":
                return
            seen += len(message.get("body", b""))
            if not message.get("more_body", False):
                return

    def _limited(self, receive):
        """``receive``, cut off with a 413 once the body passes the limit, and a 408 when it stalls."""
        seen, complete = 0, False

        async def limited():
            nonlocal seen, complete
            if complete:  # after the body, a wait for the client to disconnect may be as long as it likes
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), self.body_idle_s)
            except TimeoutError:
                raise HTTPException(408, f"the request body stalled for {self.body_idle_s:g} s") from None
            if message["type"] == "http.request":
                complete = not message.get("more_body", False)
                seen += len(message.get("body", b""))
                if seen > self.max_body:
                    raise HTTPException(413, f"request body is over the {self.max_body}-byte limit (--max-upload)")
            return message

        return limited


def _header(scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return value.decode("latin-1")
    return None


def _content_length(scope) -> int | None:
    value = _header(scope, b"content-length")
    try:
        return None if value is None else int(value)
    except ValueError:
        return None


async def _refuse(send, code: int, reason: str, headers: list | None = None) -> None:
    body = json.dumps({"error": reason}).encode()
    await send({"type": "http.response.start", "status": code,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close"), *(headers or [])]})
    await send({"type": "http.response.body", "body": body})


def _log(scope, status: int | None, seconds: float) -> None:
    state = scope.get("state") or {}
    record = {"method": scope["method"], "path": scope["path"], "status": status, "ms": round(seconds * 1000, 1)}
    for key in ("verdict", "outcome", "model"):
        if state.get(key) is not None:
            record[key] = state[key]
    client = scope.get("client")
    if client:
        record["client"] = client[0]
    ACCESS_LOG.info(json.dumps(record))
