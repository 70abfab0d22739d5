"""What ``hnn serve`` is started with: the index, the checkpoint, the limits, the write token."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from hnn.errors import UsageError
from hnn.ingest.worker import Limits

TOKEN_VARIABLE = "HNN_SERVE_TOKEN"
DEFAULT_MAX_UPLOAD = 1024**3
DEFAULT_K = 5
MAX_K = 100


def default_conversions() -> int:
    """One conversion per core: each is a worker process that uses a core while it runs."""
    return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class ServeSettings:
    index: Path
    checkpoint: Path | None = None
    bits: int | None = None
    token: str | None = field(default=None, repr=False)  # never printed, never logged
    private_reads: bool = False  # reads need the token too
    max_upload: int = DEFAULT_MAX_UPLOAD  # bytes of a request body
    max_conversions: int = field(default_factory=default_conversions)  # running at once
    max_waiting: int | None = None  # admitted and waiting for a conversion slot; None: 4 x max_conversions
    body_timeout: float = 30.0  # seconds a request body may stall before it is cut off (408)
    limits: Limits = field(default_factory=Limits)  # of each conversion's worker process, as the CLI's --max-memory and --timeout

    def __post_init__(self):
        if self.max_conversions < 1:
            raise UsageError(f"--max-conversions {self.max_conversions}: must be at least 1")
        if self.max_waiting is not None and self.max_waiting < 0:
            raise UsageError(f"--max-waiting {self.max_waiting}: must be 0 or more")
        if not self.body_timeout > 0:
            raise UsageError(f"--body-timeout {self.body_timeout}: must be a positive number of seconds")
        if self.max_upload < 1:
            raise UsageError(f"--max-upload {self.max_upload}: must be a positive size")
        if self.private_reads and not self.token:
            raise UsageError(f"--private-reads needs a token (--token-file, or ${TOKEN_VARIABLE})")

    @property
    def waiting(self) -> int:
        return 4 * self.max_conversions if self.max_waiting is None else self.max_waiting


def read_token(token_file: Path | None) -> str | None:
    """The bearer token for writes: the first line of ``token_file``, else $HNN_SERVE_TOKEN, else None
    (then the service refuses every write)."""
    if token_file is not None:
        try:
            text = Path(token_file).read_text().strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"--token-file {token_file}: cannot read it ({getattr(exc, 'strerror', None) or exc})") \
                from None
        token = text.splitlines()[0].strip() if text else ""
        if not token:
            raise UsageError(f"--token-file {token_file}: the file is empty")
        return token
    return os.environ.get(TOKEN_VARIABLE) or None
