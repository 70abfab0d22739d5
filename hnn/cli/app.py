"""The ``hnn`` app: its commands, and turning errors into one line and an exit code.

Errors a user can cause (:class:`hnn.errors.HnnError`) print one line,
``hnn: <message>``, and exit non-zero (2 for usage errors). ``--debug``, given
anywhere on the command line, shows the traceback instead. Each command lives in
the module of its group; heavy frameworks are imported only by the command that
needs them.
"""

from __future__ import annotations

import sys
import traceback
from typing import Annotated

import typer

from hnn.cli import hashing, index, ingest, serve, training
from hnn.cli.index import index_app
from hnn.cli.rules import rules_app
from hnn.cli.zoo import zoo_app
from hnn.errors import HnnError, summary

DEBUG_FLAG = "--debug"

app = typer.Typer(
    name="hnn",
    help="Perceptual hashes of neural networks: ingest models of any framework into one canonical graph.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _global_options(
    debug: Annotated[bool, typer.Option(DEBUG_FLAG, help="Show tracebacks of errors (accepted after any command too).")]
    = False,
) -> None:
    """Perceptual hashes of neural networks: ingest models of any framework into one canonical graph."""


app.command("ingest")(ingest.ingest)
app.command("frameworks")(ingest.frameworks)
app.add_typer(rules_app, name="rules")
app.add_typer(zoo_app, name="zoo")
app.command("train")(training.train)
app.command("hash")(hashing.hash_models)
app.command("compare")(hashing.compare)
app.add_typer(index_app, name="index")
app.command("check")(index.check)
app.command("eval")(training.evaluate)
app.command("serve")(serve.serve)


def _usage_error(exc) -> None:
    """A click usage error (a bad option value, an unknown option) as one line, exit 2; the help
    text that click shows for a command given no arguments as it is."""
    message = exc.format_message()
    if "\n" in message.strip():  # no arguments: the message is the command's help
        typer.echo(message, err=True)
        sys.exit(exc.exit_code)
    context = getattr(exc, "ctx", None)
    hint = f" (see `{context.command_path} --help`)" if context is not None else ""
    typer.echo(f"hnn: {message}{hint}", err=True)
    sys.exit(exc.exit_code)


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app and turn known errors into one line and an exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    # --debug belongs to no one command: taken out wherever it stands (before a `--` that ends options).
    options = args[:args.index("--")] if "--" in args else args
    debug = DEBUG_FLAG in options
    if debug:
        args = [arg for position, arg in enumerate(args) if not (arg == DEBUG_FLAG and position < len(options))]
    try:
        # Without standalone mode click returns the code of a typer.Exit instead of exiting.
        code = app(args=args, prog_name="hnn", standalone_mode=False)
    except HnnError as exc:
        if debug:
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
        if callable(getattr(exc, "format_message", None)) and isinstance(getattr(exc, "exit_code", None), int):
            _usage_error(exc)
        if debug:
            traceback.print_exc()
        typer.echo(f"hnn: internal error: {summary(exc)} (run with --debug for the traceback)", err=True)
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)
