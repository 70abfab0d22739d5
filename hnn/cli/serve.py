"""``hnn serve``: the check service over one index."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from hnn.cli.options import BitsOption, CheckpointOption, IndexArgument, MaxMemoryOption, TimeoutOption, limits


def serve(
    index: IndexArgument,
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="Port to listen on.")] = 8000,
    token_file: Annotated[Optional[Path], typer.Option(
        "--token-file", help="File holding the bearer token that writes need (else $HNN_SERVE_TOKEN; "
                             "without either, writes are refused).")] = None,
    private_reads: Annotated[bool, typer.Option(
        "--private-reads", help="Reads (checks, listings) need the token too.")] = False,
    max_upload: Annotated[str, typer.Option("--max-upload", help="Largest request body (e.g. 1G).")] = "1G",
    max_conversions: Annotated[Optional[int], typer.Option(
        "--max-conversions", min=1, help="Uploads converted at once; default: one per core.")] = None,
    max_waiting: Annotated[Optional[int], typer.Option(
        "--max-waiting", min=0, help="Uploads admitted to wait for a conversion; beyond: 429. "
                                     "Default: 4 per conversion.")] = None,
    body_timeout: Annotated[float, typer.Option(
        "--body-timeout", help="Seconds an upload may stall before it is cut off (408).")] = 30.0,
    checkpoint: CheckpointOption = None,
    bits: BitsOption = None,
    max_memory: MaxMemoryOption = "4G",
    timeout: TimeoutOption = 300.0,
) -> None:
    """Serve checks and adds over HTTP (POST /v1/check, /v1/models; docs at /docs) until SIGTERM."""
    from hnn.ingest.worker import parse_memory
    from hnn.serve.settings import ServeSettings, default_conversions, read_token

    try:
        from hnn.serve.server import serve as run_server
    except ImportError as exc:
        from hnn.errors import UsageError

        raise UsageError(f"hnn serve needs FastAPI and uvicorn ({exc.name} is missing): "
                         "pip install 'hnn[serve]'") from None
    settings = ServeSettings(index=index, checkpoint=checkpoint, bits=bits, token=read_token(token_file),
                             private_reads=private_reads, max_upload=parse_memory(max_upload, "--max-upload"),
                             max_conversions=max_conversions or default_conversions(), max_waiting=max_waiting,
                             body_timeout=body_timeout,
                             limits=limits(max_memory, timeout))
    run_server(settings, host, port)
