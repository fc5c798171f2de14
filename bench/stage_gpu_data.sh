#!/usr/bin/env bash
# Stage the real CIFAR-100 for a lent GPU machine, whose calls carry at most 64 MiB each:
#   bash bench/stage_gpu_data.sh              # here: gpu_data/cifar100.tar.xz.part-aa, -ab, ...
# then one call per part, back to back (the machine stays warm ~30 s between calls), each
# carrying one part (carry: ["gpu_data/cifar100.tar.xz.part-aa"]) and keeping it there:
#   mkdir -p /tmp/cifar_parts && cp gpu_data/cifar100.tar.xz.part-* /tmp/cifar_parts/
# and with the last part: bash bench/gpu_check.sh (it unpacks /tmp/cifar_parts into /tmp/data).
set -euo pipefail
cd "$(dirname "$0")/.."
SRC="${1:-../shared/data}"
mkdir -p gpu_data
rm -f gpu_data/cifar100.tar.xz.part-*
tar -C "$SRC" -cf - cifar-100-python | xz -T2 -6 | split -b 45M - gpu_data/cifar100.tar.xz.part-
ls -l gpu_data/
