"""Running the service: uvicorn in this process, one worker (the index's one writer), logs on stderr.

On SIGTERM or SIGINT uvicorn stops accepting connections, lets the requests in
flight finish (a conversion is bounded by the worker's time limit anyway), then
the application's shutdown closes the index and removes the scratch folder, and
the command exits 0. A request still running ``--timeout`` + SHUTDOWN_GRACE_S
after the signal is cut off (a stalled upload is cut off sooner: hnn.serve.gate). (uvicorn raises the signal again once it is done, for the
handler that was there before it; the one here only notes it, so a clean
shutdown is not reported as a death by signal.)
"""

from __future__ import annotations

import logging
import signal
import socket
import sys

from hnn.errors import UsageError
from hnn.serve.app import create_app
from hnn.serve.service import CheckService
from hnn.serve.settings import ServeSettings


def configure_logs(stream=None) -> None:
    """The access log (one JSON line per request) and hnn.serve's own messages on ``stream`` (stderr)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    for name in ("hnn.serve", "hnn.serve.access"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler] if name == "hnn.serve" else []
        logger.setLevel(logging.INFO)
    logging.getLogger("hnn.serve.access").propagate = True  # through hnn.serve's handler


# After SIGTERM, how long the requests in flight may take beyond a conversion's own time limit (the
# parent's share of a large graph: reading, merging and hashing its IR) before they are cut off.
SHUTDOWN_GRACE_S = 60


def listening_socket(host: str, port: int) -> socket.socket:
    """The bound, listening socket, or a one-line error (a port in use, an address not of this host)."""
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        listener = socket.socket(family, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((host, port))
        listener.listen(2048)
    except (OSError, OverflowError) as exc:
        raise UsageError(f"cannot listen on {host}:{port} ({getattr(exc, 'strerror', None) or exc})") from None
    return listener


def serve(settings: ServeSettings, host: str, port: int) -> None:
    """Open the index and checkpoint, then serve until SIGTERM / SIGINT."""
    import uvicorn

    configure_logs()
    listener = listening_socket(host, port)  # before anything is opened: a busy port is one line
    try:
        service = CheckService(settings)  # errors here (a bad index) are one line; nothing is answered yet
    except BaseException:
        listener.close()
        raise
    app = create_app(settings, service)
    config = uvicorn.Config(app, access_log=False, log_level="warning", lifespan="on",
                            timeout_graceful_shutdown=int(settings.limits.timeout + SHUTDOWN_GRACE_S))
    server = uvicorn.Server(config)
    stopped_by = []
    for number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(number, lambda received, _frame: stopped_by.append(received))
    log = logging.getLogger("hnn.serve")
    log.info(
        "hnn serve: serving on http://%s:%d (index %s: %d entries; %d conversions at once, %d waiting; "
        "writes %s; reads %s)", host, port, settings.index, len(service.index), settings.max_conversions,
        settings.waiting, "need the token" if settings.token else "disabled (no token)",
        "need the token" if settings.private_reads else "open")
    server.run(sockets=[listener])
    log.info("hnn serve: stopped%s", f" ({signal.Signals(stopped_by[0]).name})" if stopped_by else "")
