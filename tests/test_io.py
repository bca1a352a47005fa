"""Specifications of sl_arch.io and of sl-infer's video files: streams, timestamps, audio kept bit for bit.

Every video here is made by the test itself with PyAV: a few small textured frames, an AAC sine
wave, and (in Matroska) SubRip subtitles demuxed from a small .srt file.
"""
import sl_arch  # noqa: F401  (must precede basicsr)

import os
from fractions import Fraction

import av
import cv2
import numpy as np
import pytest
import torch
from basicsr.archs import build_network

from sl_arch import infer
from sl_arch.archs.semantic_lens_arch import PRESETS
from sl_arch.io import (EncoderSettings, FrameSource, ShotDetector, Timing, VideoWriter, frames_to_tensor,
                        list_frames, list_videos, tensor_to_frame)
from tests.conftest import SAMPLE_RATE, make_video

SL_OPT = {'type': 'SemanticLens', **PRESETS['tiny']}
SIZE = (32, 24)  # LR frames: the network returns 128x96


def textured_frames(count, size=SIZE, seed=0, step=1):
    """``count`` BGR frames of one smooth random texture panning ``step`` pixels per frame."""
    width, height = size
    rng = np.random.default_rng(seed)
    texture = cv2.resize(rng.uniform(0, 255, (height // 4 + 4, width // 4 + 4 + count, 3)).astype(np.uint8),
                         (width + 16 + step * count, height + 16), interpolation=cv2.INTER_CUBIC)
    return [np.ascontiguousarray(texture[8:8 + height, step * index:step * index + width]) for index in range(count)]


def streams(path):
    """Per stream: type, codec, time base; the video's frame timestamps; packets of the others; the duration."""
    with av.open(str(path)) as container:
        kinds = [(stream.type, stream.codec_context.name, stream.time_base) for stream in container.streams]
        video = container.streams.video[0]
        info = {'kinds': kinds, 'duration': container.duration, 'rate': video.average_rate,
                'video_duration': video.duration, 'size': (video.codec_context.width, video.codec_context.height)}
        packets = {index: [] for index, kind in enumerate(kinds) if kind[0] != 'video'}
        for packet in container.demux():
            if packet.stream.index in packets and packet.size:
                packets[packet.stream.index].append((packet.pts, bytes(packet)))
        info['packets'] = packets
        container.seek(0)
        info['timestamps'] = [frame.pts for frame in container.decode(video=0)]
    return info


@pytest.fixture(scope='module')
def weights(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp('weights') / 'sl.pth'
    torch.save({'params': build_network(dict(SL_OPT)).state_dict(), 'network_g': dict(SL_OPT)}, path)
    return str(path)


def run(*argv):
    return infer.upscale(infer.parse_args([str(arg) for arg in argv]))


def test_mp4_with_audio_keeps_streams_frame_count_rate_time_base_duration_and_audio_bytes(tmp_path, weights):
    source = make_video(tmp_path / 'clip.mp4', textured_frames(12))
    output = tmp_path / 'clip_x4.mp4'
    summary = run('-i', source, '-o', output, '--weights', weights, '--chunk', 6, '--overlap', 2)
    before, after = streams(source), streams(output)
    assert [kind[0] for kind in after['kinds']] == ['video', 'audio'] and after['kinds'][1] == before['kinds'][1]
    assert after['kinds'][0][1:] == ('h264', before['kinds'][0][2])  # encoder, time base
    assert after['timestamps'] == before['timestamps'] == list(range(0, 12 * 512, 512))  # 1/12288 s per tick at 24/s
    assert after['rate'] == before['rate'] == 24
    assert (after['duration'], after['video_duration']) == (before['duration'], before['video_duration'])
    assert after['packets'] == before['packets'] and len(after['packets'][1]) > 20
    assert after['size'] == (128, 96) and summary['written'] == 12
    assert sorted(os.listdir(tmp_path)) == ['clip.mp4', 'clip_x4.mp4']  # no temporary left


def test_matroska_keeps_audio_and_subtitle_packets_bit_for_bit(tmp_path, weights):
    source = make_video(tmp_path / 'clip.mkv', textured_frames(10), subtitles=True)
    output = tmp_path / 'clip_x4.mkv'
    run('-i', source, '-o', output, '--weights', weights, '--chunk', 0)
    before, after = streams(source), streams(output)
    assert [kind[:2] for kind in after['kinds']] == [('video', 'h264'), ('audio', 'aac'), ('subtitle', 'srt')]
    assert after['packets'] == before['packets'] and len(after['packets'][2]) == 2
    assert after['timestamps'] == before['timestamps']
    # Matroska stores no duration for an audio block but the last; the demuxer gives the last AAC
    # packet a whole frame (1024 samples), so a remux may end up to one AAC frame later.
    assert 0 <= after['duration'] - before['duration'] <= 1024 / SAMPLE_RATE * 1e6 + 1000


def test_variable_frame_rate_keeps_every_timestamp_and_the_duration(tmp_path, weights):
    timestamps = [0, 3000, 9000, 10000, 16000, 19000, 30000, 33000]  # 1/90000 s: gaps of 1 to 11 frames at 30/s
    source = make_video(tmp_path / 'vfr.mp4', textured_frames(8), Fraction(1, 90000), timestamps)
    output = tmp_path / 'vfr_x4.mp4'
    run('-i', source, '-o', output, '--weights', weights, '--chunk', 0, '--no-shot-detect')
    before, after = streams(source), streams(output)
    assert after['timestamps'] == before['timestamps'] == timestamps
    assert after['kinds'][0][2] == Fraction(1, 90000)
    assert after['video_duration'] == before['video_duration'] == 36000
    assert after['packets'] == before['packets']


def test_input_stream_the_output_container_cannot_hold_is_refused_before_any_work(tmp_path, weights, capsys):
    source = make_video(tmp_path / 'clip.mkv', textured_frames(8), subtitles=True)
    output = tmp_path / 'clip_x4.mp4'
    with pytest.raises(SystemExit) as exit_info:
        infer.main(['-i', source, '-o', str(output), '--weights', weights])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip() == (
        f'error: stream #2 of {source} (subtitle srt) cannot go into a .mp4 file; write .mkv (it holds most '
        'streams) or write PNG frames (-o FOLDER).')
    assert sorted(os.listdir(tmp_path)) == ['clip.mkv', 'clip.mkv.srt']


@pytest.mark.parametrize('options, message', [
    (('--codec', 'nosuch264'), '--codec nosuch264 is not an encoder of this FFmpeg; use libx264, libx265, libsvtav1 '
     'or libvpx-vp9.'),
    (('--codec', 'aac'), '--codec aac is an audio encoder; use a video encoder (libx264, libx265, libsvtav1 or '
     'libvpx-vp9).'),
    (('--pix-fmt', 'rgb48le'), '--pix-fmt rgb48le: libx264 takes yuv420p, yuvj420p, yuv422p, yuvj422p, yuv444p, '
     'yuvj444p, nv12, nv16; choose one of those.'),
    (('--preset', 'warp9'), 'libx264 cannot start with --preset warp9 (Invalid argument); fix those options.'),
    (('--codec', 'libvpx-vp9', '--preset', 'fast'), '--preset: libvpx-vp9 has no preset option; drop --preset.'),
    # libx264 would take it silently as 51
    (('--crf', '60'), '--crf 60: libx264 takes 0-51 (lower is better); choose one in that range.'),
    (('--codec', 'libsvtav1', '--crf', '64'),
     '--crf 64: libsvtav1 takes 0-63 (lower is better); choose one in that range.'),
    (('--out', 'clip_x4.webm'), None),
])
def test_bad_encoder_options_are_one_line_before_any_work(tmp_path, weights, capsys, options, message):
    source = make_video(tmp_path / 'clip.mp4', textured_frames(8))
    output = str(tmp_path / 'clip_x4.mp4')
    if options[0] == '--out':  # AAC cannot go into WebM, whose default encoder here is libvpx-vp9
        output, options = str(tmp_path / options[1]), ()
        message = (f'stream #1 of {source} (audio aac) cannot go into a .webm file; write .mkv (it holds most '
                   'streams) or write PNG frames (-o FOLDER).')
    with pytest.raises(SystemExit) as exit_info:
        infer.main(['-i', source, '-o', output, '--weights', weights, *options])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip() == f'error: {message}'
    assert sorted(os.listdir(tmp_path)) == ['clip.mp4']


def test_video_options_with_a_frame_folder_output_and_fps_with_a_video_input_are_refused(tmp_path, weights, capsys):
    source = make_video(tmp_path / 'clip.mp4', textured_frames(8))
    for argv, expected in [
        (('-o', tmp_path / 'frames', '--crf', 18), f'--crf sets how a video is encoded, but -o {tmp_path / "frames"} '
         'is a folder of PNG frames; drop --crf or give -o a video name (e.g. out.mp4).'),
        (('-o', tmp_path / 'out.mp4', '--fps', 30), f'--fps sets the frame rate of a frame folder; the video {source} '
         'keeps its own timestamps: drop --fps.'),
    ]:
        with pytest.raises(SystemExit):
            infer.main(['-i', source, '--weights', weights, *map(str, argv)])
        assert capsys.readouterr().err.strip() == f'error: {expected}'
    assert sorted(os.listdir(tmp_path)) == ['clip.mp4']


def test_odd_frame_sizes_are_refused_for_yuv420p_and_written_in_yuv444p(tmp_path):
    frames = textured_frames(3, size=(33, 25))
    timing = Timing.constant(3, 25)
    writer = VideoWriter(str(tmp_path / 'odd.mp4'), timing)
    with pytest.raises(sl_arch.utils.errors.SLError, match=r'output frames are 33x25, but --pix-fmt yuv420p stores '
                       r'colour at half resolution and needs an even width and height; use --pix-fmt yuv444p'):
        writer.write(0, frames[0])
    writer.abort()
    assert os.listdir(tmp_path) == []
    writer = VideoWriter(str(tmp_path / 'odd.mp4'), timing, EncoderSettings(pix_fmt='yuv444p', crf=0))
    for index, frame in enumerate(frames):
        writer.write(index, frame)
    writer.close()
    assert streams(tmp_path / 'odd.mp4')['size'] == (33, 25) and os.listdir(tmp_path) == ['odd.mp4']


def test_a_failed_video_leaves_no_file_and_no_temporary(tmp_path):
    writer = VideoWriter(str(tmp_path / 'out.mkv'), Timing.constant(4, 25))
    writer.write(0, textured_frames(1)[0])
    assert [name for name in os.listdir(tmp_path) if name.startswith('.sl-tmp-out.mkv.')]
    writer.abort()
    assert os.listdir(tmp_path) == []


def test_a_rotated_video_is_read_upright(tmp_path):
    frames = textured_frames(2, size=(32, 16))
    source = FrameSource(make_video(tmp_path / 'phone.mp4', frames, audio=False, rotation=90))
    assert (source.width, source.height) == (16, 32) and source.video.rotation == 90
    first = next(source.frames())[1]
    # the display matrix turns the coded frame 90 degrees counter-clockwise; H.264 4:4:4 at qp 0 is
    # lossless up to the YUV round trip
    assert np.abs(first.astype(int) - np.rot90(frames[0]).astype(int)).max() <= 2


def test_video_and_folder_sources_give_the_same_frames_and_timing(tmp_path):
    frames = textured_frames(5)
    folder = tmp_path / 'frames'
    folder.mkdir()
    for index, frame in enumerate(frames):
        cv2.imwrite(str(folder / f'im{index + 1}.png'), frame)
    video = FrameSource(make_video(tmp_path / 'clip.mp4', frames, audio=False))
    images = FrameSource(str(folder), fps=24)
    assert (video.num_frames, video.width, video.height) == (images.num_frames, images.width, images.height)
    assert float(video.timing.seconds()) == pytest.approx(images.timing.seconds()) == 5 / 24
    for (_, decoded), (_, read) in zip(video.frames([1, 3]), images.frames([1, 3])):
        assert np.abs(decoded.astype(int) - read.astype(int)).max() <= 2


def test_listing_skips_hidden_files_and_sorts_naturally(tmp_path):
    for name in ('im10.png', 'im2.png', '._im1.png', '.sl-tmp-im3.png.ab12.png', 'notes.txt', 'b.MP4', 'a.mkv',
                 '._a.mkv'):
        (tmp_path / name).write_bytes(b'x')
    assert list_frames(tmp_path) == ['im2.png', 'im10.png']
    assert list_videos(tmp_path) == ['a.mkv', 'b.MP4']


def test_tensor_boundary_is_rgb_and_rounds_back_to_the_same_bgr_frame():
    bgr = np.zeros((2, 3, 3), np.uint8)
    bgr[..., 2] = 200  # red in OpenCV's order
    tensor = frames_to_tensor([bgr])
    assert tensor.shape == (1, 3, 2, 3) and float(tensor[0, 0].min()) == pytest.approx(200 / 255)
    assert np.array_equal(tensor_to_frame(tensor[0].to(torch.bfloat16)), bgr)


def shot_scores(frames):
    detector = ShotDetector()
    for index, frame in enumerate(frames):
        detector.add(index, cv2.resize(frame, (64, 48), interpolation=cv2.INTER_AREA))
    return detector


def test_detector_finds_the_cut_between_two_noisy_images_and_none_in_a_smooth_pan():
    rng = np.random.default_rng(1)
    first, second = textured_frames(1, (64, 48), seed=2)[0], textured_frames(1, (64, 48), seed=3)[0]
    noisy = [np.clip(image.astype(int) + rng.integers(-6, 7, image.shape), 0, 255).astype(np.uint8)
             for image in [first] * 10 + [second] * 12]
    assert shot_scores(noisy).cuts() == [10]
    assert shot_scores(textured_frames(30, (64, 48), seed=4, step=2)).cuts() == []


def test_detector_keeps_shots_at_least_min_shot_frames_long():
    images = [textured_frames(1, (64, 48), seed=seed)[0] for seed in range(4)]
    frames = [images[0]] * 10 + [images[1]] * 3 + [images[2]] * 10 + [images[3]] * 5
    detector = shot_scores(frames)
    # 10 and 13 would make a 3-frame shot: the stronger cut stays; 23 would leave 5 frames after it
    assert detector.cuts() == [max(10, 13, key=lambda index: detector.scores[index])]
    detector.min_shot = 3
    assert detector.cuts() == [10, 13, 23]


def test_colour_tags_of_the_input_are_kept_and_its_matrix_used_both_ways(tmp_path):
    frames = textured_frames(3, (64, 48))
    tags = {'colorspace': 1, 'color_range': 1, 'color_primaries': 1, 'color_trc': 1}  # BT.709, limited range
    with av.open(str(tmp_path / 'bt709.mp4'), 'w') as container:
        stream = container.add_stream('libx264', rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, 'yuv444p'
        stream.codec_context.options = {'qp': '0'}
        for tag, value in tags.items():
            setattr(stream.codec_context, tag, value)
        for index, frame in enumerate(frames):
            video_frame = av.VideoFrame.from_ndarray(frame, format='bgr24').reformat(
                format='yuv444p', dst_colorspace='ITU709', dst_color_range='MPEG')
            video_frame.pts = index
            container.mux(stream.encode(video_frame))
        container.mux(stream.encode())
    source = FrameSource(str(tmp_path / 'bt709.mp4'))
    assert source.video.colour == tags
    writer = VideoWriter(str(tmp_path / 'out.mp4'), source.timing, EncoderSettings(pix_fmt='yuv444p', crf=0),
                         colour=source.video.colour)
    for index, frame in source.frames():
        writer.write(index, frame)
    writer.close()
    output = FrameSource(str(tmp_path / 'out.mp4'))
    assert output.video.colour == tags
    errors = [np.abs(frame.astype(int) - original.astype(int)).max() for (_, frame), original in
              zip(output.frames(), frames)]
    assert max(errors) <= 3  # two 8-bit YUV round trips; decoding this input as BT.601 is off by up to 34
