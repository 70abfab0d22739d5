"""Do TorchScript and dynamo give one IR? Per family of the transformers zoo preset, at its smallest size.

    .venv/bin/python benchmarks/exporter_agreement.py [--families bert,llama,...] [--json]

Each family's smallest configuration (hnn.zoo.transformer_presets) is converted twice by
``hnn ingest``'s path (simplified), once per torch exporter; reported: whether the IR digests are
equal, the node counts, and the ops one has more of than the other (what a canonicalization pass
would have to reconcile), or the exporter's one-line failure; and whether ``hnn hash``'s path (no
onnxsim, the default exporter) gives the same IR as ``hnn ingest``'s. Also prints each IR digest,
so two commits can be compared (how the IR changes of a canonicalization pass are found).
"""

from __future__ import annotations

import argparse
import collections
import json
import warnings


def main() -> None:
    from hnn.errors import HnnError
    from hnn.ingest.pipeline import ingest
    from hnn.zoo.transformer_presets import SIZES, models

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", default="", help="comma-separated; default: every family")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    wanted = set(filter(None, args.families.split(",")))
    smallest = f"-{SIZES[0][0]}x{SIZES[0][1]}"
    rows = []
    warnings.simplefilter("ignore")
    for name, family, spec in models():
        if not name.endswith(smallest) or (wanted and family not in wanted):
            continue
        try:
            graphs = {exporter: ingest(spec, framework="transformers", exporter=exporter)
                      for exporter in ("torchscript", "dynamo")}
            # What `hnn hash` reads (no onnxsim; the default exporter): the same IR or not.
            hashed = ingest(spec, framework="transformers", simplify=False).digest()
        except HnnError as exc:
            rows.append({"family": family, "same": None, "error": str(exc)[:200]})
            continue
        ops = {exporter: collections.Counter(node.op for node in graph.nodes) for exporter, graph in graphs.items()}
        rows.append({"family": family, "same": graphs["torchscript"].digest() == graphs["dynamo"].digest(),
                     "nodes": {e: len(g.nodes) for e, g in graphs.items()},
                     "more_in_torchscript": dict(ops["torchscript"] - ops["dynamo"]),
                     "more_in_dynamo": dict(ops["dynamo"] - ops["torchscript"]),
                     "digests": {e: g.digest()[:16] for e, g in graphs.items()},
                     "hash_path_same": hashed == graphs["torchscript"].digest()})
        if args.json:
            print(json.dumps(rows[-1]), flush=True)
    if args.json:
        return
    for row in rows:
        if row["same"] is None:
            print(f"{row['family']:>10}  fails: {row['error']}")
        else:
            print(f"{row['family']:>10}  {'same' if row['same'] else 'DIFFERENT':9}  nodes {row['nodes']['torchscript']:>4} / "
                  f"{row['nodes']['dynamo']:>4}  {row['more_in_torchscript'] or ''} {row['more_in_dynamo'] or ''}  "
                  f"{row['digests']['torchscript']}  hash path {'same' if row['hash_path_same'] else 'DIFFERENT'}")
    print(f"{sum(bool(row['same']) for row in rows)} of {len(rows)} families give one IR from both exporters; "
          f"{sum(bool(row.get('hash_path_same')) for row in rows)} the same IR without onnxsim (hnn hash)")


if __name__ == "__main__":
    main()
