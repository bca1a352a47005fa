#!/usr/bin/env bash
# Set-up and the whole test suite, on the CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
CUDA_VISIBLE_DEVICES= ${PYTHON:-python} -m pytest -q tests "$@"
