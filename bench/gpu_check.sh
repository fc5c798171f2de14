#!/usr/bin/env bash
# One call on a lent GPU machine (see bench/gpu_check.py for what it measures), under 9 minutes.
# The real data: CIFAR_TUI_DATA=DIR (holding cifar-100-python/), or when unset the parts that
# bench/stage_gpu_data.sh made, copied to /tmp/cifar_parts (unpacked to /tmp/data); without it
# the throughput part uses the synthetic set. Writes $OUT/gpu_check.json and $OUT/gpu_check.log.
#   bash bench/gpu_check.sh                 # on the GPU machine
#   bash bench/gpu_check.sh --cpu-smoke     # the same code, tiny, on a CPU (what a test runs)
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-/tmp/gpu_check_out}"
PY="${PYTHON:-python3}"
mkdir -p "$OUT"
if [ -z "${CIFAR_TUI_DATA+set}" ] && ls /tmp/cifar_parts/cifar100.tar.xz.part-* >/dev/null 2>&1; then
  mkdir -p /tmp/data  # the parts staged by bench/stage_gpu_data.sh
  [ -f /tmp/data/cifar-100-python/train ] || cat /tmp/cifar_parts/cifar100.tar.xz.part-* | xz -d | tar -C /tmp/data -xf -
  export CIFAR_TUI_DATA=/tmp/data
fi
{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || true
  timeout 520 "$PY" -m bench.gpu_check --out "$OUT/gpu_check.json" --budget-s 480 "$@"
  echo "gpu_check exit code $?"
} 2>&1 | tee "$OUT/gpu_check.log"
