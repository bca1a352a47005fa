"""Synthetic clips of real photographs: deterministic, exact flow, stable instance ids, disjoint splits."""
import json

import cv2
import numpy as np
import pytest


from sl_arch.data import synthetic
from sl_arch.data.dataset_files import read_meta_info

SIZE, FRAMES = (96, 64), 6


def test_train_and_held_out_clips_use_disjoint_photographs_and_held_out_clips_alternate_regimes():
    plans = synthetic.plan_clips(seed=3, num_train=12, num_val=6)
    train = {name for plan in plans if plan.split == 'train' for name in (plan.background, *plan.objects)}
    held_out = {name for plan in plans if plan.split == 'val' for name in (plan.background, *plan.objects)}

    assert train and held_out and not train & held_out
    assert [plan.regime for plan in plans if plan.split == 'val'] == ['pan', 'crossing'] * 3
    assert all(not plan.objects for plan in plans if plan.regime == 'pan')
    assert all(3 <= len(plan.objects) <= 6 for plan in plans if plan.split == 'val' and plan.regime == 'crossing')


def test_the_exact_flow_carries_every_visible_surface_to_where_it_is_in_the_next_frame():
    for plan in synthetic.plan_clips(seed=1, num_train=1, num_val=2):
        layers = synthetic.make_clip(plan, 1, SIZE, FRAMES)
        xs, ys = np.meshgrid(np.arange(SIZE[0], dtype=np.float64), np.arange(SIZE[1], dtype=np.float64))
        for t in range(FRAMES - 1):
            frame, ids = synthetic.render(layers, t, SIZE)
            following, following_ids = synthetic.render(layers, t + 1, SIZE)
            flow = synthetic.exact_flow(layers, ids, t, t + 1, (xs, ys), 1)
            map_x, map_y = (xs + flow[..., 0]).astype(np.float32), (ys + flow[..., 1]).astype(np.float32)
            warped = cv2.remap(following.astype(np.float32), map_x, map_y, cv2.INTER_CUBIC)
            landing = following_ids[np.clip(np.round(map_y).astype(int), 0, SIZE[1] - 1),
                                    np.clip(np.round(map_x).astype(int), 0, SIZE[0] - 1)]
            inside = (map_x > 2) & (map_x < SIZE[0] - 3) & (map_y > 2) & (map_y < SIZE[1] - 3) & (landing == ids)
            interior = cv2.erode(inside.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
            error = np.abs(warped - frame)[interior].mean()
            unmoved = np.abs(following.astype(np.float32) - frame)[interior].mean()
            assert interior.mean() > 0.3
            assert error < 4 and error < 0.3 * unmoved, (plan.name, t, error, unmoved)


def test_write_synthetic_is_deterministic_resumable_and_writes_the_dataset_layout(tmp_path):
    first = synthetic.write_synthetic(tmp_path / 'a', seed=5, num_train=2, num_val=2, size=SIZE, num_frames=FRAMES)
    synthetic.write_synthetic(tmp_path / 'b', seed=5, num_train=2, num_val=2, size=SIZE, num_frames=FRAMES)
    files = sorted(path.relative_to(tmp_path / 'a') for path in (tmp_path / 'a').rglob('*') if path.is_file())
    (tmp_path / 'a' / 'val' / 'GT' / 'pan_000' / '00000003.png').unlink()  # as if killed mid-clip
    again = synthetic.write_synthetic(tmp_path / 'a', seed=5, num_train=2, num_val=2, size=SIZE, num_frames=FRAMES)

    assert first['clips_written'] == 4 and again == {'clips_written': 1, 'clips_skipped': 3,
                                                     'bytes_written': again['bytes_written']}
    for name in files:
        assert (tmp_path / 'a' / name).read_bytes() == (tmp_path / 'b' / name).read_bytes(), name
    val = tmp_path / 'a' / 'val'
    info = json.loads((val / 'clips.json').read_text())
    assert [clip for clip, _, _ in read_meta_info(str(val / 'meta_info_crossing.txt'))] == ['crossing_001']
    lr = cv2.imread(str(val / 'BI' / 'crossing_001' / '00000000.png'))
    masks = [cv2.imread(str(val / 'masks' / 'crossing_001' / f'{t:08d}.png'), cv2.IMREAD_UNCHANGED)
             for t in range(FRAMES)]
    assert lr.shape == (SIZE[1] // 4, SIZE[0] // 4, 3) and masks[0].shape == lr.shape[:2]
    assert set(np.unique(np.stack(masks))) <= set(range(len(info['crossing_001']['objects']) + 1))
    assert len(np.unique(np.stack(masks))) >= 3  # background and at least two objects seen
    forward = np.load(val / 'flow_fwd' / 'crossing_001' / '00000000.npy')
    assert forward.shape == lr.shape[:2] + (2,) and forward.dtype == np.float32
    assert not (val / 'flow_fwd' / 'crossing_001' / f'{FRAMES - 1:08d}.npy').exists()
    assert (val / 'flow_bwd' / 'crossing_001' / f'{FRAMES - 1:08d}.npy').exists()


def test_sl_prepare_synthetic_writes_resumes_and_refuses_other_options_in_one_line(tmp_path, capsys):
    from sl_arch.prepare import main
    args = ['--synthetic', '-o', str(tmp_path / 'syn'), '--train-clips', '1', '--val-clips', '1', '--frames', '3',
            '--size', '64x48']

    assert main(args) == 0
    assert main(args) == 0
    assert '0 clips written, 2 already complete' in capsys.readouterr().out
    assert (tmp_path / 'syn' / 'val' / 'masks' / 'pan_000' / '00000002.png').is_file()
    for bad, message in ((['--frames', '4'], 'was prepared with other options (frames differ'),
                         (['--size', '66x48'], '--size 66x48 is not a multiple of --scale 4'),
                         (['--demo'], '--synthetic builds its own clips; drop the INPUT arguments and --demo.'),
                         # one line naming the option and its value, not the whole group of counts
                         (['--scale', '0'], 'error: --scale 0: give at least 1.'),
                         (['--train-clips', '-1'], 'error: --train-clips -1: give at least 0.'),
                         (['--val-clips', '-2'], 'error: --val-clips -2: give at least 0.'),
                         (['--size', '64x-1'], 'error: --size 64x-1: give both sides of the synthetic frames')):
        with pytest.raises(SystemExit) as exit_info:
            main(args + bad)
        assert exit_info.value.code == 2 and message in capsys.readouterr().err
