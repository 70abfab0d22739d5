"""``hnn zoo build | ged``."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from hnn.cli.options import JsonOption, Progress, RulesOption, VerboseOption, configure_logging, echo_json

zoo_app = typer.Typer(help="Model-zoo datasets: build them, and their pairwise graph edit distances.",
                      no_args_is_help=True)


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
    variants: Annotated[str, typer.Option(
        "--variants", help="Comma-separated copier variants of each torch model, trained on as copies: "
                           "head (10 classes), resolution (+32 pixels a side), dynamo (the other exporter).")] = "",
    as_json: JsonOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Build (or resume) a dataset: IR files raw and merged, augmentations, variants, manifest, summary."""
    configure_logging(verbose)
    from hnn.zoo.build import build
    from hnn.zoo.variants import parse_variants

    started = time.perf_counter()
    kinds = parse_variants(variants)
    with Progress("building") as progress:
        data = build(preset, output, rule_files=rules, augmentations=augmentations, seed=seed, progress=progress,
                     reuse_raw=reuse_raw, variants=kinds)
    summary = {"output": str(output), "models": len(data["models"]), "augmented": len(data["augmented"]),
               "variants": len(data["variants"]),
               "families": len({m["family"] for m in data["models"]}), "failed": data["failed"],
               "seconds": round(time.perf_counter() - started, 1)}
    if as_json:
        echo_json(summary)
        return
    typer.echo(f"{output}: {summary['models']} models in {summary['families']} families, "
               f"{summary['augmented']} augmented graphs, {summary['variants']} variants, {len(data['failed'])} failed, "
               f"{summary['seconds']} s")
    for failure in data["failed"]:
        typer.echo(f"  failed: {failure['name']}: {failure['reason']}")


@zoo_app.command("ged")
def zoo_ged(
    data: Annotated[Path, typer.Argument(help="Dataset folder from `hnn zoo build`.")],
    kind: Annotated[str, typer.Option(help="raw or merged graphs.")] = "merged",
    cap: Annotated[int, typer.Option("--cap", help="R: GEDs are capped here.", min=1)] = 100,
    workers: Annotated[Optional[int], typer.Option(help="Worker processes (default: all cores).")] = None,
    as_json: JsonOption = False,
) -> None:
    """Compute (or load from the cache) the pairwise GED matrix of every graph in a dataset."""
    from hnn.zoo.dataset import pairwise_ged

    started = time.perf_counter()
    with Progress("GED") as progress:
        names, matrix, stats = pairwise_ged(data, kind=kind, cap=cap, workers=workers, progress=progress)
    stats.update({"graphs": len(names), "seconds": round(time.perf_counter() - started, 2)})
    stats["pairs_per_second"] = round(stats["pairs"] / max(stats["seconds"], 1e-9))
    if as_json:
        echo_json(stats)
        return
    typer.echo(f"{data} ({kind}): {stats['graphs']} graphs, {stats['pairs']} pairs in {stats['seconds']} s "
               f"({stats['pairs_per_second']}/s), {stats['settled_by_bound']} settled by the lower bound"
               + (" (from cache)" if stats["cached"] else "")
               + (f", {stats['reused']} reused from an earlier matrix" if stats.get("reused") else ""))
