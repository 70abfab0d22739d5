#!/usr/bin/env bash
# The README's main job: index the paper's 21 torchvision models with the shipped
# checkpoint, then check a user's own resnet18 (same architecture, own weights) and a model
# the index does not hold; then add a user's own mnasnet1_0 and check two copies of it.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-demo}
mkdir -p "$OUT"
rm -f "$OUT/models.db"
declare -A FAMILIES=(
    [vgg]="vgg11 vgg13 vgg16" [resnet]="resnet18 resnet34 resnet101"
    [mnasnet]="mnasnet0_75 mnasnet1_0 mnasnet1_3" [densenet]="densenet121 densenet161 densenet201"
    [squeezenet]="squeezenet1_0 squeezenet1_1"
    [shufflenet]="shufflenet_v2_x0_5 shufflenet_v2_x1_5 shufflenet_v2_x2_0"
    [alexnet]="alexnet" [inception]="inception_v3" [mobilenet]="mobilenet_v2" [googlenet]="googlenet"
)
for family in vgg resnet mnasnet densenet squeezenet shufflenet alexnet inception mobilenet googlenet; do
    specs=()
    for name in ${FAMILIES[$family]}; do specs+=("torchvision.models:$name"); done
    .venv/bin/hnn index add "$OUT/models.db" "${specs[@]}" --label "$family" || exit 1
done
.venv/bin/python scripts/make_demo_models.py "$OUT" || exit 1
echo
EXITS="4 derived, 3 same-architecture, 0 new"
echo "== a user's own resnet18 (its own weights; new head, Identity + Dropout inserted, other exporter):"
.venv/bin/hnn check "$OUT/models.db" "$OUT/resnet18_own.onnx"
echo "(exit code $?: $EXITS)"
echo "== efficientnet_b0, which the index does not hold:"
.venv/bin/hnn check "$OUT/models.db" "$OUT/efficientnet_b0.onnx"
echo "(exit code $?: $EXITS)"
echo "== a user's own mnasnet1_0 (its own weights: another model than torchvision's) is added:"
.venv/bin/hnn index add "$OUT/models.db" "$OUT/mnasnet1_0_owned.onnx" --label uploads || exit 1
echo "== that model pruned by 30% (every layer narrower, the rest of its weights kept):"
.venv/bin/hnn check "$OUT/models.db" "$OUT/mnasnet1_0_owned_pruned.onnx"
echo "(exit code $?: $EXITS)"
echo "== that model fine-tuned, then quantized to int8 (no weight value left as it was):"
.venv/bin/hnn check "$OUT/models.db" "$OUT/mnasnet1_0_owned_tuned_int8.onnx"
echo "(exit code $?: $EXITS)"
