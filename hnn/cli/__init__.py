"""The ``hnn`` command line. It only wires commands; the work lives in library modules.

:mod:`hnn.cli.app` holds the app and :func:`main`; each command group has its module
(:mod:`~hnn.cli.ingest`, :mod:`~hnn.cli.rules`, :mod:`~hnn.cli.zoo`, :mod:`~hnn.cli.training`,
:mod:`~hnn.cli.hashing`, :mod:`~hnn.cli.index`, :mod:`~hnn.cli.serve`); :mod:`hnn.cli.options` declares what they share.
"""

from hnn.cli.app import app, main

__all__ = ["app", "main"]
