"""hnn: perceptual hashes of neural networks.

The library API mirrors the CLI. Heavy frameworks are imported only by the
front-end that needs them, so importing :mod:`hnn` is cheap.

>>> import hnn
>>> graph = hnn.ingest("model.onnx")          # doctest: +SKIP
>>> hnn.hash_model("model.onnx").hash         # doctest: +SKIP
>>> hnn.compare("a.onnx", "b.keras")          # doctest: +SKIP
"""

__version__ = "0.1.0"

from hnn.errors import HnnError, InputError, UsageError


def ingest(source, **options):
    """Convert a model (path, ``module:factory`` spec or framework object) to canonical IR.

    See :func:`hnn.ingest.pipeline.ingest` for the options.
    """
    from hnn.ingest.pipeline import ingest as _ingest

    return _ingest(source, **options)


def hash_model(source, **options):
    """Q-bit perceptual hash of a model; see :func:`hnn.hasher.api.hash_model`."""
    from hnn.hasher.api import hash_model as _hash_model

    return _hash_model(source, **options)


def compare(a, b, **options):
    """Hamming distance, similarity and verdict of two models; see :func:`hnn.hasher.api.compare`."""
    from hnn.hasher.api import compare as _compare

    return _compare(a, b, **options)


__all__ = ["__version__", "ingest", "hash_model", "compare", "HnnError", "InputError", "UsageError"]
