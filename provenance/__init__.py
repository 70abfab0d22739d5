"""Provenance: a fingerprint of a model's weights, and the test of whether one model derives from another.

hnn.provenance.fingerprint makes the fingerprint (the linear walk from the input:
hnn.provenance.walk); hnn.provenance.test compares two.
"""
