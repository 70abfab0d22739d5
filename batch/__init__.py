"""Hashing a whole model store: every model under a folder or in a manifest, on a process pool or a Ray cluster."""
