#!/usr/bin/env bash
# Installs sl_arch and its pinned dependencies into the current Python environment.
# torch/torchvision first (pip takes them from local disk where they lie there), then basicsr,
# whose sdist build imports torch.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
$PY -m pip install --quiet --disable-pip-version-check 'torch==2.14.1' 'torchvision==0.29.1'
$PY -m pip install --quiet --disable-pip-version-check -e '.[test]'
$PY -c 'import sl_arch; print("sl_arch", sl_arch.__version__, "installed")'
