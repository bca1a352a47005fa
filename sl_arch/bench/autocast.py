"""``python -m sl_arch.bench.autocast``: float32 against bfloat16 (and float16 on CUDA) training of SemanticLens tiny.

Usage::

    OMP_NUM_THREADS=1 python -m sl_arch.bench.autocast --iters 100    # about 5 minutes on two CPU cores

Each precision trains the same SemanticLens tiny (pretrained flow, ``sl-bench --quick``'s data,
batch, patch, optimiser and seed) for the same number of iterations through ``sl-train``
(``train.autocast``), side by side, one thread each, the learning rate annealed over the
iterations; then each is tested with ``sl-test`` on the held-out sets. Writes ``report.md`` and
``results.json`` to ``--out`` (default ``results/benchmark/autocast``): CPU (GPU) seconds per
iteration from ``train_time.json`` and PSNR-Y / SSIM-Y per held-out set.
"""
import argparse
import concurrent.futures
import os
import os.path as osp
import sys

from sl_arch.bench.common import markdown_table
from sl_arch.bench.options import MODES, TEST_SETS, dataset_options, network_options, test_options, train_options
from sl_arch.bench.report import check_report_folder, real_psnr
from sl_arch.bench.runs import WORK_DIR_ENTRIES, final_checkpoint, train_then_test
from sl_arch.utils.errors import check_at_least, cli_entry
from sl_arch.utils.files import check_work_folder, write_json, write_text
from sl_arch.utils.precision import check_cpu_autocast

REPORT_FILES = ('results.json', 'report.md')


def precisions():
    """``train.autocast`` values to compare: float32, bfloat16, and float16 where CUDA is."""
    import torch
    return [False, 'bf16'] + (['fp16'] if torch.cuda.is_available() else [])


def run_precision(autocast, args, train_set, test_sets):
    """Train and test SemanticLens tiny with ``train.autocast: autocast``; returns its row."""
    budget = dict(MODES['quick'], seconds=None, total_iter=args.iters)
    network_opt = network_options('SemanticLens', 'tiny', pretrained_flow=True)
    name = f'autocast_{autocast or "fp32"}'
    train_opt = train_options(name, network_opt, budget, train_set)
    train_opt['train']['autocast'] = autocast
    checkpoint = final_checkpoint(args.work_dir, name)
    result = train_then_test(name, train_opt, test_options(name, network_opt, test_sets, checkpoint), args.work_dir, 1)
    return dict(result, key='SemanticLens', precision=autocast or 'fp32')


def report_text(rows, command):
    """The markdown report: one row per precision, and the ratios to float32."""
    clock = rows[0]['train']['clock'].upper()
    headers = ['precision', 'iterations', f'{clock} s / iter', 'wall s / iter'] + \
        [f'{test["label"]} PSNR-Y / SSIM-Y' for test in TEST_SETS.values()] + ['real mean PSNR-Y']
    table = [[row['precision'], row['train']['iterations'], f'{row["train"]["seconds_per_iteration"]:.3f}',
              f'{row["train"]["wall_seconds"] / row["train"]["iterations"]:.3f}']
             + [f'{row["metrics"][name]["psnr"]["mean"]:.2f} / {row["metrics"][name]["ssim"]["mean"]:.4f}'
                for name in TEST_SETS] + [f'{real_psnr(row):.2f}'] for row in rows]
    fp32 = rows[0]
    lines = [f'- {row["precision"]}: {row["train"]["seconds_per_iteration"] / fp32["train"]["seconds_per_iteration"]:.2f}x '
             f'float32\'s {clock} time per iteration, {real_psnr(row) - real_psnr(fp32):+.2f} dB PSNR-Y on real '
             'held-out footage after the same iterations.' for row in rows[1:]]
    return (f'# Mixed-precision training of SemanticLens tiny (`train.autocast`)\n\nCommand: `{command}`. '
            f'Same network, data, seed and {fp32["train"]["iterations"]} iterations per precision, trained side by '
            'side (one thread each), learning rate annealed over the iterations; `torch.autocast` around the '
            'forward, the loss in float32, validation in float32.\n\n' + markdown_table(headers, table) + '\n\n'
            + '\n'.join(lines) + '\n')


def parse_args(argv):
    parser = argparse.ArgumentParser(prog='python -m sl_arch.bench.autocast', description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--iters', type=int, default=100, help='training iterations per precision (default 100)')
    parser.add_argument('--data-root', default='datasets', help='as sl-bench --data-root (default datasets)')
    parser.add_argument('--work-dir', default='experiments/benchmark/autocast', help='option files, logs, checkpoints')
    parser.add_argument('--out', default='results/benchmark/autocast', help='report folder')
    return parser.parse_args(argv)


@cli_entry
def main(argv=None):
    """Train and test every precision, then write the report."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    check_at_least({'--iters': args.iters})
    import torch
    if not torch.cuda.is_available():  # sl-train would refuse the bf16 row after the float32 one had run
        check_cpu_autocast('bf16', 'python -m sl_arch.bench.autocast trains in bf16, which', 'run it on a CPU with '
                           'bf16 arithmetic, or with SL_SLOW_CPU_AUTOCAST=1 to time that path')
    args.work_dir = osp.abspath(args.work_dir)
    check_work_folder(args.work_dir, '--work-dir', WORK_DIR_ENTRIES)
    check_report_folder(args.out, REPORT_FILES)
    train_set, test_sets = dataset_options(args.data_root)
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        rows = list(pool.map(lambda autocast: run_precision(autocast, args, train_set, test_sets), precisions()))
    os.makedirs(args.out, exist_ok=True)
    command = 'python -m sl_arch.bench.autocast ' + ' '.join(argv)
    write_json(osp.join(args.out, 'results.json'), {'info': {'command': command}, 'rows': rows})
    text = report_text(rows, command)
    write_text(osp.join(args.out, 'report.md'), text)
    print(text, flush=True)


if __name__ == '__main__':
    main()
