"""hnn: perceptual hashes of neural networks.

The library API mirrors the CLI. Heavy frameworks are imported only by the
front-end that needs them, so importing :mod:`hnn` is cheap.

>>> import hnn
>>> graph = hnn.ingest("model.onnx")          # doctest: +SKIP
>>> graph.to_json_file("model.json")          # doctest: +SKIP
"""

__version__ = "0.1.0"

from hnn.errors import HnnError, InputError, UsageError


def ingest(source, **options):
    """Convert a model (path, ``module:factory`` spec or framework object) to canonical IR.

    See :func:`hnn.ingest.pipeline.ingest` for the options.
    """
    from hnn.ingest.pipeline import ingest as _ingest

    return _ingest(source, **options)


__all__ = ["__version__", "ingest", "HnnError", "InputError", "UsageError"]
