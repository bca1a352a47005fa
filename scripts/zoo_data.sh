#!/usr/bin/env bash
# Training data of the model-zoo checkpoints: the synthetic clips (sl-prepare --synthetic) and the
# training part of the demo footage (sl-prepare --demo), side by side in datasets/zoo_mix/train
# (symbolic links, nothing copied). No other real footage: that is for evaluation.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f datasets/demo_bbb/prepare.json ] || sl-prepare --demo
[ -f datasets/synthetic/prepare.json ] || sl-prepare --synthetic
for kind in GT BI; do
  mkdir -p datasets/zoo_mix/train/$kind
  for clip in datasets/synthetic/train/$kind/* datasets/demo_bbb/train/$kind/*; do
    ln -sfn "$(realpath "$clip")" "datasets/zoo_mix/train/$kind/$(basename "$clip")"
  done
done
echo "datasets/zoo_mix/train: $(ls datasets/zoo_mix/train/GT | wc -l) clips"
