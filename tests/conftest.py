"""Test-suite settings: one torch thread per process.

Tests run tiny tensors, where thread hand-offs cost more than they gain, and CI machines are
shared: with torch's default two threads a busy two-core machine made some tests 10-100x slower.
"""
import torch

import sl_arch  # noqa: F401  (install the torchvision shim and register before any test imports basicsr)

torch.set_num_threads(1)
