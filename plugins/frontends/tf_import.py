"""Importing TensorFlow and Keras the one safe way (the Keras and TensorFlow front-ends, the
SavedModel policy and the Keras zoo preset all go through here)."""

from __future__ import annotations

import os


def import_tensorflow():
    """Import TensorFlow with its C++ start-up chatter silenced.

    Measured here (tensorflow-cpu 2.21, torch 2.14): once TensorFlow is loaded, a later
    import of triton (which torch and torchvision import lazily) kills the process with a
    segmentation fault; the other order works. So triton, when installed, goes first.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        import triton  # noqa: F401
    except ImportError:
        pass
    import tensorflow

    return tensorflow


def import_keras():
    """Import keras; every path that may load TensorFlow goes through :func:`import_tensorflow`."""
    import_tensorflow()
    import keras

    return keras
