#!/usr/bin/env bash
# One call on a lent GPU machine (see bench/gpu_check.py): throughput of resnet18, resnet50,
# wrn28_10 and wrn40_10 (model only / fast path / per-image path / compiled), then the resnet18
# preset trained on the real data for as many epochs as fit. JSON in $OUT/gpu_check.json.
#   carry a copy of the data:  mkdir -p gpu_data && cp -r ../shared/data/cifar-100-python gpu_data/
#   then, on the device:       CIFAR_TUI_DATA=gpu_data bash bench/gpu_check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-/tmp/gpu_check_out}"
PY="${PYTHON:-python3}"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
timeout 480 "$PY" -m bench.gpu_check --out "$OUT/gpu_check.json" --budget-s 460 "$@"
