"""hnn: perceptual hashes of neural networks.

The library API mirrors the CLI. Heavy frameworks are imported only by the
front-end that needs them, and this module imports no stage of the pipeline
until a function below is called, so importing :mod:`hnn` is cheap.

>>> import hnn
>>> graph = hnn.ingest("model.onnx")          # doctest: +SKIP
>>> hnn.hash_model("model.onnx").hash         # doctest: +SKIP
>>> hnn.compare("a.onnx", "b.keras")          # doctest: +SKIP
"""

from hnn import _moved
from hnn._version import __version__
from hnn.errors import HnnError, InputError, UsageError

_moved.install()


def ingest(source, **options):
    """Convert a model (path, ``module:factory`` spec or framework object) to canonical IR.

    See :func:`hnn.ingest.pipeline.ingest` for the options.
    """
    from hnn.ingest.pipeline import ingest as _ingest

    return _ingest(source, **options)


def hash_model(source, **options):
    """Q-bit perceptual hash of a model; see :func:`hnn.hasher.runtime.hash_model`."""
    from hnn.hasher.runtime import hash_model as _hash_model

    return _hash_model(source, **options)


def compare(a, b, **options):
    """Hamming distance, similarity and verdict of two models; see :func:`hnn.index.compare.compare`."""
    from hnn.index.compare import compare as _compare

    return _compare(a, b, **options)


__all__ = ["__version__", "ingest", "hash_model", "compare", "HnnError", "InputError", "UsageError"]
