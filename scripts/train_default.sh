#!/usr/bin/env bash
# Reproduces the shipped checkpoints hasher/checkpoints/hnn-net-{16,32,64}.npz:
# the `wide` zoo preset (the 76 torchvision models of hasher/checkpoints/training-models.txt
# and the timm architectures of zoo/lists/timm-wide.txt, 46 of which convert: 122 models in
# 62 families), 10 augmentations each, seed 0, merged with the framework-agnostic rules
# (rules/agnostic.yaml: BatchNormalization optional, so a folded export hashes like the
# unfolded one); the default training configuration but a source-head weight of 0.3
# (docs/RESULTS.md, "Shipped checkpoints", says why) and resolution sizes (FLOPs as at a
# 224x224 input: a copy exported at another resolution keeps its code), seed 0, CPU.
# About 15 min to convert the models, 7 min of GED, 6 min per checkpoint (one thread).
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-data/wide}
.venv/bin/hnn zoo build --preset wide --rules agnostic --seed 0 -o "$DATA"
for bits in 16 32 64; do
    OMP_NUM_THREADS=1 .venv/bin/hnn train --data "$DATA" --bits "$bits" --epochs 100 --seed 0 --device cpu \
        --source-weight 0.3 --sizes resolution -o "hasher/checkpoints/hnn-net-$bits.npz"
done
