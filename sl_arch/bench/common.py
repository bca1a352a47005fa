"""Measurement helpers shared by the benchmarks: parameters, FLOPs, CPU time and peak memory."""
import json
import os
import resource
import statistics
import subprocess
import sys
import time

import torch
from torch.utils.flop_counter import FlopCounterMode


def count_parameters(net):
    """Number of parameters of ``net``."""
    return sum(p.numel() for p in net.parameters())


def count_flops(net, fn):
    """FLOPs (multiply and add counted separately) of the convolutions, matmuls and attention in
    ``fn()``. Parameters of ``net`` are frozen meanwhile: the counter's module tracker needs tensors
    without autograd state."""
    flags = [p.requires_grad for p in net.parameters()]
    for p in net.parameters():
        p.requires_grad_(False)
    try:
        counter = FlopCounterMode(display=False)
        with counter:
            fn()
        return counter.get_total_flops()
    finally:
        for p, flag in zip(net.parameters(), flags):
            p.requires_grad_(flag)


def median_seconds(fn, repeats=3, warmup=1):
    """Median wall time of ``fn()`` over ``repeats`` runs after ``warmup`` runs, without autograd."""
    with torch.no_grad():
        for _ in range(warmup):
            fn()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def max_rss_mib():
    """Peak resident memory of this process so far, MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_isolated(module, payload, timeout=1800):
    """Run ``python -m module`` with a JSON payload in a fresh process (so peak memory is its own)
    and return the JSON dict it prints on its last line."""
    env = dict(os.environ, SL_BENCH_PAYLOAD=json.dumps(payload))
    result = subprocess.run([sys.executable, '-m', module], env=env, capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        return {'error': (result.stderr.strip().splitlines() or ['failed'])[-1]}
    return json.loads(result.stdout.strip().splitlines()[-1])


def markdown_table(headers, rows):
    """Render rows (lists of cells) as a GitHub markdown table."""
    lines = ['| ' + ' | '.join(headers) + ' |', '|' + '|'.join('---' for _ in headers) + '|']
    lines += ['| ' + ' | '.join(str(cell) for cell in row) + ' |' for row in rows]
    return '\n'.join(lines)
