"""``hnn ingest`` and ``hnn frameworks``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from hnn.cli.options import JsonOption, ModelOptions, VerboseOption, configure_logging, echo_json, model_options
from hnn.errors import UsageError

IngestRulesOption = Annotated[
    Optional[list[str]],
    typer.Option("--rules", "-r", help="Merge-rule file or registered rule-set name (repeatable); default: the "
                                       "shipped checkpoints' rules (agnostic), so the output can be hashed."),
]


@model_options("framework", "input_shape")
def ingest(
    options: ModelOptions,
    model: Annotated[
        Optional[str],
        typer.Argument(help="Model file or folder, or module:factory spec. Omitted: the bundled example."),
    ] = None,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Write the IR as JSON here.")] = None,
    exporter: Annotated[
        Optional[str], typer.Option("--exporter", help="pytorch: torchscript (default) or dynamo.")
    ] = None,
    no_simplify: Annotated[bool, typer.Option("--no-simplify", help="Skip onnxsim.")] = False,
    rules: IngestRulesOption = None,
    no_merge: Annotated[bool, typer.Option("--no-merge", help="Raw graph: apply no merge rules.")] = False,
    as_json: JsonOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Convert a model to canonical graph IR, merge layers by rules, and print a summary."""
    configure_logging(verbose)
    from hnn.ingest.pipeline import EXAMPLE_MODEL, ingest_safely

    source = model
    if source is None:
        source = str(EXAMPLE_MODEL)
        typer.echo(f"hnn: no model given; ingesting the bundled example {EXAMPLE_MODEL.name}", err=True)
    if no_merge and rules:
        raise UsageError("--rules and --no-merge contradict each other")
    rule_set = None
    if not no_merge:
        from hnn.hasher.checkpoint import default_rules
        from hnn.rules import combine, load_rule_sets

        rule_set = combine(load_rule_sets(rules or [default_rules()]))  # typos fail before converting
    graph = ingest_safely(source, **options.ingest, exporter=exporter, simplify=not no_simplify)
    if rule_set is not None:
        graph, _ = rule_set.apply(graph)
    if output is not None:
        graph.to_json_file(output)
    summary = graph.summary()
    if output is not None:
        summary["output"] = str(output)
    if as_json:
        echo_json(summary)
        return
    typer.echo(f"{summary['source']} ({summary['framework']}): {summary['nodes']} nodes, {summary['edges']} edges, "
               f"{summary['flops']:,} FLOPs, {summary['params']:,} params")
    typer.echo("ops: " + ", ".join(f"{op} {count}" for op, count in summary["ops"].items()))
    if output is not None:
        typer.echo(f"wrote {output}")


def frameworks(as_json: JsonOption = False) -> None:
    """List the installed front-ends, the plugin that provides each, and the framework version."""
    from hnn.plugins.manager import frontends

    rows = [
        {"name": name, "version": frontend.version(), "plugin": plugin, "description": frontend.description}
        for name, (frontend, plugin) in frontends().items()
    ]
    if as_json:
        echo_json(rows)
        return
    for row in rows:
        version = row["version"] or "not installed"
        typer.echo(f"{row['name']:<12} {version:<14} {row['description']}  [{row['plugin']}]")
