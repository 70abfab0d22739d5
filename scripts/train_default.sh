#!/usr/bin/env bash
# Reproduces the shipped checkpoints hasher/checkpoints/hnn-net-{16,32,64}.npz (hnn 0.5):
# the `training` zoo preset: the `wide` CNNs (the 76 torchvision models of
# hasher/checkpoints/training-models.txt and the timm architectures of zoo/lists/timm-wide.txt,
# 46 of which convert) and 64 transformers (16 families of hnn.zoo.transformer_presets at 4
# sizes, three families and one size held out for benchmarks/transformer_retrieval.py): 186
# models in 77 families, 10 augmentations each, seed 0, merged with the framework-agnostic rules
# (rules/agnostic.yaml: BatchNormalization optional, so a folded export hashes like the unfolded
# one); the default training configuration but a source-head weight of 0.3 (docs/RESULTS.md,
# "Shipped checkpoints", says why) and resolution sizes (FLOPs as at a 224x224 input: a copy
# exported at another resolution keeps its code), seed 0, CPU.
# About 22 min to convert the models (from nothing, on a busy machine), 12 min of GED; the three
# trainings run at once, one thread each: 993 s for the three on this 2-core machine, otherwise
# idle (docs/RESULTS.md, "hnn 0.5.1"). CHECKPOINTS=DIR writes them elsewhere.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-data/training}
CHECKPOINTS=${CHECKPOINTS:-hasher/checkpoints}  # where the three files go
.venv/bin/hnn zoo build --preset training --rules agnostic --seed 0 -o "$DATA"
.venv/bin/hnn zoo ged "$DATA"
mkdir -p "$CHECKPOINTS"
started=$SECONDS
pids=()
# Background jobs of a script ignore Ctrl-C: stop them with the script, before they write a checkpoint.
trap 'kill "${pids[@]}" 2>/dev/null' INT TERM EXIT
for bits in 16 32 64; do
    OMP_NUM_THREADS=1 .venv/bin/hnn train --data "$DATA" --bits "$bits" --epochs 100 --seed 0 --device cpu \
        --source-weight 0.3 --sizes resolution -o "$CHECKPOINTS/hnn-net-$bits.npz" \
        > "$DATA/train-$bits.log" 2>&1 &
    pids+=($!)
done
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=1; done
trap - INT TERM EXIT
tail -n 2 "$DATA"/train-*.log
echo "three checkpoints trained in $((SECONDS - started)) s"
exit $status
