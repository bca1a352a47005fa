#!/usr/bin/env bash
# A data root for `sl-bench --data-root datasets/synthetic96_mix`: the same held-out test sets as
# scripts/zoo_data.sh (links to them) and a training set of the same kinds of footage, with four times the
# synthetic clips: 96 instead of 24 (sl-prepare --synthetic --train-clips 96; the first 24 are the zoo's own,
# the rest new pans, crossings and wanderings over the same eight training photographs), beside the demo's
# training frames linked four times, so that a drawn training window is the demo footage as often as in the
# zoo's mix (about a fifth). More motions to learn from, no other pictures and no other real footage.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/zoo_data.sh
[ -f datasets/synthetic96/prepare.json ] || sl-prepare --synthetic --train-clips 96 -o datasets/synthetic96
mkdir -p datasets/synthetic96_mix
for set in demo_bbb real_heldout real_moving synthetic; do
  ln -sfn "$(realpath datasets/$set)" "datasets/synthetic96_mix/$set"
done
for kind in GT BI BD; do
  mkdir -p datasets/synthetic96_mix/zoo_mix/train/$kind
  for clip in datasets/synthetic96/train/$kind/*; do
    ln -sfn "$(realpath "$clip")" "datasets/synthetic96_mix/zoo_mix/train/$kind/$(basename "$clip")"
  done
  for copy in 0 1 2 3; do
    ln -sfn "$(realpath datasets/demo_bbb/train/$kind/bigbuckbunny)" \
      "datasets/synthetic96_mix/zoo_mix/train/$kind/bigbuckbunny_$copy"
  done
done
echo "datasets/synthetic96_mix/zoo_mix/train: $(ls datasets/synthetic96_mix/zoo_mix/train/GT | wc -l) clips"
