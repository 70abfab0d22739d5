"""``hnn index add | list | remove | query`` and ``hnn check``."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from hnn.cli.options import (
    IndexArgument,
    JsonOption,
    ModelOptions,
    Progress,
    about,
    echo_json,
    family_line,
    model_options,
    positional_evidence,
    relation_mark,
)
from hnn.errors import printable

index_app = typer.Typer(help="The model registry: an SQLite index of hash codes with Hamming search.",
                        no_args_is_help=True)


def add_reporter(as_json: bool):
    """What `index add` and `index add-store` print of each model as soon as it is committed (so what
    was committed is said even when a later model stops the run): a JSON line, or one line of text."""
    def report(result: dict) -> None:
        if as_json:
            echo_json(result)
        elif result["status"] == "added":
            typer.echo(f"added #{result['id']}  {result['hash']}  {result['model']}")
        elif result["status"] == "duplicate":
            typer.echo(f"exists #{result['id']}  {result['model']}: {result['reason']}")
        elif result["status"] == "skipped":
            typer.echo(f"skipped  {result['model']}: {result['reason']}")
        else:
            typer.echo(f"hnn: {about(result['model'], result['reason'])}", err=True)

    return report


@index_app.command("add")
@model_options("framework", "checkpoint", "bits")
def index_add(
    index: IndexArgument,
    models: Annotated[list[str], typer.Argument(help="Models to hash and add.")],
    options: ModelOptions,
    label: Annotated[Optional[str], typer.Option("--label", help="Family or owner label for these entries.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Hash models and add them; each entry commits on its own, duplicates are reported."""
    from hnn.index.registry import add_models

    with Progress("adding") as progress:
        results = add_models(index, models, label=label, checkpoint=options.checkpoint, bits=options.bits,
                             progress=progress, report=add_reporter(as_json), **options.ingest)
    if any(result["status"] == "failed" for result in results):
        raise typer.Exit(1)


@index_app.command("add-store")
@model_options("framework", "checkpoint", "bits")
def index_add_store(
    index: IndexArgument,
    store: Annotated[str, typer.Argument(help="A folder of models (walked), or a manifest: one path per line.")],
    options: ModelOptions,
    engine: Annotated[str, typer.Option("--engine", help="local (a process pool), ray, or sequential.")] = "local",
    workers: Annotated[Optional[int], typer.Option("--workers", min=1,
                                                   help="Worker processes; default: the CPU count.")] = None,
    address: Annotated[Optional[str], typer.Option("--address", help="With --engine ray: join this cluster "
                                                   "(auto, ray://head:10001); default: a local Ray instance.")] = None,
    label: Annotated[Optional[str], typer.Option("--label", help="Family or owner label for these entries.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Hash every model of a store on a pool or Ray; this process alone writes the index. A rerun skips
    what is indexed (by content digest). Exit 1 when a model failed."""
    from hnn.batch.run import add_store

    with Progress("hashing") as progress:
        done = add_store(index, store, engine=engine, workers=workers, address=address, label=label,
                         checkpoint=options.checkpoint, bits=options.bits, progress=progress,
                         report=add_reporter(as_json), **options.ingest)
    summary, failures = done["summary"], done["failures"]
    if as_json:
        echo_json(done)
    else:
        if failures:
            typer.echo(f"hnn: {len(failures)} of {summary['models']} models failed:", err=True)
            for failure in failures:
                typer.echo(f"  {about(failure['model'], failure['reason'])}", err=True)
        counts = ", ".join(f"{summary[status]} {status}" for status in ("added", "duplicate", "skipped", "failed"))
        typer.echo(f"{summary['models']} models: {counts}; {summary['ignored']} other files ignored "
                   f"({summary['engine']}, {summary['workers']} workers, {summary['seconds']:.1f} s)")
    if failures:
        raise typer.Exit(1)


@index_app.command("list")
def index_list(index: IndexArgument, as_json: JsonOption = False) -> None:
    """List the entries."""
    from hnn.index.store import Index

    with Index(index) as opened:
        entries = [entry.to_dict() for entry in opened.entries()]
    if as_json:
        echo_json(entries)
        return
    for entry in entries:
        typer.echo(f"#{entry['id']:<5} {entry['hash']}  {entry['name']:<28} {entry['framework']:<10} "
                   f"{entry['label'] or ''}")


@index_app.command("remove")
def index_remove(index: IndexArgument, entry_id: Annotated[int, typer.Argument(help="Entry id.")]) -> None:
    """Remove one entry."""
    from hnn.index.store import Index

    with Index(index) as opened:
        entry = opened.remove(entry_id)
    typer.echo(f"removed #{entry.id} {entry.name}")


@index_app.command("query")
@model_options("framework", "checkpoint")
def index_query(
    index: IndexArgument,
    model: Annotated[str, typer.Argument(help="Model to look up.")],
    options: ModelOptions,
    k: Annotated[int, typer.Option("-k", min=1, help="How many nearest entries.")] = 10,
    radius: Annotated[Optional[int], typer.Option("--radius", min=0, help="All entries within this distance.")] = None,
    as_json: JsonOption = False,
) -> None:
    """The nearest entries to a model, with Hamming distances."""
    from hnn.index.registry import query_model

    result = query_model(index, model, k=k, radius=radius, checkpoint=options.checkpoint, **options.ingest)
    if as_json:
        echo_json(result)
        return
    typer.echo(f"{printable(model)}: {result['hash']}")
    for hit in result["neighbours"]:
        typer.echo(f"  {hit['distance']:>3}  #{hit['id']:<5} {hit['name']}  {hit['label'] or ''}{relation_mark(hit)}")
    if family_line(result["family"]):
        typer.echo(family_line(result["family"]))


def weights_only_line(result: dict, model: str) -> str:
    """`hnn check`'s line for bare weights: the entry they derive from (or the best tested), and what it cannot tell."""
    source = result["derived_from"] or (result["neighbours"][0] if result["neighbours"] else None)
    if source is None:
        found = "no weights tested: the index holds no fingerprint" if result["fingerprint"] else \
            "no tensor large enough to test"
    else:
        found = (f"{'from' if result['derived_from'] else 'strongest evidence:'} #{source['id']} {source['name']}: "
                 f"{positional_evidence(source['provenance'])}")
    return f"{result['verdict']}: {printable(model)} ({found}; {result['cannot_tell']})"


@model_options("framework", "checkpoint")
def check(
    index: IndexArgument,
    model: Annotated[str, typer.Argument(help="The uploaded model.")],
    options: ModelOptions,
    k: Annotated[int, typer.Option("-k", min=1, help="How many nearest entries to show.")] = 5,
    as_json: JsonOption = False,
) -> None:
    """Is MODEL derived from a known model? Verdict derived / same-architecture / new; exit code 4 / 3 / 0."""
    from hnn.index.registry import check_model
    from hnn.index.verdicts import CHECK_EXIT_CODES

    result = check_model(index, model, k=k, checkpoint=options.checkpoint, **options.ingest)
    if as_json:
        echo_json(result)
    elif result.get("weights_only"):
        typer.echo(weights_only_line(result, model))
    else:
        first = result["neighbours"][0] if result["neighbours"] else None
        closest = (f"first #{first['id']} {first['name']} at distance {first['distance']}{relation_mark(first)}"
                   if first else "empty index")
        unweighed = "" if result["fingerprint"] else "; the model has no weights to test"
        typer.echo(f"{result['verdict']}: {printable(model)} ({closest}; code match <= "
                   f"{result['thresholds']['match']}, suspect <= {result['thresholds']['suspect']}{unweighed})")
        for hit in result["neighbours"][1:]:
            typer.echo(f"  {hit['distance']:>3}  #{hit['id']:<5} {hit['name']}{relation_mark(hit)}")
        if family_line(result["family"]):
            typer.echo(family_line(result["family"]))
    raise typer.Exit(CHECK_EXIT_CODES[result["verdict"]])
