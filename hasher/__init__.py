"""HNN-Net hasher (features, network, training, ``hnn hash``).

Not built yet: this package reserves the ``hnn.hasher`` namespace. The hasher
consumes the canonical IR of :mod:`hnn.ingest`.
"""
