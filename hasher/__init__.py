"""HNN-Net: a merged IR graph in, a Q-bit code out (and the graph's non-learned structure).

* :mod:`hnn.hasher.features`: node features; :mod:`hnn.hasher.model` and :mod:`hnn.hasher.layers`:
  the network (torch); :mod:`hnn.hasher.numpy_model`: its forward pass without torch.
* :mod:`hnn.hasher.checkpoint`: ``.npz`` checkpoints, read without pickle.
* :mod:`hnn.hasher.runtime`: hash models and graphs (CPU or GPU): what ``hnn hash`` runs.
* :mod:`hnn.hasher.structure`: topology digest, scale and structure code (WL-SimHash).
* :mod:`hnn.hasher.bits`: codes as bytes, words and hex.
* :mod:`hnn.hasher.training`: losses, the training loop, the retrieval metrics it selects by.

docs/hasher.md documents the network, the losses and the checkpoints.
"""
