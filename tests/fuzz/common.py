"""What every fuzz target shares: a finding, its signature, and raw byte mutations."""

from __future__ import annotations

import random
import traceback
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Finding:
    signature: str  # exception type and the innermost frame: one per distinct bug
    message: str


def finding_of(exc: BaseException) -> Finding:
    frame = traceback.extract_tb(exc.__traceback__)[-1]
    signature = f"{type(exc).__name__} at {Path(frame.filename).name}:{frame.lineno}"
    return Finding(signature, str(exc).splitlines()[0][:200] if str(exc) else "")


def mutate_bytes(data: bytes, rng: random.Random) -> bytes:
    """Flip, delete or insert a few runs of bytes."""
    buffer = bytearray(data or b"\x00")
    for _ in range(rng.randint(1, 8)):
        choice = rng.random()
        position = rng.randrange(len(buffer))
        if choice < 0.5:
            buffer[position] = rng.randrange(256)
        elif choice < 0.75:
            del buffer[position:position + rng.randint(1, 16)]
        else:
            buffer[position:position] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
        if not buffer:
            buffer = bytearray(b"\x00")
    return bytes(buffer)
