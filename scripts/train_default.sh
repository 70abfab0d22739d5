#!/usr/bin/env bash
# Reproduces the shipped checkpoints hasher/checkpoints/hnn-net-{16,32,64}.npz:
# the paper preset (21 torchvision models, 10 augmentations each, seed 0), the
# paper split, the default training configuration, seed 0, on the CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-data/paper}
.venv/bin/hnn zoo build --preset paper --seed 0 -o "$DATA"
for bits in 16 32 64; do
    .venv/bin/hnn train --data "$DATA" --bits "$bits" --epochs 60 --seed 0 --device cpu \
        -o "hasher/checkpoints/hnn-net-$bits.npz"
done
