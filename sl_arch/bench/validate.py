"""Validation PSNR-Y of finished ``sl-bench`` rows on frames no test set holds: ``python -m sl_arch.bench.validate``.

    python -m sl_arch.bench.validate experiments/benchmark/lr1e-3 experiments/benchmark/lr2e-3 \\
        --set datasets/real_other_shots_split

Choosing a setting (a learning rate: ``sl-bench --lr``) by the held-out test sets would tune on them.
This tests the final weights of every finished row of each ``--work-dir`` (``logs/bench_<row>.done.json``)
on another set (``--set``: a folder with ``GT/`` and ``BI/`` or ``BD/`` clip folders, e.g. the shots of
bikes.mp4 that no test set shows, one clip per shot, made by ``bash scripts/indomain_data.sh``: a clip
is one sequence to a recurrent network, so split footage at its cuts) and prints one table: row,
work dir, peak learning rate, iterations, validation PSNR-Y, the best of each row marked. Each test runs
``sl-test`` in a child process (one thread) as run ``val_bench_<row>`` in that work dir; sl-bench's own
runs and records are not touched. (``sl-bench --val-set FOLDER`` tests the rows of a new run on such a set
as it tests them on the test sets: a column of its report.)
"""
import argparse
import os
import os.path as osp

from sl_arch.bench.common import markdown_table, named_list
from sl_arch.bench.options import VALIDATION_SET, validation_set
from sl_arch.bench.runs import final_checkpoint, read_finished_run, run_test
from sl_arch.utils.errors import SLError, check_at_least, cli_entry

def finished_rows(work_dir):
    """``{row: done record}`` of the finished rows of one sl-bench ``--work-dir`` whose checkpoint is still there."""
    logs = osp.join(work_dir, 'logs')
    if not osp.isdir(logs):
        raise SLError(f'{work_dir} is not an sl-bench --work-dir (it has no logs/ folder); give the folder sl-bench '
                      'trained in.')
    rows = {}
    for name in sorted(os.listdir(logs)):
        if name.startswith('bench_') and name.endswith('.done.json'):
            run = name[:-len('.done.json')]
            record = read_finished_run(osp.join(logs, name), final_checkpoint(work_dir, run))
            if record is not None:
                rows[run[len('bench_'):]] = record
    return rows


def named_finished_rows(work_dir, rows):
    """``{row: done record}`` of ``rows`` (:func:`finished_rows`), each finished in ``work_dir``; SLError naming the
    missing ones otherwise."""
    finished = finished_rows(work_dir)
    missing = [row for row in rows if row not in finished]
    if missing:
        raise SLError(f'--models {",".join(missing)}: no finished run in {work_dir}; run sl-bench there first '
                      f'(finished: {", ".join(finished) or "none"}).')
    return {row: finished[row] for row in rows}


def trained_network(record, checkpoint):
    """A finished row's final weights (``checkpoint``) in its test options' network, on the CPU in eval mode: the
    weights sl-bench tested (``param_key_g``: the averaged ones where it trained with ``ema_decay``)."""
    from sl_arch.utils.checkpoint import load_network
    test = record['options']['test']
    return load_network(checkpoint, test['network_g'], param_key=test.get('path', {}).get('param_key_g', 'params')).net


def validate_row(work_dir, row, record, val_set, threads=1):
    """Validation PSNR-Y (mean of the sequence means) of one finished row; runs ``sl-test`` in ``work_dir``."""
    test_opt = dict(record['options']['test'], name=f'val_bench_{row}',
                    datasets={'test_1': dict(val_set, name=VALIDATION_SET)})
    return run_test(work_dir, test_opt, threads)[VALIDATION_SET]['psnr']['mean']


def table(results):
    """Markdown table of ``[(row, work dir, lr, clips, iterations, psnr)]``, rows grouped, each row's best in bold."""
    best = {}
    for row, *_, psnr in results:
        best[row] = max(best.get(row, psnr), psnr)
    lines = []
    for row, work_dir, lr, clips, iterations, psnr in sorted(results, key=lambda item: (item[0], item[2], item[3])):
        value = f'{psnr:.3f}'
        lines.append([row, work_dir, f'{lr:g}', clips, iterations, f'**{value}**' if psnr == best[row] else value])
    return markdown_table(['row', 'work dir', 'peak lr', 'batch x frames x GT px', 'iterations',
                           'validation PSNR-Y (dB)'], lines)


@cli_entry
def main(argv=None):
    parser = argparse.ArgumentParser(prog='python -m sl_arch.bench.validate', description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('work_dirs', nargs='+', metavar='WORK_DIR', help='sl-bench --work-dir folders')
    parser.add_argument('--set', required=True, help='validation folder with GT/ and BI/ (or BD/) clip folders')
    parser.add_argument('--degradation', choices=('bi', 'bd'), default='bi', help='LR frames: bi (default) or bd')
    parser.add_argument('--models', help='comma-separated rows to test (default: every finished row)')
    parser.add_argument('--threads', type=int, default=1, help='torch threads of each test (default 1)')
    args = parser.parse_args(argv)
    check_at_least({'--threads': args.threads})
    wanted = None if args.models is None else set(named_list(args.models, '--models'))
    val_set = validation_set(args.set, args.degradation.upper())
    work = {osp.abspath(folder): finished_rows(osp.abspath(folder)) for folder in args.work_dirs}
    results = []
    for work_dir, rows in work.items():
        for row, record in rows.items():
            if wanted is None or row in wanted:
                psnr = validate_row(work_dir, row, record, val_set, args.threads)
                train = record['options']['train']
                data = train['datasets']['train']
                clips = f'{data["batch_size_per_gpu"]} x {data["num_frame"]} x {data["gt_size"]}'
                results.append((row, osp.relpath(work_dir), train['train']['optim_g']['lr'], clips,
                                record['result']['train'].get('iterations', '—'), psnr))
                print(f'[validate] {row} ({osp.relpath(work_dir)}): {psnr:.3f} dB', flush=True)
    if not results:
        raise SLError(f'no finished row{" of " + args.models if wanted else ""} in {", ".join(args.work_dirs)}; '
                      'run sl-bench there first.')
    print(table(results))


if __name__ == '__main__':
    main()
