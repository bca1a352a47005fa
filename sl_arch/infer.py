"""``sl-infer``: upscale a user's video (file or frame folder) with a trained checkpoint.

Memory stays bounded for any length: frames are decoded as a stream, the network runs on
overlapping temporal windows (``--chunk``, ``--overlap``) and overlapping spatial tiles (``--tile``,
``--tile-overlap``), blended once (:mod:`sl_arch.utils.tiling`), and each output frame is written as
soon as no later window can change it. A frame-folder output resumes after an interruption.

The input is read once before the work starts (exact frame count, timestamps, and shot cuts,
:mod:`sl_arch.io.shots`); windows are planned per shot, so no temporal window and no recurrent
state crosses a cut. A video output keeps the input's timestamps (a variable frame rate too) and
copies its audio and subtitle streams unchanged (:mod:`sl_arch.io.video`).

Example::

    sl-infer -i clip.mp4 -o clip_x4.mp4 --weights experiments/run/models/net_g_latest.pth
"""
import argparse
import contextlib
import inspect
import itertools
import json
import os
import resource
import sys
import time

import numpy as np
import torch
from tqdm import tqdm

from sl_arch.archs.spec import check_input_fits
from sl_arch.io.images import FrameFolderWriter, finished_frames, frame_name
from sl_arch.io.listing import VIDEO_EXTENSIONS, is_image_file
from sl_arch.io.shots import DEFAULT_THRESHOLD, MIN_SHOT_FRAMES, ShotDetector
from sl_arch.io.source import FrameSource
from sl_arch.io.tensors import frames_to_tensor, tensor_to_frame
from sl_arch.io.video import (DEFAULT_PIX_FMT, WRITE_FORMATS, EncoderSettings, VideoWriter, check_video_output,
                              is_video_output, quiet_ffmpeg)
from sl_arch.utils.checkpoint import load_network
from sl_arch.utils.ensemble import ENSEMBLES, with_ensembles
from sl_arch.utils.errors import SLError, cli_entry
from sl_arch.utils.files import (check_writable, is_temporary, output_error, path_relation,
                                 remove_stale_temporaries, write_json)
from sl_arch.utils.precision import check_cpu_autocast, cpu_has_native
from sl_arch.utils.tiling import (PADDINGS, TemporalBlender, first_window_for, forward_window, plan_windows,
                                  sliding_frame_indices)

MANIFEST = '.sl-infer.json'
PRECISIONS = {'fp32': None, 'bf16': torch.bfloat16, 'fp16': torch.float16}
VIDEO_OPTIONS = ('codec', 'crf', 'preset', 'pix_fmt')

#: The frame rates ``--fps`` takes: the writer's time base keeps rates to 1/100000 (io/video.py), and FFmpeg's
#: encoders overflow far above this.
MIN_FPS, MAX_FPS = 0.01, 1000


def parse_args(argv=None):
    """Command-line options of ``sl-infer``."""
    parser = argparse.ArgumentParser(
        prog='sl-infer', description='Upscale a video file or a folder of frames with a trained checkpoint.')
    parser.add_argument('-i', '--input', required=True, help='video file FFmpeg decodes, or a folder of frames')
    parser.add_argument('-o', '--output', required=True,
                        help='output video (.mp4/.mkv/.mov/.m4v/.webm: timestamps kept, audio and subtitles '
                        'copied) or a folder for PNG frames (resumable)')
    parser.add_argument('--weights', required=True, help='checkpoint (.pth) from sl-train or BasicSR')
    parser.add_argument('--opt', help='option file (.yml) with a network_g section; needed only when the '
                        'checkpoint does not carry network_g metadata (e.g. BasicSR checkpoints)')
    parser.add_argument('--param-key', default=None,
                        help='weights inside the checkpoint: params_ema (default when present) or params')
    parser.add_argument('--chunk', type=int, default=32, help='frames per temporal window (0: whole clip)')
    parser.add_argument('--overlap', type=int, default=None,
                        help='frames shared by consecutive windows, blended (recurrent networks; '
                        'default min(4, chunk // 2))')
    parser.add_argument('--tile', type=int, default=0, help='spatial tile size in input pixels (0: no tiling)')
    parser.add_argument('--tile-overlap', type=int, default=16, help='input pixels shared by neighbouring tiles')
    parser.add_argument('--padding', default='reflection', choices=PADDINGS,
                        help='clip-border padding for sliding-window networks (EDVR)')
    parser.add_argument('--fps', type=float, default=None, help='frame rate of a frame-folder input (default 25)')
    video = parser.add_argument_group('video output (-o NAME.mp4 and other video extensions)')
    video.add_argument('--codec', default=None,
                       help='video encoder: libx264 (default; libvpx-vp9 for .webm), libx265, libsvtav1, libvpx-vp9')
    video.add_argument('--crf', type=float, default=None,
                       help="constant quality, lower is better (default: the encoder's, 23 for libx264)")
    video.add_argument('--preset', default=None,
                       help="encoder speed preset, e.g. medium or slow for libx264 (default: the encoder's)")
    video.add_argument('--pix-fmt', default=None,
                       help=f'pixel format of the encoded video (default {DEFAULT_PIX_FMT}; its sizes must be even)')
    shots = parser.add_argument_group('shots: no temporal window or recurrent state crosses a detected cut')
    shots.add_argument('--no-shot-detect', action='store_true', help='treat the whole input as one shot')
    shots.add_argument('--shot-threshold', type=float, default=DEFAULT_THRESHOLD,
                       help=f'smallest frame-to-frame change that counts as a cut: mean absolute Lab difference of '
                       f'64-px thumbnails, 0-255 (default {DEFAULT_THRESHOLD:g}); shots are at least '
                       f'{MIN_SHOT_FRAMES} frames')
    parser.add_argument('--precision', default='fp32', choices=PRECISIONS,
                        help='arithmetic of the network: fp32 (default), bf16 (CPU or CUDA), fp16 (CUDA only)')
    parser.add_argument('--ensemble', choices=ENSEMBLES, default=None,
                        help='two passes per window, averaged (twice the time): flip_seq, the clip and its time '
                        'reversal (recurrent networks); flip_width, the clip and its mirror image (any network)')
    parser.add_argument('--save-masks', metavar='DIR', help='write the video instance masks as coloured PNGs here')
    parser.add_argument('--overwrite', action='store_true', help='replace an existing output')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu',
                        help='torch device (default: cuda when available)')
    args = parser.parse_args(argv)
    if args.overlap is None:
        args.overlap = min(4, args.chunk // 2)
    if args.fps is not None and not MIN_FPS <= args.fps <= MAX_FPS:  # nan and inf too
        parser.error(f'--fps must lie between {MIN_FPS:g} and {MAX_FPS:g} frames per second (got {args.fps:g})')
    for name in ('chunk', 'overlap', 'tile', 'tile_overlap'):
        if getattr(args, name) < 0:
            parser.error(f'--{name.replace("_", "-")} must be >= 0')
    if args.chunk and args.overlap >= args.chunk:
        parser.error(f'--overlap ({args.overlap}) must be smaller than --chunk ({args.chunk})')
    if args.tile and args.tile_overlap >= args.tile:
        parser.error(f'--tile-overlap ({args.tile_overlap}) must be smaller than --tile ({args.tile})')
    if not args.shot_threshold > 0:
        parser.error(f'--shot-threshold must be positive (got {args.shot_threshold:g})')
    if args.crf is not None and not args.crf >= 0:  # nan too
        parser.error(f'--crf must be >= 0 (got {args.crf:g})')
    return args


def torch_device(name):
    """The ``torch.device`` for ``--device``.

    Raises:
        SLError: an unknown device, or CUDA asked for where there is none.
    """
    try:
        device = torch.device(name)
    except RuntimeError:
        raise SLError(f'--device {name} is not a torch device; use cpu, cuda or cuda:N.') from None
    if device.type == 'cuda' and (not torch.cuda.is_available() or (device.index or 0) >= torch.cuda.device_count()):
        raise SLError(f'--device {name}: this machine has {torch.cuda.device_count()} usable CUDA GPU(s); '
                      'use --device cpu or another GPU index.')
    return device


def autocast_dtype(precision, device):
    """The ``torch.autocast`` dtype for ``--precision`` on ``device``; None for fp32.

    Raises:
        SLError: fp16 on a CPU, bf16 on a CPU or GPU without bfloat16 arithmetic.
    """
    dtype = PRECISIONS[precision]
    if dtype is torch.float16 and device.type != 'cuda':
        choices = ('--precision bf16 or fp32' if cpu_has_native('bf16')
                   else '--precision fp32 (it has no bf16 arithmetic)')
        raise SLError(f'--precision fp16 needs a CUDA GPU (--device {device}); on this CPU use {choices}.')
    if device.type == 'cpu':
        check_cpu_autocast(dtype, f'--precision {precision}', 'use --precision fp32')
    if dtype is torch.bfloat16 and device.type == 'cuda' and not torch.cuda.is_bf16_supported():
        raise SLError(f'--precision bf16: GPU {torch.cuda.get_device_name(device)} has no bfloat16 arithmetic; '
                      'use --precision fp16 or fp32.')
    return dtype


def _fingerprint(path):
    stat = os.stat(path)
    return {'path': os.path.abspath(path), 'size': stat.st_size, 'mtime': int(stat.st_mtime)}


def run_manifest(args, source, net_opt, overlap, cuts):
    """Everything that determines the output frames; a resumed run must match it exactly."""
    return {
        'input': _fingerprint(args.input) if source.is_video else os.path.abspath(args.input),
        'frames': source.num_frames,
        'size': [source.height, source.width],
        'weights': _fingerprint(args.weights),
        'param_key': args.param_key,
        'network_g': net_opt,
        'chunk': args.chunk,
        'overlap': overlap,
        'tile': args.tile,
        'tile_overlap': args.tile_overlap,
        'padding': args.padding,
        'precision': args.precision,
        'shots': None if args.no_shot_detect else {'threshold': args.shot_threshold, 'cuts': cuts},
        'save_masks': os.path.abspath(args.save_masks) if args.save_masks else None,
        'ensemble': args.ensemble,
    }


def check_paths(args):
    """Refuse, before anything is read or written, outputs that would destroy the input or each other.

    Input, output and ``--save-masks`` must be distinct paths, none inside another (symbolic links
    resolved); outputs must be writable; a video output needs an extension we write
    (:data:`sl_arch.io.video.WRITE_FORMATS`); video options need a video output, ``--fps`` a folder input.

    Raises:
        SLError: naming the option, the path and the fix.
    """
    paths = [('-i', args.input), ('-o', args.output)] + ([('--save-masks', args.save_masks)] if args.save_masks else [])
    for number, (option, path) in enumerate(paths):
        for other_option, other in paths[number + 1:]:
            relation = path_relation(other, path)
            if relation:
                raise SLError(f'{other_option} {other} {relation} {option} {path}; nothing was written: give '
                              f'{other_option} a path apart from it (neither inside it nor containing it).')
    ext = os.path.splitext(args.output)[1].lower()
    if ext in VIDEO_EXTENSIONS and ext not in WRITE_FORMATS:
        raise SLError(f'output {args.output}: sl-infer cannot write {ext} videos; use one of '
                      f'{", ".join(WRITE_FORMATS)}, or a folder name without a video extension for PNG frames.')
    given = [name for name in VIDEO_OPTIONS if getattr(args, name) is not None]
    if given and not is_video_output(args.output):
        option = '--' + given[0].replace('_', '-')
        raise SLError(f'{option} sets how a video is encoded, but -o {args.output} is a folder of PNG frames; '
                      f'drop {option} or give -o a video name (e.g. out.mp4).')
    if args.fps is not None and os.path.isfile(args.input):
        raise SLError(f'--fps sets the frame rate of a frame folder; the video {args.input} keeps its own '
                      'timestamps: drop --fps.')
    check_writable(args.output, '-o', is_folder=not is_video_output(args.output))
    if args.save_masks:
        check_writable(args.save_masks, '--save-masks')


def output_folders(args):
    """The folders this run writes frames into: ``-o`` unless it is a video, and ``--save-masks``."""
    return ([] if is_video_output(args.output) else [args.output]) + ([args.save_masks] if args.save_masks else [])


def _read_manifest(folder):
    """The manifest an earlier sl-infer run left in ``folder``; None when there is none (or it is not ours)."""
    try:
        with open(os.path.join(folder, MANIFEST), encoding='utf-8') as handle:
            manifest = json.load(handle)
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) and isinstance(manifest.get('frames'), int) else None


def _owned_files(folder):
    """Paths of the files in ``folder`` that our manifest there says an sl-infer run wrote (manifest last).

    Raises:
        SLError: the folder holds anything else (temporaries of ours aside); nothing is removed.
    """
    manifest = _read_manifest(folder)
    ours = {frame_name(index) for index in range(manifest['frames'])} | {MANIFEST} if manifest else set()
    owned, foreign = [], []
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        if name in ours and os.path.isfile(path) and not os.path.islink(path):
            owned.append(path)
        elif not is_temporary(name):
            foreign.append(name)
    if foreign:
        more = f' and {len(foreign) - 3} more' if len(foreign) > 3 else ''
        raise SLError(f'output folder {folder} holds files sl-infer did not write ({", ".join(foreign[:3])}{more}); '
                      'nothing was removed: choose an empty or new folder, or move those files away.')
    return sorted(owned, key=lambda path: path.endswith(MANIFEST))


def prepare_outputs(args, manifest):
    """Check the output paths; return the frames already finished by an identical earlier run.

    With ``--overwrite`` only the files an earlier run's manifest lists (and our temporaries) are
    removed, and only when the output folders hold nothing else.

    Raises:
        SLError: the output exists (and is not an identical unfinished run) without ``--overwrite``,
            or holds files sl-infer did not write.
    """
    video_out = is_video_output(args.output)
    folders = output_folders(args)
    if video_out:
        if os.path.isdir(args.output):
            raise SLError(f'output {args.output} is a folder; give a video file name or another path.')
        if os.path.exists(args.output) and not args.overwrite:
            raise SLError(f'output {args.output} already exists; pass --overwrite to replace it '
                          'or choose another name.')
    for folder in folders:
        if os.path.exists(folder) and not os.path.isdir(folder):
            raise SLError(f'output {folder} is a file, not a folder; remove it or choose another path.')
    used = [folder for folder in folders
            if os.path.isdir(folder) and any(not is_temporary(name) for name in os.listdir(folder))]
    different = [folder for folder in used if _read_manifest(folder) != manifest]
    if different and not args.overwrite:
        previous = _read_manifest(different[0])
        if previous is not None:
            changed = sorted(key for key in manifest if previous.get(key) != manifest[key])
            raise SLError(f'output {different[0]} holds frames of another sl-infer run (different '
                          f'{", ".join(changed)}); rerun with the same arguments to resume, or pass --overwrite '
                          'to start again.')
        raise SLError(f'output {different[0]} already exists and is not empty; pass --overwrite to replace it '
                      'or choose another folder.')
    try:
        if video_out:
            remove_stale_temporaries(os.path.dirname(os.path.abspath(args.output)), name=os.path.basename(args.output))
        if args.overwrite:
            owned = [_owned_files(folder) for folder in used]  # every folder checked before anything is removed
            for path in (path for paths in owned for path in paths):
                os.remove(path)
        for folder in folders:
            remove_stale_temporaries(folder)
    except OSError as error:
        raise output_error(error.filename or args.output, error) from None
    if video_out or args.overwrite or args.output not in used:
        return set()
    done = finished_frames(args.output)
    if args.save_masks:
        done &= finished_frames(args.save_masks)
    return done


def _write_manifest(folder, manifest):
    write_json(os.path.join(folder, MANIFEST), manifest, indent=1, sort_keys=True)


def colour_masks(masks):
    """Colour instance masks by their most likely instance.

    Args:
        masks (Tensor): ``(n, h, w)`` distribution over ``n`` instances per pixel.

    Returns:
        ndarray: ``(h, w, 3)`` uint8 BGR (for the frame writers), instance ``i`` in the colour of the
        demo's figures (:func:`sl_arch.utils.visualize.instance_palette`).
    """
    from sl_arch.utils.visualize import instance_palette
    return np.ascontiguousarray(instance_palette(masks.shape[0])[:, ::-1][masks.float().argmax(0).numpy()])


def autocast_forward(net, net_type, save_masks, dtype=None):
    """Wrap ``net`` as the ``net_fn`` of :func:`sl_arch.utils.tiling.forward_window`.

    Args:
        net (nn.Module): The network.
        net_type (str): Its architecture, for messages.
        save_masks (bool): Also return the instance masks (SemanticLens).
        dtype (torch.dtype | None): Run the network under ``torch.autocast`` in this dtype; its
            outputs come back as float32, so tiles and windows are blended in float32.
    """
    if save_masks and 'return_masks' not in inspect.signature(net.forward).parameters:
        raise SLError(f'--save-masks needs an architecture with instance masks (SemanticLens); '
                      f'{net_type} has none: drop --save-masks.')
    if save_masks and getattr(net, 'semantic_extractor', True) is None:  # checked before any output folder is made
        raise SLError('--save-masks: this SemanticLens has its semantic branch off, so it makes no masks; '
                      'drop --save-masks.')

    def run(lqs):
        with torch.autocast(lqs.device.type, dtype=dtype, enabled=dtype is not None):
            if not save_masks:
                return net(lqs).float()
            output, masks = net(lqs, return_masks=True)
        return output.float(), masks.float()

    return run


def ensemble_forward(net_fn, ensemble, spec, net_type, save_masks):
    """``net_fn`` run as the two-pass ``ensemble`` (:mod:`sl_arch.utils.ensemble`); SLError where it cannot be."""
    if save_masks:
        raise SLError(f'--ensemble {ensemble} averages frames, not instance masks: drop --save-masks or --ensemble.')
    if ensemble == 'flip_seq' and spec.is_sliding_window:
        raise SLError(f'--ensemble flip_seq runs the clip and its time reversal as one sequence; {net_type} restores '
                      'the centre frame of a window: use --ensemble flip_width.')
    if ensemble == 'flip_seq' and spec.frame_wise:
        raise SLError(f'--ensemble flip_seq: {net_type} restores each frame alone, so the reversed clip gives the '
                      'same frames; use --ensemble flip_width.')
    forward = with_ensembles(lambda lqs, masks: net_fn(lqs), **{ensemble: True})
    return lambda lqs: forward(lqs, None)


def _peak_memory(device):
    rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    text = f'peak RSS {rss_kib / 1024:.0f} MiB'
    if device.type == 'cuda':
        text += f', peak GPU {torch.cuda.max_memory_allocated(device) / 2**20:.0f} MiB'
    return text


def read_input(args, min_shot):
    """Check and read the input once (:class:`~sl_arch.io.source.FrameSource`), detecting shot cuts.

    Returns:
        tuple: (source, cuts), cuts the first frames of every shot but the first (empty with
        ``--no-shot-detect``).
    """
    detector = None if args.no_shot_detect else ShotDetector(args.shot_threshold, min_shot)
    source = FrameSource(args.input, args.fps, visit=detector.add if detector else None, progress=True)
    return source, detector.cuts() if detector else []


def open_writers(args, source, settings):
    """The frame writer of ``-o`` (video or PNG folder) and of ``--save-masks`` (or None)."""
    if settings is not None:
        writer = VideoWriter(args.output, source.timing, settings, copy_from=args.input if source.is_video else None,
                             colour=source.video.colour if source.is_video else None)
    else:
        writer = FrameFolderWriter(args.output)
    return writer, FrameFolderWriter(args.save_masks) if args.save_masks else None


def encoder_settings(args):
    """The encoder settings of a video ``-o``, its codec checked against the input's streams; None for a PNG
    folder."""
    if not is_video_output(args.output):
        return None
    settings = EncoderSettings(args.codec, args.pix_fmt or DEFAULT_PIX_FMT, args.crf, args.preset)
    readable = os.path.isfile(args.input) and not is_image_file(os.path.basename(args.input))
    settings.codec = check_video_output(args.output, settings, copy_from=args.input if readable else None)
    return settings


def claim_output_folders(args, manifest):
    """Write the run's manifest into every output folder before any frame: it lists the frames this run may write
    there. A folder this call made is taken away again if a later one cannot be written (nothing half-made)."""
    made = []
    try:
        for folder in output_folders(args):
            if not os.path.exists(folder):
                made.append(folder)
            _write_manifest(folder, manifest)
    except BaseException:
        for folder in made:
            with contextlib.suppress(OSError):
                os.remove(os.path.join(folder, MANIFEST))
                os.rmdir(folder)
        raise


def window_clips(source, windows, first):
    """Each window from index ``first`` on, with its LR clip (1, t, c, h, w): (index, window, clip). Every frame is
    decoded once and kept until no later window reads it."""
    # in_start is not monotonic at the clip end for reflected sliding windows: keep what any later window reads (the
    # suffix minima, in one pass: a sliding-window network has a window per frame)
    keep_from = list(itertools.accumulate(reversed([window.in_start for window in windows]), min))[::-1]
    frames = source.frames(range(keep_from[first], source.num_frames))
    buffer, next_frame = {}, keep_from[first]
    try:
        for index in range(first, len(windows)):
            window = windows[index]
            while next_frame < window.in_stop:
                frame_index, img = next(frames)
                buffer[frame_index] = frames_to_tensor([img])[0]
                next_frame = frame_index + 1
            for old in [frame for frame in buffer if frame < keep_from[index]]:
                del buffer[old]
            yield index, window, torch.stack([buffer[frame] for frame in range(window.in_start, window.in_stop)])[None]
    finally:
        frames.close()  # closes the decoder now, not when the generator is collected


def run_window(net_fn, clip, window, frame_inputs, args, device, source, net_type, multiple):
    """The network's outputs for one window's ``clip`` (on ``device``), brought to the CPU: its HR frames (1, t, c,
    h, w), or (frames, masks) with ``--save-masks``."""
    with torch.no_grad():
        try:
            outputs = forward_window(net_fn, clip.to(device), window, frame_inputs, args.tile, args.tile_overlap,
                                     multiple)
        except torch.OutOfMemoryError:
            raise SLError(f'out of memory on {args.device} for a {window.stop - window.start}-frame window of '
                          f'{source.width}x{source.height}; lower --chunk or set --tile (e.g. 128).') from None
    outputs = tuple(output.cpu() for output in outputs) if isinstance(outputs, tuple) else outputs.cpu()
    frames_out = outputs[0] if isinstance(outputs, tuple) else outputs
    if frames_out.dim() != 5 or frames_out.shape[1] != window.stop - window.start:
        raise SLError(f'{net_type} returned shape {tuple(frames_out.shape)} for {window.stop - window.start} '
                      'frames, not (1, t, c, h, w); sl-infer runs recurrent (BasicVSR, SemanticLens) and '
                      'sliding-window (EDVR, DUF) video networks.')
    return outputs


def upscale(args):
    """Run the inference described by parsed ``args``; returns a summary dict."""
    started = time.time()
    check_paths(args)
    device = torch_device(args.device)
    dtype = autocast_dtype(args.precision, device)
    settings = encoder_settings(args)
    loaded = load_network(args.weights, opt_path=args.opt, param_key=args.param_key)
    net_opt, spec, net_type = loaded.net_opt, loaded.spec, loaded.net_opt['type']
    # channels_last measured faster on a CPU (SemanticLens tiny 0.85x fp32, 0.58x bf16; EDVR 0.85x; BasicVSR 0.78x)
    net = loaded.net.to(device, memory_format=torch.channels_last)
    net_fn = autocast_forward(net, net_type, args.save_masks, dtype)
    if args.ensemble:
        net_fn = ensemble_forward(net_fn, args.ensemble, spec, net_type, args.save_masks)

    source, cuts = read_input(args, max(MIN_SHOT_FRAMES, spec.min_frames))
    num_neighbours = spec.sliding_window_frames or 0
    frame_inputs = sliding_frame_indices(source.num_frames, num_neighbours, args.padding, cuts) \
        if num_neighbours else None
    overlap = 0 if frame_inputs else args.overlap  # a sliding window is exact: nothing to blend
    windows = plan_windows(source.num_frames, args.chunk, overlap, frame_inputs, cuts)
    check_input_fits(spec, source.height, source.width, [window.in_stop - window.in_start for window in windows],
                     args.tile, source=source.path, clip_frames=source.num_frames, device=device)

    manifest = run_manifest(args, source, net_opt, overlap, cuts)
    done = prepare_outputs(args, manifest)
    claim_output_folders(args, manifest)
    summary = {'frames': source.num_frames, 'resumed': len(done), 'written': 0, 'windows': 0, 'cuts': cuts,
               'input_size': (source.width, source.height), 'output_size': None, 'network_seconds': 0.0}
    missing = [frame for frame in range(source.num_frames) if frame not in done]
    if not missing:
        print(f'{args.output}: all {source.num_frames} frames already done; nothing to compute.')
        return summary

    first = first_window_for(windows, missing[0])
    writer, mask_writer = open_writers(args, source, settings)
    blender = TemporalBlender(windows, overlap, source.num_frames)
    clips = window_clips(source, windows, first)
    progress = tqdm(total=source.num_frames, initial=len(done), unit='frame', desc='sl-infer', dynamic_ncols=True)
    try:
        for index, window, clip in clips:
            network_started = time.perf_counter()
            outputs = run_window(net_fn, clip, window, frame_inputs, args, device, source, net_type,
                                 spec.size_multiple)
            summary['network_seconds'] += time.perf_counter() - network_started  # .cpu() waited for the GPU
            summary['windows'] += 1
            for frame, blended in blender.add(index, outputs):
                if frame in done:
                    continue
                image = tensor_to_frame(blended[0][0] if isinstance(blended, tuple) else blended[0])
                writer.write(frame, image)
                if mask_writer is not None:
                    mask_writer.write(frame, colour_masks(blended[1][0]))
                summary['written'] += 1
                summary['output_size'] = (image.shape[1], image.shape[0])
                progress.update(1)
        writer.close()
    except BaseException:
        writer.abort()
        raise
    finally:
        clips.close()
        progress.close()
    summary['seconds'] = time.time() - started
    print(summary_line(args, source, net_type, summary, device))
    return summary


def summary_line(args, source, net_type, summary, device):
    """The one line ``sl-infer`` prints when it is done."""
    out_w, out_h = summary['output_size']
    if args.no_shot_detect:
        shots = 'shot detection off'
    else:
        cuts = summary['cuts']
        plural = 's' if len(cuts) > 1 else ''
        listed = ', '.join(map(str, cuts))
        shots = f'{len(cuts) + 1} shots, cut{plural} at frame{plural} {listed}' if cuts else 'one shot'
    copied = ''
    if is_video_output(args.output) and source.is_video:
        streams = source.video
        copied = (f'; copied {", ".join(streams.copied_streams)}' if streams.copied_streams else '') + \
            (f'; not copied: {", ".join(streams.other_streams)}' if streams.other_streams else '')
    return (f'sl-infer: {summary["written"]} frames written to {args.output}'
            + (f' ({summary["resumed"]} already done, resumed)' if summary['resumed'] else '')
            + f'; {source.width}x{source.height} -> {out_w}x{out_h} ({net_type}, {args.precision}), '
            + f'{summary["windows"]} window{"s" if summary["windows"] != 1 else ""}, {shots}'
            + (f', tiles {args.tile}px' if args.tile else '') + copied
            + f'; {summary["seconds"]:.1f} s, {summary["written"] / summary["seconds"]:.2f} frames/s '
            + f'(network {summary["network_seconds"]:.2f} s); '
            + _peak_memory(device)
            + (f'; masks in {args.save_masks}' if args.save_masks else ''))


@cli_entry
def main(argv=None):
    """Console entry point ``sl-infer``."""
    quiet_ffmpeg()
    upscale(parse_args(argv))


if __name__ == '__main__':
    main(sys.argv[1:])
