"""The ``hnn`` command line. It only wires commands; the work lives in library modules.

Errors a user can cause (:class:`hnn.errors.HnnError`) print one line,
``hnn: <message>``, and exit non-zero (2 for usage errors); ``--debug`` shows
the traceback. Heavy frameworks are imported only by the command that needs them.
"""

from __future__ import annotations

import json
import logging
import sys
import traceback
from pathlib import Path
from typing import Annotated, Optional

import typer

from hnn.errors import HnnError, UsageError

app = typer.Typer(
    name="hnn",
    help="Perceptual hashes of neural networks: ingest models of any framework into one canonical graph.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

DebugOption = Annotated[bool, typer.Option("--debug", help="Show tracebacks of errors.")]
VerboseOption = Annotated[bool, typer.Option("--verbose", "-v", help="Say what each step does (on stderr).")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print a JSON summary for scripts.")]
RulesOption = Annotated[
    Optional[list[str]],
    typer.Option("--rules", "-r", help="Merge-rule file or registered rule-set name (repeatable); default: paper."),
]
IngestRulesOption = Annotated[
    Optional[list[str]],
    typer.Option("--rules", "-r", help="Merge-rule file or registered rule-set name (repeatable); default: the "
                                       "shipped checkpoints' rules (agnostic), so the output can be hashed."),
]

FrameworkOption = Annotated[
    Optional[str], typer.Option("--framework", "-f", help="Front-end to use (see `hnn frameworks`); default: detect.")
]
TrustOption = Annotated[
    bool, typer.Option("--trust", help="Load in-process, allowing files that can run code (pickle, TorchScript, .pt2).")
]
InputShapeOption = Annotated[
    Optional[str], typer.Option("--input-shape", help="Trigger input shape, e.g. 1,3,224,224 or name=1,3,224,224.")
]
MaxMemoryOption = Annotated[
    str, typer.Option("--max-memory", help="Memory limit of the worker converting untrusted files (e.g. 4G).")
]
TimeoutOption = Annotated[
    float, typer.Option("--timeout", help="Time limit in seconds of the worker converting untrusted files.")
]

_state = {"debug": False}


def _limits(max_memory: str, timeout: float):
    from hnn.ingest.worker import Limits, parse_memory

    if timeout <= 0:
        raise UsageError(f"--timeout {timeout}: must be positive")
    return Limits(max_memory=parse_memory(max_memory), timeout=timeout)


def _configure_logging(verbose: bool) -> None:
    # Only hnn's own loggers: TensorFlow and others log through the root logger, and their
    # lines must not look like hnn's ("hnn: ..." is what scripts and the zoo builder read).
    logger = logging.getLogger("hnn")
    logger.handlers.clear()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("hnn: %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO if verbose else logging.WARNING)
    logger.propagate = False


@app.command()
def ingest(
    model: Annotated[
        Optional[str],
        typer.Argument(help="Model file or folder, or module:factory spec. Omitted: the bundled example."),
    ] = None,
    framework: FrameworkOption = None,
    input_shape: InputShapeOption = None,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Write the IR as JSON here.")] = None,
    trust: TrustOption = False,
    exporter: Annotated[
        Optional[str], typer.Option("--exporter", help="pytorch: torchscript (default) or dynamo.")
    ] = None,
    no_simplify: Annotated[bool, typer.Option("--no-simplify", help="Skip onnxsim.")] = False,
    rules: IngestRulesOption = None,
    no_merge: Annotated[bool, typer.Option("--no-merge", help="Raw graph: apply no merge rules.")] = False,
    max_memory: MaxMemoryOption = "4G",
    timeout: TimeoutOption = 300.0,
    as_json: JsonOption = False,
    verbose: VerboseOption = False,
    debug: DebugOption = False,
) -> None:
    """Convert a model to canonical graph IR, merge layers by rules, and print a summary."""
    _state["debug"] = debug
    limits = _limits(max_memory, timeout)
    _configure_logging(verbose)
    from hnn.ingest.pipeline import EXAMPLE_MODEL, ingest_safely

    source = model
    if source is None:
        source = str(EXAMPLE_MODEL)
        typer.echo(f"hnn: no model given; ingesting the bundled example {EXAMPLE_MODEL.name}", err=True)
    if no_merge and rules:
        raise UsageError("--rules and --no-merge contradict each other")
    rule_files = None
    if not no_merge:
        from hnn.hasher.checkpoint import default_checkpoint, load_checkpoint
        from hnn.rules import load_rule_sets

        # By default, the shipped checkpoints' rules: `hnn ingest -o m.json; hnn hash m.json` then just works.
        rule_files = load_rule_sets(rules or [load_checkpoint(default_checkpoint()).rules])  # typos fail fast
    graph = ingest_safely(source, trust=trust, limits=limits, framework=framework, input_shape=input_shape,
                          exporter=exporter, simplify=not no_simplify)
    if rule_files is not None:
        from hnn.rules import combine

        graph, _ = combine(rule_files).apply(graph)
    if output is not None:
        graph.to_json_file(output)
    summary = graph.summary()
    if output is not None:
        summary["output"] = str(output)
    if as_json:
        typer.echo(json.dumps(summary))
        return
    typer.echo(f"{summary['source']} ({summary['framework']}): {summary['nodes']} nodes, {summary['edges']} edges, "
               f"{summary['flops']:,} FLOPs, {summary['params']:,} params")
    typer.echo("ops: " + ", ".join(f"{op} {count}" for op, count in summary["ops"].items()))
    if output is not None:
        typer.echo(f"wrote {output}")


@app.command()
def frameworks(as_json: JsonOption = False, debug: DebugOption = False) -> None:
    """List the installed front-ends, the plugin that provides each, and the framework version."""
    _state["debug"] = debug
    from hnn.plugins.manager import frontends

    rows = [
        {"name": name, "version": frontend.version(), "plugin": plugin, "description": frontend.description}
        for name, (frontend, plugin) in frontends().items()
    ]
    if as_json:
        typer.echo(json.dumps(rows))
        return
    for row in rows:
        version = row["version"] or "not installed"
        typer.echo(f"{row['name']:<12} {version:<14} {row['description']}  [{row['plugin']}]")


rules_app = typer.Typer(help="Merge rules: check rule files, show rule sets, apply them to an IR file.",
                        no_args_is_help=True)
app.add_typer(rules_app, name="rules")


@rules_app.command("check")
def rules_check(path: Annotated[Path, typer.Argument(help="A YAML or TOML rule file.")],
                debug: DebugOption = False) -> None:
    """Validate a rule file and print its rules."""
    _state["debug"] = debug
    from hnn.rules import load_rule_file

    rule_set = load_rule_file(path)
    typer.echo(f"{path}: rule set {rule_set.name!r}, {len(rule_set.rules)} rule(s), valid")
    for rule in rule_set.rules:
        typer.echo(f"  {rule}")


@rules_app.command("show")
def rules_show(as_json: JsonOption = False, debug: DebugOption = False) -> None:
    """Print every registered rule set (the default is 'paper') with the plugin that provides it."""
    _state["debug"] = debug
    from hnn.rules.loader import registered_rule_files

    sets = registered_rule_files()
    if as_json:
        typer.echo(json.dumps([{"name": rs.name, "path": path, "plugin": plugin, "rules": [str(r) for r in rs.rules]}
                               for rs, path, plugin in sets]))
        return
    for rule_set, path, plugin in sets:
        typer.echo(f"{rule_set.name}  ({path}, from {plugin})")
        for rule in rule_set.rules:
            typer.echo(f"  {rule}")


@rules_app.command("apply")
def rules_apply(
    model: Annotated[Path, typer.Argument(help="An IR JSON file from `hnn ingest --no-merge -o`.")],
    rules: RulesOption = None,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Write the merged IR here.")] = None,
    as_json: JsonOption = False,
    debug: DebugOption = False,
) -> None:
    """Apply merge rules to an IR file and print how many times each rule matched."""
    _state["debug"] = debug
    from hnn.ingest.ir import Graph
    from hnn.rules import combine, load_rule_sets

    rule_set = combine(load_rule_sets(rules))
    graph = Graph.from_json_file(model)
    merged, counts = rule_set.apply(graph)
    if output is not None:
        merged.to_json_file(output)
    result = {"model": str(model), "nodes_before": len(graph.nodes), "nodes_after": len(merged.nodes),
              "matches": counts}
    if as_json:
        typer.echo(json.dumps(result))
        return
    typer.echo(f"{model}: {len(graph.nodes)} -> {len(merged.nodes)} nodes")
    for name, count in counts.items():
        typer.echo(f"  {name:<20} {count}")


zoo_app = typer.Typer(help="Model-zoo datasets: build them, and their pairwise graph edit distances.",
                      no_args_is_help=True)
app.add_typer(zoo_app, name="zoo")


class _Progress:
    """A progress bar with ETA on stderr (rich), or nothing when stderr is not a terminal."""

    def __init__(self, label: str):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        from rich.console import Console

        self.bar = Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                            TextColumn("{task.description}"), console=Console(stderr=True),
                            disable=not sys.stderr.isatty())
        self.task = None

    def __enter__(self):
        self.bar.__enter__()
        return self

    def __exit__(self, *exc):
        self.bar.__exit__(*exc)

    def __call__(self, done: int, total: int, description: str = "") -> None:
        if self.task is None:
            self.task = self.bar.add_task(description, total=total)
        self.bar.update(self.task, completed=done, description=description)


@zoo_app.command("build")
def zoo_build(
    output: Annotated[Path, typer.Option("--output", "-o", help="Dataset folder (created; resumed if it exists).")],
    preset: Annotated[str, typer.Option("--preset", help="paper, torchvision, keras, or a model-list file.")] = "paper",
    rules: RulesOption = None,
    augmentations: Annotated[int, typer.Option(help="Augmented copies per model.", min=0)] = 10,
    seed: Annotated[int, typer.Option(help="Seed of the augmentation.")] = 0,
    reuse_raw: Annotated[Optional[Path], typer.Option(
        "--reuse-raw", help="Another dataset whose raw IR to reuse instead of converting again "
                            "(e.g. to merge it with other rules).")] = None,
    as_json: JsonOption = False,
    verbose: VerboseOption = False,
    debug: DebugOption = False,
) -> None:
    """Build (or resume) a dataset: IR files raw and merged, augmentations, manifest, summary."""
    _state["debug"] = debug
    _configure_logging(verbose)
    import time

    from hnn.ingest.zoo import build

    started = time.perf_counter()
    with _Progress("building") as progress:
        data = build(preset, output, rule_files=rules, augmentations=augmentations, seed=seed, progress=progress,
                     reuse_raw=reuse_raw)
    summary = {"output": str(output), "models": len(data["models"]), "augmented": len(data["augmented"]),
               "families": len({m["family"] for m in data["models"]}), "failed": data["failed"],
               "seconds": round(time.perf_counter() - started, 1)}
    if as_json:
        typer.echo(json.dumps(summary))
        return
    typer.echo(f"{output}: {summary['models']} models in {summary['families']} families, "
               f"{summary['augmented']} augmented graphs, {len(data['failed'])} failed, {summary['seconds']} s")
    for failure in data["failed"]:
        typer.echo(f"  failed: {failure['name']}: {failure['reason']}")


@zoo_app.command("ged")
def zoo_ged(
    data: Annotated[Path, typer.Argument(help="Dataset folder from `hnn zoo build`.")],
    kind: Annotated[str, typer.Option(help="raw or merged graphs.")] = "merged",
    cap: Annotated[int, typer.Option("--cap", help="R: GEDs are capped here.", min=1)] = 100,
    workers: Annotated[Optional[int], typer.Option(help="Worker processes (default: all cores).")] = None,
    as_json: JsonOption = False,
    debug: DebugOption = False,
) -> None:
    """Compute (or load from the cache) the pairwise GED matrix of every graph in a dataset."""
    _state["debug"] = debug
    import time

    from hnn.hasher.dataset import pairwise_ged

    started = time.perf_counter()
    with _Progress("GED") as progress:
        names, matrix, stats = pairwise_ged(data, kind=kind, cap=cap, workers=workers, progress=progress)
    stats.update({"graphs": len(names), "seconds": round(time.perf_counter() - started, 2)})
    stats["pairs_per_second"] = round(stats["pairs"] / max(stats["seconds"], 1e-9))
    if as_json:
        typer.echo(json.dumps(stats))
        return
    typer.echo(f"{data} ({kind}): {stats['graphs']} graphs, {stats['pairs']} pairs in {stats['seconds']} s "
               f"({stats['pairs_per_second']}/s), {stats['settled_by_bound']} settled by the lower bound"
               + (" (from cache)" if stats["cached"] else ""))


CheckpointOption = Annotated[
    Optional[Path], typer.Option("--checkpoint", "-c", help="HNN-Net checkpoint; default: the shipped one.")
]
BitsOption = Annotated[Optional[int], typer.Option("--bits", help="Code length: picks the shipped checkpoint.")]


@app.command("train")
def train_command(
    data: Annotated[Path, typer.Option("--data", help="Dataset folder from `hnn zoo build`.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Checkpoint file to write.")],
    bits: Annotated[int, typer.Option("--bits", min=1, max=512)] = 32,
    epochs: Annotated[int, typer.Option("--epochs", min=1)] = 100,
    device: Annotated[str, typer.Option("--device", help="auto, cpu or cuda.")] = "auto",
    seed: Annotated[int, typer.Option("--seed")] = 0,
    split: Annotated[str, typer.Option("--split", help="paper, models or families: what is held out.")] = "paper",
    kind: Annotated[str, typer.Option("--kind", help="merged or raw graphs.")] = "merged",
    topology: Annotated[str, typer.Option(help="code (default) or embedding (the paper's form).")] = "code",
    no_class: Annotated[bool, typer.Option(
        "--no-class", help="Train without the classification heads (L_class and L_source).")] = False,
    source_weight: Annotated[Optional[float], typer.Option(
        "--source-weight", min=0.0,
        help="Weight of L_source, the source-model head (0: no head); default: the default configuration's.")] = None,
    size_features: Annotated[bool, typer.Option(
        "--size-features", help="Give every node the graph's size too (separates siblings; not in the paper).")] = False,
    width_jitter: Annotated[float, typer.Option(
        "--width-jitter", min=0.0, max=0.9,
        help="Train on width-scaled copies too: widths scaled by up to this share (robustness to pruning).")] = 0.0,
    as_json: JsonOption = False,
    debug: DebugOption = False,
) -> None:
    """Train HNN-Net on a dataset and write the best checkpoint (by validation source-model mAP)."""
    _state["debug"] = debug
    from hnn.hasher.train import DEFAULT_CONFIG, train
    from dataclasses import replace

    source_beta = DEFAULT_CONFIG.source_beta if source_weight is None else source_weight
    config = replace(DEFAULT_CONFIG, bits=bits, epochs=epochs, device=device, seed=seed, split=split, kind=kind,
                     topology=topology, beta=0.0 if no_class else DEFAULT_CONFIG.beta,
                     source_beta=0.0 if no_class else source_beta, size_features=size_features,
                     width_jitter=width_jitter)
    with _Progress("training") as progress:
        def report(epoch, total, record):
            parts = " ".join(f"{k}={record[k]}" for k in ("topo", "class", "source_class", "quant", "val_source_map")
                             if k in record)
            progress(epoch, total, parts)

        result = train(data, config, output=output, progress=report)
    summary = {"output": str(output), "seconds": result["seconds"], "best_val_source_map": result["best_val_source_map"],
               "thresholds": result["thresholds"]}
    if as_json:
        typer.echo(json.dumps(summary))
        return
    typer.echo(f"wrote {output}: best validation source-model mAP {result['best_val_source_map']:.3f}, "
               f"{result['seconds']} s; verdict thresholds {result['thresholds']}")


@app.command("hash")
def hash_command(
    models: Annotated[list[str], typer.Argument(help="Models: files, folders, specs, or IR .json files.")],
    framework: FrameworkOption = None,
    checkpoint: CheckpointOption = None,
    bits: BitsOption = None,
    input_shape: InputShapeOption = None,
    trust: TrustOption = False,
    max_memory: MaxMemoryOption = "4G",
    timeout: TimeoutOption = 300.0,
    as_json: JsonOption = False,
    verbose: VerboseOption = False,
    debug: DebugOption = False,
) -> None:
    """Print `<hex code>  <model>` per model (--json: one JSON object per line)."""
    _state["debug"] = debug
    limits = _limits(max_memory, timeout)
    _configure_logging(verbose)
    from hnn.hasher.api import hash_model

    failures = 0
    for model in models:
        try:
            result = hash_model(model, checkpoint=checkpoint, bits=bits, framework=framework,
                                input_shape=input_shape, trust=trust, limits=limits)
        except HnnError as exc:
            if len(models) == 1:
                raise
            failures += 1  # one bad model among many must not lose the others' hashes
            typer.echo(f"hnn: {model}: {exc}", err=True)
            continue
        typer.echo(json.dumps(result.to_dict()) if as_json else f"{result.hash}  {model}")
    if failures:
        raise typer.Exit(1)


@app.command("compare")
def compare_command(
    a: Annotated[str, typer.Argument(help="First model.")],
    b: Annotated[str, typer.Argument(help="Second model.")],
    checkpoint: CheckpointOption = None,
    bits: BitsOption = None,
    trust: TrustOption = False,
    max_memory: MaxMemoryOption = "4G",
    timeout: TimeoutOption = 300.0,
    as_json: JsonOption = False,
    debug: DebugOption = False,
) -> None:
    """Hamming distance, similarity and verdict (match / suspect / different) of two models."""
    _state["debug"] = debug
    from hnn.hasher.api import compare

    result = compare(a, b, checkpoint=checkpoint, bits=bits, trust=trust, limits=_limits(max_memory, timeout))
    if as_json:
        typer.echo(json.dumps(result))
        return
    typer.echo(f"{result['verdict']}: distance {result['distance']}/{result['a']['bits']} bits, similarity "
               f"{result['similarity']:.3f}{_relation_mark(result)} (match <= {result['thresholds']['match']}, "
               f"suspect <= {result['thresholds']['suspect']})")


index_app = typer.Typer(help="The model registry: an SQLite index of hash codes with Hamming search.",
                        no_args_is_help=True)
app.add_typer(index_app, name="index")
IndexArgument = Annotated[Path, typer.Argument(help="Index file (SQLite).")]


@index_app.command("add")
def index_add(
    index: IndexArgument,
    models: Annotated[list[str], typer.Argument(help="Models to hash and add.")],
    label: Annotated[Optional[str], typer.Option("--label", help="Family or owner label for these entries.")] = None,
    framework: FrameworkOption = None,
    checkpoint: CheckpointOption = None,
    bits: BitsOption = None,
    trust: TrustOption = False,
    max_memory: MaxMemoryOption = "4G",
    timeout: TimeoutOption = 300.0,
    as_json: JsonOption = False,
    debug: DebugOption = False,
) -> None:
    """Hash models and add them; each entry commits on its own, duplicates are reported."""
    _state["debug"] = debug
    limits = _limits(max_memory, timeout)
    from hnn.hasher.registry import add_models

    with _Progress("adding") as progress:
        results = add_models(index, models, label=label, framework=framework, checkpoint=checkpoint, bits=bits,
                             trust=trust, progress=progress, limits=limits)
    failed = [r for r in results if r["status"] == "failed"]
    for result in results:
        if as_json:
            typer.echo(json.dumps(result))
        elif result["status"] == "added":
            typer.echo(f"added #{result['id']}  {result['hash']}  {result['model']}")
        elif result["status"] == "duplicate":
            typer.echo(f"exists #{result['id']}  {result['model']}: {result['reason']}")
        else:
            typer.echo(f"hnn: {result['model']}: {result['reason']}", err=True)
    if failed:
        raise typer.Exit(1)


@index_app.command("list")
def index_list(index: IndexArgument, as_json: JsonOption = False, debug: DebugOption = False) -> None:
    """List the entries."""
    _state["debug"] = debug
    from hnn.hasher.index import Index

    with Index(index) as opened:
        entries = [entry.to_dict() for entry in opened.entries()]
    if as_json:
        typer.echo(json.dumps(entries))
        return
    for entry in entries:
        typer.echo(f"#{entry['id']:<5} {entry['hash']}  {entry['name']:<28} {entry['framework']:<10} "
                   f"{entry['label'] or ''}")


@index_app.command("remove")
def index_remove(index: IndexArgument, entry_id: Annotated[int, typer.Argument(help="Entry id.")],
                 debug: DebugOption = False) -> None:
    """Remove one entry."""
    _state["debug"] = debug
    from hnn.hasher.index import Index

    with Index(index) as opened:
        entry = opened.remove(entry_id)
    typer.echo(f"removed #{entry.id} {entry.name}")


@index_app.command("query")
def index_query(
    index: IndexArgument,
    model: Annotated[str, typer.Argument(help="Model to look up.")],
    k: Annotated[int, typer.Option("-k", min=1, help="How many nearest entries.")] = 10,
    radius: Annotated[Optional[int], typer.Option("--radius", min=0, help="All entries within this distance.")] = None,
    framework: FrameworkOption = None,
    trust: TrustOption = False,
    checkpoint: CheckpointOption = None,
    max_memory: MaxMemoryOption = "4G",
    timeout: TimeoutOption = 300.0,
    as_json: JsonOption = False,
    debug: DebugOption = False,
) -> None:
    """The nearest entries to a model, with Hamming distances."""
    _state["debug"] = debug
    from hnn.hasher.registry import query_model

    result = query_model(index, model, k=k, radius=radius, checkpoint=checkpoint, framework=framework, trust=trust,
                         limits=_limits(max_memory, timeout))
    if as_json:
        typer.echo(json.dumps(result))
        return
    typer.echo(f"{model}: {result['hash']}")
    for hit in result["neighbours"]:
        typer.echo(f"  {hit['distance']:>3}  #{hit['id']:<5} {hit['name']}  {hit['label'] or ''}{_relation_mark(hit)}")


def _relation_mark(hit: dict) -> str:
    """What the listings add to an entry that shares the query's weights or topology (ranked
    first: docs/index.md)."""
    marks = [f"shares {hit['shared_weights']:.0%} of sampled weights"] if hit.get("shares_weights") else []
    marks += ["same topology"] if hit["same_topology"] else []
    return f" ({', '.join(marks)})" if marks else ""


CHECK_EXIT_CODES = {"new": 0, "suspect": 3, "match": 4}


@app.command("check")
def check_command(
    index: IndexArgument,
    model: Annotated[str, typer.Argument(help="The uploaded model.")],
    k: Annotated[int, typer.Option("-k", min=1, help="How many nearest entries to show.")] = 5,
    framework: FrameworkOption = None,
    trust: TrustOption = False,
    checkpoint: CheckpointOption = None,
    max_memory: MaxMemoryOption = "4G",
    timeout: TimeoutOption = 300.0,
    as_json: JsonOption = False,
    debug: DebugOption = False,
) -> None:
    """Is MODEL a copy of a known model? Verdict match / suspect / new; exit code 4 / 3 / 0."""
    _state["debug"] = debug
    from hnn.hasher.registry import check_model

    result = check_model(index, model, k=k, checkpoint=checkpoint, framework=framework, trust=trust,
                         limits=_limits(max_memory, timeout))
    if as_json:
        typer.echo(json.dumps(result))
    else:
        first = result["neighbours"][0] if result["neighbours"] else None
        closest = (f"first #{first['id']} {first['name']} at distance {first['distance']}{_relation_mark(first)}"
                   if first else "empty index")
        typer.echo(f"{result['verdict']}: {model} ({closest}; match <= {result['thresholds']['match']}, "
                   f"suspect <= {result['thresholds']['suspect']})")
        for hit in result["neighbours"][1:]:
            typer.echo(f"  {hit['distance']:>3}  #{hit['id']:<5} {hit['name']}{_relation_mark(hit)}")
    raise typer.Exit(CHECK_EXIT_CODES[result["verdict"]])


@app.command("eval")
def eval_command(
    data: Annotated[Path, typer.Option("--data", help="Dataset folder from `hnn zoo build`.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder for results.json, results.md, plots.")],
    split: Annotated[str, typer.Option("--split", help="paper, models or families.")] = "paper",
    bits: Annotated[str, typer.Option("--bits", help="Comma-separated bit counts.")] = "16,32,64",
    methods: Annotated[str, typer.Option("--methods", help="Comma-separated: hnn, hnn-index, hnn-noclass, "
                                                           "hnn-paper, ghashing, wl-simhash, hnn+wl, hnn-size "
                                                           "(docs/evaluation.md).")]
    = "hnn,hnn-index,hnn-noclass,ghashing,wl-simhash",
    kinds: Annotated[str, typer.Option("--kinds", help="merged, raw or both.")] = "merged,raw",
    seeds: Annotated[int, typer.Option("--seeds", min=1)] = 1,
    epochs: Annotated[int, typer.Option("--epochs", min=1)] = 100,
    as_json: JsonOption = False,
    debug: DebugOption = False,
) -> None:
    """Train and compare hashing methods on a split; write tables and plots."""
    _state["debug"] = debug
    from hnn.hasher.evaluate import evaluate, write_report

    try:
        bit_counts = [int(b) for b in bits.split(",")]
    except ValueError:
        raise UsageError(f"--bits {bits!r}: expected comma-separated integers") from None
    with _Progress("evaluating") as progress:
        results = evaluate(data, split=split, bits_list=bit_counts, methods=methods.split(","),
                           kinds=kinds.split(","), seeds=seeds, epochs=epochs, progress=progress)
    files = write_report(results, output)
    if as_json:
        typer.echo(json.dumps({"summary": results["summary"], "seconds": results["seconds"],
                               "files": [str(f) for f in files]}))
        return
    typer.echo((output / "results.md").read_text())
    typer.echo("wrote " + ", ".join(str(f) for f in files))


def main() -> None:
    """Entry point: run the app and turn known errors into one line and an exit code."""
    try:
        # Without standalone mode click returns the code of a typer.Exit instead of exiting.
        code = app(standalone_mode=False)
    except HnnError as exc:
        if _state["debug"]:
            traceback.print_exc()
        typer.echo(f"hnn: {exc}", err=True)
        sys.exit(exc.exit_code)
    except (typer.Exit, SystemExit) as exc:
        code = getattr(exc, "exit_code", getattr(exc, "code", 0))
        sys.exit(code)
    except typer.Abort:
        typer.echo("hnn: aborted", err=True)
        sys.exit(130)
    except KeyboardInterrupt:
        typer.echo("hnn: interrupted", err=True)
        sys.exit(130)
    except Exception as exc:  # click usage errors and bugs
        # By what it does, not its class: typer 0.29 vendors click (typer._click), and the `click`
        # package need not be installed at all.
        if callable(getattr(exc, "show", None)) and isinstance(getattr(exc, "exit_code", None), int):
            exc.show()
            sys.exit(exc.exit_code)
        if _state["debug"]:
            traceback.print_exc()
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        typer.echo(f"hnn: internal error: {type(exc).__name__}: {first} (run with --debug for the traceback)",
                   err=True)
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)
