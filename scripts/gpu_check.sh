#!/usr/bin/env bash
# On a machine with a CUDA GPU (after scripts/install.sh): the CUDA specifications of
# tests/test_cuda.py (the CPU suite skips them), the GPU time of one training iteration of the
# sl-bench rows at sl-bench's shape and at a GPU-sized batch (results/benchmark/step_time/cuda.md), then
# the GPU rows of the sl-infer throughput benchmark (fp32 / fp16 / bf16) into results/throughput/cuda/.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
$PY -m pytest -q tests/test_cuda.py
ROWS=SingleFrame_lean,SL_dis_neighbours_no_semantics_no_mfsab_no_image_gate_up16_bounded_e0p3r0_lr2e-3,SingleFrame,SemanticLens,BasicVSR,IconVSR,BasicVSRPP,EDVR
mkdir -p results/benchmark/step_time
{ $PY -m sl_arch.bench.step_time --device cuda --models $ROWS --batch 2 --frames 7 --lr-side 24 --repeats 7
  echo
  $PY -m sl_arch.bench.step_time --device cuda --models $ROWS --batch 8 --frames 7 --lr-side 64 --repeats 5
} > results/benchmark/step_time/cuda.md.part && mv results/benchmark/step_time/cuda.md.part results/benchmark/step_time/cuda.md
$PY -m sl_arch.bench.throughput --device cuda --precisions fp32 fp16 bf16 --sizes 320x180 1280x720 \
    --frames 32 16 --tile 0 --out results/throughput/cuda "$@"
