"""Model-zoo datasets: IR files of many models, their augmentations, and a manifest.

``hnn zoo build --preset paper -o DIR`` writes::

    DIR/manifest.json            what is in the dataset (format below), updated after every model
    DIR/README.md                a summary: counts per family, failures
    DIR/raw/<model>.json         IR without merging
    DIR/merged/<model>.json      IR merged with the rule set
    DIR/raw/<model>~aug<k>.json  augmentation k of the raw IR (and likewise under merged/)
    DIR/raw/<model>~<variant>.json  with ``--variants``: the model as a copier re-exports it
                                 (hnn.zoo.variants: head, resolution, dynamo), as of the same source

A build is resumable and incremental: models already in the manifest (with their
files, built from the same entry) are skipped, so an interrupted build picks up
where it stopped, and a build into the same folder with a longer model list
converts only the models it adds (another list is another preset; the other
settings, seed, augmentations and rules, must be the same). Models the new list
lacks leave the manifest. Variants are incremental likewise: a build with more
variants converts only those. A model (or variant) that fails to convert is
listed under ``failed`` with its reason, and the build goes on.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict
from pathlib import Path
from typing import Callable

from hnn.errors import HnnError, InputError, UsageError, read_user_text
from hnn.ingest.ir import Graph
from hnn.zoo.augment import DELETE_SHARE, delete_nodes
from hnn.zoo.presets import ZooEntry, resolve_preset
from hnn.zoo.variants import applies, conversions

log = logging.getLogger("hnn.zoo")

FORMAT = "hnn-zoo"
VERSION = 1
AUGMENTATIONS = 10
KINDS = ("raw", "merged")
# Settings that only choose which graphs a dataset holds: a build may change them and convert what
# they add (each graph's file depends on its own entry and the other settings).
INCREMENTAL_SETTINGS = ("preset", "variant_kinds")
# Address-space limit of a conversion child process. Keras's TensorFlow export of VGG16 was
# measured past 24 GiB on these 24 GiB machines (docs/ir.md); the limit turns that into a reported failure, not an OOM kill.
CHILD_MEMORY_BYTES = 12 * 1024**3


class Manifest:
    """The dataset's manifest.json: settings, models, augmented graphs, failures."""

    def __init__(self, root: Path, settings: dict):
        self.root = root
        self.data = {"format": FORMAT, "version": VERSION, **settings, "models": [], "augmented": [], "variants": [],
                     "failed": []}

    @classmethod
    def open(cls, root: Path, settings: dict) -> "Manifest":
        manifest = cls(root, settings)
        path = root / "manifest.json"
        if path.exists():
            existing = load_manifest(root)
            # The preset and the variants are only which graphs: each graph's file depends on its entry
            # (and variant) and these settings.
            changed = {k: (existing.get(k), v) for k, v in settings.items()
                       if k not in INCREMENTAL_SETTINGS and existing.get(k) != v}
            if changed:
                raise UsageError(f"{path}: was built with other settings {changed}; use another output folder")
            manifest.data = {**existing, **{k: settings[k] for k in INCREMENTAL_SETTINGS}}
            manifest.data["failed"] = []  # failures are retried on resume
        return manifest

    def done(self, entry: ZooEntry) -> bool:
        """Is ``entry`` built, from the same entry (a list may give a name another constructor), with its files?"""
        built = next((m for m in self.data["models"] if m["name"] == entry.name), None)
        same = ("family", "constructor", "input_shape")  # the framework recorded is the one detected
        return (built is not None and all(built.get(key) == getattr(entry, key) for key in same)
                and all((self.root / f).is_file() for f in built["files"].values()))

    def variant_done(self, name: str) -> bool:
        built = next((v for v in self.data["variants"] if v["name"] == name), None)
        return built is not None and all((self.root / f).is_file() for f in built["files"].values())

    def keep_only(self, names: set[str], variants: tuple[str, ...]) -> int:
        """Drop the models (their augmentations and variants) not in ``names``, and the variants not in
        ``variants``; returns how many models went."""
        before = len(self.data["models"])
        self.data["models"] = [m for m in self.data["models"] if m["name"] in names]
        self.data["augmented"] = [a for a in self.data["augmented"] if a["source"] in names]
        self.data["variants"] = [v for v in self.data["variants"] if v["source"] in names and v["variant"] in variants]
        self.save()
        return before - len(self.data["models"])

    def add_variant(self, record: dict) -> None:
        self.data["variants"] = [v for v in self.data["variants"] if v["name"] != record["name"]] + [record]
        self.save()

    def add(self, model: dict, augmented: list[dict]) -> None:
        self.data["models"] = [m for m in self.data["models"] if m["name"] != model["name"]] + [model]
        self.data["augmented"] = [a for a in self.data["augmented"] if a["source"] != model["name"]] + augmented
        # a model built again (from another entry) is another model: its old variants are not its copies
        self.data["variants"] = [v for v in self.data["variants"] if v["source"] != model["name"]]
        self.save()

    def fail(self, name: str, constructor: str, reason: str) -> None:
        self.data["failed"].append({"name": name, "constructor": constructor, "reason": reason})
        self.save()

    def save(self) -> None:
        path = self.root / "manifest.json"
        tmp = path.with_name("manifest.json.tmp")
        tmp.write_text(json.dumps(self.data, indent=1) + "\n")
        tmp.replace(path)  # atomic: an interrupted build never leaves a half manifest


def load_manifest(root: str | Path) -> dict:
    """Read and check a dataset's manifest; errors name the file."""
    path = Path(root) / "manifest.json"
    text = read_user_text(path, InputError, "dataset manifest (is this a dataset folder?)")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: not valid JSON (line {exc.lineno}: {exc.msg})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise InputError(f"{path}: not an hnn dataset manifest")
    if not isinstance(data.get("version"), int) or data["version"] > VERSION:
        raise InputError(f"{path}: manifest version {data.get('version')!r} is not one this hnn reads")
    data.setdefault("variants", [])  # absent from datasets built before variants
    for field in ("models", "augmented", "variants", "failed"):
        if not isinstance(data.get(field), list):
            raise InputError(f"{path}: field {field!r} must be a list")
    for index, model in enumerate(data["models"] + data["augmented"] + data["variants"]):
        if not isinstance(model, dict) or not {"name", "family", "files"} <= set(model):
            raise InputError(f"{path}: entry {index} lacks name, family or files")
    return data


def load_dataset_graph(root: str | Path, relative: str) -> Graph:
    """One IR file of a dataset, validated (a corrupted file raises an error naming it)."""
    return Graph.from_json_file(Path(root) / relative)


SIMPLIFY = False  # recorded in the manifest: a dataset built with onnxsim (before 0.4) is not resumed


def _convert(constructor: str, options: dict, isolate: bool) -> Graph:
    """Raw IR of one model; Keras models convert in a limited worker (TensorFlow's memory stays there)."""
    from hnn.ingest.pipeline import ingest

    # Without onnxsim, as `hnn hash` and `hnn check` convert (hnn.hasher.runtime): the checkpoints
    # must learn the graphs they will be asked to hash.
    options = {**options, "simplify": SIMPLIFY}
    if not isolate:
        return ingest(constructor, **options)
    from hnn.ingest.worker import Limits, ingest_in_worker

    return ingest_in_worker(constructor, options, Limits(max_memory=CHILD_MEMORY_BYTES, timeout=900))


def _write_graphs(raw: Graph, rule_set, root: Path, name: str) -> tuple[dict[str, Graph], dict, dict]:
    """Write ``raw`` and its merged form as ``<kind>/<name>.json``: (graphs, files, records) by kind."""
    merged, _ = rule_set.apply(raw)
    graphs = {"raw": raw, "merged": merged}
    files, records = {}, {}
    for kind, graph in graphs.items():
        relative = f"{kind}/{name}.json"
        graph.to_json_file(root / relative)
        files[kind] = relative
        records[kind] = _graph_record(graph, relative)
    return graphs, files, records


def _graph_record(graph: Graph, relative: str) -> dict:
    return {"file": relative, "nodes": len(graph.nodes), "edges": len(graph.edges), "digest": graph.digest()}


def _reusable_raw_graphs(root: str | Path | None) -> dict[str, Path]:
    """Raw IR files of another dataset's converted models, by name (conversion is the slow part)."""
    if root is None:
        return {}
    manifest = load_manifest(root)
    return {model["name"]: Path(root) / model["files"]["raw"] for model in manifest["models"]}


def build_one(entry: ZooEntry, root: Path, rule_set, augmentations: int, seed: int,
              reuse: Path | None = None) -> tuple[dict, list[dict]]:
    """Convert (or read ``reuse``, a raw IR file), merge, augment and write one model; its manifest records."""
    if reuse is not None:
        raw = Graph.from_json_file(reuse)
    else:
        raw = _convert(entry.constructor, {"framework": entry.framework, "input_shape": entry.input_shape},
                       isolate=entry.framework == "keras" or entry.constructor.startswith("keras"))
    graphs, files, records = _write_graphs(raw, rule_set, root, entry.name)
    model = {
        **asdict(entry), "framework": raw.meta.framework, "input_shapes": raw.meta.input_shapes,
        "flops": raw.total_flops, "params": raw.total_params, "files": files,
        "nodes": {k: r["nodes"] for k, r in records.items()}, "digest": {k: r["digest"] for k, r in records.items()},
    }
    augmented = []
    for index in range(augmentations):
        name = f"{entry.name}~aug{index}"
        aug_files, edits, digests, nodes = {}, {}, {}, {}
        for kind, graph in graphs.items():
            copy, edit_count = delete_nodes(graph, seed=f"{seed}:{entry.name}:{kind}:{index}")
            relative = f"{kind}/{name}.json"
            copy.to_json_file(root / relative)
            aug_files[kind], edits[kind] = relative, edit_count
            digests[kind], nodes[kind] = copy.digest(), len(copy.nodes)
        augmented.append({"name": name, "source": entry.name, "index": index, "family": entry.family,
                          "files": aug_files, "edits": edits, "digest": digests, "nodes": nodes})
    return model, augmented


def variant_name(entry: ZooEntry, variant: str) -> str:
    return f"{entry.name}~{variant}"


def build_variant(entry: ZooEntry, variant: str, root: Path, rule_set) -> dict:
    """Convert and write one copier variant of ``entry`` (hnn.zoo.variants); its manifest record.
    Raises the first conversion's error when no way of making it converts."""
    name = variant_name(entry, variant)
    error: HnnError | None = None
    for constructor, options in conversions(entry, variant):
        try:
            raw = _convert(constructor, options, isolate=False)
        except HnnError as exc:
            error = error or exc  # the plain conversion's reason: a fallback's says less
            continue
        _, files, records = _write_graphs(raw, rule_set, root, name)
        return {"name": name, "source": entry.name, "variant": variant, "family": entry.family,
                "constructor": constructor, "input_shapes": raw.meta.input_shapes, "files": files,
                # A copy: the copier re-exported the model and edited nothing, so its GED to the source
                # is 0 (the estimate would count the FLOPs labels a new resolution moves as edits).
                "edits": {kind: 0 for kind in files},
                "digest": {k: r["digest"] for k, r in records.items()},
                "nodes": {k: r["nodes"] for k, r in records.items()}}
    raise error


def _build_variants(entry: ZooEntry, variants: tuple[str, ...], root: Path, rule_set, manifest: Manifest) -> None:
    if not applies(entry):
        return
    for variant in variants:
        name = variant_name(entry, variant)
        if manifest.variant_done(name):
            continue
        try:
            manifest.add_variant(build_variant(entry, variant, root, rule_set))
        except HnnError as exc:
            log.warning("%s: skipped: %s", name, exc)
            manifest.fail(name, entry.constructor, str(exc))


def build(preset: str, root: str | Path, rule_files=None, augmentations: int = AUGMENTATIONS, seed: int = 0,
          progress: Callable[[int, int, str], None] | None = None, reuse_raw: str | Path | None = None,
          variants: tuple[str, ...] = ()) -> dict:
    """Build (or resume) a dataset; returns the manifest data.

    ``reuse_raw``: another dataset whose raw IR is reused for the models it has (to re-merge
    a dataset with other rules without converting every model again). ``variants``: copier
    variants to make of every torch model (hnn.zoo.variants.VARIANTS).
    """
    from hnn.rules import combine, load_rule_sets

    entries = resolve_preset(preset)
    reusable = _reusable_raw_graphs(reuse_raw)
    rule_set = combine(load_rule_sets(rule_files))
    root = Path(root)
    for kind in KINDS:
        (root / kind).mkdir(parents=True, exist_ok=True)
    settings = {"preset": preset, "seed": seed, "augmentations": augmentations, "delete_share": DELETE_SHARE,
                "simplify": SIMPLIFY,
                "rules": rule_set.name, "variant_kinds": list(variants)}
    manifest = Manifest.open(root, settings)
    manifest.data["rules_digest"] = rule_set.digest()
    for position, entry in enumerate(entries):
        if progress:
            progress(position, len(entries), entry.name)
        if not manifest.done(entry):
            started = time.perf_counter()
            try:
                model, augmented = build_one(entry, root, rule_set, augmentations, seed, reusable.get(entry.name))
            except HnnError as exc:
                log.warning("%s: skipped: %s", entry.name, exc)
                manifest.fail(entry.name, entry.constructor, str(exc))
                continue
            model["seconds"] = round(time.perf_counter() - started, 2)
            manifest.add(model, augmented)
        _build_variants(entry, variants, root, rule_set, manifest)
    dropped = manifest.keep_only({entry.name for entry in entries}, variants)
    if dropped:
        log.info("%d model(s) the preset no longer lists left the manifest", dropped)
    if progress:
        progress(len(entries), len(entries), "")
    write_summary(root, manifest.data)
    return manifest.data


def write_summary(root: Path, data: dict) -> None:
    families: dict[str, list[str]] = {}
    for model in data["models"]:
        families.setdefault(model["family"], []).append(model["name"])
    lines = [
        f"# hnn dataset: preset `{data['preset']}`", "",
        f"{len(data['models'])} models in {len(families)} families, {len(data['augmented'])} augmented graphs "
        f"({data['augmentations']} per model, {int(data['delete_share'] * 100)}% of nodes deleted, seed "
        f"{data['seed']}), {len(data['variants'])} copier variants "
        f"({', '.join(data.get('variant_kinds', [])) or 'none'}), "
        f"merge rules `{data['rules']}`.", "",
        "| family | models |", "|---|---|",
        *[f"| {family} | {', '.join(names)} |" for family, names in sorted(families.items())], "",
        "| model | raw nodes | merged nodes | params | GFLOPs |", "|---|---|---|---|---|",
        *[f"| {m['name']} | {m['nodes']['raw']} | {m['nodes']['merged']} | {m['params']:,} | {m['flops'] / 1e9:.2f} |"
          for m in data["models"]],
    ]
    if data["failed"]:
        lines += ["", "## Failed", "", *[f"- {f['name']} ({f['constructor']}): {f['reason']}" for f in data["failed"]]]
    (root / "README.md").write_text("\n".join(lines) + "\n")
