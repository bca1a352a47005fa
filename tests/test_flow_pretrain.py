"""Pretrained flow weights of model_zoo/ (made by ``python -m sl_arch.bench.flow``): they load into
``SLFlowWarper``, SemanticLens and BasicSR's SpyNet as float32, beat zero flow on held-out synthetic
clips, and the command trains, resumes, evaluates and fails with one line."""
from pathlib import Path

import numpy as np
import torch

from sl_arch.archs.prealign_arch import SLFlowWarper
from sl_arch.bench import flow
from sl_arch.data.synthetic import write_synthetic
from tests.conftest import run_cli

ZOO = Path(__file__).resolve().parents[1] / 'model_zoo'
TINY = ZOO / 'slflow_tiny_synthetic_dis.pth'
SPYNET = ZOO / 'spynet_synthetic_dis.pth'


def smooth_pair(size=64, shift=(1, 2), seed=0):
    """A smooth random RGB frame and the same frame moved by ``shift`` (x, y) pixels."""
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.rand(1, 3, size // 8 + 2, size // 8 + 2, generator=generator)
    frame = torch.nn.functional.interpolate(coarse, size=(size + 8, size + 8), mode='bicubic', align_corners=False)
    frame = frame.clamp(0, 1)
    ref = frame[..., 4:4 + size, 4:4 + size]
    supp = frame[..., 4 - shift[1]:4 - shift[1] + size, 4 - shift[0]:4 - shift[0] + size]
    return ref.contiguous(), supp.contiguous()


def stored_params(path):
    return torch.load(path, map_location='cpu', weights_only=True)['params']


def test_tiny_weights_have_the_tiny_layout_and_load_as_float32_into_the_warper_and_semantic_lens():
    from sl_arch.archs.semantic_lens_arch import PRESETS, SemanticLens
    stored = stored_params(TINY)
    warper = flow.build_warper('tiny', load_path=str(TINY))
    net = SemanticLens(**PRESETS['tiny'], flow_load_path=str(TINY))

    assert SLFlowWarper.checkpoint_layout(stored) == flow.LAYOUTS['tiny'] == {
        'num_levels': PRESETS['tiny']['flow_levels'], 'channels': PRESETS['tiny']['flow_channels'],
        'kernel_size': PRESETS['tiny']['flow_kernel_size']}
    assert set(stored) == set(warper.state_dict())
    for module in (warper, net.flow_warper):
        for key, value in module.state_dict().items():
            assert value.dtype == torch.float32 and torch.equal(value, stored[key].float()), key


def test_spynet_layout_weights_give_the_same_flow_in_the_warper_and_in_basicsr_spynet_and_basicvsr():
    from basicsr.archs.basicvsr_arch import BasicVSR
    from basicsr.archs.spynet_arch import SpyNet
    stored = stored_params(SPYNET)
    spynet = SpyNet(load_path=str(SPYNET)).eval()
    basicvsr = BasicVSR(num_feat=8, num_block=1, spynet_path=str(SPYNET))
    # 64 px with 2-px coarsest level: the warper uses all 6 levels, as SpyNet does at 64 px
    warper = flow.build_warper('spynet', min_level_size=2, load_path=str(SPYNET)).eval()
    ref, supp = smooth_pair()
    with torch.no_grad():
        ours, theirs = warper(ref, supp), spynet(ref, supp)

    assert SLFlowWarper.checkpoint_layout(stored) == flow.LAYOUTS['spynet']
    for module in (spynet, basicvsr.spynet, warper):
        for key, value in stored.items():
            assert module.state_dict()[key].dtype == torch.float32
            assert torch.equal(module.state_dict()[key], value.float()), key
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=1e-4)
    # and it is a real flow: the frame moved by (1, 2) px is found to have moved right and down
    interior = ours[0, :, 8:-8, 8:-8].mean((1, 2))
    assert interior[0] > 0.3 and interior[1] > 0.6, interior


def test_the_pretrained_tiny_warper_beats_zero_flow_on_held_out_synthetic_clips(tmp_path):
    # held-out clips (photographs no training clip uses): pan, crossing, pan, crossing, pan
    write_synthetic(str(tmp_path), seed=7, num_train=0, num_val=5, size=(160, 96), num_frames=5, kinds=('BI',))
    pairs = flow.load_synthetic(str(tmp_path), 'val')
    # the convention: for each reference pixel, where it is in the supporting frame (flow_fwd of
    # frame t for the pair (t, t+1), flow_bwd of frame t+1 for (t+1, t)), so that warping the
    # supporting frame with it brings back the reference frame
    errors = np.zeros(3)  # warping with the flow, with none, with the flow reversed
    for clip, ref_index, supp_index, target, _ in pairs.pairs:
        frames = torch.from_numpy(pairs.frames[clip]).permute(0, 3, 1, 2)
        ref, supp = frames[ref_index:ref_index + 1], frames[supp_index:supp_index + 1]
        target = torch.from_numpy(target).permute(2, 0, 1)[None]
        errors += [(SLFlowWarper.warp(supp, sign * target) - ref).abs()[..., 2:-2, 2:-2].mean().item()
                   for sign in (1, 0, -1)]
    assert errors[0] < 0.8 * errors[1] and errors[2] > errors[1], errors

    pretrained, untrained = flow.build_warper('tiny', load_path=str(TINY)).eval(), flow.build_warper('tiny').eval()
    pan = {'pan'}
    trained_pan, zero_pan = flow.mean_epe(pretrained, pairs, tags=pan), flow.mean_epe(flow.zero_flow, pairs, tags=pan)

    # camera motion: clearly better than no motion or the untrained warper (which predicts almost none);
    # on crossing objects (fast, occluding) it is barely better (model_zoo/README.md), but not worse
    assert trained_pan < 0.8 * zero_pan and trained_pan < 0.8 * flow.mean_epe(untrained, pairs, tags=pan)
    assert flow.mean_epe(pretrained, pairs) <= flow.mean_epe(flow.zero_flow, pairs)


def test_the_command_trains_end_to_end_resumes_evaluates_and_writes_loadable_weights(tmp_path, capsys):
    data = tmp_path / 'syn'
    write_synthetic(str(data), seed=1, num_train=2, num_val=2, size=(64, 48), num_frames=3, kinds=('BI',))
    out, work, readme = tmp_path / 'zoo' / 'w.pth', tmp_path / 'work', tmp_path / 'zoo' / 'README.md'
    args = ['train', '--layout', 'tiny', '--synthetic', str(data), '--real', str(data), '--iters', '2', '--batch', '2',
            '--crop', '16x12', '--out', str(out), '--work-dir', str(work), '--save-every', '1']

    result = run_cli('sl_arch.bench.flow', *args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    warper = flow.build_warper('tiny', load_path=str(out))
    checkpoint = torch.load(out, map_location='cpu', weights_only=True)
    assert checkpoint['flow_train']['iterations'] == 2 and 'train --layout tiny' in checkpoint['flow_train']['command']
    assert all(value.dtype == torch.float32 for value in warper.state_dict().values())
    assert (work / 'state.pth').is_file() and not list(out.parent.glob('.sl-tmp-*'))

    flow.main(args)  # again: the saved state is complete, nothing is trained twice
    assert 'resuming from' in capsys.readouterr().out
    flow.main(['evaluate', '--weights', str(out), '--synthetic', str(data), '--real', str(data), '--real-moving',
               str(data), '--readme', str(readme)])
    table = readme.read_text()
    assert '| zero flow |' in table and str(out) in table and 'SLFlowWarper 3 levels, 16-32-16-8, k5, pretrained' in table
    assert np.isfinite(float(table.split('| zero flow |')[1].split('|')[3]))
    header = table[table.index('| model |'):].splitlines()[0].split('|')
    zero = table[table.index('| zero flow |'):].splitlines()[0].split('|')
    assert header[-5].strip() == 'syn 16x12 vs DIS: 1 frame apart'  # --real-moving's frames (train/GT), before KB
    assert len(zero) == len(header) and np.isfinite(float(zero[-5]))


def test_evaluate_reads_the_flow_warper_out_of_a_semantic_lens_checkpoint(tmp_path, capsys):
    from basicsr.archs import build_network

    from sl_arch.archs.semantic_lens_arch import PRESETS
    data = tmp_path / 'syn'
    write_synthetic(str(data), seed=1, num_train=0, num_val=2, size=(64, 48), num_frames=3, kinds=('BI',))
    net_opt = dict(PRESETS['tiny'], type='SemanticLens')
    net = build_network(dict(net_opt))
    with torch.no_grad():  # a flow warper that moves: its error differs from zero flow's
        for parameter in net.flow_warper.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.05)
    checkpoint = tmp_path / 'net_g_latest.pth'
    torch.save({'params': net.state_dict(), 'network_g': net_opt}, checkpoint)
    headers, rows = flow.main(['evaluate', '--weights', str(checkpoint), '--synthetic', str(data), '--real', ''])
    (row,) = [row for row in rows if row[0].endswith('after SR training')]
    zero = next(row for row in rows if row[0] == 'zero flow')
    assert row[1] == 'trained inside SemanticLens (sl-train checkpoint)' and row[4] != zero[4]


def test_a_missing_data_root_is_one_error_line_and_exit_code_2(tmp_path):
    result = run_cli('sl_arch.bench.flow', 'train', '--synthetic', str(tmp_path / 'missing'), '--real', '',
                     '--out', str(tmp_path / 'w.pth'), cwd=tmp_path)

    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('error: ') and 'missing' in lines[0], result.stderr
