"""sl-bench trains and tests through sl-train / sl-test and writes one report from measured numbers."""
import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from sl_arch.bench import compare


def write_prepared_root(root, seed=0):
    """An ``sl-prepare``-style root of moving textures: train/ one 8-frame clip, val/ two 4-frame clips.

    GT 64x64, LR (``BI``) 16x16 by area downsampling.
    """
    rng = np.random.default_rng(seed)
    texture = cv2.resize(rng.uniform(0, 255, (40, 40, 3)).astype(np.uint8), (160, 160),
                         interpolation=cv2.INTER_CUBIC)
    for split, clips, frames in (('train', ['clip'], 8), ('val', ['seq_a', 'seq_b'], 4)):
        for clip_index, clip in enumerate(clips):
            for frame in range(frames):
                shift = 4 * frame + 7 * clip_index
                gt = np.ascontiguousarray(texture[shift:shift + 64, 2 * shift:2 * shift + 64])
                lq = cv2.resize(gt, (16, 16), interpolation=cv2.INTER_AREA)
                for kind, image in (('GT', gt), ('BI', lq)):
                    folder = Path(root, split, kind, clip)
                    folder.mkdir(parents=True, exist_ok=True)
                    cv2.imwrite(str(folder / f'{frame:08d}.png'), image)
    return str(root)


def test_test_log_parser_reads_mean_and_every_sequence_of_basicsr_validation_record():
    log = ('2024 INFO: Validation demo_val\n\t # psnr: 27.5000\t # seq_a: 27.0000\t # seq_b: 28.0000\n'
           '\t    Best: 27.5000 @ bench iter\n\t # ssim: 0.8000\t # seq_a: 0.7000\t # seq_b: 0.9000\n'
           '\t    Best: 0.8000 @ bench iter\n\n')
    metrics = compare.test_metrics(log, 'demo_val')
    assert metrics['psnr'] == {'mean': 27.5, 'sequences': {'seq_a': 27.0, 'seq_b': 28.0}}
    assert metrics['ssim']['sequences']['seq_b'] == 0.9
    assert compare.seconds_per_iteration('[time (data): 0.500 (0.01)] x\n[time (data): 0.250 (0.01)]') == 0.25


def test_baselines_are_sized_to_semantic_lens_parameter_count_without_spynet():
    target = compare.sl_parameter_count('tiny')
    for arch_type in ('BasicVSR', 'EDVR'):
        total, without_spynet = compare.parameter_counts(compare.size_baseline(arch_type, target))
        assert abs(without_spynet - target) / target < 0.15
    assert total == without_spynet  # EDVR has no SPyNet


def test_unknown_model_is_one_line_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        compare.main(['--quick', '--models', 'SemanticLens,NoSuchNet'])
    assert exit_info.value.code == 2
    assert 'NoSuchNet' in capsys.readouterr().err


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


def test_micro_benchmark_writes_report_with_one_measured_row_per_model(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data_root = write_prepared_root(tmp_path / 'data')
    out = tmp_path / 'report'
    earlier = tmp_path / 'work' / 'experiments' / 'bench_SemanticLens'  # a folder in the way is archived, not removed
    earlier.mkdir(parents=True)
    (earlier / 'notes.txt').write_text('mine')
    compare.main(['--quick', '--models', 'bicubic,SemanticLens,EDVR', '--data-root', data_root, '--iters', '2',
                  '--gt-size', '64', '--repeats', '1', '--work-dir', str(tmp_path / 'work'), '--out', str(out)])

    assert [path.read_text() for path in (tmp_path / 'work' / 'experiments').glob('*/notes.txt')] == ['mine']

    for name in ('report.md', 'psnr_vs_ms.png', 'results.json'):
        assert (out / name).stat().st_size > 0
    rows = json.loads((out / 'results.json').read_text())['rows']
    assert [row['key'] for row in rows] == ['bicubic', 'SemanticLens', 'EDVR']
    for row in rows:
        assert 'error' not in row
        assert row['ms_per_frame'] > 0
        assert set(row['metrics']['psnr']['sequences']) == {'seq_a', 'seq_b'}
        assert 5 < row['metrics']['psnr']['mean'] < 60
    trained = [row for row in rows if row['key'] != 'bicubic']
    for row in trained:
        assert row['s_per_iter'] > 0 and row['gflops_per_frame'] > 0 and row['params'] > 0
        assert Path(row['checkpoint']).is_file()
    # every model was trained from the same template: only name and network_g differ
    options = [compare.yaml.safe_load(Path(tmp_path, 'work', 'options', f'train_bench_{row["key"]}.yml').read_text())
               for row in trained]
    for option in options:
        option.pop('name')
        option.pop('network_g')
    assert options[0] == options[1]

    report = (out / 'report.md').read_text()
    table_rows = [line for line in report.splitlines() if line.startswith('| ') and not line.startswith('| model')]
    assert [line.split('|')[1].strip() for line in table_rows] == ['Bicubic', 'SemanticLens', 'EDVR']
    for row, line in zip(rows, table_rows):
        assert f'{row["metrics"]["psnr"]["mean"]:.2f}' in line
        assert re.search(r'\d+\.\d+ / 0\.\d{4}', line)
    assert 'sl-bench --quick' in report and 'from this one run on this one machine' in report.replace('\n', ' ')
