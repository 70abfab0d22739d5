"""``hnn rules check | show | apply``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from hnn.cli.options import JsonOption, RulesOption, echo_json

rules_app = typer.Typer(help="Merge rules: check rule files, show rule sets, apply them to an IR file.",
                        no_args_is_help=True)


@rules_app.command("check")
def rules_check(path: Annotated[Path, typer.Argument(help="A YAML or TOML rule file.")]) -> None:
    """Validate a rule file and print its rules."""
    from hnn.rules import load_rule_file

    rule_set = load_rule_file(path)
    typer.echo(f"{path}: rule set {rule_set.name!r}, {len(rule_set.rules)} rule(s), valid")
    for rule in rule_set.rules:
        typer.echo(f"  {rule}")


@rules_app.command("show")
def rules_show(as_json: JsonOption = False) -> None:
    """Print every registered rule set (the default is 'paper') with the plugin that provides it."""
    from hnn.rules.loader import registered_rule_files

    sets = registered_rule_files()
    if as_json:
        echo_json([{"name": rs.name, "path": path, "plugin": plugin, "rules": [str(r) for r in rs.rules]}
                   for rs, path, plugin in sets])
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
) -> None:
    """Apply merge rules to an IR file and print how many times each rule matched."""
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
        echo_json(result)
        return
    typer.echo(f"{model}: {len(graph.nodes)} -> {len(merged.nodes)} nodes")
    for name, count in counts.items():
        typer.echo(f"  {name:<20} {count}")
