"""sl-bench gives every model the same time budget through sl-train / sl-test and writes one report from measured numbers."""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml

import sl_arch  # noqa: F401  (registers, installs the torchvision shim)
from basicsr.utils.registry import ARCH_REGISTRY

from sl_arch.bench import compare, options, report
from sl_arch.bench.common import run_in_child
from sl_arch.utils.errors import SLError

ROOT = Path(__file__).resolve().parents[1]


def write_clip_folder(folder, clips, frames, seed):
    """Moving-texture clips ``folder/{GT,BI}/<clip>/<frame>.png``: GT 64x64, BI 16x16 by area downsampling."""
    rng = np.random.default_rng(seed)
    texture = cv2.resize(rng.uniform(0, 255, (40, 40, 3)).astype(np.uint8), (160, 160), interpolation=cv2.INTER_CUBIC)
    for clip_index, clip in enumerate(clips):
        for frame in range(frames):
            shift = 4 * frame + 7 * clip_index
            gt = np.ascontiguousarray(texture[shift:shift + 64, 2 * shift:2 * shift + 64])
            for kind, image in (('GT', gt), ('BI', cv2.resize(gt, (16, 16), interpolation=cv2.INTER_AREA))):
                path = Path(folder, kind, clip)
                path.mkdir(parents=True, exist_ok=True)
                cv2.imwrite(str(path / f'{frame:08d}.png'), image)


def write_benchmark_data(root):
    """The layout of ``scripts/zoo_data.sh`` in miniature: training clips and the five held-out sets."""
    write_clip_folder(Path(root, 'zoo_mix', 'train'), ['clip'], 8, seed=0)
    write_clip_folder(Path(root, 'demo_bbb', 'val'), ['demo_000', 'demo_001'], 4, seed=1)
    Path(root, 'demo_bbb', 'val', 'meta_info.txt').write_text('demo_000 4 (64,64,3)\ndemo_001 4 (64,64,3)\n')
    write_clip_folder(Path(root, 'real_heldout', 'train'), ['bikes'], 4, seed=2)
    write_clip_folder(Path(root, 'real_moving', 'train'), ['bikes'], 4, seed=4)
    write_clip_folder(Path(root, 'synthetic', 'val'), ['pan_000', 'crossing_000'], 4, seed=3)
    for regime in ('pan', 'crossing'):
        Path(root, 'synthetic', 'val', f'meta_info_{regime}.txt').write_text(f'{regime}_000 4 (64,64,3)\n')
    return str(root)


def test_baselines_are_sized_to_semantic_lens_parameter_count_and_start_from_the_pretrained_flow():
    target = options.sl_parameter_count('tiny')
    for key in ('SingleFrame', 'BasicVSR', 'EDVR'):
        network_opt = options.network_options(key, 'tiny', pretrained_flow=True)
        total, without_spynet = options.parameter_counts(network_opt)
        assert abs(without_spynet - target) / target < 0.15, key
    assert total == without_spynet  # EDVR has no SPyNet
    basicvsr = options.network_options('BasicVSR', 'tiny', pretrained_flow=True)
    assert basicvsr['spynet_path'] == str(ROOT / options.PRETRAINED_SPYNET)
    assert options.min_input_size(basicvsr) == 33
    semantic_lens = options.network_options('SemanticLens', 'tiny', pretrained_flow=True)
    assert semantic_lens['flow_load_path'] == str(ROOT / options.PRETRAINED_SL_FLOW['tiny'])
    assert 'flow_load_path' not in options.network_options('SL_no_flow', 'tiny', pretrained_flow=True)
    dis = options.network_options('SL_dis_flow', 'tiny', pretrained_flow=True)
    assert dis['flow_estimator'] == 'dis' and 'flow_load_path' not in dis  # DIS has no weights to load
    assert options.parameter_counts(dis)[0] < options.sl_parameter_count('tiny')
    assert options.network_options('BasicVSR', 'tiny', pretrained_flow=False)['spynet_path'] is None
    # BasicVSR with DIS flow: BasicVSR's size, no SpyNet, no weights to load, DIS's smaller input limit
    basicvsr_dis = options.network_options('BasicVSR_dis', 'tiny', pretrained_flow=True)
    assert basicvsr_dis['type'] == 'SLBasicVSR' and basicvsr_dis['flow_estimator'] == 'dis'
    assert basicvsr_dis['spynet_path'] is None
    assert {key: basicvsr_dis[key] for key in ('num_feat', 'num_block')} == {
        key: basicvsr[key] for key in ('num_feat', 'num_block')}
    assert options.parameter_counts(basicvsr_dis)[0] == options.parameter_counts(basicvsr)[1]
    assert options.min_input_size(basicvsr_dis) == 12


def test_a_row_may_change_a_size_of_the_preset():
    wide = options.network_options('SL_wide_no_semantics', 'tiny', pretrained_flow=True)
    assert wide['num_feat'] == 40 and wide['neighbour_input'] and not wide['use_semantics']
    single_frame = options.parameter_counts(options.network_options('SingleFrame', 'tiny', pretrained_flow=True))[0]
    assert abs(options.parameter_counts(wide)[0] - single_frame) / single_frame < 0.02  # equal size
    assert options.TRAIN_CHANGES['SL_wide_no_semantics'] == {'fix_flow': 10**9}
    # the DIS-flow variant with the gate at the single-frame network's size (no flow warper: 46 channels)
    wide_dis = options.network_options('SL_dis_wide_neighbours_no_semantics_gate', 'tiny', pretrained_flow=True)
    assert wide_dis['num_feat'] == 46 and wide_dis['flow_estimator'] == 'dis' and wide_dis['align_gate']
    assert 'flow_load_path' not in wide_dis
    assert abs(options.parameter_counts(wide_dis)[0] - single_frame) / single_frame < 0.02
    # the single-frame network of the lean rows' size: the nearest SRResNet not smaller than them, at either rate
    lean = options.parameter_counts(options.network_options(
        'SL_dis_neighbours_no_semantics_no_mfsab_no_image_gate_up16_bounded', 'tiny', pretrained_flow=True))[0]
    for key, lr in (('SingleFrame_lean', None), ('SingleFrame_lean_lr5e-4', 5e-4)):
        small = options.network_options(key, 'tiny', pretrained_flow=True)
        assert small['network']['num_feat'] == 32 and lean <= options.parameter_counts(small)[0] < 1.1 * lean
        assert options.ROW_BUDGETS.get(key, {}).get('lr') == lr


def test_the_rebalanced_rows_move_residual_blocks_between_stages_at_the_same_size():
    stages = ('num_extract_block', 'num_block', 'num_reconstruct_block')
    base = 'SL_dis_neighbours_no_semantics_no_mfsab_no_image_gate_up16_bounded'
    reference = options.network_options(f'{base}_lr2e-3', 'tiny', pretrained_flow=True)
    size = options.parameter_counts(reference)[0]
    for suffix, blocks in (('e3p1', (3, 1, 1)), ('e2p1r2', (2, 1, 2)), ('e0p3r0', (0, 3, 0))):
        key = f'{base}_{suffix}_lr2e-3'
        row = options.network_options(key, 'tiny', pretrained_flow=True)
        assert tuple(row[name] for name in stages) == blocks
        assert ({k: v for k, v in row.items() if k not in stages}
                == {k: v for k, v in reference.items() if k not in stages})
        assert options.parameter_counts(row)[0] == size  # the same blocks, in other places
        assert options.ROW_BUDGETS[key] == {'lr': 2e-3}
    # the same move in lean16 with IMAGE (the 1200-s row, the mode's rate)
    image = options.network_options('SL_dis_neighbours_no_semantics_no_mfsab_gate_up16_bounded_e0p3r0', 'tiny',
                                    pretrained_flow=True)
    assert image.get('use_image', True) and tuple(image[name] for name in stages) == (0, 3, 0)
    assert options.parameter_counts(image)[0] == options.parameter_counts(options.network_options(
        'SL_dis_neighbours_no_semantics_no_mfsab_gate_up16_bounded', 'tiny', pretrained_flow=True))[0]
    assert 'SL_dis_neighbours_no_semantics_no_mfsab_gate_up16_bounded_e0p3r0' not in options.ROW_BUDGETS
    # 4 blocks per step at 28 channels: smaller than the 2e-3 row, so not larger than the single-frame reference either
    deeper = options.network_options(f'{base}_e0p4r0_w28_lr2e-3', 'tiny', pretrained_flow=True)
    assert (deeper['num_feat'], deeper['num_extract_block'], deeper['num_block'], deeper['num_reconstruct_block']) \
        == (28, 0, 4, 0)
    assert options.parameter_counts(deeper)[0] < size
    # no residual block in the extractor or the reconstruction still builds a working network
    network_opt = dict(options.network_options(f'{base}_e0p3r0_lr2e-3', 'tiny', pretrained_flow=True))
    network = ARCH_REGISTRY.get(network_opt.pop('type'))(**network_opt)
    assert len(network.feat_extract) == 3 and len(network.feat_extract[2]) == 0 and len(network.reconstruct) == 0
    with torch.no_grad():
        assert network(torch.rand(1, 3, 3, 16, 16)).shape == (1, 3, 3, 64, 64)


def test_a_variant_is_trained_as_its_base_row_with_its_own_values_on_top(monkeypatch):
    for table in ('MODELS', 'ROW_BUDGETS', 'TRAIN_SET_CHANGES', 'TRAIN_CHANGES'):
        monkeypatch.setattr(options, table, dict(getattr(options, table)))
    options._variant('base_row', 'SemanticLens', 'base', budget={'lr': 2e-3, 'batch_size': 1},
                     train_set={'dis_flows': True}, train={'warmup_iter': 200})
    options._variant('derived_row', 'base_row', 'derived', budget={'batch_size': 3}, train_set={'interval_list': [1, 2]},
                     num_feat=24)
    assert options.MODELS['derived_row'] == ('SemanticLens, base, derived', 'SemanticLens', {'num_feat': 24})
    assert options.ROW_BUDGETS['derived_row'] == {'lr': 2e-3, 'batch_size': 3}
    assert options.TRAIN_SET_CHANGES['derived_row'] == {'dis_flows': True, 'interval_list': [1, 2]}
    assert options.TRAIN_CHANGES['derived_row'] == {'warmup_iter': 200}
    assert options.ROW_BUDGETS['base_row'] == {'lr': 2e-3, 'batch_size': 1}  # the base row keeps its own
    # the committed frame-interval row takes its base row's rate this way
    interval_row = 'SL_dis_neighbours_no_semantics_no_mfsab_no_image_gate_up16_bounded_e0p3r0_interval12_lr2e-3'
    assert options.ROW_BUDGETS[interval_row] == {'lr': 2e-3}
    # a baseline sized alike (no options of its own) stays so when its variant changes only the training
    options._variant('baseline_ema', 'SingleFrame', 'averaged', train={'ema_decay': 0.998})
    assert options.MODELS['baseline_ema'][1:] == ('SLFrameWise', None)
    assert (options.network_options('baseline_ema', 'tiny', pretrained_flow=True)
            == options.network_options('SingleFrame', 'tiny', pretrained_flow=True))


def test_edvr_takes_the_training_clip_length_and_is_tested_on_sliding_windows_of_it(tmp_path):
    edvr = options.network_options('EDVR', 'tiny', pretrained_flow=True, num_frame=7)
    assert edvr['num_frame'] == 7
    test_opt = options.test_options('bench_EDVR', edvr, {'demo': {'name': 'demo'}}, 'net.pth')
    assert test_opt['val']['tile'] == {'padding': 'reflection_circle', 'multiple': 4, 'num_neighbours': 7}
    assert list(test_opt['datasets']) == ['test_1'] and test_opt['min_input_size'] == 4


def test_a_preset_without_pretrained_flow_is_one_line_error_before_any_work(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        compare.main(['--models', 'SemanticLens', '--pretrained-flow', '--data-root', str(tmp_path / 'nodata'),
                      '--out', str(tmp_path / 'out'), '--work-dir', str(tmp_path / 'work')])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "no pretrained flow of SemanticLens 'paper'" in error[0]
    assert not (tmp_path / 'work').exists()


def test_unknown_model_is_one_line_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        compare.main(['--quick', '--models', 'SemanticLens,NoSuchNet'])
    assert exit_info.value.code == 2
    assert 'NoSuchNet' in capsys.readouterr().err


def test_a_models_list_that_names_nothing_is_one_line_error_in_every_benchmark_before_any_work(tmp_path, capsys):
    from sl_arch.bench import curve, ensemble, flow_ceiling, semantics, validate
    work = str(tmp_path / 'work')
    commands = ((compare.main, ['--quick', '--work-dir', work, '--out', str(tmp_path / 'out')]),
                (semantics.main, ['--work-dir', work, '--out', str(tmp_path / 'out')]),
                (curve.main, [str(tmp_path / 'report')]), (ensemble.main, [work]), (flow_ceiling.main, [work]),
                (validate.main, [work, '--set', str(tmp_path / 'nowhere')]))
    for command, argv in commands:
        for models in (',', ' , ,', ''):
            with pytest.raises(SystemExit) as exit_info:
                command(argv + ['--models', models])
            assert exit_info.value.code == 2, command.__module__
            error = capsys.readouterr().err.strip().splitlines()
            assert error == [f'error: --models {models!r} names nothing; give one or more comma-separated names.'], \
                command.__module__
    assert list(tmp_path.iterdir()) == []


def test_a_count_below_one_is_one_line_naming_that_option_in_every_benchmark_before_any_work(tmp_path, capsys):
    from sl_arch.bench import autocast, ensemble, flow, semantics, step_time, validate
    work, out = ['--work-dir', str(tmp_path / 'work')], ['--out', str(tmp_path / 'out')]
    cases = [(compare.main, ['--quick'] + work + out, option) for option in ('--max-iters', '--jobs', '--repeats',
                                                                              '--threads')]
    cases += [(semantics.main, work + out, '--iters'), (semantics.main, work + out, '--jobs'),
              (autocast.main, work + out, '--iters'), (ensemble.main, [str(tmp_path), '--models', 'A'], '--threads'),
              (validate.main, [str(tmp_path), '--set', str(tmp_path)], '--threads'),
              (flow.main, ['train', '--synthetic', str(tmp_path), '--out', str(tmp_path / 'flow.pth')], '--iters'),
              (flow.main, ['train', '--synthetic', str(tmp_path), '--out', str(tmp_path / 'flow.pth')], '--batch')]
    cases += [(step_time.main, ['--models', 'SingleFrame_lean'], option)
              for option in ('--batch', '--frames', '--lr-side', '--repeats')]
    for command, argv, option in cases:
        with pytest.raises(SystemExit) as exit_info:
            command(argv + [option, '0'])
        assert exit_info.value.code == 2, (command.__module__, option)
        assert capsys.readouterr().err.strip().splitlines() == [f'error: {option} 0: give at least 1.'], option
    assert list(tmp_path.iterdir()) == []


def test_a_mistyped_row_gets_its_closest_names_and_the_listing_command_not_every_row(capsys):
    for argv in (['--models', 'bicubic,SingleFrame_lean_em'], ['--lr', 'SingleFrame_lean_em=5e-4']):
        with pytest.raises(SystemExit) as exit_info:
            compare.main(['--quick'] + argv)
        assert exit_info.value.code == 2
        error = capsys.readouterr().err.strip().splitlines()
        assert len(error) == 1 and "'SingleFrame_lean_em' (closest: SingleFrame_lean_ema" in error[0]
        assert '`sl-bench --list-models`' in error[0]
        assert len(error[0]) < 400  # a hundred rows' names are not in it
    with pytest.raises(SystemExit):
        compare.main(['--quick', '--models', 'xyz'])
    assert "unknown row 'xyz'; `sl-bench --list-models`" in capsys.readouterr().err


def test_list_models_prints_every_row_with_its_label_and_trains_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    compare.main(['--list-models'])
    lines = capsys.readouterr().out.splitlines()
    assert lines == [f'{key}: {label}' for key, (label, *_) in options.MODELS.items()]
    assert 'SingleFrame_lean_ema: Single-frame SRResNet, 32 ch / 6 blocks' in '\n'.join(lines)
    assert list(tmp_path.iterdir()) == []


def test_a_reader_that_stops_early_ends_the_listing_quietly():
    read, write = os.pipe()
    os.close(read)  # the reader is gone before the first line, as with `| head` once it has its lines
    try:
        done = subprocess.run([sys.executable, '-c', 'from sl_arch.bench.compare import main; main(["--list-models"])'],
                              stdout=write, stderr=subprocess.PIPE, text=True, timeout=300)
    finally:
        os.close(write)
    assert done.returncode == 1 and done.stderr == ''


def test_missing_benchmark_data_names_the_folder_and_the_script(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        compare.main(['--quick', '--models', 'bicubic', '--data-root', str(tmp_path / 'nodata'),
                      '--out', str(tmp_path / 'out'), '--work-dir', str(tmp_path / 'work')])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and 'zoo_mix/train/GT is missing' in error[0] and 'scripts/zoo_data.sh' in error[0]
    assert not (tmp_path / 'work').exists() and not (tmp_path / 'out').exists()


def test_degradation_picks_the_lr_frames_of_every_set_and_missing_ones_are_named(tmp_path, capsys):
    root = write_benchmark_data(tmp_path / 'data')
    train_set, _ = options.dataset_options(root)
    assert train_set['dataroot_lq'].endswith('zoo_mix/train/BI')
    with pytest.raises(SystemExit) as exit_info:  # the miniature data have BI frames only
        compare.main(['--quick', '--models', 'bicubic', '--degradation', 'bd', '--data-root', root,
                      '--out', str(tmp_path / 'out'), '--work-dir', str(tmp_path / 'work')])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and 'zoo_mix/train/BD is missing' in error[0]
    assert not (tmp_path / 'work').exists() and not (tmp_path / 'out').exists()
    for folder in Path(root).glob('**/BI'):
        (folder.parent / 'BD').symlink_to(folder.name)
    train_set, test_sets = options.dataset_options(root, 'BD')
    assert all(test['dataroot_lq'].endswith('/BD') for test in [train_set, *test_sets.values()])


def test_set_motion_measures_how_far_pixels_move_between_frames_in_lr_pixels(tmp_path):
    from sl_arch.bench.measure import set_motion
    rng = np.random.default_rng(0)
    texture = cv2.resize(rng.uniform(0, 255, (24, 32, 3)).astype(np.uint8), (192, 144), interpolation=cv2.INTER_CUBIC)
    test_set = {'name': 'pan', 'type': 'SLVideoTestDataset', 'dataroot_gt': str(tmp_path / 'GT'),
                'dataroot_lq': str(tmp_path / 'BI'), 'io_backend': {'type': 'disk'}}

    def write_clip(step):  # GT 128x96 moving `step` GT px to the left per frame
        for frame in range(4):
            gt = np.ascontiguousarray(texture[16:112, 8 + step * frame:136 + step * frame])
            for kind, image in (('GT', gt), ('BI', cv2.resize(gt, (32, 24), interpolation=cv2.INTER_AREA))):
                Path(tmp_path, kind, 'clip').mkdir(parents=True, exist_ok=True)
                cv2.imwrite(str(tmp_path / kind / 'clip' / f'{frame:08d}.png'), image)

    write_clip(2)  # half an LR pixel per frame
    moving = set_motion(test_set)
    assert moving['median_px'] == pytest.approx(0.5, abs=0.1) and moving['moving_share'] > 0.9
    write_clip(0)
    still = set_motion(test_set)
    assert still['median_px'] < 0.05 and still['moving_share'] < 0.05
    section = report.motion_section({'motion': {'real_heldout': moving, 'demo_bbb_val': still}})
    assert '| bikes + carphone (real) | 0.5' in section and '| demo held-out (real) | 0.00 | 0% |' in section


def test_the_report_names_what_the_training_folder_holds(tmp_path):
    gt = tmp_path / 'indomain' / 'zoo_mix' / 'train' / 'GT'
    for clip, frames in (('crossing_000', 3), ('crossing_001', 3), ('bikes', 5)):
        (gt / clip).mkdir(parents=True)
        for frame in range(frames):
            cv2.imwrite(str(gt / clip / f'{frame:08d}.png'), np.zeros((8, 8, 3), np.uint8))
    (gt / 'notes.txt').write_text('not a clip')
    summary = compare.clip_summary(str(gt))
    assert summary == '3 clips, 11 frames: bikes, crossing x2'
    info = {'train_gt': str(gt), 'data_script': 'bash scripts/zoo_data.sh', 'train_clips': summary}
    assert report.training_clips(info) == summary  # another --data-root: its clips, not the zoo's description
    info['train_gt'] = os.path.join('datasets', 'zoo_mix', 'train', 'GT')
    assert report.training_clips(info).startswith("synthetic clips + the demo footage's training frames")
    assert report.training_clips(info).endswith(summary)


def test_a_report_folder_holding_files_sl_bench_did_not_write_is_refused_before_any_work(tmp_path, capsys):
    out = tmp_path / 'mine'
    out.mkdir()
    (out / 'report.md').write_text('my report')

    with pytest.raises(SystemExit) as exit_info:
        compare.main(['--quick', '--models', 'bicubic', '--data-root', str(tmp_path / 'nodata'), '--out', str(out),
                      '--work-dir', str(tmp_path / 'work')])

    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f'error: --out {out} holds report.md that sl_arch did not write; choose another --out folder.']
    assert (out / 'report.md').read_text() == 'my report' and not (tmp_path / 'work').exists()


def test_a_work_dir_holding_files_the_benchmark_did_not_write_is_refused_before_any_work(tmp_path, capsys,
                                                                                       slow_cpu_autocast):
    from sl_arch.bench import autocast, flow, semantics
    mine = tmp_path / 'mine'
    (mine / 'logs').mkdir(parents=True)
    log = mine / 'logs' / 'bench_SingleFrame_lean_train.out'  # a name sl-bench writes
    log.write_text('my log')
    (mine / 'notes.txt').write_text('my notes')
    (mine / '.sl-tmp-state.pth.1a2b3c4d.tmp').write_bytes(b'')  # a killed run's temporary is ours, not in the way
    out = ['--out', str(tmp_path / 'out')]
    commands = ((compare.main, ['--quick', '--models', 'bicubic,SingleFrame_lean'] + out, 'notes.txt'),
                (semantics.main, out, 'notes.txt'), (autocast.main, out, 'notes.txt'),
                (flow.main, ['train', '--synthetic', str(tmp_path), '--out', str(tmp_path / 'flow.pth')],
                 'logs, notes.txt'))  # the flow bench's work dir holds its training state only
    for command, argv, foreign in commands:
        with pytest.raises(SystemExit) as exit_info:
            command(argv + ['--work-dir', str(mine)])
        assert exit_info.value.code == 2, command.__module__
        assert capsys.readouterr().err.strip().splitlines() == [
            f'error: --work-dir {mine} holds {foreign}, which this command did not write; give a new or empty folder, '
            'or the --work-dir of an earlier run.'], command.__module__
    assert log.read_text() == 'my log' and sorted(path.name for path in tmp_path.iterdir()) == ['mine']
    assert sorted(path.name for path in mine.rglob('*')) == ['.sl-tmp-state.pth.1a2b3c4d.tmp',
                                                             'bench_SingleFrame_lean_train.out', 'logs', 'notes.txt']


def test_a_failing_child_process_returns_the_last_line_of_its_error():
    # (a child's result coming back is checked by the micro benchmark: every row is measured in one)
    failed = run_in_child('json:loads', 'not json')
    assert set(failed) == {'error'} and failed['error'].startswith('json.decoder.JSONDecodeError')


def test_verdict_states_margins_computed_from_the_rows():
    def row(key, label, psnrs, seconds_per_iteration, iterations):
        metrics = {name: {'psnr': {'mean': value, 'sequences': {}}, 'ssim': {'mean': 0.8, 'sequences': {}}}
                   for name, value in zip(options.TEST_SETS, psnrs)}
        return {'key': key, 'label': label, 'metrics': metrics, 'params': 490000, 'params_no_spynet': 480000,
                'ms_per_frame': 10.0, 'train': {'seconds_per_iteration': seconds_per_iteration,
                                                'iterations': iterations}}

    assert len(options.TEST_SETS) == 5
    rows = [row('SemanticLens', 'SemanticLens', [28.0, 33.0, 38.0, 28.5, 31.0], 0.8, 375),
            row('SingleFrame', 'Single-frame', [27.9, 32.5, 37.7, 28.0, 31.2], 0.2, 1500),
            row('BasicVSR', 'BasicVSR', [28.2, 33.4, 38.3, 28.0, 31.0], 2.0, 150)]
    text = '\n'.join(report.verdict(rows))
    assert 'SemanticLens is **ahead by 0.30 dB PSNR-Y on real held-out footage**' in text
    assert '-0.20 dB on synthetic crossing' in text and '375 iterations' in text and '1500.' in text
    assert '+0.30 dB on bikes, moving part (real)' in text
    assert 'Against BasicVSR (150 iterations in the same budget): SemanticLens behind by 0.30 dB' in text
    assert 'a ratio of 0.40' in text
    # a run of variants without the full model: each one against the single-frame network and the other baselines,
    # its label (often 300 characters and more) given once
    variant = dict(row('SL_dis_flow', 'SemanticLens, DIS flow', [27.8, 32.4, 37.3, 28.1, 31.0], 0.6, 900), params=200000)
    lines = report.verdict([rows[1], variant, rows[2]])
    assert lines[0] == '- **SemanticLens, DIS flow** (0.200M parameters, 900 iterations) against:'
    assert lines[1].startswith('  - **the single-frame network of 0.490M parameters, 1500 iterations at equal CPU '
                               'time: behind by 0.20 dB PSNR-Y on real held-out footage** (-0.10 dB on ')
    assert lines[2].startswith('  - BasicVSR, 150 iterations in the same budget: behind by 0.80 dB on real footage')
    assert len(lines) == 3 and sum(line.count('SemanticLens, DIS flow') for line in lines) == 1
    # with a second single-frame network (the lean rows' size) each variant is set against both, sizes stated
    small = dict(row('SingleFrame_lean', 'Single-frame, small', [27.9, 32.4, 37.4, 28.2, 31.1], 0.1, 2500),
                 params=196000)
    second = dict(variant, key='SL_no_image', label='SemanticLens w/o IMAGE', params=190000)
    both = report.verdict([rows[1], small, variant, second])
    assert len(both) == 6 and both[3] == '- **SemanticLens w/o IMAGE** (0.190M parameters, 900 iterations) against:'
    assert both[2].startswith('  - **the single-frame network of 0.196M parameters, 2500 iterations at equal CPU '
                              'time: behind by 0.07 dB')
    # a single-frame row's variant (its weights averaged) is a single-frame reference too, named as such
    averaged = dict(small, key='SingleFrame_lean_ema', label='Single-frame, small, weights averaged')
    assert report.verdict([averaged, variant])[1].startswith(
        '  - **the single-frame network of 0.196M parameters (Single-frame, small, weights averaged), 2500 iterations '
        'at equal CPU time: behind by 0.07 dB')
    assert report.verdict([variant])[0].startswith('- SemanticLens has no result in this run')
    # the default run: the best design (SL_lean) first, against every reference; then the full network, whose
    # ablations do not include the design
    design = dict(row('SL_lean', 'SemanticLens lean', [28.3, 33.3, 38.6, 28.4, 31.1], 0.4, 800), params=185000)
    ablation = row('SL_no_flow', 'SemanticLens w/o flow', [27.9, 32.9, 37.9, 28.5, 31.0], 0.7, 420)
    lines = report.verdict([design, small, *rows, ablation])
    assert lines[0] == '- **SemanticLens lean** (0.185M parameters, 800 iterations) against:'
    assert lines[1].startswith('  - **the single-frame network of 0.196M parameters, 2500 iterations at equal CPU '
                               'time: ahead by 0.83 dB PSNR-Y')
    assert lines[3].startswith('  - BasicVSR, 150 iterations in the same budget: ahead by 0.10 dB on real footage')
    assert lines[4].startswith('- **Against the single-frame network of 0.196M parameters at equal CPU time** '
                               '(SemanticLens: 0.490M): SemanticLens is **ahead by 0.43 dB')
    ablations = [line for line in lines if 'against the full model' in line]
    assert len(ablations) == 1 and ablations[0].startswith('- SemanticLens w/o flow: -0.10 dB on real footage')
    assert sum(line.count('SemanticLens lean') for line in lines) == 1
    # without the full network the design still comes first, before the other variants
    assert report.verdict([variant, design, small])[0] == lines[0]


def test_the_plot_legend_gives_each_label_up_to_its_colon_and_cuts_long_ones():
    assert report.legend_label('SemanticLens lean: DIS flow, aligned neighbours in') == 'SemanticLens lean'
    assert report.legend_label('Bicubic') == 'Bicubic'
    long = 'SemanticLens + aligned neighbours in, DIS flow, w/o semantic branch, w/o MFSAB, alignment gate'
    assert report.legend_label(long, width=40) == 'SemanticLens + aligned neighbours in…'
    assert report.legend_label(long) == 'SemanticLens + aligned neighbours in, DIS flow, w/o…'


def test_micro_benchmark_trains_every_model_for_the_same_cpu_seconds_and_reports_measured_rows(tmp_path, monkeypatch,
                                                                                                  capsys):
    monkeypatch.chdir(tmp_path)
    os.symlink(ROOT / 'model_zoo', tmp_path / 'model_zoo')
    data_root = write_benchmark_data(tmp_path / 'data')
    out = tmp_path / 'report'
    earlier = tmp_path / 'work' / 'experiments' / 'bench_SemanticLens'  # a folder in the way is archived, not removed
    earlier.mkdir(parents=True)
    (earlier / 'notes.txt').write_text('mine')
    compare.main(['--quick', '--models', 'bicubic,SemanticLens,BasicVSR', '--data-root', data_root,
                  '--cpu-seconds', '1', '--gt-size', '64', '--num-frame', '3', '--batch-size', '1', '--repeats', '1',
                  '--work-dir', str(tmp_path / 'work'), '--out', str(out)])

    assert [path.read_text() for path in (tmp_path / 'work' / 'experiments').glob('*/notes.txt')] == ['mine']
    for name in ('report.md', 'psnr_vs_ms.png', 'results.json'):
        assert (out / name).stat().st_size > 0
    rows = json.loads((out / 'results.json').read_text())['rows']
    assert [row['key'] for row in rows] == ['bicubic', 'SemanticLens', 'BasicVSR']
    for row in rows:
        assert 'error' not in row and row['ms_per_frame'] > 0
        assert list(row['metrics']) == list(options.TEST_SETS)
        assert set(row['metrics']['demo_bbb_val']['psnr']['sequences']) == {'demo_000', 'demo_001'}
        assert all(5 < metrics['psnr']['mean'] < 60 for metrics in row['metrics'].values())
    trained = rows[1:]
    for row in trained:
        train = row['train']
        assert train['clock'] == 'cpu' and train['budget_seconds'] == 1 and train['budget_spent'] and train['final']
        assert train['seconds'] >= 1 and train['iterations'] >= 1 and row['gflops_per_frame'] > 0
        assert Path(row['checkpoint']).is_file()
    # one template: only name, network_g and min_input_size differ; BasicVSR's 16-px clips are padded to 33
    option_files = [yaml.safe_load(Path(tmp_path, 'work', 'options', f'train_bench_{row["key"]}.yml').read_text())
                    for row in trained]
    assert [option.get('min_input_size') for option in option_files] == [16, 33]  # arch_spec's smallest sides
    assert option_files[0]['network_g']['flow_load_path'].endswith('slflow_tiny_synthetic_dis.pth')
    assert option_files[1]['network_g']['spynet_path'].endswith('spynet_synthetic_dis.pth')
    for option in option_files:
        for key in ('name', 'network_g', 'min_input_size'):
            option.pop(key, None)
    assert option_files[0] == option_files[1]
    assert option_files[0]['train']['cpu_seconds'] == 1

    text = (out / 'report.md').read_text()
    results = text.split('## Verdict')[0]
    table_rows = [line for line in results.splitlines() if line.startswith('| ') and not line.startswith('| model')]
    assert [line.split('|')[1].strip() for line in table_rows] == ['Bicubic', 'SemanticLens', 'BasicVSR']
    assert '## How much the held-out sets move' in text and '| synthetic crossing |' in text
    for row, line in zip(rows, table_rows):
        assert f'{report.real_psnr(row):.2f}' in line and re.search(r'\d+\.\d+ / 0\.\d{4}', line)
    for row in trained:  # each trained network upscaled a long clip: the first held-out clip forth and back
        assert row['long_clip']['frames'] >= 192 and row['long_clip']['drop_db'] >= 0
    assert '| long-clip drop (dB) |' in text
    assert 'Against BasicVSR' in text and 'sl-bench --quick' in text and '1 CPU seconds of training' in text

    # run again with a row added: the finished runs are read back, not trained again
    compare.main(['--quick', '--models', 'bilinear,SemanticLens', '--data-root', data_root, '--cpu-seconds', '1',
                  '--gt-size', '64', '--num-frame', '3', '--batch-size', '1', '--repeats', '1',
                  '--work-dir', str(tmp_path / 'work'), '--out', str(tmp_path / 'again')])
    again = json.loads((tmp_path / 'again' / 'results.json').read_text())['rows']
    assert again[1]['read_back'].startswith('run finished') and again[1]['train'] == rows[1]['train']
    assert again[1]['metrics'] == rows[1]['metrics']
    assert len(list(earlier.parent.glob('bench_SemanticLens_archived_*'))) == 1  # archived by the first run only
    assert again[0]['key'] == 'bilinear' and 5 < again[0]['metrics']['demo_bbb_val']['psnr']['mean'] < 60
    assert 'Read back from finished runs' in (tmp_path / 'again' / 'report.md').read_text()

    # run again with a held-out set added (a validation set, here a test set's folder): the finished training is
    # only tested again; the set gets a column, not a share of the real mean
    train_log = tmp_path / 'work' / 'logs' / 'bench_SemanticLens_train.out'
    trained_at = train_log.stat().st_mtime_ns
    compare.main(['--quick', '--models', 'SemanticLens', '--data-root', data_root, '--cpu-seconds', '1',
                  '--gt-size', '64', '--num-frame', '3', '--batch-size', '1', '--repeats', '1',
                  '--val-set', str(Path(data_root, 'real_heldout', 'train')),
                  '--work-dir', str(tmp_path / 'work'), '--out', str(tmp_path / 'extra')])
    extra = json.loads((tmp_path / 'extra' / 'results.json').read_text())['rows'][0]
    assert extra['read_back'].startswith('training finished') and extra['train'] == rows[1]['train']
    assert extra['metrics']['validation'] == extra['metrics']['real_heldout'] == rows[1]['metrics']['real_heldout']
    assert report.real_psnr(extra) == report.real_psnr(rows[1])
    assert '| validation (other real shots, --val-set) PSNR-Y / SSIM-Y |' in (tmp_path / 'extra' / 'report.md').read_text()
    with pytest.raises(SystemExit) as exit_info:
        compare.main(['--quick', '--models', 'SemanticLens', '--data-root', data_root, '--val-set',
                      str(tmp_path / 'nowhere'), '--work-dir', str(tmp_path / 'work'), '--out', str(tmp_path / 'no')])
    assert exit_info.value.code == 2 and '--val-set' in capsys.readouterr().err
    assert len(list(earlier.parent.glob('bench_SemanticLens_archived_*'))) == 1  # not trained again
    assert train_log.stat().st_mtime_ns == trained_at

    # --test-again: same options, the finished training is tested again (after a change of the test-time code)
    test_log = tmp_path / 'work' / 'logs' / 'bench_SemanticLens_test.out'
    tested_at = test_log.stat().st_mtime_ns
    compare.main(['--quick', '--models', 'SemanticLens', '--data-root', data_root, '--cpu-seconds', '1',
                  '--gt-size', '64', '--num-frame', '3', '--batch-size', '1', '--repeats', '1', '--test-again',
                  '--work-dir', str(tmp_path / 'work'), '--out', str(tmp_path / 'test_again')])
    retested = json.loads((tmp_path / 'test_again' / 'results.json').read_text())['rows'][0]
    assert retested['read_back'].startswith('training finished') and retested['read_back'].endswith('tested again')
    assert retested['metrics']['real_heldout'] == rows[1]['metrics']['real_heldout']  # same code, same scores
    assert test_log.stat().st_mtime_ns > tested_at and train_log.stat().st_mtime_ns == trained_at

    # validation of the finished rows on another folder (here a test set's): the same weights, the same score;
    # sl-bench's own records are not touched
    from sl_arch.bench import validate
    done = tmp_path / 'work' / 'logs' / 'bench_SemanticLens.done.json'
    recorded = done.read_text()
    capsys.readouterr()
    validate.main([str(tmp_path / 'work'), '--set', str(Path(data_root, 'real_heldout', 'train')),
                   '--models', 'SemanticLens'])
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith('| SemanticLens |')]
    assert len(lines) == 1 and f'**{rows[1]["metrics"]["real_heldout"]["psnr"]["mean"]:.3f}**' in lines[0]
    assert '| 0.001 |' in lines[0] and done.read_text() == recorded
    with pytest.raises(SystemExit) as exit_info:
        validate.main([str(tmp_path / 'work'), '--set', str(tmp_path / 'nowhere')])
    assert exit_info.value.code == 2 and 'has no GT/ folder' in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        validate.main([str(tmp_path / 'work'), '--set', str(Path(data_root, 'real_heldout', 'train')), '--threads', '0'])
    assert exit_info.value.code == 2 and '--threads 0: give at least 1' in capsys.readouterr().err

    # the same weights with their own flow, the GT frames' flow and none: their own is what sl-bench measured
    from sl_arch.bench import flow_ceiling
    tabled = []  # the unrounded scores the table is made of
    monkeypatch.setattr(flow_ceiling, 'table', lambda results, table=flow_ceiling.table: tabled.append(results)
                        or table(results))
    flow_ceiling.main([str(tmp_path / 'work'), '--models', 'SemanticLens', '--sets', 'real_heldout'])
    lines = [line.split('|') for line in capsys.readouterr().out.splitlines() if '| SemanticLens |' in line]
    assert [cells[3].strip() for cells in lines] == ['bikes + carphone (real)', '**mean**']
    own, oracle, zero = (float(cell.strip(' *')) for cell in lines[0][4:7])
    assert own == pytest.approx(rows[1]['metrics']['real_heldout']['psnr']['mean'], abs=0.006)
    assert 5 < oracle < 60 and lines[1][4].strip(' *') == f'{own:.2f}'
    # a network trained for one CPU second is near its bicubic skip: its flows may change the score only past the
    # table's second decimal, so the flows' effect is checked on the unrounded scores
    (scores,) = [scores for _, name, scores in next(iter(tabled[0].values())) if name == 'real_heldout']
    assert f'{scores["own"]:.2f}' == f'{own:.2f}' and scores['own'] != scores['zero'] != scores['oracle']
    assert done.read_text() == recorded
    for argv, message in ((['--models', 'BasicVSR'], 'takes no given flows'),
                          (['--models', 'SL_no_flow'], '--models SL_no_flow: no finished run'),
                          (['--models', 'SemanticLens', '--sets', 'elsewhere'], '--sets elsewhere: SemanticLens was not')):
        with pytest.raises(SystemExit) as exit_info:
            flow_ceiling.main([str(tmp_path / 'work')] + argv)
        assert exit_info.value.code == 2 and message in capsys.readouterr().err
    no_flow = {'options': {'test': {'name': 'bench_SL_no_flow',
                                    'network_g': {'type': 'SemanticLens', 'use_flow': False}}}}
    with pytest.raises(SLError, match='bench_SL_no_flow was trained without flow'):
        flow_ceiling.row_network(no_flow, 'unread.pth')

    # the two trained rows' errors by the motion at each pixel: every pixel of every sequence in one bin, the margin
    # over all pixels that of the errors pooled over the bins; bad --models are one line
    from sl_arch.bench import motion_margin
    totals = motion_margin.work_dir_margins(str(tmp_path / 'work'), ['BasicVSR', 'SemanticLens'], {}, {})
    assert {name for name, _ in totals} == set(options.real_test_sets())
    folders = {'demo_bbb_val': 'demo_bbb/val', 'real_heldout': 'real_heldout/train', 'real_moving': 'real_moving/train'}
    for (name, folder), bins in totals.items():
        frames = sorted(Path(data_root, folders[name], 'GT', folder).glob('*.png'))
        assert sum(pixels for pixels, *_ in bins) == len(frames) * 64 * 64  # the test clips' GT frames are 64x64
        assert all(reference > 0 and row > 0 for pixels, reference, row in bins if pixels)
    capsys.readouterr()
    motion_margin.main([str(tmp_path / 'work'), '--models', 'BasicVSR,SemanticLens'])
    lines = [line.split('|') for line in capsys.readouterr().out.splitlines() if '| **all** |' in line]
    assert len(lines) == len(totals)
    bins = totals[('real_moving', 'bikes')]  # the last sequence of the table
    pooled = motion_margin.margin_db(sum(b[1] for b in bins), sum(b[2] for b in bins))
    assert lines[-1][5].strip(' *') == f'{pooled:+.2f}'
    for argv, message in ((['--models', 'SemanticLens'], 'give two finished rows, the reference first'),
                          (['--models', 'SL_no_flow,SemanticLens'], '--models SL_no_flow: no finished run')):
        with pytest.raises(SystemExit) as exit_info:
            motion_margin.main([str(tmp_path / 'work')] + argv)
        assert exit_info.value.code == 2 and message in capsys.readouterr().err

    # the same weights tested with each two-pass ensemble: sl-test as sl-bench runs it, one val key set; a rerun
    # reads the tests back; sl-bench's own records are not touched
    from sl_arch.bench import ensemble
    capsys.readouterr()
    ensemble.main([str(tmp_path / 'work'), '--models', 'SemanticLens,BasicVSR', '--reference', 'BasicVSR'])
    out = capsys.readouterr().out
    every = {(cells[2].strip(), cells[3].strip()): cells for cells in (line.split('|') for line in out.splitlines())
             if len(cells) == 9 and cells[3].strip() in ('plain', 'flip_seq', 'flip_width')}
    plain = report.real_psnr(rows[1])
    assert float(every[('SemanticLens', 'plain')][4]) == pytest.approx(plain, abs=6e-4)
    record = json.loads(done.read_text())
    for test in ('flip_seq', 'flip_width'):
        score, gain = float(every[('SemanticLens', test)][4]), float(every[('SemanticLens', test)][5])
        # the two-pass test's own scores (read back, not run again), unrounded: a network trained for one CPU second
        # is near its bicubic skip, so its two passes may differ only past the table's third decimal
        two_pass = ensemble.scores(ensemble.ensemble_metrics(str(tmp_path / 'work'), 'SemanticLens', record, test))[0]
        assert two_pass != plain and score == pytest.approx(two_pass, abs=6e-4)
        assert gain == pytest.approx(score - plain, abs=2e-3)
    summary = [line for line in out.splitlines() if line.startswith('| SemanticLens | flip_width | 1 |')]
    assert len(summary) == 1 and 'margin over BasicVSR at equal test cost, mean' in out
    flip_log = tmp_path / 'work' / 'logs' / 'ens_flip_width_bench_SemanticLens_test.out'
    tested_at = flip_log.stat().st_mtime_ns
    ensemble.main([str(tmp_path / 'work'), '--models', 'SemanticLens', '--ensembles', 'flip_width'])
    assert flip_log.stat().st_mtime_ns == tested_at and summary[0].split('|')[4] in capsys.readouterr().out
    assert done.read_text() == recorded
    # a network restoring each frame alone gives flip_seq's two passes the same output: not run, its plain score
    frame_wise = {'options': {'test': {'network_g': {'type': 'SLFrameWise', 'network': {'type': 'MSRResNet'}}}},
                  'result': {'metrics': {'x': 1}}}
    assert ensemble.ensemble_metrics('unused', 'SingleFrame', frame_wise, 'flip_seq') == {'x': 1}
    for argv, message in ((['--models', 'SemanticLens', '--reference', 'BasicVSR'], '--reference BasicVSR is not'),
                          (['--models', 'SemanticLens', '--ensembles', 'flip_time'], '--ensembles flip_time: give'),
                          (['--models', 'SL_no_flow'], '--models SL_no_flow: no finished run')):
        with pytest.raises(SystemExit) as exit_info:
            ensemble.main([str(tmp_path / 'work')] + argv)
        assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_ensemble_tests_a_row_trained_with_averaged_weights_with_its_last_weights_too(tmp_path, monkeypatch, capsys):
    from sl_arch.bench import ensemble
    tested = []
    monkeypatch.setattr(ensemble, 'run_test', lambda work_dir, test, threads, reuse=False:
                        tested.append(test) or {'real': {'psnr': {'mean': 30.0}}})
    averaged = {'options': {'test': {'name': 'bench_A', 'network_g': {'type': 'SemanticLens'},
                                     'path': {'pretrain_network_g': 'a.pth', 'param_key_g': 'params_ema'}}},
                'result': {'metrics': {'real': {'psnr': {'mean': 31.0}}}}}
    assert ensemble.ensemble_metrics('work', 'A', averaged, ensemble.LAST) == {'real': {'psnr': {'mean': 30.0}}}
    assert tested[0]['name'] == 'last_bench_A' and tested[0]['path'] == {'pretrain_network_g': 'a.pth',
                                                                          'param_key_g': 'params'}
    assert averaged['options']['test']['path']['param_key_g'] == 'params_ema'  # the record is not changed
    last_only = {'options': {'test': dict(averaged['options']['test'], path={'param_key_g': 'params'})},
                 'result': averaged['result']}
    assert ensemble.ensemble_metrics('work', 'B', last_only, ensemble.LAST) is last_only['result']['metrics']
    assert len(tested) == 1  # nothing else to test: its plain score is its last weights'
    # margins: last weights against the reference's last weights, two passes against its better two-pass test
    by_test = {'plain': (31.0, 30.0), ensemble.LAST: (30.5, 29.0), 'flip_width': (31.2, 30.1), 'flip_seq': (31.1, 30.3)}
    assert ensemble._reference_score(by_test, ensemble.LAST, 0) == 30.5
    assert ensemble._reference_score(by_test, 'flip_seq', 0) == 31.2
    assert ensemble._reference_score(by_test, 'plain', 1) == 30.0
    with pytest.raises(SystemExit) as exit_info:
        ensemble.main([str(tmp_path), '--models', 'A', '--ensembles', 'none'])
    assert exit_info.value.code == 2 and 'or add --last-weights' in capsys.readouterr().err


def test_run_test_reads_back_only_a_finished_test_of_the_same_options(tmp_path, monkeypatch):
    from sl_arch.bench import runs
    from sl_arch.models.sl_video_recurrent_model import metrics_file_name
    from sl_arch.utils.files import write_json
    calls = []

    def fake_test(args, cwd, log_path, threads):  # sl-test writing its metrics file, numbered by the call
        calls.append(args)
        write_json(os.path.join(cwd, 'results', 'ens', metrics_file_name('a')), {'metrics': {'psnr': len(calls)}})

    monkeypatch.setattr(runs, 'run_command', fake_test)
    opt = {'name': 'ens', 'datasets': {'test_1': {'name': 'a'}}, 'val': {'flip_width': True}}
    first = runs.run_test(str(tmp_path), opt, 1, reuse=True)
    assert first == {'a': {'psnr': 1}} and runs.run_test(str(tmp_path), opt, 1, reuse=True) == first
    assert len(calls) == 1  # read back from logs/ens_test.done.json
    # other options: tested again, though the metrics files of the earlier test are still there
    assert runs.run_test(str(tmp_path), dict(opt, val={'flip_seq': True}), 1, reuse=True) == {'a': {'psnr': 2}}
    assert runs.run_test(str(tmp_path), opt, 1) == {'a': {'psnr': 3}}  # without reuse, always tested
    assert len(calls) == 3


def training_options_of_rows(keys, budget, work_dir, monkeypatch):
    """``{run name: training options}`` sl-bench writes for rows ``keys`` under ``budget`` (nothing trains)."""
    from sl_arch.bench import runs
    written = {}
    monkeypatch.setattr(runs, 'train_then_test', lambda name, train, test, work_dir, threads, trained=None:
                        written.setdefault(name, train) and {'train': {}, 'metrics': {}})
    train_set = {'name': 'train', 'type': 'SLVideoRecurrentDataset', 'dataroot_gt': 'gt', 'dataroot_lq': 'lq',
                 'io_backend': {'type': 'disk'}}
    for key in keys:
        network_g = options.network_options(key, 'tiny', pretrained_flow=False)
        runs.train_and_test_row({'key': key, 'network_g': network_g}, budget, train_set, {}, str(work_dir), 1)
    return written


def test_the_seed_option_and_a_rows_training_changes_reach_its_option_files(tmp_path, monkeypatch):
    _, budget = compare.mode_budget(compare.parse_args(['--quick', '--seed', '3']))
    assert budget['seed'] == 3
    with pytest.raises(SLError, match='--seed -1: give a seed from 0'):
        compare.mode_budget(compare.parse_args(['--quick', '--seed', '-1']))
    written = training_options_of_rows(('SemanticLens', 'SL_frozen_flow'), budget, tmp_path, monkeypatch)
    plain, frozen = written['bench_SemanticLens'], written['bench_SL_frozen_flow']
    assert plain['manual_seed'] == frozen['manual_seed'] == 3
    assert plain['train']['fix_flow'] == 0 and frozen['train']['fix_flow'] >= budget['max_iter']


def test_a_row_trained_with_averaged_weights_is_tested_with_them(tmp_path, monkeypatch):
    from sl_arch.bench import runs
    _, budget = compare.mode_budget(compare.parse_args(['--quick']))
    tested = {}
    monkeypatch.setattr(runs, 'train_then_test', lambda name, train, test, work_dir, threads, trained=None:
                        tested.setdefault(name, (train, test)) and {'train': {}, 'metrics': {}})
    train_set = {'name': 'train', 'type': 'SLVideoRecurrentDataset', 'dataroot_gt': 'gt', 'dataroot_lq': 'lq',
                 'io_backend': {'type': 'disk'}}
    for key in ('SingleFrame_lean', 'SingleFrame_lean_ema'):
        network_g = options.network_options(key, 'tiny', pretrained_flow=False)
        runs.train_and_test_row({'key': key, 'network_g': network_g}, budget, train_set, {}, str(tmp_path), 1)
    (plain_train, plain_test), (ema_train, ema_test) = (tested['bench_SingleFrame_lean'],
                                                        tested['bench_SingleFrame_lean_ema'])
    assert plain_train['train']['ema_decay'] == 0 and plain_test['path']['param_key_g'] == 'params'
    assert ema_train['train']['ema_decay'] == 0.998 and ema_test['path']['param_key_g'] == 'params_ema'
    # and the report says which rows averaged their weights
    rows = [{'key': key, 'label': key, 'kind': 'SLFrameWise', 'network_g': {'type': 'SLFrameWise'}}
            for key in ('SingleFrame_lean', 'SingleFrame_lean_ema')]
    info = {'budget': budget, 'test_sets': {}, 'train_gt': 'gt', 'train_clips': 'clips'}
    assert ('EMA of the weights (SingleFrame_lean_ema: 0.998; tested with the averaged weights), no EMA for the others'
            in report.budget_section(rows, info))
    assert '; no EMA; ' in report.budget_section(rows[:1], info)
    # and the long-clip drop and timings are measured on the weights that were tested
    payloads = []
    monkeypatch.setattr(compare, 'run_in_child', lambda target, payload, threads: payloads.append(payload) or {})
    compare.measure_rows([dict(row, min_input_size=None) for row in rows], {}, budget, 1)
    assert [payload['param_key'] for payload in payloads] == ['params', 'params_ema']


def test_autocast_and_channels_last_reach_every_rows_training_only_when_asked(slow_cpu_autocast):
    import torch
    train_set = {'name': 'train', 'type': 'SLVideoRecurrentDataset', 'dataroot_gt': 'gt', 'dataroot_lq': 'lq',
                 'io_backend': {'type': 'disk'}}
    network_g = options.network_options('SingleFrame', 'tiny', pretrained_flow=False)
    written = {}
    for argv in ([], ['--autocast', 'fp32'], ['--autocast', 'bf16', '--channels-last']):
        _, budget = compare.mode_budget(compare.parse_args(['--quick'] + argv))
        written[' '.join(argv)] = (options.train_options('bench_x', network_g, budget, train_set)['train'],
                                   report.arithmetic(budget))
    assert 'autocast' not in written[''][0] and 'channels_last' not in written[''][0]
    assert written['--autocast fp32'] == written['']  # the default spelt out: same option files, rows read back
    mixed, text = written['--autocast bf16 --channels-last']
    assert mixed['autocast'] == 'bf16' and mixed['channels_last'] is True
    assert 'bfloat16' in text and 'channels-last' in text and written[''][1] == 'training in float32, tests in float32'
    if not torch.cuda.is_available():
        from sl_arch.utils.precision import cpu_has_native
        instead = 'use --autocast bf16' if cpu_has_native('bf16') else r'leave --autocast out \(it has no bf16'
        with pytest.raises(SLError, match=f'--autocast fp16 needs CUDA, which this machine does not have; on this CPU '
                                          f'{instead}'):
            compare.mode_budget(compare.parse_args(['--quick', '--autocast', 'fp16']))


def test_sl_bench_refuses_bf16_on_a_cpu_without_its_arithmetic_before_training_anything(cpu_without_bf16, tmp_path,
                                                                                          capsys):
    import torch
    if torch.cuda.is_available():
        pytest.skip('with CUDA every row trains on the GPU')
    with pytest.raises(SLError, match=r"^--autocast bf16 on this CPU \(\w+, without AVX-512 BF16 or AMX\) would run every "
                                      r"convolution on PyTorch's slow path, about 9-18x slower than float32; leave "
                                      r"--autocast out to train every row in float32\.$"):
        compare.mode_budget(compare.parse_args(['--quick', '--autocast', 'bf16']))
    assert 'autocast' not in compare.mode_budget(compare.parse_args(['--quick']))[1]  # float32 runs as before
    from sl_arch.bench import autocast  # the float32-against-bf16 benchmark: nothing to compare
    with pytest.raises(SystemExit) as exit_info:
        autocast.main(['--work-dir', str(tmp_path / 'work'), '--out', str(tmp_path / 'out')])
    error = capsys.readouterr().err.strip().splitlines()
    assert exit_info.value.code == 2 and len(error) == 1 and re.match(
        r'error: python -m sl_arch.bench.autocast trains in bf16, which on this CPU .* slower than float32; run it on '
        r'a CPU with bf16 arithmetic', error[0])
    assert not (tmp_path / 'work').exists() and not (tmp_path / 'out').exists()


def test_step_time_names_the_row_and_variant_whose_process_fails():
    from sl_arch.bench import step_time
    with pytest.raises(SLError, match=r'step_time: the broken training iteration of SingleFrame_lean failed \(its '
                                      r'process exited with 1'):
        step_time.step_times(['SingleFrame_lean'], batch=1, frames=2, lr_side=16, repeats=1,
                             variants=(('fp32', None, False), ('broken', 'not-a-dtype', False)))


def test_step_time_times_float32_alone_on_a_cpu_without_bf16_arithmetic(capsys, cpu_without_bf16):
    from sl_arch.bench import step_time
    step_time.main(['--models', 'SingleFrame_lean', '--batch', '1', '--frames', '2', '--lr-side', '16',
                    '--repeats', '1'])
    out = capsys.readouterr().out.splitlines()
    assert [line for line in out if line.startswith('| model')] == ['| model | params | fp32 | fp32, channels-last |']
    assert out[-1].startswith('bf16 left out: this CPU (') and 'has no bf16 arithmetic' in out[-1]
    for argv, message in ((['--precision', 'fp32,bf16'], '--precision bf16 on this CPU ('),
                          (['--precision', 'bf16'], 'fp32 must be one of them'),
                          (['--precision', 'fp32,fp16'], '--precision fp32,fp16: unknown fp16')):
        with pytest.raises(SystemExit) as exit_info:
            step_time.main(['--models', 'SingleFrame_lean', *argv])
        error = capsys.readouterr().err.strip().splitlines()
        assert exit_info.value.code == 2 and len(error) == 1 and message in error[0]


def test_step_time_prints_each_networks_iteration_time_per_arithmetic_and_refuses_bad_options(capsys,
                                                                                            slow_cpu_autocast):
    from sl_arch.bench import step_time
    step_time.main(['--models', 'SingleFrame,SL_dis_neighbours_no_semantics_no_mfsab_gate', '--batch', '1',
                    '--frames', '2', '--lr-side', '16', '--repeats', '1', '--precision', 'fp32,bf16'])
    table = [line for line in capsys.readouterr().out.splitlines() if line.startswith('| ')]
    assert table[0] == '| model | params | fp32 | fp32, channels-last | bf16 | bf16, channels-last |'
    assert [row.split(' | ')[0] for row in table[1:]] == [
        "| Single-frame SRResNet, the full tiny network's size",
        '| SemanticLens + aligned neighbours in, DIS flow, w/o semantic branch, w/o MFSAB, alignment gate']
    for row in table[1:]:
        cells = row.strip('| ').split(' | ')
        assert cells[2].endswith('(1.00x)') and all(re.fullmatch(r'\d+ \(\d+\.\d\dx\)', cell) for cell in cells[2:])
    with pytest.raises(SystemExit) as exit_info:
        step_time.main(['--models', 'bicubic'])
    assert exit_info.value.code == 2 and 'upsamplings have no training iteration' in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        step_time.main(['--models', 'IconVSR', '--frames', '2'])
    assert exit_info.value.code == 2 and '--frames 2: IconVSR needs clips of at least' in capsys.readouterr().err
    # a sliding-window network restores the centre frame: its loss is against that frame's target
    step_time.main(['--models', 'EDVR', '--batch', '2', '--frames', '3', '--lr-side', '16', '--repeats', '1',
                    '--precision', 'fp32'])
    assert capsys.readouterr().out.splitlines()[-1].startswith('| EDVR | ')
    if not torch.cuda.is_available():
        with pytest.raises(SystemExit) as exit_info:
            step_time.main(['--models', 'SingleFrame', '--device', 'cuda'])
        assert exit_info.value.code == 2 and '--device cuda: this machine has 0 usable CUDA GPU' in capsys.readouterr().err


@pytest.mark.parametrize('row_key, name, iterations, arithmetic', [
    ('SL_dis_neighbours_no_semantics_no_mfsab_gate', 'lean', 4499, {}),
    ('SL_dis_neighbours_no_semantics_no_mfsab_gate_up16', 'lean16', 8794, {'autocast': 'bf16', 'channels_last': True}),
    ('SL_dis_neighbours_no_semantics_no_mfsab_gate_up16_bounded', 'lean16_bounded', 6971,
     {'autocast': 'bf16', 'channels_last': True}),
    ('SL_dis_neighbours_no_semantics_no_mfsab_gate_up16_bounded_ema', 'lean16_bounded_large', 6537,
     {'autocast': 'bf16', 'channels_last': True}),
])
def test_the_lean_model_zoo_files_and_option_files_hold_the_sl_bench_row_they_were_packed_from(row_key, name, iterations,
                                                                                               arithmetic):
    import torch

    from sl_arch.utils.checkpoint import load_network
    row = options.network_options(row_key, 'tiny', pretrained_flow=True)
    zoo_file = Path(__file__).resolve().parents[1] / 'model_zoo' / f'semanticlens_{name}_x4_bi.pth'
    net, net_opt = load_network(str(zoo_file))[:2]
    assert net_opt == row and torch.load(zoo_file, weights_only=False)['trained']['iterations'] == iterations
    with torch.no_grad():
        output = net(torch.rand(1, 3, 3, 20, 24))
    assert output.shape == (1, 3, 3, 80, 96) and torch.isfinite(output).all()
    root = Path(__file__).resolve().parents[1] / 'options'
    train_path = f'train/SemanticLens/train_SemanticLens_{name}_zoo_cpu.yml'
    for path in (train_path, f'test/SemanticLens/test_SemanticLens_{name}_zoo.yml'):
        assert yaml.safe_load((root / path).read_text())['network_g'] == row, path
    train = yaml.safe_load((root / train_path).read_text())
    budget = dict(options.MODES['quick'], seconds=1200, **arithmetic)
    template = dict(options.train_options('x', row, budget, {})['train'], **options.TRAIN_CHANGES.get(row_key, {}))
    keys = ('optim_g', 'scheduler', 'cpu_seconds', 'flow_lr_mul', 'pixel_opt', 'ema_decay', 'autocast', 'channels_last')
    assert {key: train['train'].get(key) for key in keys} == {key: template.get(key) for key in keys}
    assert {key: train['datasets']['train'][key] for key in ('num_frame', 'gt_size', 'batch_size_per_gpu')} == \
        {'num_frame': budget['num_frame'], 'gt_size': budget['gt_size'], 'batch_size_per_gpu': budget['batch_size']}


def test_a_row_another_running_sl_bench_trains_in_the_same_work_dir_is_refused_and_a_stale_lock_taken_over(
        tmp_path, monkeypatch):
    import subprocess
    import sys

    from sl_arch.bench import runs
    _, budget = compare.mode_budget(compare.parse_args(['--quick']))
    seen = []
    monkeypatch.setattr(runs, 'train_then_test', lambda name, train, test, work_dir, threads, trained=None:
                        seen.append((tmp_path / 'logs' / f'{name}.lock').read_text()) or {'train': {}, 'metrics': {}})
    train_set = {'name': 'train', 'type': 'SLVideoRecurrentDataset', 'dataroot_gt': 'gt', 'dataroot_lq': 'lq',
                 'io_backend': {'type': 'disk'}}
    row = {'key': 'SingleFrame', 'label': 'Single-frame',
           'network_g': options.network_options('SingleFrame', 'tiny', False)}
    lock = tmp_path / 'logs' / 'bench_SingleFrame.lock'
    lock.parent.mkdir()
    other = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])
    try:
        lock.write_text(str(other.pid))
        with pytest.raises(SLError, match=f'Single-frame: another sl-bench \\(process {other.pid}\\) is training this '
                                          'row in --work-dir'):
            runs.train_and_test_row(row, budget, train_set, {}, str(tmp_path), 1)
        assert not seen and lock.read_text() == str(other.pid)  # the other's lock is left alone
    finally:
        other.kill()
        other.wait()
    runs.train_and_test_row(row, budget, train_set, {}, str(tmp_path), 1)  # its process has ended: taken over
    assert seen == [str(os.getpid())] and not lock.exists()


def test_lr_and_the_clip_options_set_every_rows_value_or_one_rows_and_bad_values_are_one_line_errors(
        tmp_path, monkeypatch):
    _, default = compare.mode_budget(compare.parse_args(['--quick']))
    _, budget = compare.mode_budget(compare.parse_args(['--quick', '--lr', '2e-3,SingleFrame=4e-3']))
    assert budget['lr'] == 2e-3
    assert budget['row_changes'] == {'SingleFrame': {'lr': 4e-3}, 'SingleFrame_ema': {'lr': 5e-4}}
    # quick mode's own: the 0.48M single-frame network at the rate the validation shots chose for it
    assert default['row_changes'] == {'SingleFrame': {'lr': 5e-4}, 'SingleFrame_ema': {'lr': 5e-4}}
    assert options.MODES['quick']['row_changes']['SingleFrame'] == {'lr': 5e-4}  # the command line changed a copy
    written = training_options_of_rows(('SingleFrame', 'SingleFrame_lean'), default, tmp_path / 'quick', monkeypatch)
    assert [written[f'bench_{key}']['train']['optim_g']['lr'] for key in ('SingleFrame', 'SingleFrame_lean')] \
        == [5e-4, 1e-3]
    written = training_options_of_rows(('SemanticLens', 'SingleFrame'), budget, tmp_path, monkeypatch)
    assert written['bench_SemanticLens']['train']['optim_g']['lr'] == 2e-3
    assert written['bench_SingleFrame']['train']['optim_g']['lr'] == 4e-3
    info = {'budget': budget, 'train_gt': 'gt', 'train_clips': '1 clip',
            'test_sets': {name: name for name in options.TEST_SETS}}
    assert 'cosine from 0.002 (SingleFrame: 0.004, SingleFrame_ema: 0.0005) to' \
        in report.budget_section([], info).replace('\n  ', ' ')
    for text, message in (('0', "'0' is not a learning rate above 0"), ('fast', "'fast' is not a learning rate"),
                          ('nan', "'nan' is not"), ('Nope=1e-3', "unknown row 'Nope'")):
        with pytest.raises(SLError, match=message):
            compare.mode_budget(compare.parse_args(['--quick', '--lr', text]))
    # the clip's frames, patch and batch: one row's own, the others the mode's
    _, budget = compare.mode_budget(compare.parse_args(['--quick', '--num-frame', 'SemanticLens=15', '--gt-size',
                                                        'SemanticLens=64', '--batch-size', '3']))
    written = training_options_of_rows(('SemanticLens', 'SingleFrame'), budget, tmp_path / 'clips', monkeypatch)
    clips = {name: {key: options['datasets']['train'][key] for key in ('num_frame', 'gt_size', 'batch_size_per_gpu')}
             for name, options in written.items()}
    assert clips == {'bench_SemanticLens': {'num_frame': 15, 'gt_size': 64, 'batch_size_per_gpu': 3},
                     'bench_SingleFrame': {'num_frame': 7, 'gt_size': 96, 'batch_size_per_gpu': 3}}
    long_row = 'SL_dis_neighbours_no_semantics_no_mfsab_gate_up16_long'  # its own clips (ROW_BUDGETS)
    written = training_options_of_rows((long_row,), default, tmp_path / 'long', monkeypatch)
    assert {key: written[f'bench_{long_row}']['datasets']['train'][key] for key in ('num_frame', 'batch_size_per_gpu')} \
        == {'num_frame': 14, 'batch_size_per_gpu': 1}
    frame_flow_row = 'SL_dis_neighbours_no_semantics_no_mfsab_no_image_gate_up16_bounded_frameflow'  # its own data
    written = training_options_of_rows((frame_flow_row, 'SingleFrame'), default, tmp_path / 'flow', monkeypatch)
    assert written[f'bench_{frame_flow_row}']['datasets']['train']['dis_flows'] is True
    assert 'dis_flows' not in written['bench_SingleFrame']['datasets']['train']
    # a row's dataset options replace the sampling defaults too (frame intervals), not only add to them
    interval_row = 'SL_dis_neighbours_no_semantics_no_mfsab_no_image_gate_up16_bounded_e0p3r0_interval12_lr2e-3'
    written = training_options_of_rows((interval_row, 'SingleFrame'), default, tmp_path / 'interval', monkeypatch)
    assert written[f'bench_{interval_row}']['datasets']['train']['interval_list'] == [1, 2]
    assert written['bench_SingleFrame']['datasets']['train']['interval_list'] == [1]
    warm_row = 'SL_dis_neighbours_no_semantics_no_mfsab_no_image_gate_up16_bounded_lr3e-3_warmup'  # its own train options
    written = training_options_of_rows((warm_row, 'SingleFrame'), default, tmp_path / 'warm', monkeypatch)
    assert written[f'bench_{warm_row}']['train']['warmup_iter'] == 200
    assert written[f'bench_{warm_row}']['train']['optim_g']['lr'] == 3e-3
    assert written['bench_SingleFrame']['train']['warmup_iter'] == -1
    info['budget'] = budget
    assert ('batch 3, 7 (SemanticLens: 15) frames per clip, GT patch 96 px (SemanticLens: 64)'
            in report.budget_section([], info).replace('\n  ', ' '))
    for option, text, message in (('--gt-size', '66', "'66' is not a GT patch of at least 4 px, a multiple of 4"),
                                  ('--num-frame', 'SemanticLens=0', "'SemanticLens=0' is not a number of frames"),
                                  ('--batch-size', '1.5', "'1.5' is not a batch of at least 1"),
                                  ('--num-frame', 'Nope=3', "unknown row 'Nope'")):
        with pytest.raises(SLError, match=f'{option} {text}: {message}'):
            compare.mode_budget(compare.parse_args(['--quick', option, text]))
    with pytest.raises(SLError, match='--preset bogus: unknown SemanticLens preset; choose one of tiny, '):
        compare.mode_budget(compare.parse_args(['--quick', '--models', 'bicubic', '--preset', 'bogus']))
    for text in ('0', '-5', 'nan', 'inf'):  # nan had trained to --max-iters, reporting 'nan CPU seconds'
        with pytest.raises(SLError, match=f'--cpu-seconds {float(text)}: give a number of seconds above 0'):
            compare.mode_budget(compare.parse_args(['--quick', '--cpu-seconds', text]))


def test_long_clip_drop_finds_a_network_whose_propagated_state_grows_and_not_one_that_holds():
    import torch

    from basicsr.archs import build_network

    from sl_arch.bench.measure import long_clip_drop
    network_g = dict(options.semantic_lens_options('tiny', {'use_semantics': False, 'use_image': False,
                                                            'use_mfsab': False, 'use_flow': False}),
                     num_feat=8, num_upsample_feat=8)
    torch.manual_seed(0)
    lq = torch.rand(5, 3, 16, 16)
    item = {'lq': lq, 'gt': torch.nn.functional.interpolate(lq, scale_factor=4, mode='bicubic').clamp(0, 1)}
    drops = {}
    for name, gain in (('holds', 0), ('grows', 30)):
        torch.manual_seed(0)
        net = build_network(network_g)
        with torch.no_grad():  # what the trunks make of the propagated features: nothing, or much more
            net.trunk['backward'][0].weight[:, 8:] *= 0
            net.trunk['forwards'][0].weight[:, 8:] *= gain
        result = long_clip_drop(net.eval(), torch.device('cpu'), {}, item, min_frames=40)
        assert result['frames'] == 40 and len(result['pass_psnr']) == 8
        drops[name] = result['drop_db']
    assert drops['holds'] < 0.01 and drops['grows'] > 1


def write_report(folder, seed, seconds, scores):
    """A minimal sl-bench results.json: per row key, (real-set PSNR-Y, validation PSNR-Y, iterations)."""
    from sl_arch.bench.options import real_test_sets
    rows = [{'key': 'bicubic', 'label': 'Bicubic', 'kind': 'bicubic',
             'metrics': {name: {'psnr': {'mean': 30.0}} for name in real_test_sets()}}]
    for key, (real, validation, iterations) in scores.items():
        metrics = {name: {'psnr': {'mean': real}} for name in real_test_sets()}
        metrics['validation'] = {'psnr': {'mean': validation}}
        rows.append({'key': key, 'label': f'label of {key}', 'kind': 'x', 'metrics': metrics,
                     'train': {'budget_seconds': seconds, 'iterations': iterations}})
    folder.mkdir(parents=True)
    (folder / 'results.json').write_text(json.dumps({'info': {'budget': {'seed': seed}}, 'rows': rows}))
    return str(folder)


def test_curve_splits_the_margin_by_real_sequence(tmp_path, capsys):
    from sl_arch.bench import curve
    from sl_arch.bench.options import TEST_SETS, real_test_sets
    demo, moving = real_test_sets()[0], real_test_sets()[-1]
    reports = []
    for seed, (sf_static, sl_static, sf_moving, sl_moving) in enumerate(((28.2, 28.2, 38.5, 38.9),
                                                                        (28.3, 28.2, 38.6, 38.8))):
        folder = write_report(tmp_path / f's{seed}', seed, 300.0, {'SF': (33.4, 31.4, 2700), 'SL': (33.6, 31.3, 2500)})
        report = json.loads(Path(folder, 'results.json').read_text())
        for row, static, motion in ((report['rows'][1], sf_static, sf_moving),
                                    (report['rows'][2], sl_static, sl_moving)):
            row['metrics'][demo]['psnr']['sequences'] = {'clip_a': static, 'clip_b': static + 1}
            row['metrics'][moving]['psnr']['sequences'] = {'clip_c': motion}
        Path(folder, 'results.json').write_text(json.dumps(report))
        reports.append(folder)
    out = tmp_path / 'curve'
    curve.main(reports + ['--models', 'SF,SL', '--reference', 'SF', '--out', str(out)])
    lines = capsys.readouterr().out.splitlines()
    header = next(line for line in lines if line.startswith('| model | CPU s | seeds'))
    assert header.endswith(f'| {TEST_SETS[demo]["label"]}: clip_a | {TEST_SETS[demo]["label"]}: clip_b | '
                           f'{TEST_SETS[moving]["label"]}: clip_c | real mean |')
    assert '| label of SL | 300 | 2 | -0.05 | -0.05 | +0.30 | +0.20 |' in lines  # seed means of -0.0/-0.1, +0.4/+0.2
    rows = json.loads((out / 'results.json').read_text())['rows']
    assert {row['key']: row['sequences'] for row in rows if row['seed'] == 0}['SL'] == {
        f'{demo}/clip_a': 28.2, f'{demo}/clip_b': 29.2, f'{moving}/clip_c': 38.9}
    curve.main(reports + ['--models', 'SF,SL'])  # no reference: no split
    assert 'real mean |' not in capsys.readouterr().out


def test_curve_tables_each_models_score_and_margin_per_budget_over_seeds_and_refuses_bad_input(tmp_path, capsys):
    from sl_arch.bench import curve
    reports = [write_report(tmp_path / 's0_300', 0, 300.0, {'SF': (33.4, 31.4, 2700), 'SL': (33.6, 31.3, 2500)}),
               write_report(tmp_path / 's1_300', 1, 300.0, {'SF': (33.2, 31.2, 2600), 'SL': (33.6, 31.4, 2400)}),
               write_report(tmp_path / 's0_600', 0, 600.0, {'SF': (33.3, 31.3, 5200), 'SL': (33.8, 31.5, 4900)}),
               # the seed-0 300-s rows read back by another report count once
               write_report(tmp_path / 's0_300_again', 0, 300.0, {'SF': (33.4, 31.4, 2700)})]
    out = tmp_path / 'curve'
    curve.main(reports + ['--models', 'SF,SL', '--reference', 'SF', '--out', str(out)])
    table = [line for line in capsys.readouterr().out.splitlines() if line.startswith('| label')]
    assert table == ['| label of SF | 300 | 33.30 | 33.40 (2700), 33.20 (2600) | — | — | — |',
                     '| label of SF | 600 | 33.30 | 33.30 (5200) | — | — | — |',
                     '| label of SL | 300 | 33.60 | 33.60 (2500), 33.60 (2400) | +0.30 | +0.20, +0.40 | +0.05 |',
                     '| label of SL | 600 | 33.80 | 33.80 (4900) | +0.50 | +0.50 | +0.20 |']
    assert sorted(os.listdir(out)) == ['budget_curve.png', 'report.md', 'results.json']
    assert len(json.loads((out / 'results.json').read_text())['rows']) == 6
    curve.main(reports[:1] + ['--models', 'SL', '--out', str(out)])  # its own earlier curve is replaced
    capsys.readouterr()
    bad = [(reports[:1] + ['--models', 'SL', '--out', reports[1]], 'holds the report of an sl-bench run'),
           (reports[:1] + ['--models', 'SL,BasicVSR'], '--models BasicVSR: no trained row'),
           (reports[:1] + ['--models', 'SL', '--reference', 'SF'], '--reference SF is not one of --models'),
           ([str(tmp_path)] + ['--models', 'SL'], 'no readable results.json'),
           (reports[:1] + [write_report(tmp_path / 'retested', 0, 300.0, {'SL': (33.7, 31.3, 2500)}), '--models', 'SL'],
            'disagree (33.600 against 33.700 dB')]
    for argv, message in bad:
        with pytest.raises(SystemExit) as exit_info:
            curve.main(argv)
        assert exit_info.value.code == 2 and message in capsys.readouterr().err, message
    assert json.loads(Path(reports[1], 'results.json').read_text())['info'] == {'budget': {'seed': 1}}


def test_motion_margin_bins_each_pixel_by_its_motion_and_measures_errors_as_calculate_psnr():
    from basicsr.metrics import calculate_psnr
    from basicsr.utils import tensor2img

    from sl_arch.bench import motion_margin
    rng = np.random.default_rng(0)
    texture = cv2.resize(rng.uniform(0, 1, (40, 60, 3)).astype(np.float32), (240, 160), interpolation=cv2.INTER_CUBIC)
    # frame 1 is frame 0 moved by 8 GT px (2 LR px) to the left; frame 2 holds still
    frames = [texture[16:80, 8:104], texture[16:80, 16:112], texture[16:80, 16:112]]
    gts = torch.from_numpy(np.stack(frames).clip(0, 1)).permute(0, 3, 1, 2)
    motion = motion_margin.motion_map(gts)
    assert motion.shape == (3, 64, 96)
    centre = (slice(None), slice(16, 48), slice(24, 72))  # away from the edges, where DIS has the texture
    assert np.median(motion[centre][0]) == pytest.approx(2, abs=0.1)
    assert np.median(motion[centre][1]) == pytest.approx(2, abs=0.1)  # the larger of its two motions
    assert np.median(motion[centre][2]) < 0.05
    assert (motion[:, ::4, ::4].repeat(4, 1).repeat(4, 2) == motion).all()  # one value per LR pixel
    assert not motion_margin.motion_map(gts[:1]).any()

    noisy = [tensor2img([(gt + 0.02 * torch.randn_like(gt)).clamp(0, 1)]) for gt in gts]
    errors = motion_margin.squared_errors(noisy, motion_margin.gt_luma(gts))
    for frame, gt, error in zip(noisy, gts, errors):
        assert 10 * np.log10(255 ** 2 / error.mean()) == pytest.approx(
            calculate_psnr(frame, tensor2img([gt]), 0, test_y_channel=True), abs=1e-9)
    bins = motion_margin.binned(errors, motion)
    assert sum(pixels for pixels, _ in bins) == errors.size
    assert sum(sse for _, sse in bins) == pytest.approx(errors.sum())
    assert bins[0][0] >= 32 * 48 and bins[5][0] + bins[6][0] >= 2 * 32 * 48  # still: frame 2; 1-4 px: frames 0, 1
    # a clip is restored as sl-bench tests the row: in windows for a centre-frame network (val.tile), padded to
    # min_input_size, cropped back
    class CentreFrame(torch.nn.Module):  # (b, 3, c, h, w) -> its middle frame, each pixel repeated 4x4
        def forward(self, window):
            assert window.shape[1] == 3 and min(window.shape[-2:]) >= 20
            return window[:, 1].repeat_interleave(4, -2).repeat_interleave(4, -1)

    lqs = torch.rand(5, 3, 12, 14)
    tile = {'num_neighbours': 3, 'padding': 'reflection_circle', 'multiple': 1}
    restored = motion_margin.restore_clip(CentreFrame(), {'lq': lqs}, {'min_input_size': 20, 'val': {'tile': tile}})
    assert [frame.shape for frame in restored] == [(48, 56, 3)] * 5
    for frame, lq in zip(restored, lqs):
        assert np.array_equal(frame, tensor2img([lq.repeat_interleave(4, -2).repeat_interleave(4, -1)]))
    assert motion_margin.margin_db(2.0, 1.0) == pytest.approx(3.0103, abs=1e-4)
    assert motion_margin.margin_db(0, 1) is None


def test_the_rusage_launcher_measures_a_command_and_refuses_bad_use_in_one_line(tmp_path):
    script = ROOT / 'sl_arch' / 'bench' / 'rusage.py'
    result = tmp_path / 'r.json'
    done = subprocess.run([sys.executable, str(script), str(result), sys.executable, '-c', 'pass'],
                          capture_output=True, text=True)
    assert done.returncode == 0 and json.loads(result.read_text())['returncode'] == 0
    for argv, message in (([], 'error: give RESULT.json and the command to measure'),
                          ([str(tmp_path / 'x.json'), str(tmp_path / 'nowhere')],
                           f'error: cannot run {tmp_path / "nowhere"}: No such file or directory')):
        failed = subprocess.run([sys.executable, str(script), *argv], capture_output=True, text=True)
        assert failed.returncode == 2 and len(failed.stderr.splitlines()) == 1
        assert failed.stderr.startswith(message) and not (tmp_path / 'x.json').exists()
