"""What the commands share: option declarations, the worker's limits, logging, progress, JSON output."""

from __future__ import annotations

import functools
import inspect
import json
import logging
import sys
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Callable, Optional

import typer

VerboseOption = Annotated[bool, typer.Option("--verbose", "-v", help="Say what each step does (on stderr).")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print a JSON summary for scripts.")]
RulesOption = Annotated[
    Optional[list[str]],
    typer.Option("--rules", "-r", help="Merge-rule file or registered rule-set name (repeatable); default: paper."),
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
CheckpointOption = Annotated[
    Optional[Path], typer.Option("--checkpoint", "-c", help="HNN-Net checkpoint; default: the shipped one.")
]
BitsOption = Annotated[Optional[int], typer.Option("--bits", help="Code length: picks the shipped checkpoint.")]
IndexArgument = Annotated[Path, typer.Argument(help="Index file (SQLite).")]


@dataclass(frozen=True)
class ModelOptions:
    """The shared options of a command that converts or hashes models (see :func:`model_options`)."""

    checkpoint: Path | None = None
    bits: int | None = None
    ingest: dict[str, Any] = field(default_factory=dict)  # keyword arguments of hnn.ingest.pipeline.ingest_safely


# Every option a command may share: its declaration and default. --max-memory and --timeout come
# as a pair and reach ingestion as one Limits (`limits` in ModelOptions.ingest).
SHARED_OPTIONS: dict[str, tuple[Any, Any]] = {
    "framework": (FrameworkOption, None),
    "input_shape": (InputShapeOption, None),
    "checkpoint": (CheckpointOption, None),
    "bits": (BitsOption, None),
    "trust": (TrustOption, False),
    "max_memory": (MaxMemoryOption, "4G"),
    "timeout": (TimeoutOption, 300.0),
}


def model_options(*names: str) -> Callable:
    """Give a command the shared options ``names`` (of SHARED_OPTIONS; trust and the worker's limits
    always), declared once here, and hand them to it as one ``options: ModelOptions`` argument."""
    names = tuple(dict.fromkeys([*names, "trust", "max_memory", "timeout"]))

    def decorate(command: Callable) -> Callable:
        # The command's annotations as objects (its module may keep them as strings), for typer.
        hints = typing.get_type_hints(command, include_extras=True)
        signature = inspect.signature(command)
        signature = signature.replace(parameters=[parameter.replace(annotation=hints.get(parameter.name,
                                                                                      parameter.annotation))
                                                  for parameter in signature.parameters.values()])
        shared = [inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=SHARED_OPTIONS[name][1],
                                    annotation=SHARED_OPTIONS[name][0]) for name in names]
        before, after = [], []
        for parameter in signature.parameters.values():
            if parameter.name != "options":
                (after if parameter.default is not inspect.Parameter.empty else before).append(parameter)

        @functools.wraps(command)
        def run(**values):
            given = {name: values.pop(name) for name in names}
            ingest = {"trust": given["trust"], "limits": limits(given["max_memory"], given["timeout"])}
            ingest.update({name: given[name] for name in ("framework", "input_shape") if name in given})
            return command(**values, options=ModelOptions(given.get("checkpoint"), given.get("bits"), ingest))

        # typer reads the parameters from the signature and their types from __annotations__.
        run.__signature__ = signature.replace(parameters=[*before, *shared, *after])
        run.__annotations__ = {**{p.name: p.annotation for p in signature.parameters.values() if p.name != "options"},
                               **{p.name: p.annotation for p in shared}}
        return run

    return decorate


def limits(max_memory: str, timeout: float):
    """The worker's limits from ``--max-memory`` and ``--timeout``."""
    from hnn.ingest.worker import Limits, parse_memory

    return Limits(max_memory=parse_memory(max_memory), timeout=timeout)  # refuses what sets no limit


def configure_logging(verbose: bool) -> None:
    # Only hnn's own loggers: TensorFlow and others log through the root logger, and their
    # lines must not look like hnn's ("hnn: ..." is what scripts and the zoo builder read).
    logger = logging.getLogger("hnn")
    logger.handlers.clear()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("hnn: %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO if verbose else logging.WARNING)
    logger.propagate = False


def about(model: str, message: str) -> str:
    """``message`` as the one line about ``model``: prefixed with its name unless it names it already."""
    return message if model in message else f"{model}: {message}"


def echo_json(value) -> None:
    typer.echo(json.dumps(value))


def relation_mark(hit: dict) -> str:
    """What the listings add to an entry the query derives from, or that shares its weights or
    topology (ranked first: docs/index.md)."""
    said = hit.get("provenance")
    marks = [f"derived: {provenance_summary(said)}"] if said and said["derived"] else []
    marks += [f"shares {hit['shared_weights']:.0%} of sampled weights"] if hit.get("shares_weights") else []
    marks += ["same topology"] if hit["same_topology"] else []
    if said and not said["derived"] and hit["same_topology"]:
        marks.append(f"weights independent: p = {said['p_value']:.2g}")
    return f" ({', '.join(marks)})" if marks else ""


def positional_evidence(provenance: dict) -> str:
    """The positional test's result as bare weights report it: its z and how many tensors matched."""
    test = provenance["positional"]
    return f"positional z {test['z']:.1f}, {test['layers_matched']} of {test['layers_compared']} tensors matched"


def family_line(family: dict | None) -> str | None:
    """``family: resnet (#4 resnet18: 3 bits apart, 92% of op patterns alike)``: the index's family
    answer (hnn.index.store.Index.family), or None when it has none."""
    if family is None:
        return None
    return (f"family: {family['label'] or family['name']} (#{family['id']} {family['name']}: "
            f"{family['code_distance']} bit{'' if family['code_distance'] == 1 else 's'} apart, "
            f"{family['pattern_similarity']:.0%} of op patterns alike)")


def provenance_summary(said: dict) -> str:
    """``p < 1e-300, positional test, 20 of 21 layers``: the provenance test's result in a few words."""
    p_value = f"p = {said['p_value']:.2g}" if said["log10_p"] > -300 else f"p < 1e{int(said['log10_p'])}"
    test = said[said["test"]]
    return f"{p_value}, {said['test']} test, {test['layers_matched']} of {test['layers_compared']} layers"


class Progress:
    """A progress bar with ETA on stderr (rich), or nothing when stderr is not a terminal."""

    def __init__(self, label: str):
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

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
