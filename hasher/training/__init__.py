"""Training HNN-Net: configuration, losses, the training loop, and the retrieval metrics it selects by.

* :mod:`hnn.hasher.training.config`: TrainConfig, the default configuration, :func:`configure`.
* :mod:`hnn.hasher.training.losses`: L_topo, L_class, L_source, L_quant on every pair of a batch.
* :mod:`hnn.hasher.training.loop`: ``hnn train``: batches, validation, thresholds, the checkpoint.
* :mod:`hnn.hasher.training.metrics`: precision, recall, F1, mAP (``hnn eval`` reports them too).
"""
