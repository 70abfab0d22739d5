"""`hnn eval`: the paper's retrieval protocol and held-out splits, over every method.

* :mod:`hnn.evaluation.protocol`: queries, database, scores per kind, bits, method and seed.
* :mod:`hnn.evaluation.methods`: the methods compared (HNN-Net variants and the baselines).
* the metrics (precision, recall, F1, mAP, top-1, R-precision) are training's too:
  :mod:`hnn.hasher.training.metrics`.
* :mod:`hnn.evaluation.report`: results.json, results.md and plots.

docs/evaluation.md defines the protocol.
"""
