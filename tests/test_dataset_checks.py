"""Datasets check their options and every frame header when they are built: bad data fails at start-up,
with every problem in one error, not when a batch first touches it."""
import time

import cv2
import lmdb
import numpy as np
import pytest

import sl_arch  # noqa: F401  (before basicsr)
from basicsr.data import build_dataset
from sl_arch.utils.errors import SLError


def write_frames(root, clips=3, frames=4, lq_size=(8, 6), scale=4, ext='.png'):
    """Constant-colour GT and LR frames ``root/{GT,LR}/clip<i>/<frame>.<ext>``; returns (GT root, LR root)."""
    for clip in range(clips):
        for kind, (w, h) in (('GT', (lq_size[0] * scale, lq_size[1] * scale)), ('LR', lq_size)):
            folder = root / kind / f'clip{clip}'
            folder.mkdir(parents=True, exist_ok=True)
            for frame in range(frames):
                cv2.imwrite(str(folder / f'{frame:08d}{ext}'), np.full((h, w, 3), (10 * frame + clip) % 256, np.uint8))
    return root / 'GT', root / 'LR'


def train_opt(root, **overrides):
    return dict(dict(name='t', type='SLVideoRecurrentDataset', phase='train', dataroot_gt=str(root / 'GT'),
                     dataroot_lq=str(root / 'LR'), num_frame=2, gt_size=16, scale=4), **overrides)


def val_opt(root, **overrides):
    return dict(dict(name='v', type='SLVideoTestDataset', phase='val', dataroot_gt=str(root / 'GT'),
                     dataroot_lq=str(root / 'LR'), scale=4), **overrides)


def build_error(opt):
    with pytest.raises(SLError) as error:
        build_dataset(opt)
    message = str(error.value)
    assert '\n' not in message
    return message


def truncate(path, keep):
    path.write_bytes(path.read_bytes()[:keep])


def test_every_bad_frame_of_a_training_set_is_reported_at_start_up_in_one_error(tmp_path):
    write_frames(tmp_path)
    truncate(tmp_path / 'LR/clip0/00000002.png', -20)  # cut inside the data: decodes to garbage or fails at read
    cv2.imwrite(str(tmp_path / 'LR/clip1/00000003.png'), np.zeros((7, 8, 3), np.uint8))  # other size than its clip
    for frame in range(4):  # clip 2: GT is 2x its LR, not 4x (only the first clip's first pair was checked before)
        cv2.imwrite(str(tmp_path / f'GT/clip2/{frame:08d}.png'), np.zeros((12, 16, 3), np.uint8))
    (tmp_path / 'GT/clip1/00000001.png').write_bytes(b'not an image at all')

    message = build_error(train_opt(tmp_path))

    assert message.startswith(f'4 problems in the clips of {tmp_path}/LR and {tmp_path}/GT: [1] ')
    assert f'[1] {tmp_path}/LR/clip0/00000002.png cannot be decoded (truncated PNG: no end chunk)' in message
    assert f'{tmp_path}/LR/clip1/00000003.png is 8x7 but {tmp_path}/LR/clip1/00000000.png is 8x6' in message
    assert f'{tmp_path}/GT/clip1/00000001.png cannot be decoded (not an image or truncated)' in message
    assert (f'GT frame {tmp_path}/GT/clip2/00000000.png is 16x12 but LR frame {tmp_path}/LR/clip2/00000000.png is 8x6, '
            'not 1/4 of it; fix the scale option') in message


def test_more_than_ten_problems_are_counted_and_a_check_frames_false_set_builds(tmp_path):
    write_frames(tmp_path, clips=2, frames=8)
    for clip in range(2):
        for frame in range(8):
            truncate(tmp_path / f'GT/clip{clip}/{frame:08d}.png', 40)
    message = build_error(val_opt(tmp_path))
    assert message.startswith('16 problems in the clips of ') and message.count(' cannot be decoded (') == 10
    assert message.endswith('; and 6 more.')
    assert len(build_dataset(val_opt(tmp_path, check_frames=False))) == 2


def test_frame_count_mismatches_of_several_clips_are_listed_together(tmp_path):
    write_frames(tmp_path)
    (tmp_path / 'LR/clip0/00000003.png').unlink()
    (tmp_path / 'GT/clip2/00000000.png').unlink()
    message = build_error(train_opt(tmp_path))
    assert message.startswith('2 problems in the clips of ')
    assert "clip 'clip0': " in message and 'has 3 LR frames but' in message and 'has 4 GT frames' in message
    assert "clip 'clip2': " in message and 'has 4 LR frames but' in message and 'has 3 GT frames' in message


def test_truncated_jpeg_that_opencv_would_decode_silently_is_found(tmp_path):
    write_frames(tmp_path, clips=1, ext='.jpg')
    broken = tmp_path / 'LR/clip0/00000001.jpg'
    cv2.imwrite(str(broken), np.random.default_rng(0).integers(0, 255, (6, 8, 3), np.uint8))
    truncate(broken, -10)
    assert cv2.imread(str(broken)) is not None  # OpenCV returns a partly grey frame without an error
    assert build_error(val_opt(tmp_path)) == (f'{broken} cannot be decoded (truncated JPEG: no end marker); re-create '
                                              'it with sl-prepare or delete its clip from the data set.')


def test_lmdb_frames_are_checked_from_their_stored_bytes(tmp_path):
    write_frames(tmp_path, clips=1)
    for kind in ('GT', 'LR'):
        env = lmdb.open(str(tmp_path / f'{kind}.lmdb'), map_size=1 << 24)
        with env.begin(write=True) as txn:
            for frame in range(4):
                content = (tmp_path / kind / 'clip0' / f'{frame:08d}.png').read_bytes()
                if kind == 'LR' and frame == 2:
                    content = cv2.imencode('.png', np.zeros((5, 5, 3), np.uint8))[1].tobytes()
                txn.put(f'clip0/{frame:08d}'.encode(), content)
        env.close()
        (tmp_path / f'{kind}.lmdb' / 'meta_info.txt').write_text(''.join(f'clip0/{n:08d}.png (1,1,3) 1\n'
                                                                         for n in range(4)))
    message = build_error(val_opt(tmp_path, dataroot_gt=str(tmp_path / 'GT.lmdb'),
                                  dataroot_lq=str(tmp_path / 'LR.lmdb'), io_backend={'type': 'lmdb'}))
    assert message.startswith(f'{tmp_path}/LR.lmdb key clip0/00000002 is 5x5 but {tmp_path}/LR.lmdb key clip0/00000000 '
                              'is 8x6; all frames of a clip must have one size')


def test_a_good_set_of_two_thousand_frames_is_checked_in_well_under_a_second(tmp_path):
    write_frames(tmp_path, clips=10, frames=100, lq_size=(4, 4))
    build_dataset(val_opt(tmp_path))  # warm the file-system cache, as a second epoch would
    start = time.perf_counter()
    dataset = build_dataset(val_opt(tmp_path))
    elapsed = time.perf_counter() - start
    assert len(dataset) == 10 and all(clip.lq_size == (4, 4) for clip in dataset.clips)
    assert elapsed < 1.0, f'{elapsed:.2f} s for 2000 frames'


@pytest.mark.parametrize('overrides, message', [
    (dict(use_hflipp=True), "SLVideoRecurrentDataset got unknown option key(s) 'use_hflipp' (did you mean "
                            "'use_hflip'?) under datasets.train; valid keys are: dataroot_gt, dataroot_lq, "),
    (dict(num_frame='2'), "SLVideoRecurrentDataset datasets.train: num_frame: '2' is not a positive integer; fix"),
    (dict(gt_size=0), 'gt_size: 0 is not a positive integer'),
    (dict(interval_list=1), 'interval_list: 1 is not a list of positive integers'),
    (dict(use_rot='yes'), "use_rot: 'yes' is not true or false"),
    (dict(io_backend='disk'), "io_backend: 'disk' is not a mapping"),
    (dict(check_frames='no'), "check_frames: 'no' is not true or false"),
    (dict(semantics_root='/nonexistent/masks'), 'semantics_root /nonexistent/masks does not exist or is not a folder'),
])
def test_training_set_options_are_checked_when_built_by_basicsr(tmp_path, overrides, message):
    write_frames(tmp_path, clips=1)
    assert message in build_error(train_opt(tmp_path, **overrides))


def test_test_set_options_are_checked_when_built_by_basicsr(tmp_path):
    write_frames(tmp_path, clips=1)
    assert "'chunksize' (did you mean 'chunk_size'?) under datasets.val" in build_error(val_opt(tmp_path, chunksize=2))
    assert 'chunk_size: -1 is not an integer >= 0' in build_error(val_opt(tmp_path, chunk_size=-1))
    dataset = build_dataset(val_opt(tmp_path, batch_size_per_gpu=1, num_worker_per_gpu=0, prefetch_mode=None,
                                    pin_memory=False, persistent_workers=False, use_shuffle=False))
    assert len(dataset) == 1


def test_wrong_size_frame_of_a_validation_set_is_found_at_start_up(tmp_path):
    write_frames(tmp_path, clips=2)
    cv2.imwrite(str(tmp_path / 'GT/clip1/00000002.png'), np.zeros((24, 30, 3), np.uint8))
    assert build_error(val_opt(tmp_path)).startswith(
        f'{tmp_path}/GT/clip1/00000002.png is 30x24 but {tmp_path}/GT/clip1/00000000.png is 32x24; all frames of a '
        'clip must have one size')
