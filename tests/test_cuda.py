"""Specifications of the CUDA paths (skipped on a machine without a CUDA GPU).

The CPU suite cannot reach these paths: the networks on a GPU against the same weights on the CPU,
half-precision autocast on a GPU, BasicSR's own BasicVSR++ construction (which builds its
deformable alignment only where CUDA is), ``sl-infer --device cuda`` with ``--precision fp16``, and
``sl-train`` on a GPU with ``train.gpu_seconds`` and float16 autocast (loss scaling).
``bash scripts/gpu_check.sh`` runs this file and the GPU throughput benchmark.
"""
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
from basicsr.archs import build_network

from sl_arch.archs.semantic_lens_arch import PRESETS
from tests.conftest import make_options, read_train_log, write_options

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA GPU')

SL_OPT = {'type': 'SemanticLens', **PRESETS['tiny']}


@pytest.fixture
def exact_cuda(monkeypatch):
    """Full float32 on the GPU (TF32 off), so that GPU and CPU outputs can be compared tightly."""
    monkeypatch.setattr(torch.backends.cudnn, 'allow_tf32', False)
    monkeypatch.setattr(torch.backends.cuda.matmul, 'allow_tf32', False)


def clip(frames=5, height=32, width=40, seed=0):
    """A smooth random clip (b=1, t, 3, h, w) in [0, 1]: smooth so that flow and attention see structure."""
    generator = torch.Generator().manual_seed(seed)
    small = torch.rand(1, frames, 3, height // 4, width // 4, generator=generator)
    return torch.nn.functional.interpolate(small.flatten(0, 1), size=(height, width), mode='bicubic',
                                           align_corners=False).clamp(0, 1).view(1, frames, 3, height, width)


def on_both(net_opt, lqs, seed=0):
    """Outputs of one randomly initialised network on the CPU and on the GPU (float32)."""
    torch.manual_seed(seed)
    net = build_network(dict(net_opt)).eval()
    with torch.no_grad():
        cpu = net(lqs)
        gpu = net.cuda()(lqs.cuda()).cpu()
    return cpu, gpu


def test_semantic_lens_on_a_gpu_gives_the_cpu_output_and_trains(exact_cuda):
    lqs = clip()
    cpu, gpu = on_both(SL_OPT, lqs)
    assert gpu.shape == (1, 5, 3, 128, 160)
    assert (gpu - cpu).abs().max() < 1e-3, (gpu - cpu).abs().max()
    torch.manual_seed(0)
    net = build_network(dict(SL_OPT)).cuda().train()
    out, masks = net(lqs.cuda(), return_masks=True)
    out.mean().backward()
    grads = [p.grad for p in net.parameters() if p.requires_grad and p.grad is not None]
    assert grads and all(torch.isfinite(grad).all() for grad in grads)
    assert torch.allclose(masks.sum(2), torch.ones_like(masks.sum(2)), atol=1e-4)


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
def test_half_precision_autocast_on_a_gpu_stays_close_to_float32(dtype):
    torch.manual_seed(0)
    net = build_network(dict(SL_OPT)).cuda().eval()
    lqs = clip().cuda()
    with torch.no_grad():
        reference = net(lqs)
        with torch.autocast('cuda', dtype=dtype):
            half = net(lqs)
    difference = (half.float() - reference).abs()
    assert torch.isfinite(half).all()
    assert difference.mean() < 5e-3 and difference.max() < 0.06, (difference.mean(), difference.max())


def test_basicsr_basicvsrpp_built_with_cuda_gives_the_cpu_output_of_its_weights(exact_cuda):
    net_opt = {'type': 'SLBasicVSRPlusPlus', 'mid_channels': 16, 'num_blocks': 1}
    lqs = clip(frames=3, height=64, width=64)
    torch.manual_seed(0)
    net = build_network(dict(net_opt)).eval()  # CUDA is available: BasicSR's constructor builds the alignment
    assert all(f'deform_align.{branch}.conv_offset.0.weight' in net.state_dict()
               for branch in ('backward_1', 'forward_1', 'backward_2', 'forward_2'))
    with torch.no_grad():
        gpu = net.cuda()(lqs.cuda()).cpu()
        cpu = net.cpu()(lqs)
    assert (gpu - cpu).abs().max() < 1e-3, (gpu - cpu).abs().max()


def read_frames(folder):
    import cv2
    names = sorted(name for name in os.listdir(folder) if name.endswith('.png'))
    return np.stack([cv2.imread(os.path.join(folder, name)) for name in names]).astype(np.float64)


def psnr(a, b):
    return 10 * np.log10(255.0 ** 2 / max(np.mean((a - b) ** 2), 1e-12))


def test_sl_infer_on_a_gpu_in_fp32_fp16_and_bf16_matches_the_cpu(tmp_path, capsys):
    import cv2

    from sl_arch import infer
    frames = (clip(frames=6, height=24, width=32)[0].permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)
    folder = tmp_path / 'in'
    folder.mkdir()
    for index, frame in enumerate(frames):
        cv2.imwrite(str(folder / f'{index:08d}.png'), frame)
    torch.manual_seed(0)
    weights = tmp_path / 'sl.pth'
    torch.save({'params': build_network(dict(SL_OPT)).state_dict(), 'network_g': dict(SL_OPT)}, weights)
    outputs = {}
    for device, precision in (('cpu', 'fp32'), ('cuda', 'fp32'), ('cuda', 'fp16'), ('cuda', 'bf16')):
        out = tmp_path / f'{device}_{precision}'
        infer.upscale(infer.parse_args(['-i', str(folder), '-o', str(out), '--weights', str(weights), '--device',
                                        device, '--precision', precision, '--chunk', '0']))
        outputs[device, precision] = read_frames(out)
        if device == 'cuda':
            assert 'peak GPU' in capsys.readouterr().out
    reference = outputs['cpu', 'fp32']
    assert reference.shape == (6, 96, 128, 3)
    assert psnr(outputs['cuda', 'fp32'], reference) > 50
    for precision in ('fp16', 'bf16'):
        assert psnr(outputs['cuda', precision], reference) > 38, precision


def test_sl_train_on_a_gpu_with_a_gpu_seconds_budget_and_fp16_autocast(tmp_path):
    options = make_options(tmp_path / 'data', total_iter=100000, save_freq=100000)
    options['num_gpu'] = 1
    options['train'].update(gpu_seconds=3, autocast='fp16', scheduler={'type': 'BudgetCosineLR', 'eta_min': 1e-5})
    option_file = write_options(tmp_path / 'train.yml', options)
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONUNBUFFERED='1')
    result = subprocess.run([sys.executable, '-m', 'sl_arch.train', '-opt', option_file], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    experiment = tmp_path / 'experiments' / 'tiny'
    record = json.loads((experiment / 'train_time.json').read_text())
    assert record['clock'] == 'gpu' and record['budget_spent'] and record['final'] and record['autocast'] == 'fp16'
    assert 1 <= record['iterations'] < 100000
    checkpoint = torch.load(experiment / 'models' / 'net_g_latest.pth', map_location='cpu')
    assert all(torch.isfinite(value).all() for value in checkpoint['params'].values() if value.is_floating_point())
    metrics = json.loads((experiment / 'metrics_synthetic_val.json').read_text())
    assert metrics['metrics']['psnr']['mean'] > 5
    assert 'End of training' in read_train_log(experiment)


def test_step_time_on_a_gpu_times_each_networks_training_iteration_on_the_gpu(capsys):
    from sl_arch.bench import step_time
    step_time.main(['--device', 'cuda', '--models', 'SingleFrame_lean,SL_dis_neighbours_no_semantics_no_mfsab_gate_up16',
                    '--batch', '1', '--frames', '3', '--lr-side', '32', '--repeats', '2'])
    out = capsys.readouterr().out
    assert out.startswith(f'GPU ms per training iteration on {torch.cuda.get_device_name(0)}')
    table = [line for line in out.splitlines() if line.startswith('| ')]
    assert len(table) == 3
    for row in table[1:]:
        cells = row.strip('| ').split(' | ')
        assert cells[2].endswith('(1.00x)') and all(re.fullmatch(r'\d+ \(\d+\.\d\dx\)', cell) for cell in cells[2:])
