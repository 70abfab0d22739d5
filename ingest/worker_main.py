"""The worker's side of :mod:`hnn.ingest.worker`: read one request on stdin, ingest, print the IR.

Started by :func:`hnn.ingest.worker.ingest_in_worker` as ``python -m hnn.ingest.worker_main``
inside its limits. An error goes to stderr as one ``ERROR_PREFIX`` line of JSON (message,
and whether it is a usage error), which the parent turns into the same exception.
"""

from __future__ import annotations

import json
import sys

from hnn.errors import HnnError, UsageError, summary
from hnn.ingest.worker import ERROR_PREFIX


def _report(message: str, usage: bool = False) -> int:
    print(ERROR_PREFIX + json.dumps({"message": message, "usage": usage}), file=sys.stderr)
    return 1


def _main() -> int:
    request = json.loads(sys.stdin.read())
    try:
        from hnn.ingest.pipeline import ingest

        graph = ingest(request["source"], **request["options"])
    except HnnError as exc:
        return _report(str(exc), usage=isinstance(exc, UsageError))
    except MemoryError:
        print("MemoryError", file=sys.stderr)  # the parent words it with the limit
        return 1
    except Exception as exc:  # anything else a hostile file provokes: one line, not a traceback
        return _report(f"{request['source']}: rejected: {summary(exc)}")
    sys.stdout.write(graph.to_json())
    return 0


if __name__ == "__main__":
    sys.exit(_main())
