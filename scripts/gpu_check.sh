#!/usr/bin/env bash
# On a machine with a CUDA GPU (after scripts/install.sh): the CUDA specifications of
# tests/test_cuda.py (the CPU suite skips them), then the GPU rows of the sl-infer throughput
# benchmark (fp32 / fp16 / bf16) into results/throughput/cuda/.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
$PY -m pytest -q tests/test_cuda.py
$PY -m sl_arch.bench.throughput --device cuda --precisions fp32 fp16 bf16 --sizes 320x180 1280x720 \
    --frames 32 16 --tile 0 --out results/throughput/cuda "$@"
