"""``hnn train`` and ``hnn eval``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from hnn.cli.options import JsonOption, Progress, echo_json
from hnn.errors import UsageError


def train(
    data: Annotated[Path, typer.Option("--data", help="Dataset folder from `hnn zoo build`.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Checkpoint file to write.")],
    bits: Annotated[int, typer.Option("--bits", min=1, max=512)] = 32,
    epochs: Annotated[int, typer.Option("--epochs", min=1)] = 100,
    device: Annotated[str, typer.Option("--device", help="auto, cpu or cuda.")] = "auto",
    seed: Annotated[int, typer.Option("--seed")] = 0,
    split: Annotated[str, typer.Option(
        "--split", help="paper, models, families, or families=A,B (those held out): what is held out.")] = "paper",
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
    sizes: Annotated[str, typer.Option(
        "--sizes",
        help="How a node's FLOPs and parameters are bucketed: absolute (the paper), resolution (FLOPs "
             "as at 224x224 input, so a copy at another resolution keeps its code), relative (to the "
             "graph's median node), ratios (no buckets: each layer's size over its input's, which "
             "width and resolution leave alone) or resolution+ratios (both). Not in the paper but "
             "absolute.")] = "absolute",
    decorrelation: Annotated[float, typer.Option(
        "--decorrelation", min=0.0,
        help="Weight of a loss that decorrelates the code's bits (against crowded codes; not in the paper).")] = 0.0,
    wl_bins: Annotated[int, typer.Option(
        "--wl-bins", min=0, max=65536,
        help="Give the code layer the graph's Weisfeiler-Lehman feature bag too, hashed into this many "
             "slots (0: no; not in the paper).")] = 0,
    wl_init: Annotated[float, typer.Option(
        "--wl-init", min=0.0, help="Spread of the WL projection's initial weights (with --wl-bins).")] = 1.0,
    as_json: JsonOption = False,
) -> None:
    """Train HNN-Net on a dataset and write the best checkpoint (by validation source-model mAP)."""
    from hnn.hasher.training.config import configure
    from hnn.hasher.training.loop import train as train_model

    config = configure(bits=bits, epochs=epochs, device=device, seed=seed, split=split, kind=kind, topology=topology,
                       with_class=not no_class, source_weight=source_weight, size_features=size_features,
                       width_jitter=width_jitter, sizes=sizes, decorrelation=decorrelation, wl_bins=wl_bins,
                       wl_init=wl_init)
    with Progress("training") as progress:
        def report(epoch, total, record):
            shown = ("topo", "class", "source_class", "quant", "decor", "val_source_map")
            parts = " ".join(f"{k}={record[k]}" for k in shown if k in record)
            progress(epoch, total, parts)

        result = train_model(data, config, output=output, progress=report)
    summary = {"output": str(output), "seconds": result["seconds"], "best_val_source_map": result["best_val_source_map"],
               "thresholds": result["thresholds"]}
    if as_json:
        echo_json(summary)
        return
    typer.echo(f"wrote {output}: best validation source-model mAP {result['best_val_source_map']:.3f}, "
               f"{result['seconds']} s; verdict thresholds {result['thresholds']}")


def evaluate(
    data: Annotated[Path, typer.Option("--data", help="Dataset folder from `hnn zoo build`.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder for results.json, results.md, plots.")],
    split: Annotated[str, typer.Option("--split", help="paper, models, families or families=A,B.")] = "paper",
    bits: Annotated[str, typer.Option("--bits", help="Comma-separated bit counts.")] = "16,32,64",
    methods: Annotated[str, typer.Option("--methods", help="Comma-separated: hnn, hnn-index, hnn-noclass, "
                                                           "hnn-paper, ghashing, wl-simhash, hnn+wl, hnn-size, "
                                                           "hnn-wl3|5|10|30, hnn-wl3-ratios (docs/evaluation.md).")]
    = "hnn,hnn-index,hnn-noclass,ghashing,wl-simhash",
    kinds: Annotated[str, typer.Option("--kinds", help="merged, raw or both.")] = "merged,raw",
    seeds: Annotated[int, typer.Option("--seeds", min=1)] = 1,
    epochs: Annotated[int, typer.Option("--epochs", min=1)] = 100,
    as_json: JsonOption = False,
) -> None:
    """Train and compare hashing methods on a split; write tables and plots."""
    from hnn.evaluation.protocol import evaluate as run_evaluation
    from hnn.evaluation.report import write_report

    try:
        bit_counts = [int(b) for b in bits.split(",")]
    except ValueError:
        raise UsageError(f"--bits {bits!r}: expected comma-separated integers") from None
    with Progress("evaluating") as progress:
        results = run_evaluation(data, split=split, bits_list=bit_counts, methods=methods.split(","),
                                 kinds=kinds.split(","), seeds=seeds, epochs=epochs, progress=progress)
    files = write_report(results, output)
    if as_json:
        echo_json({"summary": results["summary"], "seconds": results["seconds"], "files": [str(f) for f in files]})
        return
    typer.echo((output / "results.md").read_text())
    typer.echo("wrote " + ", ".join(str(f) for f in files))
