"""A zoo dataset as training and evaluation see it: graphs by name, source labels, cached pairwise GED."""

from __future__ import annotations

from pathlib import Path

from hnn.errors import UsageError
from hnn.ingest.ir import Graph
from hnn.zoo.build import KINDS, load_dataset_graph, load_manifest
from hnn.zoo.ged import DEFAULT_CAP, GedGraph, pairwise


# Models whose graphs' pairwise GED is not estimated (hnn.zoo.ged.pairwise, ``unestimated``):
# transformer graphs are large and alike, a pair takes about 0.7 s, and the `training` preset
# has 2.5 x 10^5 such pairs. Training leaves those pairs out of L_topo; their family and source
# heads still see them, and their pairs with the CNNs keep their GED.
UNESTIMATED_FRAMEWORKS = frozenset({"transformers"})


def source_of(record: dict) -> str:
    """The model a manifest record comes from: its own name, or its source for an augmentation."""
    return record.get("source", record["name"])


def dataset_graphs(root: str | Path, kind: str = "merged") -> tuple[list[dict], list[Graph]]:
    """Manifest records (originals, augmented, copier variants) and their graphs of one kind."""
    if kind not in KINDS:
        raise UsageError(f"unknown graph kind {kind!r}; choose from {', '.join(KINDS)}")
    manifest = load_manifest(root)
    records = manifest["models"] + manifest["augmented"] + manifest["variants"]
    return records, [load_dataset_graph(root, record["files"][kind]) for record in records]


def pairwise_ged(root: str | Path, kind: str = "merged", cap: int = DEFAULT_CAP, workers: int | None = None,
                 progress=None, loaded: tuple[list[dict], list[Graph]] | None = None):
    """(names, capped GED matrix, stats) over every graph of the dataset, cached under ``root/cache``.

    ``loaded``: the dataset's ``dataset_graphs(root, kind)`` when the caller already has it.
    """
    records, graphs = loaded or dataset_graphs(root, kind)
    position = {record["name"]: i for i, record in enumerate(records)}
    known = {}
    for i, record in enumerate(records):
        if "source" in record and record["source"] in position:
            known[(position[record["source"]], i)] = record["edits"][kind]
    ged_graphs = [GedGraph.from_ir(graph) for graph in graphs]
    framework = {record["name"]: record.get("framework") for record in records if "source" not in record}
    unestimated = frozenset(i for i, record in enumerate(records)
                            if framework.get(source_of(record)) in UNESTIMATED_FRAMEWORKS)
    matrix, stats = pairwise(ged_graphs, cap=cap, known=known, workers=workers,
                             cache_dir=Path(root) / "cache", progress=progress, unestimated=unestimated)
    return [record["name"] for record in records], matrix, stats
