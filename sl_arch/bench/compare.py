"""``sl-bench``: SemanticLens against an equal-size single-frame network and BasicSR's video models at equal training time.

Usage::

    sl-bench --quick       # every model 300 CPU seconds on one thread, 2 at a time (10 models: 25 min on 2 free cores, plus tests)
    sl-bench --quick --cpu-seconds 1200 --models bicubic,SemanticLens,SingleFrame,BasicVSR
    sl-bench               # full mode: PRESETS['paper'], 7200 GPU seconds per model (CPU seconds without CUDA)

Every model trains through ``sl-train`` (BasicSR's ``train_pipeline``, one process and one thread
each) from one option template: the same data (synthetic clips and the demo footage's training
frames, ``bash scripts/zoo_data.sh``), batch, patch, seed, optimiser and the same **time budget**:
training stops after the iteration in which the training process has used ``--cpu-seconds``
CPU seconds (``--gpu-seconds`` of synchronized GPU time on CUDA), the learning rate annealing over
those seconds. Flow-using models start from the same pretrained flow (``model_zoo/``). Then each
model is tested with ``sl-test`` on held-out real footage (the demo's held-out frames, the bikes and
carphone clips) and on the held-out synthetic clips of each motion regime. LR frames are MATLAB
bicubic (BI) unless ``--degradation bd`` (Gaussian blur + subsampling) is given; the report also
says how much each held-out set moves, since other frames can add detail only where pixels move.

Rows: bicubic and bilinear upsampling (the output BasicSR's video models start from), the best design at 300
CPU s (``SL_lean``: SemanticLens lean, 0.185M) and the single-frame SRResNet of its size (``SingleFrame_lean``,
0.196M), SemanticLens (``PRESETS['tiny']`` in quick mode) and the single-frame SRResNet of its parameter count
(``SingleFrame``, ``SLFrameWise``; at 5e-4 in quick mode, its best rate), BasicSR's BasicVSR, IconVSR, BasicVSR++
(with its deformable alignment, ``SLBasicVSRPlusPlus``) and EDVR sized to SemanticLens' parameter count (SPyNet not
counted), and SemanticLens without its semantic branch and without flow pre-alignment (the other rows with
``--models``). Each trained model is then measured alone in a fresh process
(parameters, GFLOPs and time per frame, peak memory), and ``--out`` gets ``report.md`` (table,
verdict in plain words, command, versions, budget), ``psnr_vs_ms.png`` and ``results.json``.
Option files, logs and checkpoints stay in ``--work-dir`` (runs ``bench_<model>``); a model whose
option files have not changed since a finished run there is read back, not trained again.
"""
import argparse
import concurrent.futures
import datetime
import math
import os
import os.path as osp
import re
import sys
import threading
import time

from tqdm import tqdm

from sl_arch.bench.common import check_seed, named_list, print_rows, run_in_child, unknown_rows
from sl_arch.bench.measure import set_motion
from sl_arch.bench.options import (DATA_ROOT, DATA_SCRIPT, DEFAULT_MODELS, MODELS, MODES, UPSAMPLINGS, VALIDATION_SET,
                                   check_preset, dataset_options, min_input_size, network_options, parameter_counts,
                                   row_budget, val_tile, validation_set, weights_key)
from sl_arch.bench.report import check_report_folder, real_psnr, write_outputs
from sl_arch.bench.runs import WORK_DIR_ENTRIES, train_and_test_row
from sl_arch.utils.errors import SLError, check_at_least, cli_entry
from sl_arch.utils.files import check_work_folder
from sl_arch.utils.precision import check_cpu_autocast, cpu_has_native

_print_lock = threading.Lock()


def print_progress(message):
    """One ``[sl-bench]`` line, printed whole even when training jobs finish at the same time."""
    with _print_lock:
        tqdm.write(f'[sl-bench] {message}')


def parse_args(argv):
    parser = argparse.ArgumentParser(prog='sl-bench', description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--quick', action='store_true', help='CPU-sized run: 300 CPU s per model, SemanticLens\' '
                                                             'tiny preset')
    parser.add_argument('--models', help=f'comma-separated rows (default: {", ".join(DEFAULT_MODELS)}); '
                                         f'--list-models prints all {len(MODELS)} with their labels')
    parser.add_argument('--list-models', action='store_true', help='print every row, its key then its label, and exit')
    parser.add_argument('--data-root', default=DATA_ROOT,
                        help=f'folder holding zoo_mix/, demo_bbb/, real_heldout/, synthetic/ (default {DATA_ROOT}; '
                             f'made by {DATA_SCRIPT})')
    parser.add_argument('--degradation', choices=('bi', 'bd'), default='bi',
                        help='LR frames of training and test sets: bi (MATLAB bicubic, default) or bd (Gaussian blur '
                             'sigma 1.6 + subsampling: more aliasing, where other frames add most)')
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument('--cpu-seconds', type=float, help='training budget per model in CPU seconds (quick: 300)')
    budget.add_argument('--gpu-seconds', type=float, help='training budget per model in GPU seconds (CUDA only; '
                                                          'full mode: 7200)')
    parser.add_argument('--max-iters', type=int, help='upper bound of iterations per model (default: quick 100000)')
    parser.add_argument('--batch-size', help='training batch (default: quick 2, full 8); like --lr, ROW=N sets one '
                                             'row\'s')
    parser.add_argument('--num-frame', help='frames per training clip (default: quick 7, full 15); like --lr, ROW=N '
                                            'sets one row\'s (e.g. --num-frame 7,SemanticLens=15)')
    parser.add_argument('--gt-size', help='GT training patch in px (default 96, the synthetic clips\' height); like '
                                          '--lr, ROW=N sets one row\'s')
    parser.add_argument('--preset', help='SemanticLens preset (default: quick tiny, full paper)')
    parser.add_argument('--pretrained-flow', action=argparse.BooleanOptionalAction, default=None,
                        help='start flow-using models from model_zoo/\'s pretrained flow (default: quick yes, full no)')
    parser.add_argument('--autocast', choices=('fp32', 'bf16', 'fp16'),
                        help='arithmetic of every model\'s training (train.autocast): fp32 (default), bf16 mixed '
                             'precision (CPU with BF16 or GPU), fp16 (CUDA only); tests run in float32')
    parser.add_argument('--channels-last', action='store_true',
                        help='train every model with channels-last weights (train.channels_last): faster convolutions '
                             'on a CPU')
    parser.add_argument('--lr', help='peak learning rate: one number for every model (default: quick 1e-3, full 2e-4), '
                                     'and/or ROW=NUMBER for one row, comma-separated (e.g. '
                                     '--lr 2e-3,SingleFrame=4e-3)')
    parser.add_argument('--val-set', help='also test every model on this folder of GT/ and BI/ (or BD/) clip folders, '
                                          'footage no test set holds (e.g. datasets/real_other_shots_split, made by '
                                          'bash scripts/indomain_data.sh): a column and a margin of the report, not '
                                          'in the real mean')
    parser.add_argument('--jobs', type=int, help='trainings run side by side (default: quick 2, full 1)')
    parser.add_argument('--seed', type=int, help='training seed of every model (default 0); another seed in '
                        'another --work-dir measures the run-to-run spread')
    parser.add_argument('--threads', type=int, default=1, help='torch threads per process (default 1)')
    parser.add_argument('--repeats', type=int, help='timed test forwards per model (median)')
    parser.add_argument('--test-again', action='store_true',
                        help='test the finished rows of --work-dir again, keeping their training (after a change of '
                             'the code a trained model is tested with)')
    parser.add_argument('--work-dir', help='option files, logs, checkpoints (default experiments/benchmark/<mode>)')
    parser.add_argument('--out', help='report folder (default: quick results/benchmark, full results/benchmark/full)')
    return parser.parse_args(argv)


def mode_budget(args):
    """The mode and its budget with the command line's changes.

    Raises:
        SLError: a budget, count or size below its minimum, or GPU seconds without CUDA.
    """
    import torch

    mode = 'quick' if args.quick else 'full'
    budget = dict(MODES[mode])
    if mode == 'full' and not torch.cuda.is_available():
        budget['clock'] = 'cpu'
    for name, value in (('max_iter', args.max_iters), ('preset', args.preset), ('jobs', args.jobs),
                        ('repeats', args.repeats), ('pretrained_flow', args.pretrained_flow), ('seed', args.seed)):
        if value is not None:
            budget[name] = value
    if args.cpu_seconds is not None or args.gpu_seconds is not None:
        budget['clock'] = 'cpu' if args.cpu_seconds is not None else 'gpu'
        budget['seconds'] = args.cpu_seconds if args.cpu_seconds is not None else args.gpu_seconds
    row_changes = {key: dict(values) for key, values in budget.get('row_changes', {}).items()}  # the mode's own
    for name, text in (('lr', args.lr), ('batch_size', args.batch_size), ('num_frame', args.num_frame),
                       ('gt_size', args.gt_size)):
        if text is not None:
            every, rows = row_values(name, text)
            if every is not None:
                budget[name] = every
            for key, value in rows.items():
                row_changes.setdefault(key, {})[name] = value
    if row_changes:
        budget['row_changes'] = row_changes
    if args.autocast not in (None, 'fp32'):
        budget['autocast'] = args.autocast
    if args.channels_last:
        budget['channels_last'] = True
    if budget['clock'] == 'gpu' and not torch.cuda.is_available():
        raise SLError('--gpu-seconds needs CUDA, which this machine does not have; use --cpu-seconds.')
    if budget.get('autocast') == 'fp16' and not torch.cuda.is_available():
        instead = 'use --autocast bf16' if cpu_has_native('bf16') else 'leave --autocast out (it has no bf16 arithmetic)'
        raise SLError(f'--autocast fp16 needs CUDA, which this machine does not have; on this CPU {instead}.')
    if not torch.cuda.is_available():  # every row trains on the CPU
        check_cpu_autocast(budget.get('autocast'), f'--autocast {budget.get("autocast")}',
                           'leave --autocast out to train every row in float32')
    check_preset(budget['preset'], '--preset')  # also when no SemanticLens row is asked for (none would read it)
    if not 0 < budget['seconds'] < math.inf:  # nan too
        raise SLError(f'--{budget["clock"]}-seconds {budget["seconds"]}: give a number of seconds above 0.')
    check_at_least({'--max-iters': budget['max_iter'], '--jobs': budget['jobs'], '--repeats': budget['repeats'],
                    '--threads': args.threads})
    check_seed(budget['seed'])
    return mode, budget


#: The options that take one value for every row and/or ROW=value: budget key -> (option, parse, whether a value
#: is good, what a good value is, an example).
ROW_OPTIONS = {
    'lr': ('--lr', float, lambda value: 0 < value < float('inf'), 'a learning rate above 0', '2e-3,SingleFrame=4e-3'),
    'batch_size': ('--batch-size', int, lambda value: value >= 1, 'a batch of at least 1', '2,SingleFrame=4'),
    'num_frame': ('--num-frame', int, lambda value: value >= 1, 'a number of frames of at least 1',
                  '7,SemanticLens=15'),
    'gt_size': ('--gt-size', int, lambda value: value >= 4 and value % 4 == 0,
                'a GT patch of at least 4 px, a multiple of 4', '96,SemanticLens=64'),
}


def row_values(name, text):
    """One of :data:`ROW_OPTIONS` from its command-line text: ``(every row's value or None, {row: its own})``.

    Raises:
        SLError: a part that is not a value of its kind or ROW=value, or an unknown row.
    """
    option, parse, good, what, example = ROW_OPTIONS[name]
    every, rows = None, {}
    for part in (part.strip() for part in text.split(',')):
        key, _, number = part.rpartition('=')
        try:
            value = parse(number)
        except ValueError:
            value = None
        if value is None or not good(value):
            raise SLError(f'{option} {text}: {part!r} is not {what} or ROW=value, e.g. {option} {example}.')
        if key and key not in MODELS:
            raise unknown_rows(f'{option} {text}', [key], MODELS, 'sl-bench --list-models')
        if key:
            rows[key] = value
        else:
            every = value
    return every, rows


def selected_models(text):
    """Row keys of ``--models`` (default :data:`DEFAULT_MODELS`); SLError naming unknown ones."""
    keys = list(DEFAULT_MODELS) if text is None else named_list(text, '--models')
    unknown = [key for key in keys if key not in MODELS]
    if unknown:
        raise unknown_rows('--models', unknown, MODELS, 'sl-bench --list-models')
    return keys


def describe_rows(keys, budget):
    """One row per model: label, kind, ``network_g`` (sized, with pretrained flow), parameter counts."""
    rows = []
    for key in keys:
        label, kind, _ = MODELS[key]
        network_opt = network_options(key, budget['preset'], budget['pretrained_flow'],
                                      row_budget(budget, key)['num_frame'])
        params = parameter_counts(network_opt) if network_opt else (None, None)
        rows.append({'key': key, 'label': label, 'kind': kind, 'network_g': network_opt, 'params': params[0],
                     'params_no_spynet': params[1], 'min_input_size': network_opt and min_input_size(network_opt)})
        if network_opt:
            print_progress(f'{label}: {params[0] / 1e6:.3f}M parameters ({params[1] / 1e6:.3f}M without SPyNet)')
    return rows


def train_rows(rows, budget, train_set, test_sets, work_dir, threads, test_again=False):
    """Train and test every row with a network, ``budget['jobs']`` at a time; failures are kept in the row."""
    trained = [row for row in rows if row['network_g']]
    print_progress(f'training {len(trained)} models for {budget["seconds"]:g} {budget["clock"].upper()} seconds '
                   f'each, {budget["jobs"]} at a time; logs in {work_dir}/logs')
    progress = tqdm(total=len(trained), unit='model', desc='train + test')

    def job(row):
        try:
            row.update(train_and_test_row(row, budget, train_set, test_sets, work_dir, threads, test_again))
        except SLError as error:
            row['error'] = str(error)
            print_progress(f'{row["label"]} FAILED: {error}')
        else:
            print_progress(f'{row["label"]}: {row["train"]["iterations"]} iterations, '
                           f'{row["train"]["seconds_per_iteration"]:.2f} s/iter, '
                           f'real held-out PSNR-Y {real_psnr(row):.2f} dB')
        progress.update()

    with concurrent.futures.ThreadPoolExecutor(budget['jobs']) as pool:
        list(pool.map(job, trained))
    progress.close()


def measure_rows(rows, test_sets, budget, threads):
    """Measure every row that did not fail, one fresh process after another."""
    for row in tqdm(rows, unit='model', desc='measure'):
        if row.get('error'):
            continue
        payload = {'network_g': row['network_g'], 'checkpoint': row.get('checkpoint'), 'test_sets': test_sets,
                   'upsampling': row['kind'] if row['kind'] in UPSAMPLINGS else None,
                   'threads': threads, 'repeats': budget['repeats'], 'min_input_size': row['min_input_size'],
                   'tile': val_tile(row['network_g']), 'param_key': weights_key(row['key'])}
        result = run_in_child('sl_arch.bench.measure:measure_row', payload, threads)
        if 'error' in result:
            row['error'] = f'measurement: {result["error"]}'
            print_progress(f'{row["label"]} measurement FAILED: {result["error"]}')
            continue
        row.update(result)


def start_record(mode, argv, threads):
    """Mode, command, threads, start time and load of this run, for :func:`run_info`."""
    return {'mode': mode, 'command': 'sl-bench ' + ' '.join(argv) if argv else 'sl-bench', 'threads': threads,
            'clock': time.perf_counter(), 'at': datetime.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z'),
            'load': 'load average at start {:.2f}, {:.2f}, {:.2f}'.format(*os.getloadavg())}


def clip_summary(gt_root):
    """``'26 clips, 597 frames: bigbuckbunny, bikes, crossing x18, ...'`` for a folder of clip folders
    (found as the datasets find them: :func:`sl_arch.io.listing.find_clip_folders`)."""
    from collections import Counter

    from sl_arch.io.listing import find_clip_folders
    clips = find_clip_folders(gt_root)
    kinds = Counter(re.sub(r'_\d+$', '', clip) for clip in clips)
    names = ', '.join(kind if count == 1 else f'{kind} x{count}' for kind, count in sorted(kinds.items()))
    return f'{len(clips)} clips, {sum(map(len, clips.values()))} frames: {names}'


def run_info(started, budget, train_set, test_sets, work_dir, rows):
    """What the report says about the run: command, budget, machine, data and how much each held-out set
    moves (:func:`sl_arch.bench.measure.set_motion`), versions."""
    from sl_arch.bench.measure import versions
    return {
        'mode': started['mode'], 'command': started['command'], 'budget': budget,
        'started': started['at'], 'wall_minutes': (time.perf_counter() - started['clock']) / 60,
        'jobs': budget['jobs'], 'threads': started['threads'], 'load': started['load'], 'versions': versions(),
        'work_dir': osp.relpath(work_dir), 'train_gt': osp.relpath(train_set['dataroot_gt']),
        'degradation': osp.basename(train_set['dataroot_lq']),
        'data_script': DATA_SCRIPT, 'train_clips': clip_summary(train_set['dataroot_gt']),
        'test_sets': {name: osp.relpath(test['dataroot_gt']) for name, test in test_sets.items()},
        'measure': next((f'the first held-out clip ({row["frames"]} LR frames of {row["lr_size"]})' for row in rows
                         if row.get('lr_size')), '—'),
        'motion': {name: set_motion(test) for name, test in tqdm(test_sets.items(), unit='set', desc='motion')},
    }


@cli_entry
def main(argv=None):
    """Train, test and measure every model at the same time budget, then write the report."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    if args.list_models:
        print_rows({key: label for key, (label, *_) in MODELS.items()})
        return
    mode, budget = mode_budget(args)
    keys = selected_models(args.models)
    work_dir = osp.abspath(args.work_dir or osp.join('experiments', 'benchmark', mode))
    out_dir = args.out or budget['out']
    check_work_folder(work_dir, '--work-dir', WORK_DIR_ENTRIES)
    check_report_folder(out_dir)
    rows = describe_rows(keys, budget)
    train_set, test_sets = dataset_options(args.data_root, args.degradation.upper())
    if args.val_set:
        test_sets[VALIDATION_SET] = validation_set(args.val_set, args.degradation.upper(), '--val-set')
    os.makedirs(work_dir, exist_ok=True)
    started = start_record(mode, argv, args.threads)

    train_rows(rows, budget, train_set, test_sets, work_dir, args.threads, args.test_again)
    measure_rows(rows, test_sets, budget, args.threads)
    info = run_info(started, budget, train_set, test_sets, work_dir, rows)
    print(write_outputs(out_dir, rows, info), flush=True)
    print_progress(f'wrote {out_dir}/report.md, psnr_vs_ms.png, results.json in {info["wall_minutes"]:.1f} minutes')
    failed = [row['label'] for row in rows if row.get('error')]
    if failed:
        raise SLError(f'{len(failed)} model(s) failed: {", ".join(failed)}; the report marks them, see the logs.')


if __name__ == '__main__':
    main()
