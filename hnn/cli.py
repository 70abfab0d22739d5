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

from hnn.errors import HnnError

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

_state = {"debug": False}


def _configure_logging(verbose: bool) -> None:
    logging.basicConfig(format="hnn: %(message)s", level=logging.INFO if verbose else logging.WARNING,
                        stream=sys.stderr, force=True)


@app.command()
def ingest(
    model: Annotated[
        Optional[str],
        typer.Argument(help="Model file or folder, or module:factory spec. Omitted: the bundled example."),
    ] = None,
    framework: Annotated[
        Optional[str], typer.Option("--framework", "-f", help="Front-end to use (see `hnn frameworks`); default: detect.")
    ] = None,
    input_shape: Annotated[
        Optional[str], typer.Option("--input-shape", help="Trigger input shape, e.g. 1,3,224,224 or name=1,3,224,224.")
    ] = None,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Write the IR as JSON here.")] = None,
    trust: Annotated[
        bool, typer.Option("--trust", help="Allow loading files that can run code (pickle, TorchScript, .pt2).")
    ] = False,
    exporter: Annotated[
        Optional[str], typer.Option("--exporter", help="pytorch: torchscript (default) or dynamo.")
    ] = None,
    no_simplify: Annotated[bool, typer.Option("--no-simplify", help="Skip onnxsim.")] = False,
    as_json: JsonOption = False,
    verbose: VerboseOption = False,
    debug: DebugOption = False,
) -> None:
    """Convert a model to canonical graph IR and print a summary."""
    _state["debug"] = debug
    _configure_logging(verbose)
    from hnn.ingest.pipeline import EXAMPLE_MODEL, ingest as run_ingest

    source = model
    if source is None:
        source = str(EXAMPLE_MODEL)
        typer.echo(f"hnn: no model given; ingesting the bundled example {EXAMPLE_MODEL.name}", err=True)
    graph = run_ingest(source, framework=framework, input_shape=input_shape, trust=trust, exporter=exporter,
                       simplify=not no_simplify)
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


def main() -> None:
    """Entry point: run the app and turn known errors into one line and an exit code."""
    try:
        app(standalone_mode=False)
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
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        if _state["debug"]:
            traceback.print_exc()
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        typer.echo(f"hnn: internal error: {type(exc).__name__}: {first} (run with --debug for the traceback)",
                   err=True)
        sys.exit(1)
