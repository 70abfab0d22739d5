"""Errors that reach the user as one line of text.

Every failure a user can cause (a bad file, a wrong option, an unsupported
model) raises a subclass of :class:`HnnError`; the CLI prints its message and
exits non-zero without a traceback. Anything else is a bug in hnn.
"""


import re


class HnnError(Exception):
    """Base class: the message is the whole story, shown as ``hnn: <message>``."""

    exit_code = 1


class InputError(HnnError):
    """The model or file given cannot be used (missing, malformed, unsupported)."""


class UsageError(HnnError):
    """An option or argument is wrong; exit code 2, as for command-line usage errors."""

    exit_code = 2


class UntrustedInputError(InputError):
    """The file could run code when loaded and the user did not pass ``--trust``."""


class IRFormatError(InputError):
    """An IR JSON file does not validate; the message names the file and the field."""


_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message, '' when it has none: what a one-line error shows
    of a library's multi-line message."""
    text = _ANSI_ESCAPE.sub("", str(exc)).strip()  # torch colours its exporter's messages for a terminal
    return text.splitlines()[0] if text else ""


def summary(exc: BaseException) -> str:
    """``Type: first line``, for an exception hnn did not raise itself (a converter's, a bug)."""
    return f"{type(exc).__name__}: {first_line(exc)}"


def printable(text: str) -> str:
    """``text`` as valid UTF-8 for a terminal, a JSON line or the index: a file name that is not
    UTF-8 (undecodable bytes arrive as surrogates) keeps its bytes as ``\\xNN`` escapes."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def read_user_text(path, error: type[HnnError], what: str = "file") -> str:
    """Text of a file the user named, or ``error`` with a one-line reason."""
    from pathlib import Path

    path = Path(path)
    try:
        return path.read_text()
    except FileNotFoundError:
        raise error(f"{path}: no such {what}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"{path}: cannot read: {exc}") from None
