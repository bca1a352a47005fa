"""sl-train / sl-test drive BasicSR's own pipelines: progress log, checkpoints, SIGKILL resume, errors."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch
import yaml

#: A SemanticLens small enough for a few CPU iterations per second.
TINY_NET = dict(type='SemanticLens', num_feat=8, num_extract_block=1, num_block=1, num_reconstruct_block=1,
                num_upsample_feat=8, window_size=4, num_heads=1, sem_dim=8, num_instances=2,
                num_video_instances=2, num_classes=2, detector_layers=1, encoder_layers=1, decoder_layers=1,
                flow_levels=2, flow_channels=[8, 8, 8, 4], flow_kernel_size=3)


def write_clips(root, clips=2, frames=6, size=(32, 24), scale=4, seed=0):
    """Write moving textured GT frames and their bicubic LR frames: ``root/{GT,LR}/<clip>/<frame>.png``.

    Returns:
        tuple[str, str]: GT root and LR root.
    """
    rng = np.random.default_rng(seed)
    width, height = size
    for clip in range(clips):
        texture = cv2.resize(rng.uniform(0, 255, (height // 2 + 8, width // 2 + 8, 3)).astype(np.uint8),
                             (width * scale + 64, height * scale + 64), interpolation=cv2.INTER_CUBIC)
        for frame in range(frames):
            shift = 3 * frame + clip
            gt = np.ascontiguousarray(texture[shift:shift + height * scale, 2 * shift:2 * shift + width * scale])
            lq = cv2.resize(gt, (width, height), interpolation=cv2.INTER_AREA)
            for kind, image in (('GT', gt), ('LR', lq)):
                folder = Path(root, kind, f'clip{clip}')
                folder.mkdir(parents=True, exist_ok=True)
                cv2.imwrite(str(folder / f'{frame:08d}.png'), image)
    return str(Path(root, 'GT')), str(Path(root, 'LR'))


def make_options(data_root, name='tiny', total_iter=4, save_freq=2, fix_flow=0, network=None, val=True,
                 ema_decay=0.0, num_frame=3):
    """A complete BasicSR training option dict for SLVideoRecurrentModel on ``write_clips`` data."""
    gt_root, lq_root = write_clips(data_root)
    options = {
        'name': name,
        'model_type': 'SLVideoRecurrentModel',
        'scale': 4,
        'num_gpu': 0,
        'manual_seed': 10,
        'datasets': {
            'train': {
                'name': 'synthetic', 'type': 'SLVideoRecurrentDataset', 'dataroot_gt': gt_root, 'dataroot_lq': lq_root,
                'io_backend': {'type': 'disk'}, 'num_frame': num_frame, 'gt_size': 64, 'interval_list': [1],
                'random_reverse': False, 'use_hflip': True, 'use_rot': True, 'num_worker_per_gpu': 0,
                'batch_size_per_gpu': 1, 'dataset_enlarge_ratio': 1, 'prefetch_mode': None,
            },
        },
        'network_g': dict(network or TINY_NET),
        'path': {'pretrain_network_g': None, 'strict_load_g': True, 'resume_state': None},
        'train': {
            'ema_decay': ema_decay,
            'optim_g': {'type': 'Adam', 'lr': 1e-3, 'weight_decay': 0, 'betas': [0.9, 0.99]},
            'scheduler': {'type': 'CosineAnnealingRestartLR', 'periods': [total_iter], 'restart_weights': [1],
                          'eta_min': 1e-5},
            'total_iter': total_iter, 'warmup_iter': -1, 'fix_flow': fix_flow, 'flow_lr_mul': 0.5,
            'pixel_opt': {'type': 'CharbonnierLoss', 'loss_weight': 1.0, 'reduction': 'mean'},
        },
        'logger': {'print_freq': 1, 'save_checkpoint_freq': save_freq, 'use_tb_logger': False, 'wandb': None},
        'dist_params': {'backend': 'gloo', 'port': 29500},
    }
    if val:
        options['datasets']['val'] = {
            'name': 'synthetic_val', 'type': 'SLVideoTestDataset', 'dataroot_gt': gt_root, 'dataroot_lq': lq_root,
            'io_backend': {'type': 'disk'}, 'chunk_size': 4,
        }
        options['val'] = {
            'val_freq': 10**6, 'save_img': False,
            'metrics': {
                'psnr': {'type': 'calculate_psnr', 'crop_border': 0, 'test_y_channel': True},
                'ssim': {'type': 'calculate_ssim', 'crop_border': 0, 'test_y_channel': True},
            },
        }
    return options


def write_options(path, options):
    Path(path).write_text(yaml.safe_dump(options, sort_keys=False))
    return str(path)


def cpu_env():
    env = dict(os.environ, CUDA_VISIBLE_DEVICES='', OMP_NUM_THREADS='1', PYTHONUNBUFFERED='1')
    env.pop('SL_DEBUG', None)
    return env


def run_cli(module, *args, cwd, timeout=120):
    return subprocess.run([sys.executable, '-m', module, *args], cwd=cwd, env=cpu_env(), capture_output=True,
                          text=True, timeout=timeout)


def read_train_log(experiment):
    return '\n'.join(path.read_text() for path in sorted(Path(experiment).glob('train_*.log')))


def test_sl_train_logs_progress_and_saves_checkpoints_that_carry_the_network_options(tmp_path):
    option_file = write_options(tmp_path / 'train.yml', make_options(tmp_path / 'data', total_iter=4))

    result = run_cli('sl_arch.train', '-opt', option_file, cwd=tmp_path)

    assert result.returncode == 0, result.stderr[-3000:]
    experiment = tmp_path / 'experiments' / 'tiny'
    log = read_train_log(experiment)
    assert '[epoch:' in log and 'iter:       4' in log and '[eta:' in log and 'l_pix:' in log
    assert 'Validation synthetic_val' in log and '# psnr:' in log
    checkpoint = torch.load(experiment / 'models' / 'net_g_latest.pth', map_location='cpu', weights_only=False)
    assert checkpoint['network_g'] == TINY_NET
    assert sorted(path.name for path in (experiment / 'training_states').iterdir()) == ['2.state', '4.state']


def test_sl_train_resumes_after_sigkill_with_iteration_optimizer_scheduler_and_flow_freeze(tmp_path):
    total_iter, fix_flow = 12, 6
    options = make_options(tmp_path / 'data', total_iter=total_iter, save_freq=2, fix_flow=fix_flow, val=False)
    option_file = write_options(tmp_path / 'train.yml', options)
    states = tmp_path / 'experiments' / 'tiny' / 'training_states'
    process = subprocess.Popen([sys.executable, '-m', 'sl_arch.train', '-opt', option_file], cwd=tmp_path,
                               env=cpu_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 90
    while not (states / '4.state').exists() and process.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    saved = sorted(int(path.name.split('.')[0]) for path in states.glob('*.state'))
    assert saved and max(saved) < total_iter, f'the run was not killed mid-training: states {saved}'

    result = run_cli('sl_arch.train', '-opt', option_file, '--auto_resume', cwd=tmp_path)

    assert result.returncode == 0, result.stderr[-3000:]
    log = read_train_log(tmp_path / 'experiments' / 'tiny')
    resumed_at = max(saved)
    assert f'Resuming training from epoch: ' in log and f'iter: {resumed_at}.' in log
    assert f'Fix the flow parameters' in log.split('Resuming training')[-1]
    assert f'Train all parameters from iter {fix_flow}.' in log.split('Resuming training')[-1]
    final = torch.load(states / f'{total_iter}.state', map_location='cpu', weights_only=False)
    assert final['iter'] == total_iter
    assert final['schedulers'][0]['last_epoch'] == total_iter - 1
    # Adam's step counts continue from the killed run: total_iter for every parameter that always
    # trained, total_iter - (fix_flow - 1) for the flow parameters frozen during iterations 1..fix_flow-1.
    normal_group, flow_group = final['optimizers'][0]['param_groups']
    steps = final['optimizers'][0]['state']
    assert {int(steps[index]['step']) for index in normal_group['params']} == {total_iter}
    assert {int(steps[index]['step']) for index in flow_group['params']} == {total_iter - fix_flow + 1}


def test_sl_train_reports_a_missing_option_file_in_one_line(tmp_path):
    result = run_cli('sl_arch.train', '-opt', str(tmp_path / 'nope.yml'), cwd=tmp_path)

    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f'error: option file {tmp_path / "nope.yml"} does not exist; pass -opt with a YAML file from options/.']


def test_sl_test_rejects_a_checkpoint_of_another_configuration_naming_the_keys(tmp_path):
    train_options = make_options(tmp_path / 'data', total_iter=2, save_freq=2, val=False)
    assert run_cli('sl_arch.train', '-opt', write_options(tmp_path / 'train.yml', train_options),
                   cwd=tmp_path).returncode == 0
    test_options = make_options(tmp_path / 'data', name='other', network=dict(TINY_NET, num_feat=12))
    test_options['datasets'] = {'test': test_options['datasets']['val']}
    test_options['path']['pretrain_network_g'] = str(tmp_path / 'experiments' / 'tiny' / 'models' / 'net_g_latest.pth')
    del test_options['train']

    result = run_cli('sl_arch.test', '-opt', write_options(tmp_path / 'test.yml', test_options), cwd=tmp_path)

    assert result.returncode == 2
    # BasicSR's logger prints the run options on stderr first; the failure itself is one line
    errors = [line for line in result.stderr.splitlines() if line.startswith('error:')]
    assert 'Traceback' not in result.stderr and len(errors) == 1
    assert errors[0] == result.stderr.strip().splitlines()[-1]
    assert errors[0].startswith('error: checkpoint ') and 'net_g_latest.pth' in errors[0]
    assert 'shape mismatch' in errors[0] and 'feat_extract.0.weight' in errors[0]


def test_sl_test_then_demo_write_frames_metrics_table_and_figures_under_results(tmp_path):
    train_options = make_options(tmp_path / 'data', total_iter=2, save_freq=2, val=False)
    assert run_cli('sl_arch.train', '-opt', write_options(tmp_path / 'train.yml', train_options),
                   cwd=tmp_path).returncode == 0
    test_options = make_options(tmp_path / 'data', name='tiny_test')
    test_options['datasets'] = {'test': test_options['datasets']['val']}
    test_options['path']['pretrain_network_g'] = str(tmp_path / 'experiments' / 'tiny' / 'models' / 'net_g_latest.pth')
    test_options['val']['save_img'] = True
    del test_options['train']

    test_file = write_options(tmp_path / 'test.yml', test_options)
    early = run_cli('sl_arch.demo', '-opt', test_file, cwd=tmp_path)
    result = run_cli('sl_arch.test', '-opt', test_file, cwd=tmp_path)
    demo = run_cli('sl_arch.demo', '-opt', test_file, cwd=tmp_path)

    assert early.returncode == 2 and early.stderr.strip().splitlines()[-1].startswith('error: SR frame results/')
    assert 'run sl-test -opt' in early.stderr and 'Traceback' not in early.stderr
    assert result.returncode == 0, result.stderr[-3000:]
    frames = tmp_path / 'results' / 'tiny_test' / 'visualization' / 'synthetic_val'
    assert sorted(path.name for path in (frames / 'clip1').iterdir()) == [f'{i:08d}_tiny_test.png' for i in range(6)]
    assert cv2.imread(str(frames / 'clip1' / '00000005_tiny_test.png')).shape == (96, 128, 3)
    log = next((tmp_path / 'results' / 'tiny_test').glob('test_*.log')).read_text()
    assert 'Validation synthetic_val' in log and '# clip0:' in log and '# clip1:' in log
    assert demo.returncode == 0, demo.stderr[-3000:]
    results = tmp_path / 'results' / 'tiny_test'
    table = (results / 'metrics.md').read_text()
    assert '| clip0 | 6 |' in table and '| clip1 | 6 |' in table and '| **Average** | 12 |' in table
    assert 'Bicubic PSNR-Y (dB)' in table and 'SemanticLens PSNR-Y (dB)' in table
    assert len((results / 'per_frame_metrics.csv').read_text().splitlines()) == 1 + 12
    for figure in ('crops.png', 'psnr_per_frame.png', 'instance_masks.png'):
        assert cv2.imread(str(results / figure)) is not None, figure
    assert not list(results.glob('.tmp_*'))
