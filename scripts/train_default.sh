#!/usr/bin/env bash
# Reproduces the shipped checkpoints hasher/checkpoints/hnn-net-{16,32,64}.npz:
# the 76 torchvision models of hasher/checkpoints/training-models.txt, 10
# augmentations each, seed 0, merged with the framework-agnostic rules
# (rules/agnostic.yaml: BatchNormalization optional, so a folded export hashes
# like the unfolded one), the default training configuration but a source-head
# weight of 0.3 (docs/RESULTS.md, "Shipped checkpoints", says why), seed 0, CPU.
# About 12 min to convert the models, 4 min of GED, 4 min per checkpoint.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-data/default}
.venv/bin/hnn zoo build --preset hasher/checkpoints/training-models.txt --rules agnostic --seed 0 -o "$DATA"
for bits in 16 32 64; do
    .venv/bin/hnn train --data "$DATA" --bits "$bits" --epochs 100 --seed 0 --device cpu --source-weight 0.3 \
        -o "hasher/checkpoints/hnn-net-$bits.npz"
done
