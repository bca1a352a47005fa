"""Test-suite settings (one torch thread per process) and helpers shared by the test modules.

Tests run tiny tensors, where thread hand-offs cost more than they gain, and CI machines are
shared: with torch's default two threads a busy two-core machine made some tests 10-100x slower.
"""
import os
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
import torch
import yaml

import sl_arch  # noqa: F401  (install the torchvision shim and register before any test imports basicsr)

torch.set_num_threads(1)


@pytest.fixture
def slow_cpu_autocast(monkeypatch):
    """bf16 / fp16 autocast allowed on a CPU without their arithmetic, which ``sl_arch.utils.precision`` refuses
    there (PyTorch's slow path), so that the mixed-precision code paths are tested on any CPU."""
    monkeypatch.setenv('SL_SLOW_CPU_AUTOCAST', '1')


@pytest.fixture
def cpu_without_bf16(monkeypatch):
    """This CPU seen as one without bf16 / fp16 arithmetic (an AVX2 CPU), whatever it has, and no override."""
    from sl_arch.utils import precision
    monkeypatch.setattr(precision, 'cpu_has_native', lambda name: False)
    monkeypatch.delenv('SL_SLOW_CPU_AUTOCAST', raising=False)


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


def mask_options(tmp_path, **train):
    """Training options on conftest's clips with instance ids of their LR frames under semantics_root."""
    opt = make_options(tmp_path / 'data', val=False, num_frame=3)
    masks = Path(tmp_path, 'data', 'masks')
    for clip in Path(opt['datasets']['train']['dataroot_lq']).iterdir():
        (masks / clip.name).mkdir(parents=True)
        for frame in clip.iterdir():
            ids = np.zeros((24, 32), np.uint8)
            ids[:, 10:20] = 1
            cv2.imwrite(str(masks / clip.name / frame.name), ids)
    opt['datasets']['train']['semantics_root'] = str(masks)
    opt['train'].update(train)
    opt.update(is_train=True, dist=False, rank=0, world_size=1, auto_resume=False)
    opt['datasets']['train'].update(phase='train', scale=4)
    root = tmp_path / 'experiments'
    opt['path'].update(experiments_root=str(root), models=str(root / 'models'),
                       training_states=str(root / 'training_states'), visualization=str(root / 'visualization'))
    return opt


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


#: Audio of the test videos: a 440 Hz sine at this rate (AAC, mono).
SAMPLE_RATE = 48000
SUBTITLES = '1\n00:00:00,100 --> 00:00:00,300\nhello\n\n2\n00:00:00,350 --> 00:00:00,450\nworld\n\n'


def make_video(path, frames, time_base=Fraction(1, 24), timestamps=None, audio=True, subtitles=False, rotation=0):
    """Write ``frames`` (BGR) as H.264 (4:4:4, lossless) with an AAC sine wave and, optionally, subtitles.

    Args:
        timestamps (list[int] | None): Presentation timestamps in ``time_base``; default 0, 1, 2, ...
        rotation (int): Display rotation of the video stream, degrees counter-clockwise.

    Returns:
        str: The path.
    """
    timestamps = list(range(len(frames))) if timestamps is None else timestamps
    end = timestamps[-1] + (timestamps[-1] - timestamps[-2])
    srt = None
    with av.open(str(path), 'w') as container:
        video = container.add_stream('libx264', rate=round(1 / time_base))
        video.height, video.width = frames[0].shape[:2]
        video.pix_fmt, video.time_base = 'yuv444p', time_base
        video.codec_context.time_base = time_base
        video.codec_context.options = {'qp': '0'}
        if rotation:
            video.set_display_rotation(rotation)
        sound = container.add_stream('aac', rate=SAMPLE_RATE, layout='mono') if audio else None
        if subtitles:
            srt_path = f'{path}.srt'
            with open(srt_path, 'w') as handle:
                handle.write(SUBTITLES)
            srt = av.open(srt_path)
            text = container.add_stream_from_template(srt.streams[0])
        durations = {pts: following - pts for pts, following in zip(timestamps, timestamps[1:] + [end])}
        for frame, pts in zip(frames, timestamps):
            video_frame = av.VideoFrame.from_ndarray(frame, format='bgr24')
            video_frame.pts, video_frame.time_base = pts, time_base
            for packet in video.encode(video_frame):
                packet.duration = durations[packet.pts]
                container.mux(packet)
        for packet in video.encode():
            packet.duration = durations[packet.pts]
            container.mux(packet)
        if sound is not None:
            samples = int(SAMPLE_RATE * float(end * time_base))
            wave = (0.3 * np.sin(2 * np.pi * 440 * np.arange(samples) / SAMPLE_RATE)).astype(np.float32)
            for start in range(0, samples, 1024):
                audio_frame = av.AudioFrame.from_ndarray(wave[None, start:start + 1024], format='fltp', layout='mono')
                audio_frame.sample_rate, audio_frame.pts = SAMPLE_RATE, start
                container.mux(sound.encode(audio_frame))
            container.mux(sound.encode())
        if srt is not None:
            for packet in srt.demux(srt.streams[0]):
                if packet.size:
                    packet.stream = text
                    container.mux(packet)
            srt.close()
    return str(path)
