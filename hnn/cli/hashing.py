"""``hnn hash`` and ``hnn compare``."""

from __future__ import annotations

from typing import Annotated

import typer

from hnn.cli.options import (
    JsonOption,
    ModelOptions,
    VerboseOption,
    about,
    configure_logging,
    echo_json,
    model_options,
    positional_evidence,
    relation_mark,
)
from hnn.errors import HnnError, printable


@model_options("framework", "checkpoint", "bits", "input_shape")
def hash_models(
    models: Annotated[list[str], typer.Argument(help="Models: files, folders, specs, or IR .json files.")],
    options: ModelOptions,
    as_json: JsonOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Print `<hex code>  <model>` per model (--json: one JSON object per line)."""
    configure_logging(verbose)
    from hnn.hasher.runtime import hash_model

    failures = 0
    for model in models:
        try:
            result = hash_model(model, checkpoint=options.checkpoint, bits=options.bits, **options.ingest)
        except HnnError as exc:
            if len(models) == 1:
                raise
            failures += 1  # one bad model among many must not lose the others' hashes
            typer.echo(f"hnn: {about(printable(model), str(exc))}", err=True)
            continue
        if as_json:
            echo_json(result.to_dict())
        else:
            typer.echo(f"{result.hash}  {printable(model)}")
    if failures:
        raise typer.Exit(1)


@model_options("checkpoint", "bits")
def compare(
    a: Annotated[str, typer.Argument(help="First model.")],
    b: Annotated[str, typer.Argument(help="Second model.")],
    options: ModelOptions,
    as_json: JsonOption = False,
) -> None:
    """Distance, similarity, provenance and verdict (derived / same-architecture / different) of two models."""
    from hnn.index.compare import compare as compare_models

    result = compare_models(a, b, checkpoint=options.checkpoint, bits=options.bits, **options.ingest)
    if as_json:
        echo_json(result)
        return
    if result.get("weights_only"):
        evidence = positional_evidence(result["provenance"]) if result["provenance"] else "no tensor to test"
        typer.echo(f"{result['verdict']}: {evidence} ({result['cannot_tell']})")
        return
    typer.echo(f"{result['verdict']}: distance {result['distance']}/{result['a']['bits']} bits, similarity "
               f"{result['similarity']:.3f}{relation_mark(result)} (code match <= {result['thresholds']['match']}, "
               f"suspect <= {result['thresholds']['suspect']})")
