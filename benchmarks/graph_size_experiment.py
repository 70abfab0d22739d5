"""Experiment (not shipped): HNN-Net with graph-level size features appended to every node.

    .venv/bin/python benchmarks/graph_size_experiment.py --data DIR --bits 64 --epochs 60 --seed 0 -o out.npz

Takes the arguments of `hnn train`. Every node's features get three more
columns: log2(nodes + 1) / 10, log10(FLOPs + 1) / 10 and log10(params + 1) / 10
of the whole graph. The question it answers: do sibling architectures
(resnet18/34/50, vgg11/13/16), which share codes with the shipped network,
separate when the network sees their size? Compare the "best validation
source-model mAP" it prints with `hnn train` on the same data and seed.

The checkpoint it writes is for this comparison only: `hnn hash` and the numpy
forward pass do not add the columns, so they cannot use it.
"""

import dataclasses
import math
import sys

import numpy as np

import hnn.hasher.batching as batching
import hnn.hasher.features as features
import hnn.hasher.model as model

SIZE_COLUMNS = 3
_node_features = features.node_features
_init = model.HNNNet.__init__


def node_features_with_size(graph, vocabulary):
    x = _node_features(graph, vocabulary)
    size = np.array([math.log2(1 + len(graph.nodes)) / 10, math.log10(1 + graph.total_flops) / 10,
                     math.log10(1 + graph.total_params) / 10], dtype=np.float32)
    return np.concatenate([x, np.tile(size, (x.shape[0], 1))], axis=1)


def init_with_size(self, config):
    _init(self, dataclasses.replace(config, in_channels=config.in_channels + SIZE_COLUMNS))


if __name__ == "__main__":
    batching.node_features = node_features_with_size
    model.HNNNet.__init__ = init_with_size
    from hnn.cli import app

    sys.argv = ["hnn", "train", *sys.argv[1:]]
    app()
