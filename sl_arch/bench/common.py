"""Helpers shared by the benchmarks: parameters, FLOPs, CPU time, peak memory, child processes.

:func:`run_in_child` is the benchmarks' one way to run something in a fresh process (so that its
peak memory and thread count are its own): ``python -m sl_arch.bench.common MODULE:FUNCTION
RESULT.json`` reads a JSON payload on its standard input, calls ``FUNCTION(payload)`` and writes
the JSON-serialisable result to ``RESULT.json``.
"""
import difflib
import importlib
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from sl_arch.utils.errors import SLError


def comma_list(text):
    """The non-empty, stripped items of a comma-separated option value (``--models a, b,`` -> ``['a', 'b']``)."""
    return [item.strip() for item in text.split(',') if item.strip()]


def named_list(text, option):
    """:func:`comma_list` of an option that must name something: SLError naming ``option`` when it names nothing
    (``--models ,``), rather than a run over nothing."""
    items = comma_list(text)
    if not items:
        raise SLError(f'{option} {text!r} names nothing; give one or more comma-separated names.')
    return items


def unknown_rows(option, unknown, known, listing):
    """The :class:`SLError` for rows of ``option`` that are not among ``known``: each with its closest known names,
    and the command ``listing`` that prints every row (the tables hold a hundred rows or more; a message listing them
    all is a wall of text)."""
    named = []
    for key in unknown:
        close = difflib.get_close_matches(key, list(known), n=3, cutoff=0.6)
        named.append(f'{key!r}' + (f' (closest: {", ".join(close)})' if close else ''))
    return SLError(f'{option}: unknown row{"s" if len(unknown) > 1 else ""} {", ".join(named)}; `{listing}` lists '
                   f'every row.')


def print_rows(labels):
    """``--list-models``: one line per row, its key then its label (``labels``: {key: label})."""
    for key, label in labels.items():
        print(f'{key}: {label}')


def check_seed(seed):
    """Refuse a ``--seed`` that numpy's and torch's generators do not take (SLError, one line)."""
    if not 0 <= seed < 2 ** 32:
        raise SLError(f'--seed {seed}: give a seed from 0 to 2**32 - 1.')


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


def child_env(threads):
    """The environment of a benchmark child process: ``threads`` OpenMP/MKL threads, unbuffered output."""
    return dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), PYTHONUNBUFFERED='1')


def run_in_child(function, payload, threads=1, timeout=3600):
    """Call ``function(payload)`` in a fresh Python process and return its result.

    Args:
        function (str): ``'module:name'`` of a module-level function that takes the payload dict
            and returns a JSON-serialisable dict, e.g. ``'sl_arch.bench.measure:measure_row'``.
        payload (dict): JSON-serialisable input.
        threads (int): OpenMP threads of the child (:func:`child_env`).
        timeout (float): Seconds before the child is killed (:class:`subprocess.TimeoutExpired`).

    Returns:
        dict: The function's result, or ``{'error': <last line of the child's error output>}``
        when the child failed.
    """
    with tempfile.TemporaryDirectory(prefix='.sl-tmp-bench-') as folder:
        result_path = os.path.join(folder, 'result.json')
        process = subprocess.run([sys.executable, '-m', 'sl_arch.bench.common', function, result_path],
                                 input=json.dumps(payload), env=child_env(threads), capture_output=True, text=True,
                                 timeout=timeout)
        if process.returncode != 0 or not os.path.isfile(result_path):
            return {'error': (process.stderr.strip().splitlines() or ['failed without output'])[-1]}
        with open(result_path, encoding='utf-8') as handle:
            return json.load(handle)


def _child_main(function, result_path):
    """The child side of :func:`run_in_child`: payload from standard input, result to ``result_path``."""
    module, name = function.split(':')
    payload = json.loads(sys.stdin.read())
    result = getattr(importlib.import_module(module), name)(payload)
    with open(result_path, 'w', encoding='utf-8') as handle:
        json.dump(result, handle)


def markdown_table(headers, rows):
    """Render rows (lists of cells) as a GitHub markdown table."""
    lines = ['| ' + ' | '.join(headers) + ' |', '|' + '|'.join('---' for _ in headers) + '|']
    lines += ['| ' + ' | '.join(str(cell) for cell in row) + ' |' for row in rows]
    return '\n'.join(lines)


if __name__ == '__main__':
    _child_main(*sys.argv[1:3])
