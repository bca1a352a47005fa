"""Specifications of the sl-infer throughput and precision benchmarks' machinery (not their figures)."""
import json

import pytest

from sl_arch.bench import precision, throughput
from sl_arch.utils.errors import SLError

from tests.conftest import TINY_NET, write_clips


def test_a_run_of_the_real_command_is_measured_from_its_own_process(tmp_path):
    weights = tmp_path / 'tiny.pth'
    params = throughput.make_checkpoint(weights, TINY_NET)
    clip = throughput.write_frames(str(tmp_path / 'in'), throughput.real_frames(2, 32, 24))
    result = throughput.run_sl_infer(['-i', clip, '-o', tmp_path / 'out', '--weights', weights, '--device', 'cpu'])
    assert params > 0 and result['wall_s'] > 0 and 0 < result['cpu_s'] < 10 * result['wall_s']
    assert 100 < result['peak_rss_mib'] < 8000  # the child's peak (torch alone is hundreds of MiB), not ours
    assert sorted(path.name for path in (tmp_path / 'out').iterdir() if path.suffix == '.png') == [
        '00000000.png', '00000001.png']


def test_sl_bench_rows_run_as_sl_bench_builds_them_and_each_ensemble_is_timed_as_its_own_command(tmp_path,
                                                                                               monkeypatch):
    from sl_arch.bench import options
    label, net_opt = throughput.row_spec('SingleFrame_lean')
    assert label == options.MODELS['SingleFrame_lean'][0]
    assert net_opt == options.network_options('SingleFrame_lean', 'tiny', pretrained_flow=False)
    assert throughput.row_spec('tiny')[1]['type'] == 'SemanticLens'
    with pytest.raises(SLError, match='--models bicubic: not a row'):
        throughput.row_spec('bicubic')  # an upsampling, no network
    calls = []

    def fake_sl_infer(argv, threads=1, device='cpu'):
        calls.append([str(arg) for arg in argv])
        (tmp_path / argv[3]).mkdir()  # the output folder sl-infer writes
        return {'wall_s': 2.0, 'cpu_s': 1.0 if 'startup' in str(argv[1]) else 3.0,
                'peak_rss_mib': 500.0, 'peak_gpu_mib': None, 'infer_s': None, 'network_s': None}

    monkeypatch.setattr(throughput, 'run_sl_infer', fake_sl_infer)
    monkeypatch.setattr(throughput, 'real_frames', lambda count, width, height: [
        __import__('numpy').zeros((height, width, 3), 'uint8')] * count)
    args = throughput.parse_args(['--models', 'tiny', '--ensembles', 'none', 'flip_width', '--sizes', '32x24',
                                  '--frames', '2', '--precisions', 'fp32', '--out', str(tmp_path / 'out')])
    rows = throughput.run_rows(args, str(tmp_path), True, lambda rows, finished: None)
    assert [row['ensemble'] for row in rows] == ['none', 'flip_width']
    assert all(row['frames_per_s'] == 1.0 for row in rows)  # 2 frames / (3 - 1) CPU s
    ensembles = [call[call.index('--ensemble') + 1] if '--ensemble' in call else 'none' for call in calls]
    assert ensembles == ['none', 'none', 'flip_width', 'flip_width']  # start-up, then the clip, per ensemble


def test_report_files_are_ours_or_refused(tmp_path):
    rows = [{'model': 'tiny', 'label': 'SemanticLens tiny', 'params_m': 0.49, 'size': '32x24', 'frames': 2,
             'precision': 'fp32', 'wall_s': 9.0, 'cpu_s': 6.0, 'startup_cpu_s': 5.0, 'frames_per_s': 2.0,
             'peak_rss_mib': 900.0},
            {'model': 'tiny', 'label': 'SemanticLens tiny', 'params_m': 0.49, 'size': '32x24', 'frames': 2,
             'precision': 'bf16', 'error': 'this sl-infer has no --precision'}]
    settings = {'command': 'python -m sl_arch.bench.throughput', 'date': 'today', 'notes': 'notes'}
    text = throughput.write_report(str(tmp_path / 'ours'), rows, settings)
    assert '| SemanticLens tiny | 0.49 | 32x24 | 2 | fp32 | none | 9.0 | 6.0 | 5.0 | 2 | 0.5 | 900 |' in text
    assert '| bf16 | none | not run: this sl-infer has no --precision |' in text
    assert json.loads((tmp_path / 'ours' / 'throughput.json').read_text())['rows'] == rows
    throughput.check_report_folder(str(tmp_path / 'ours'))  # a rerun may replace what it wrote
    (tmp_path / 'mine').mkdir()
    (tmp_path / 'mine' / 'report.md').write_text('my notes')
    with pytest.raises(SLError, match='holds report.md that sl_arch did not write'):
        throughput.check_report_folder(str(tmp_path / 'mine'))


def test_precision_benchmark_scores_each_precision_against_the_ground_truth_and_the_fp32_output(tmp_path,
                                                                                            slow_cpu_autocast):
    gt_root, lq_root = write_clips(tmp_path / 'data', clips=1, frames=4)
    weights = tmp_path / 'net.pth'
    throughput.make_checkpoint(weights, TINY_NET)
    out = tmp_path / 'report'
    other = tmp_path / 'other.pth'
    throughput.make_checkpoint(other, TINY_NET, seed=1)
    precision.main(['--weights', str(weights), str(other), '--lq-root', lq_root, '--gt-root', gt_root, '--out', str(out)])
    rows = json.loads((out / 'results.json').read_text())['rows']
    assert [row['precision'] for row in rows] == ['fp32', 'bf16', 'fp32', 'bf16']
    assert rows[0]['psnr_y'] != rows[2]['psnr_y']  # two checkpoints, two results
    assert all(5 < row['psnr_y']['clip0'] < 60 and row['cpu_s'] > 0 and row['network_s'] > 0 for row in rows)
    assert abs(rows[1]['mean_psnr_y'] - rows[0]['mean_psnr_y']) < 0.5 and rows[1]['psnr_to_fp32']['clip0'] > 35
    assert '| SemanticLens | net.pth | bf16 |' in (out / 'report.md').read_text()


def test_bad_options_of_both_benchmarks_are_one_line_and_exit_2(tmp_path, capsys):
    import torch
    gt_root, lq_root = write_clips(tmp_path / 'data', clips=1, frames=2)
    weights = tmp_path / 'w.pth'
    throughput.make_checkpoint(weights, TINY_NET)
    cases = [(precision.main, ['--weights', str(tmp_path / 'none.pth'), '--out', str(tmp_path / 'out')],
              f'--weights {tmp_path / "none.pth"} does not exist; give an sl-train checkpoint (.pth).'),
             (precision.main, ['--weights', str(weights), '--lq-root', lq_root, '--gt-root', str(tmp_path),
                               '--out', str(tmp_path / 'out')],
              f'--lq-root {lq_root} and --gt-root {tmp_path} share no clip folder; give matching roots.')]
    if not torch.cuda.is_available():
        cases.append((throughput.main, ['--device', 'cuda', '--out', str(tmp_path / 'out')],
                      '--device cuda: this machine has 0 usable CUDA GPU(s); use --device cpu or another GPU index.'))
    for main, argv, message in cases:
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        error = capsys.readouterr().err.strip()
        assert exit_info.value.code == 2 and error == f'error: {message}'
    assert not (tmp_path / 'out').exists()
