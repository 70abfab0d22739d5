"""Who may do what: writes need the bearer token, reads too with ``--private-reads``.

Checked twice: by the gate (hnn.serve.gate), from the headers alone, before a
request is admitted or its body read, so a client without the token can neither
hold a conversion place nor fill the disk; and by the routes, so no route is open
by an oversight of the gate's path rules.
"""

from __future__ import annotations

import hmac

from hnn.serve.settings import ServeSettings

WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
API_PREFIX = "/v1/"


def is_write(method: str, path: str) -> bool:
    """Adding and removing models; a check (POST /v1/check) reads."""
    return method in WRITE_METHODS and path.startswith(API_PREFIX + "models")


def refusal(settings: ServeSettings, method: str, path: str, authorization: str | None) -> tuple[int, str] | None:
    """(status, one-line reason) when the request may not proceed, else None. /healthz and the
    OpenAPI pages stay open: a load balancer's probe has no token, the schema holds no data."""
    write = is_write(method, path)
    if not write and not (settings.private_reads and path.startswith(API_PREFIX)):
        return None
    if settings.token is None:
        return 403, "writes are disabled: the service was started without a token (--token-file or $HNN_SERVE_TOKEN)"
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), settings.token.encode()):
        return 401, "a valid bearer token is needed (Authorization: Bearer <token>)"
    return None
