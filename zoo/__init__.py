"""Model-zoo datasets: what training and evaluation learn from and are measured on.

* :mod:`hnn.zoo.presets`: which models (the paper's 21, torchvision, Keras, a user's list).
* :mod:`hnn.zoo.build`: ``hnn zoo build``: convert, merge, augment, manifest (resumable).
* :mod:`hnn.zoo.augment`: the paper's augmentation (delete 10% of the nodes).
* :mod:`hnn.zoo.splits`: the paper's split and the held-out splits.
* :mod:`hnn.zoo.ged`: approximate graph edit distance; :mod:`hnn.zoo.dataset`: a dataset's graphs and GED matrix.

docs/zoo.md documents the format and the splits.
"""
