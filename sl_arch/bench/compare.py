"""``sl-bench``: SemanticLens against BasicSR's video SR models on the same data and budget.

Usage::

    sl-bench --quick          # CPU-sized: about 10 minutes on two free CPU cores
    sl-bench                  # full mode, for a GPU: paper-size SemanticLens, longer training

Every model is trained with ``sl-train`` and tested with ``sl-test`` (BasicSR's own
``train_pipeline`` / ``test_pipeline``, each in its own process) from one option template: same
training data, iterations, batch, patch size, seed, optimizer and learning-rate schedule, same
test sequences. The models are SemanticLens (``PRESETS['tiny']`` in quick mode, ``'paper'`` in
full mode, read at run time), its ablations (without IMAGE, GPS, ISEE, flow pre-alignment, the
whole semantic branch), BasicSR's BasicVSR, IconVSR, BasicVSR++ and EDVR sized to SemanticLens'
parameter count, and bicubic upsampling.

Then each model is measured in a fresh process, one after another (parameters, GFLOPs per frame,
ms per frame and peak memory on the first test sequence), and ``results/benchmark/`` gets
``report.md`` (table, command, versions, budget), ``psnr_vs_ms.png`` and ``results.json``.
Option files, logs and checkpoints stay in ``experiments/benchmark/<mode>/`` (runs ``bench_<model>``).
"""
import argparse
import concurrent.futures
import datetime
import glob
import json
import os
import os.path as osp
import platform
import re
import subprocess
import sys
import threading
import time

import yaml

from sl_arch.utils.errors import SLError, cli_entry
from sl_arch.utils.files import atomic_write, check_writable

#: Demo data at 360p: BasicVSR++ asserts LR inputs of at least 64x64 px, so training patches are
#: 256 px (LR 64) for every model, which the 180p demo frames cannot hold.
DEMO_360P_ROOT = 'datasets/demo_bbb_360p'
DEMO_360P_PREPARE = ['--demo', '--resize', '640x360', '-o', DEMO_360P_ROOT]

MODES = {
    'quick': dict(preset='tiny', total_iter=60, batch_size=1, num_frame=5, gt_size=256, lr=1e-3, eta_min=1e-5,
                  fix_flow_fraction=0, flow_lr_mul=0.25, seed=0, jobs=2, repeats=2, out='results/benchmark'),
    'full': dict(preset='paper', total_iter=100000, batch_size=8, num_frame=15, gt_size=256, lr=2e-4, eta_min=1e-7,
                 fix_flow_fraction=0.05, flow_lr_mul=0.125, seed=0, jobs=1, repeats=5, out='results/benchmark/full'),
}

#: Benchmark rows: key -> (label, kind, ablation options). Kinds: 'SemanticLens', a BasicSR
#: architecture name, or 'bicubic'.
MODELS = {
    'bicubic': ('Bicubic', 'bicubic', None),
    'SemanticLens': ('SemanticLens', 'SemanticLens', {}),
    'BasicVSR': ('BasicVSR', 'BasicVSR', None),
    'IconVSR': ('IconVSR', 'IconVSR', None),
    'BasicVSRPP': ('BasicVSR++', 'SLBasicVSRPlusPlus', None),  # BasicSR's, with its deformable alignment on the CPU too
    'EDVR': ('EDVR', 'EDVR', None),
    'SL_no_image': ('SemanticLens w/o IMAGE', 'SemanticLens', {'use_image': False}),
    'SL_no_gps': ('SemanticLens w/o GPS', 'SemanticLens', {'use_gps': False}),
    'SL_no_isee': ('SemanticLens w/o ISEE', 'SemanticLens', {'use_isee': False}),
    'SL_no_flow': ('SemanticLens w/o flow pre-alignment', 'SemanticLens', {'use_flow': False}),
    'SL_no_semantics': ('SemanticLens w/o semantic branch', 'SemanticLens', {'use_semantics': False}),
}
BASELINES = ('BasicVSR', 'IconVSR', 'BasicVSRPP', 'EDVR')

#: Size grids searched for each BasicSR baseline (fixed options first, then the searched axes).
SIZE_GRIDS = {
    'BasicVSR': ({'spynet_path': None}, {'num_feat': (16, 24, 32, 48, 64), 'num_block': tuple(range(1, 31))}),
    'IconVSR': ({'keyframe_stride': 5, 'temporal_padding': 2, 'spynet_path': None, 'edvr_path': None},
                {'num_feat': (16, 24, 32, 48, 64), 'num_block': tuple(range(1, 31))}),
    # widths multiples of 8: the 16 deformable groups of its alignment take 2 * mid_channels channels
    'SLBasicVSRPlusPlus': ({'max_residue_magnitude': 10, 'is_low_res_input': True, 'spynet_path': None},
                           {'mid_channels': (16, 24, 32, 48, 64), 'num_blocks': tuple(range(1, 21))}),
    'EDVR': ({'num_in_ch': 3, 'num_out_ch': 3, 'num_frame': 5, 'deformable_groups': 8, 'hr_in': False,
              'with_predeblur': False, 'with_tsa': True},
             {'num_feat': (16, 24, 32, 48, 64), 'num_extract_block': (1, 2, 3, 5),
              'num_reconstruct_block': (1, 2, 3, 5, 10)}),
}
#: EDVR predicts the centre of 5 frames: tested on sliding windows padded to a multiple of 4.
EDVR_TILE = {'num_neighbours': 5, 'padding': 'reflection_circle', 'multiple': 4}
METRICS = {
    'psnr': {'type': 'calculate_psnr', 'crop_border': 0, 'test_y_channel': True},
    'ssim': {'type': 'calculate_ssim', 'crop_border': 0, 'test_y_channel': True},
}
_print_lock = threading.Lock()


def say(message):
    with _print_lock:
        print(f'[sl-bench] {message}', flush=True)


# ---------------------------------------------------------------------------------- sizes
def parameter_counts(network_opt):
    """``(total, without SPyNet)`` parameter counts of a network option dict (built on the meta device)."""
    import torch

    from basicsr.archs import build_network
    try:
        with torch.device('meta'):
            net = build_network(dict(network_opt))
    except Exception:  # a constructor that needs real tensors: build it on the CPU
        net = build_network(dict(network_opt))
    total = sum(p.numel() for p in net.parameters())
    spynet = sum(p.numel() for name, p in net.named_parameters() if 'spynet' in name)
    return total, total - spynet


def semantic_lens_options(preset, ablation=None):
    from sl_arch.archs.semantic_lens_arch import PRESETS
    if preset not in PRESETS:
        raise SLError(f'unknown SemanticLens preset {preset!r}; choose one of {", ".join(PRESETS)}.')
    return dict(type='SemanticLens', **PRESETS[preset], **(ablation or {}))


def size_baseline(arch_type, target):
    """The grid point of ``arch_type`` whose parameter count without SPyNet is closest to ``target``.

    The first grid axis is the width; counts grow linearly along the others (stacks of identical
    blocks), so each width is built with every block count at 1 and with each at 2, and the rest of
    the grid follows. Ties go to the smaller network. Returns the option dict for ``network_g``.
    """
    import itertools
    fixed, axes = SIZE_GRIDS[arch_type]
    width_axis, *block_axes = axes
    best = None
    for width in axes[width_axis]:
        if arch_type == 'EDVR' and width % fixed['deformable_groups']:
            continue
        ones = dict(type=arch_type, **fixed, **{width_axis: width}, **{axis: 1 for axis in block_axes})
        base_total, base = parameter_counts(ones)
        steps = {axis: parameter_counts(dict(ones, **{axis: 2}))[1] - base for axis in block_axes}
        for blocks in itertools.product(*(axes[axis] for axis in block_axes)):
            matched = base + sum(steps[axis] * (count - 1) for axis, count in zip(block_axes, blocks))
            key = (abs(matched - target), base_total - base + matched)
            if best is None or key < best[0]:
                best = (key, dict(ones, **dict(zip(block_axes, blocks))))
    return best[1]


def network_options(key, preset):
    """``network_g`` of benchmark row ``key`` (None for bicubic)."""
    _, kind, ablation = MODELS[key]
    if kind == 'bicubic':
        return None
    if kind == 'SemanticLens':
        return semantic_lens_options(preset, ablation)
    return size_baseline(kind, sl_parameter_count(preset))


def sl_parameter_count(preset, _cache={}):
    if preset not in _cache:
        _cache[preset] = parameter_counts(semantic_lens_options(preset))[0]
    return _cache[preset]


# ---------------------------------------------------------------------------------- option files
def dataset_options(data_root):
    """Training and test dataset options of an ``sl-prepare`` output root (train/ and val/, GT and BI)."""
    data_root = osp.abspath(data_root)
    for sub in ('train/GT', 'train/BI', 'val/GT', 'val/BI'):
        if not osp.isdir(osp.join(data_root, sub)):
            raise SLError(f'{osp.join(data_root, sub)} is missing; make the data with sl-prepare '
                          f'(e.g. sl-prepare {" ".join(DEMO_360P_PREPARE)}) or pass --data-root.')
    train = {'name': osp.basename(data_root), 'type': 'SLVideoRecurrentDataset',
             'dataroot_gt': osp.join(data_root, 'train/GT'), 'dataroot_lq': osp.join(data_root, 'train/BI'),
             'io_backend': {'type': 'disk'}}
    test = {'name': osp.basename(data_root) + '_val', 'type': 'SLVideoTestDataset',
            'dataroot_gt': osp.join(data_root, 'val/GT'), 'dataroot_lq': osp.join(data_root, 'val/BI'),
            'io_backend': {'type': 'disk'}}
    for options, split in ((train, 'train'), (test, 'val')):
        meta = osp.join(data_root, split, 'meta_info.txt')
        if osp.isfile(meta):
            options['meta_info_file'] = meta
    return train, test


def train_options(name, network_opt, budget, train_set):
    """The shared training template: only ``name`` and ``network_g`` differ between models."""
    total_iter = budget['total_iter']
    return {
        'name': name,
        'model_type': 'SLVideoRecurrentModel',
        'scale': 4,
        'num_gpu': 'auto',
        'manual_seed': budget['seed'],
        'datasets': {'train': dict(
            train_set, num_frame=budget['num_frame'], gt_size=budget['gt_size'], interval_list=[1],
            random_reverse=False, use_hflip=True, use_rot=True, num_worker_per_gpu=0,
            batch_size_per_gpu=budget['batch_size'], dataset_enlarge_ratio=1, prefetch_mode=None)},
        'network_g': network_opt,
        'path': {'pretrain_network_g': None, 'strict_load_g': True, 'resume_state': None},
        'train': {
            'ema_decay': 0,
            'optim_g': {'type': 'Adam', 'lr': budget['lr'], 'weight_decay': 0, 'betas': [0.9, 0.99]},
            'scheduler': {'type': 'CosineAnnealingRestartLR', 'periods': [total_iter], 'restart_weights': [1],
                          'eta_min': budget['eta_min']},
            'total_iter': total_iter,
            'warmup_iter': -1,
            'fix_flow': int(total_iter * budget['fix_flow_fraction']),
            'flow_lr_mul': budget['flow_lr_mul'],
            'pixel_opt': {'type': 'CharbonnierLoss', 'loss_weight': 1.0, 'reduction': 'mean'},
        },
        'logger': {'print_freq': max(1, total_iter // 10), 'save_checkpoint_freq': total_iter,
                   'use_tb_logger': False, 'wandb': {'project': None, 'resume_id': None}},
        'dist_params': {'backend': 'gloo', 'port': 29500},
    }


def test_options(name, network_opt, test_set, checkpoint):
    val = {'save_img': False, 'flip_seq': False, 'center_frame_only': False, 'metrics': METRICS}
    if network_opt['type'] == 'EDVR':
        val['tile'] = dict(EDVR_TILE)
    return {
        'name': name,
        'model_type': 'SLVideoRecurrentModel',
        'scale': 4,
        'num_gpu': 'auto',
        'manual_seed': 0,
        'datasets': {'test_1': dict(test_set)},
        'network_g': network_opt,
        'path': {'pretrain_network_g': checkpoint, 'param_key_g': 'params', 'strict_load_g': True},
        'val': val,
    }


def write_yaml(path, options):

    def write(tmp_path):
        with open(tmp_path, 'w', encoding='utf-8') as handle:
            yaml.safe_dump(options, handle, sort_keys=False)

    atomic_write(path, write)


# ---------------------------------------------------------------------------------- log parsing
def seconds_per_iteration(train_log):
    """Average seconds per training iteration: the last ``time (data)`` value BasicSR logged."""
    values = re.findall(r'time \(data\): ([0-9.]+)', train_log)
    if not values:
        raise SLError('the training log has no "time (data)" entry; was print_freq larger than total_iter?')
    return float(values[-1])


def test_metrics(test_log, dataset_name):
    """``{metric: {'mean': value, 'sequences': {folder: value}}}`` from BasicSR's validation log record."""
    start = test_log.rfind(f'Validation {dataset_name}\n')
    if start < 0:
        raise SLError(f'the test log has no "Validation {dataset_name}" record.')
    metrics = {}
    for line in test_log[start:].splitlines()[1:]:
        pairs = re.findall(r'# ([^:#\t]+): (-?[0-9.]+|inf|nan)', line)
        if not pairs:
            if 'Best:' in line:
                continue
            break
        (metric, mean), sequences = pairs[0], pairs[1:]
        metrics[metric.strip()] = {'mean': float(mean),
                                   'sequences': {folder.strip(): float(value) for folder, value in sequences}}
    if not metrics:
        raise SLError(f'the "Validation {dataset_name}" record of the test log has no metric values.')
    return metrics


def newest(pattern):
    paths = sorted(glob.glob(pattern), key=osp.getmtime)
    if not paths:
        raise SLError(f'no file matches {pattern}.')
    return paths[-1]


# ---------------------------------------------------------------------------------- runs
def child_env(threads):
    return dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), PYTHONUNBUFFERED='1')


def run_logged(args, cwd, log_path, threads):
    """Run ``python -m ...args`` in ``cwd``, output to ``log_path``; raise SLError with its last line on failure."""
    with open(log_path, 'w', encoding='utf-8') as log:
        result = subprocess.run([sys.executable, '-m', *args], cwd=cwd, env=child_env(threads), stdout=log,
                                stderr=subprocess.STDOUT)
    if result.returncode != 0:
        with open(log_path, encoding='utf-8', errors='replace') as log:
            lines = [line.strip() for line in log if line.strip()]
        raise SLError(f'{" ".join(args[:1])} failed ({lines[-1] if lines else "no output"}); see {log_path}')


def train_and_test(key, network_opt, budget, train_set, test_set, work_dir, threads):
    """Train then test one model through sl-train / sl-test; returns its measured training and test figures."""
    name = f'bench_{key}'  # an earlier run's folders are archived by BasicSR (<name>_archived_<time>), not removed
    train_yml = osp.join(work_dir, 'options', f'train_{name}.yml')
    test_yml = osp.join(work_dir, 'options', f'test_{name}.yml')
    checkpoint = osp.join('experiments', name, 'models', 'net_g_latest.pth')
    write_yaml(train_yml, train_options(name, network_opt, budget, train_set))
    write_yaml(test_yml, test_options(name, network_opt, test_set, checkpoint))
    logs = osp.join(work_dir, 'logs')
    os.makedirs(logs, exist_ok=True)

    start = time.perf_counter()
    run_logged(['sl_arch.train', '-opt', osp.abspath(train_yml)], work_dir, osp.join(logs, f'{name}_train.out'),
               threads)
    train_seconds = time.perf_counter() - start
    with open(newest(osp.join(work_dir, 'experiments', name, f'train_{name}_*.log')), encoding='utf-8') as handle:
        s_per_iter = seconds_per_iteration(handle.read())
    run_logged(['sl_arch.test', '-opt', osp.abspath(test_yml)], work_dir, osp.join(logs, f'{name}_test.out'), threads)
    with open(newest(osp.join(work_dir, 'results', name, f'test_{name}_*.log')), encoding='utf-8') as handle:
        metrics = test_metrics(handle.read(), test_set['name'])
    return {'train_wall_s': train_seconds, 's_per_iter': s_per_iter, 'metrics': metrics,
            'checkpoint': osp.join(work_dir, checkpoint)}


# ---------------------------------------------------------------------------------- isolated measurement
def measure(payload):
    """Measure one model in this (fresh) process on the first test sequence.

    Returns:
        dict: ``gflops_per_frame``, ``ms_per_frame``, ``peak_mib`` (peak memory of the test forward:
        resident-set growth on the CPU, peak allocation on CUDA), ``frames``, ``lr_size``; for
        bicubic also ``metrics`` (PSNR-Y / SSIM-Y per sequence, computed as the test pipeline does).
    """
    import numpy as np
    import torch

    from basicsr.data import build_dataset
    from basicsr.utils import tensor2img
    from sl_arch.bench.common import count_flops, max_rss_mib, median_seconds

    torch.set_num_threads(payload['threads'])
    torch.manual_seed(0)
    dataset = build_dataset(dict(payload['test_set'], phase='test', scale=4))
    first = dataset[0]
    lq = first['lq'].unsqueeze(0)
    frames, height, width = lq.shape[1], lq.shape[-2], lq.shape[-1]
    result = {'frames': frames, 'lr_size': f'{width}x{height}'}

    if payload['network_g'] is None:  # bicubic
        from sl_arch.demo import bicubic_upsample
        from sl_arch.utils.metrics import psnr_ssim_y
        lq_imgs = [tensor2img([frame]) for frame in first['lq']]
        rss_before = max_rss_mib()
        seconds = median_seconds(lambda: [bicubic_upsample(img, 4) for img in lq_imgs], payload['repeats'])
        result.update(gflops_per_frame=None, ms_per_frame=seconds / frames * 1000, peak_mib=max_rss_mib() - rss_before)
        per_sequence = {}
        for index in range(len(dataset)):
            item = dataset[index]
            values = [psnr_ssim_y(bicubic_upsample(tensor2img([lq_frame]), 4), tensor2img([gt_frame]))
                      for lq_frame, gt_frame in zip(item['lq'], item['gt'])]
            per_sequence.setdefault(item['folder'], []).extend(values)
        result['metrics'] = {
            metric: {'sequences': {folder: float(np.mean([v[k] for v in values]))
                                   for folder, values in per_sequence.items()}}
            for k, metric in enumerate(('psnr', 'ssim'))}
        for metric in result['metrics'].values():
            metric['mean'] = float(np.mean(list(metric['sequences'].values())))
        return result

    from basicsr.archs import build_network
    from sl_arch.utils.checkpoint import load_state_strict, network_state_dict, read_checkpoint
    from sl_arch.utils.tiling import forward_video
    device = torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    net = build_network(dict(payload['network_g']))
    if payload.get('checkpoint'):
        load_state_strict(net, network_state_dict(read_checkpoint(payload['checkpoint']), 'params'),
                          payload['checkpoint'])
    net = net.to(device).eval()
    lq = lq.to(device)
    tile = payload.get('tile')

    def forward():
        output = forward_video(net, lq, **tile) if tile else net(lq)
        if device.type == 'cuda':
            torch.cuda.synchronize()
        return output

    if device.type == 'cuda':
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    rss_before = max_rss_mib()
    seconds = median_seconds(forward, payload['repeats'])
    if device.type == 'cuda':
        peak = (torch.cuda.max_memory_allocated() - base) / 2**20
    else:
        peak = max_rss_mib() - rss_before
    flops = count_flops(net, forward)
    result.update(gflops_per_frame=flops / frames / 1e9, ms_per_frame=seconds / frames * 1000, peak_mib=peak,
                  device=device.type)
    if payload['network_g']['type'].endswith('BasicVSRPlusPlus'):  # ours and BasicSR's
        result['deformable_alignment'] = len(net.deform_align) > 0
    return result


# ---------------------------------------------------------------------------------- report
def versions():
    import basicsr
    import torch

    import sl_arch
    commit = subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], capture_output=True, text=True,
                            cwd=osp.dirname(osp.abspath(__file__))).stdout.strip()
    cpu = platform.processor() or platform.machine()
    if osp.isfile('/proc/cpuinfo'):
        with open('/proc/cpuinfo', encoding='utf-8') as handle:
            names = [line.split(':', 1)[1].strip() for line in handle if line.startswith('model name')]
        cpu = names[0] if names else cpu
    return {'python': platform.python_version(), 'torch': torch.__version__, 'basicsr': basicsr.__version__,
            'sl_arch': sl_arch.__version__, 'commit': commit or 'unknown', 'cpu': cpu, 'cpu_count': os.cpu_count(),
            'cuda': torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            'platform': platform.platform()}


def fmt(value, digits):
    return '—' if value is None else f'{value:.{digits}f}'


def psnr_mean(row):
    return row['metrics']['psnr']['mean'] if row.get('metrics') else None


def verdict(rows):
    """Plain sentences computed from the measured rows: SemanticLens vs baselines, time ratio, ablations."""
    by_key = {row['key']: row for row in rows}
    sl = by_key.get('SemanticLens')
    if sl is None or psnr_mean(sl) is None:
        return ['SemanticLens has no result in this run.']
    lines = []
    baselines = [by_key[key] for key in BASELINES if key in by_key and psnr_mean(by_key[key]) is not None]
    if baselines:
        best = max(baselines, key=psnr_mean)
        margin = psnr_mean(sl) - psnr_mean(best)
        beaten = [row['label'] for row in baselines if psnr_mean(sl) > psnr_mean(row)]
        not_beaten = [row['label'] for row in baselines if psnr_mean(sl) <= psnr_mean(row)]
        lines.append(f'- SemanticLens: {psnr_mean(sl):.2f} dB mean PSNR-Y; best baseline {best["label"]} '
                     f'{psnr_mean(best):.2f} dB: SemanticLens is **{"ahead" if margin > 0 else "behind"} by '
                     f'{abs(margin):.2f} dB**. Ahead of: {", ".join(beaten) or "none"}; '
                     f'not ahead of: {", ".join(not_beaten) or "none"}.')
    if 'bicubic' in by_key and psnr_mean(by_key['bicubic']) is not None:
        lines.append(f'- SemanticLens − bicubic: {psnr_mean(sl) - psnr_mean(by_key["bicubic"]):+.2f} dB.')
    basicvsr = by_key.get('BasicVSR')
    if basicvsr and basicvsr.get('ms_per_frame') and sl.get('ms_per_frame'):
        ratio = sl['ms_per_frame'] / basicvsr['ms_per_frame']
        lines.append(f'- Time per frame, SemanticLens / BasicVSR: {ratio:.2f}x '
                     f'({"within" if ratio <= 1.5 else "over"} the 1.5x goal).')
    bicubic = by_key.get('bicubic')
    if bicubic and psnr_mean(bicubic) is not None:
        below = [row['label'] for row in baselines if psnr_mean(row) <= psnr_mean(bicubic)]
        if below:
            lines.append(f'- Not above bicubic at this budget: {", ".join(below)}. SemanticLens adds its output to '
                         'the bicubically upsampled frame and starts near it; the BasicSR models start from a '
                         'bilinear residual and untrained SPyNet. With so few iterations the ranking measures how '
                         'fast each model leaves its starting point more than how well it aligns frames.')
    ablations = [row for row in rows if row['key'].startswith('SL_') and psnr_mean(row) is not None]
    if ablations and all(abs(psnr_mean(row) - psnr_mean(sl)) < 0.05 for row in ablations):
        lines.append('- No ablation moves PSNR-Y by 0.05 dB or more: at this budget IMAGE, GPS, ISEE, flow '
                     'pre-alignment and the semantic branch contribute nothing measurable; the gain over bicubic '
                     'comes from the propagation and reconstruction path that every variant shares.')
    for row in ablations:
        delta = psnr_mean(row) - psnr_mean(sl)
        time_ratio = (row['ms_per_frame'] / sl['ms_per_frame']) if row.get('ms_per_frame') and sl.get(
            'ms_per_frame') else None
        lines.append(f'- {row["label"]}: {delta:+.2f} dB PSNR-Y against the full model'
                     + (f', {time_ratio:.2f}x its time per frame.' if time_ratio else '.'))
    return lines


def markdown_report(rows, info):
    from sl_arch.bench.common import markdown_table
    sequences = []
    for row in rows:
        for folder in (row.get('metrics') or {}).get('psnr', {}).get('sequences', {}):
            if folder not in sequences:
                sequences.append(folder)
    device = 'GPU' if info['versions']['cuda'] else 'CPU'
    headers = (['model', 'params (M)', 'params w/o SPyNet (M)', 'GFLOPs / frame', f'{device} ms / frame',
                'peak test memory (MiB)', 'train s / iter']
               + [f'{folder} PSNR-Y / SSIM-Y' for folder in sequences] + ['**mean PSNR-Y / SSIM-Y**'])
    table = []
    for row in rows:
        if row.get('error'):
            table.append([row['label'], f'failed: {row["error"]}'] + [''] * (len(headers) - 2))
            continue
        metrics = row['metrics']
        cells = [row['label'],
                 fmt(row['params'] / 1e6 if row['params'] is not None else None, 3),
                 fmt(row['params_no_spynet'] / 1e6 if row['params_no_spynet'] is not None else None, 3),
                 fmt(row.get('gflops_per_frame'), 2), fmt(row.get('ms_per_frame'), 1), fmt(row.get('peak_mib'), 0),
                 fmt(row.get('s_per_iter'), 2)]
        cells += [f'{metrics["psnr"]["sequences"].get(folder, float("nan")):.2f} / '
                  f'{metrics["ssim"]["sequences"].get(folder, float("nan")):.4f}' for folder in sequences]
        cells.append(f'**{metrics["psnr"]["mean"]:.2f} / {metrics["ssim"]["mean"]:.4f}**')
        table.append(cells)
    budget, v = info['budget'], info['versions']
    sizes = '\n'.join(f'- {row["label"]}: `{json.dumps({k: val for k, val in row["network_g"].items() if k != "type"})}`'
                      for row in rows if row.get('network_g') and row['kind'] != 'SemanticLens')
    notes = []
    bvpp = next((row for row in rows if row['key'] == 'BasicVSRPP' and 'deformable_alignment' in row), None)
    if bvpp is not None and not bvpp['deformable_alignment']:
        notes.append('- BasicSR builds BasicVSR++ without its deformable alignment when CUDA is not available '
                     '(`basicvsrpp_arch.py`); this CPU run measured BasicVSR++ with flow-warped second-order '
                     'propagation only, as BasicSR gives it.')
    text = f"""# sl-bench ({info['mode']} mode): SemanticLens vs BasicSR video SR models

Command: `{info['command']}` — started {info['started']}, {info['wall_minutes']:.1f} minutes in all
({info['jobs']} training job(s) at a time, {info['threads']} thread(s) each).

All numbers below were measured by this run, on one machine: {v['cuda'] or v['cpu']}, {v['cpu_count']} CPU
cores ({info['load']}). Timings of all models come from this one run on this one machine, so the ratios
between rows are meaningful; absolute times depend on the machine and on its load.

{markdown_table(headers, table)}

PSNR-Y / SSIM-Y: BasicSR's `calculate_psnr` / `calculate_ssim` on the Y channel, crop border 0, of every
frame of the held-out sequences, as `sl-test` logs them (mean = mean of the sequence means); the bicubic
row uses the same functions on MATLAB-bicubic upsampling. GFLOPs / frame, ms / frame and peak memory come
from one test forward over the first test sequence ({info['measure']}), each model alone in a fresh
process, one after another ({info['threads']} thread(s), median of {budget['repeats']} runs after one warm-up);
EDVR runs its test path, one 5-frame window per output frame. Train s / iter: BasicSR's logged average
iteration time (forward, backward, step){', measured while ' + str(info['jobs']) + ' trainings ran side by side' if info['jobs'] > 1 else ''}.

## Verdict

{chr(10).join(verdict(rows))}

![PSNR-Y against time per frame](psnr_vs_ms.png)

## Same budget for every model

- Training data: `{info['train_gt']}` (GT) / `{info['train_lq']}` (LR, BI x4); test: `{info['test_gt']}`.
- {budget['total_iter']} iterations, batch {budget['batch_size']}, {budget['num_frame']} frames per clip, GT patch
  {budget['gt_size']} px (LR {budget['gt_size'] // 4} px: BasicVSR++ needs LR inputs of at least 64 px), flips and
  rotations, seed {budget['seed']}; Adam lr {budget['lr']:g} (betas 0.9, 0.99), cosine annealing to
  {budget['eta_min']:g} over the run; Charbonnier loss; flow/SPyNet lr x{budget['flow_lr_mul']}, frozen for the first
  {int(budget['total_iter'] * budget['fix_flow_fraction'])} iterations; no EMA.
- Every model trains from scratch: no pretrained SPyNet, EDVR or detector weights can be downloaded here
  (`spynet_path: ~`, `edvr_path: ~`).
- SemanticLens: `PRESETS['{budget['preset']}']` of `sl_arch.archs.semantic_lens_arch`; the ablations switch off one
  part each (`use_image`, `use_gps`, `use_isee`, `use_flow`, `use_semantics: false`).
- Baseline sizes: the point of a size grid whose parameter count without SPyNet is closest to SemanticLens'
  total count (EDVR has no SPyNet). BasicVSR, IconVSR and BasicVSR++ embed BasicSR's SPyNet, 1.44M parameters
  by itself, so **SPyNet dominates their counts**: their totals are well above SemanticLens' at the same
  count outside SPyNet.
{sizes}
{chr(10).join(notes)}

## Versions

Python {v['python']}, torch {v['torch']}, basicsr {v['basicsr']}, sl_arch {v['sl_arch']} (commit {v['commit']}),
{v['platform']}. Option files, logs and checkpoints: `{info['work_dir']}/`; raw numbers: `results.json`.
"""
    return text


def save_plot(rows, path):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(8, 5.5))
    for row in rows:
        if row.get('error') or row.get('ms_per_frame') is None:
            continue
        colour = ('tab:red' if row['key'] == 'SemanticLens' else 'tab:orange' if row['key'].startswith('SL_')
                  else 'black' if row['key'] == 'bicubic' else 'tab:blue')
        axes.scatter(row['ms_per_frame'], psnr_mean(row), color=colour, s=40, zorder=3)
        axes.annotate(row['label'], (row['ms_per_frame'], psnr_mean(row)), textcoords='offset points', xytext=(5, 3),
                      fontsize=8)
    axes.set_xscale('log')
    axes.set_xlabel('ms per frame (log scale)')
    axes.set_ylabel('mean PSNR-Y (dB)')
    axes.set_title('PSNR-Y against time per frame (red: SemanticLens, orange: ablations, blue: BasicSR)')
    axes.grid(True, alpha=0.3, which='both')
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


REPORT_FILES = ('results.json', 'psnr_vs_ms.png', 'report.md')


def check_report_folder(out_dir, names=REPORT_FILES):
    """Refuse an ``--out`` folder where writing the report would replace files we did not write.

    The report files ``names`` are ours when ``results.json`` is one of our results (it holds
    ``info`` and ``rows``).

    Raises:
        SLError: naming the folder, the files in the way and the fix.
    """
    check_writable(out_dir, '--out')
    present = [name for name in names if osp.lexists(osp.join(out_dir, name))]
    if not present:
        return
    try:
        with open(osp.join(out_dir, 'results.json'), encoding='utf-8') as handle:
            ours = {'info', 'rows'} <= set(json.load(handle))
    except (OSError, ValueError):
        ours = False
    if not ours:
        raise SLError(f'--out {out_dir} holds {", ".join(present)} that sl_arch did not write; '
                      'choose another --out folder.')


def write_outputs(out_dir, rows, info):
    from sl_arch.demo import write_atomic, write_text
    os.makedirs(out_dir, exist_ok=True)
    write_text(osp.join(out_dir, 'results.json'), json.dumps({'info': info, 'rows': rows}, indent=2) + '\n')
    write_atomic(osp.join(out_dir, 'psnr_vs_ms.png'), lambda tmp: save_plot(rows, tmp))
    text = markdown_report(rows, info)
    write_text(osp.join(out_dir, 'report.md'), text)
    return text


# ---------------------------------------------------------------------------------- main
def ensure_data(data_root, default_root):
    if osp.isdir(osp.join(data_root, 'val')):
        return
    if osp.abspath(data_root) != osp.abspath(default_root):
        raise SLError(f'{data_root} has no val/ folder; make it with sl-prepare or pass another --data-root.')
    say(f'preparing {data_root}: sl-prepare {" ".join(DEMO_360P_PREPARE)}')
    result = subprocess.run([sys.executable, '-m', 'sl_arch.prepare', *DEMO_360P_PREPARE], env=child_env(1))
    if result.returncode != 0:
        raise SLError(f'sl-prepare {" ".join(DEMO_360P_PREPARE)} failed; run it by hand to see why.')


def parse_args(argv):
    parser = argparse.ArgumentParser(prog='sl-bench', description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--quick', action='store_true', help='CPU-sized run (about 10 minutes on 2 free cores)')
    parser.add_argument('--models', help=f'comma-separated subset of: {", ".join(MODELS)} (default: all)')
    parser.add_argument('--data-root', default=DEMO_360P_ROOT,
                        help=f'sl-prepare output with train/ and val/ (default {DEMO_360P_ROOT}, made if missing)')
    parser.add_argument('--iters', type=int, help='training iterations (default: quick 60, full 100000)')
    parser.add_argument('--batch-size', type=int, help='training batch (default: quick 1, full 8)')
    parser.add_argument('--num-frame', type=int, help='frames per training clip (default: quick 5, full 15)')
    parser.add_argument('--gt-size', type=int, help='GT training patch (default 256: BasicVSR++ needs LR >= 64)')
    parser.add_argument('--preset', help='SemanticLens preset (default: quick tiny, full paper)')
    parser.add_argument('--jobs', type=int, help='trainings run side by side (default: quick 2, full 1)')
    parser.add_argument('--threads', type=int, default=1, help='torch threads per process (default 1)')
    parser.add_argument('--repeats', type=int, help='timed test forwards per model (median)')
    parser.add_argument('--work-dir', help='option files, logs, checkpoints (default experiments/benchmark/<mode>)')
    parser.add_argument('--out', help='report folder (default: quick results/benchmark, full results/benchmark/full)')
    return parser.parse_args(argv)


@cli_entry
def main(argv=None):
    """Train, test and measure every model, then write the report; see the module docstring."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    mode = 'quick' if args.quick else 'full'
    budget = dict(MODES[mode])
    for name, value in (('total_iter', args.iters), ('batch_size', args.batch_size), ('num_frame', args.num_frame),
                        ('gt_size', args.gt_size), ('preset', args.preset), ('jobs', args.jobs),
                        ('repeats', args.repeats)):
        if value is not None:
            budget[name] = value
    if budget['total_iter'] < 1 or budget['jobs'] < 1 or args.threads < 1:
        raise SLError('--iters, --jobs and --threads must be at least 1.')
    keys = list(MODELS) if not args.models else [key.strip() for key in args.models.split(',') if key.strip()]
    unknown = [key for key in keys if key not in MODELS]
    if unknown:
        raise SLError(f'unknown model(s) {", ".join(unknown)}; choose from {", ".join(MODELS)}.')
    work_dir = osp.abspath(args.work_dir or osp.join('experiments', 'benchmark', mode))
    out_dir = args.out or budget['out']
    check_writable(work_dir, '--work-dir')
    check_report_folder(out_dir)
    os.makedirs(work_dir, exist_ok=True)
    started = time.perf_counter()
    started_at = datetime.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')
    load = 'load average at start {:.2f}, {:.2f}, {:.2f}'.format(*os.getloadavg())

    ensure_data(args.data_root, DEMO_360P_ROOT)
    train_set, test_set = dataset_options(args.data_root)

    rows = []
    for key in keys:
        label, kind, _ = MODELS[key]
        network_opt = network_options(key, budget['preset'])
        params = parameter_counts(network_opt) if network_opt else (None, None)
        rows.append({'key': key, 'label': label, 'kind': kind, 'network_g': network_opt, 'params': params[0],
                     'params_no_spynet': params[1]})
        if network_opt:
            say(f'{label}: {params[0] / 1e6:.3f}M parameters ({params[1] / 1e6:.3f}M without SPyNet)')

    trained = [row for row in rows if row['network_g']]
    say(f'{mode} mode: training {len(trained)} models for {budget["total_iter"]} iterations each, '
        f'{budget["jobs"]} at a time; logs in {work_dir}/logs')

    def job(row):
        begin = time.perf_counter()
        say(f'training {row["label"]} ...')
        try:
            row.update(train_and_test(row['key'], row['network_g'], budget, train_set, test_set, work_dir,
                                      args.threads))
        except SLError as error:
            row['error'] = str(error)
            say(f'{row["label"]} FAILED: {error}')
            return
        say(f'{row["label"]}: trained and tested in {time.perf_counter() - begin:.0f} s '
            f'({row["s_per_iter"]:.2f} s/iter), PSNR-Y {row["metrics"]["psnr"]["mean"]:.2f} dB')

    with concurrent.futures.ThreadPoolExecutor(budget['jobs']) as pool:
        list(pool.map(job, trained))

    from sl_arch.bench.common import run_isolated
    for row in rows:
        if row.get('error'):
            continue
        payload = {'network_g': row['network_g'], 'checkpoint': row.get('checkpoint'), 'test_set': test_set,
                   'threads': args.threads, 'repeats': budget['repeats'],
                   'tile': dict(EDVR_TILE) if row['kind'] == 'EDVR' else None}
        result = run_isolated('sl_arch.bench.compare', payload)
        if 'error' in result:
            row['error'] = f'measurement: {result["error"]}'
            say(f'{row["label"]} measurement FAILED: {result["error"]}')
            continue
        row.update(result)
        say(f'measured {row["label"]}: {row["ms_per_frame"]:.1f} ms/frame, {row["peak_mib"]:.0f} MiB')

    info = {
        'mode': mode, 'command': 'sl-bench ' + ' '.join(argv) if argv else 'sl-bench', 'budget': budget,
        'started': started_at,
        'wall_minutes': (time.perf_counter() - started) / 60, 'jobs': budget['jobs'], 'threads': args.threads,
        'load': load, 'versions': versions(), 'work_dir': osp.relpath(work_dir),
        'train_gt': osp.relpath(train_set['dataroot_gt']), 'train_lq': osp.relpath(train_set['dataroot_lq']),
        'test_gt': osp.relpath(test_set['dataroot_gt']),
        'measure': next((f'{row["frames"]} LR frames of {row["lr_size"]}' for row in rows if row.get('lr_size')), '—'),
    }
    print(write_outputs(out_dir, rows, info), flush=True)
    say(f'wrote {out_dir}/report.md, psnr_vs_ms.png, results.json in {info["wall_minutes"]:.1f} minutes')
    failed = [row['label'] for row in rows if row.get('error')]
    if failed:
        raise SLError(f'{len(failed)} model(s) failed: {", ".join(failed)}; the report marks them, see the logs.')


if __name__ == '__main__':
    if 'SL_BENCH_PAYLOAD' in os.environ:
        print(json.dumps(measure(json.loads(os.environ['SL_BENCH_PAYLOAD']))))
    else:
        main()
