#!/usr/bin/env bash
# Set-up and the whole test suite, on the CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
# one worker per core, up to four (pytest-xdist; each worker runs torch on one thread, tests/conftest.py):
# on two cores the suite took 408 s against 655-706 s in one process. Add -n 0 to run it in one process.
CUDA_VISIBLE_DEVICES= ${PYTHON:-python} -m pytest -q -n auto --maxprocesses 4 tests "$@"
