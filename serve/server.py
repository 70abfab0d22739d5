"""Running the service: uvicorn in this process, one worker (the index's one writer), logs on stderr.

On SIGTERM or SIGINT uvicorn stops accepting connections, lets the requests in
flight finish (a conversion is bounded by the worker's time limit anyway), then
the application's shutdown closes the index and removes the scratch folder, and
the command exits 0. (uvicorn raises the signal again once it is done, for the
handler that was there before it; the one here only notes it, so a clean
shutdown is not reported as a death by signal.)
"""

from __future__ import annotations

import logging
import signal
import sys

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


def serve(settings: ServeSettings, host: str, port: int) -> None:
    """Open the index and checkpoint, then serve until SIGTERM / SIGINT."""
    import uvicorn

    configure_logs()
    service = CheckService(settings)  # errors here (a bad index) are one line before anything listens
    app = create_app(settings, service)
    config = uvicorn.Config(app, host=host, port=port, access_log=False, log_level="warning",
                            timeout_graceful_shutdown=None, lifespan="on")
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
    server.run()
    log.info("hnn serve: stopped%s", f" ({signal.Signals(stopped_by[0]).name})" if stopped_by else "")
