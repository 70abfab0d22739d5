"""The worker's side of :mod:`hnn.ingest.worker`: read one request on stdin, ingest, write the IR.

Started by :func:`hnn.ingest.worker.ingest_in_worker` as ``python -P -m hnn.ingest.worker_main``
inside its limits, in its scratch folder, where it writes the IR (``output``); or forked by
the warm fork server (hnn.ingest.forkserver_main), which calls :func:`convert`. An error goes
to stderr as one ``ERROR_PREFIX`` line of JSON (message, and whether it is a usage error),
which the parent turns into the same exception.
"""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

from hnn.errors import HnnError, UsageError, summary
from hnn.ingest.worker import ERROR_PREFIX


def _report(message: str, usage: bool = False) -> int:
    print(ERROR_PREFIX + json.dumps({"message": message, "usage": usage}), file=sys.stderr)
    return 1


def _main() -> int:
    return convert(json.loads(sys.stdin.read()))


def convert(request: dict) -> int:
    """Ingest one request (source, label, options, output, max_nodes) in the current folder: the exit code."""
    try:
        from hnn.ingest.pipeline import ingest

        graph = ingest(request["source"], **request["options"])
        if len(graph.nodes) > request["max_nodes"] or len(graph.edges) > 4 * request["max_nodes"]:
            return _report(f"{request['label']}: rejected: its graph has {len(graph.nodes)} nodes and "
                           f"{len(graph.edges)} edges (limit {request['max_nodes']} nodes)")
    except HnnError as exc:
        return _report(str(exc), usage=isinstance(exc, UsageError))
    except MemoryError:
        print("MemoryError", file=sys.stderr)  # the parent words it with the limit
        return 1
    except Exception as exc:  # anything else a hostile file provokes: one line, not a traceback
        return _report(f"{request['source']}: rejected: {summary(exc)}")
    # As the user named it, not the absolute path the worker opened from its scratch folder.
    graph = replace(graph, meta=replace(graph.meta, source=request["label"]))
    Path(request["output"]).write_text(graph.to_json())
    return 0


if __name__ == "__main__":
    sys.exit(_main())
