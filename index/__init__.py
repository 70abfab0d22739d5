"""The model registry: an SQLite index of codes, structures and weight marks, searched and judged.

* :mod:`hnn.index.store`: the SQLite file (schema, upgrades, transactions, candidate search).
* :mod:`hnn.index.search`: exact Hamming search in memory (faiss or numpy).
* :mod:`hnn.index.ranking`: the one ranking formula (weights, then topology, then code).
* :mod:`hnn.index.verdicts`: thresholds and the verdict policy.
* :mod:`hnn.index.registry`: add, query and check models (``hnn index``, ``hnn check``).
* :mod:`hnn.index.compare`: two models side by side (``hnn compare``).

docs/index.md documents the ranking and the verdicts.
"""
