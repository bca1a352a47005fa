#!/usr/bin/env bash
# Data roots for `sl-bench --data-root datasets/<NAME>_mix` (and, for synthetic_large, the model zoo's
# semanticlens_lean16_bounded_large_x4_bi.pth): the same held-out
# test sets as scripts/zoo_data.sh (links to them) and a training set of the same kinds of footage, its synthetic
# clips made with other sl-prepare --synthetic options (datasets/<NAME>), beside the demo's training frames linked
# COPIES times, so that a drawn training window is the demo footage about as often as in the zoo's mix (a fifth).
# No other pictures and no other real footage. The two sl-bench has used:
#   bash scripts/synthetic_mix_data.sh synthetic96 4 --train-clips 96    # four times the clips (first 24: the zoo's)
#   bash scripts/synthetic_mix_data.sh synthetic_large 1 --size 224x128  # larger frames (the model zoo's large file)
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -lt 2 ]; then
  echo "usage: bash scripts/synthetic_mix_data.sh NAME COPIES [sl-prepare --synthetic options]" >&2
  exit 2
fi
name=$1 copies=$2
shift 2
if ! [[ $name =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]*$ ]]; then
  echo "error: NAME '$name': give a folder name (letters, digits, _ . -), made under datasets/" >&2
  exit 2
fi
if ! [[ $copies =~ ^[0-9]+$ ]]; then
  echo "error: COPIES '$copies': give a whole number, 0 or more (how often the demo footage is linked)" >&2
  exit 2
fi
bash scripts/zoo_data.sh
[ -f "datasets/$name/prepare.json" ] || sl-prepare --synthetic -o "datasets/$name" "$@"
root="datasets/${name}_mix"
mkdir -p "$root"
for set in demo_bbb real_heldout real_moving synthetic; do
  ln -sfn "$(realpath datasets/$set)" "$root/$set"
done
for kind in GT BI BD; do
  mkdir -p "$root/zoo_mix/train/$kind"
  for clip in "datasets/$name/train/$kind"/*; do
    ln -sfn "$(realpath "$clip")" "$root/zoo_mix/train/$kind/$(basename "$clip")"
  done
  for copy in $(seq "$copies"); do
    ln -sfn "$(realpath datasets/demo_bbb/train/$kind/bigbuckbunny)" "$root/zoo_mix/train/$kind/bigbuckbunny_$copy"
  done
done
echo "$root/zoo_mix/train: $(ls "$root/zoo_mix/train/GT" | wc -l) clips"
