"""Index of video clips shared by the training and test datasets.

A *clip store* (:class:`ClipStore`) is one root of frames, either a folder
(``<root>/<clip>/<frame>.<ext>``, clips may be nested as in Vimeo-90K) or a BasicSR lmdb (keys
``<clip>/<frame>``, listed in its ``meta_info.txt``). :func:`build_clip_index` pairs an LR store
with an optional GT store and checks them once at start-up, so that bad data fails before
training starts: every clip, and (unless ``check_frames: false``) the header of every frame, all
problems reported in one error.
"""
import io
import os
import struct
from collections import namedtuple

import numpy as np

from sl_arch.data.dataset_files import find_mask, read_lmdb_keys, read_mask, read_meta_info
from sl_arch.io.images import decode_image, read_image
from sl_arch.io.listing import find_clip_folders, list_frames
from sl_arch.utils.errors import SLError
from sl_arch.utils.options import check_option_types, reject_unknown_keys

Clip = namedtuple('Clip', ['name', 'lq_frames', 'gt_frames', 'gt_shape', 'lq_size'], defaults=[None])
Clip.__doc__ = """One clip: its name, LR frame names, GT frame names (None without GT), GT shape (or None)
from meta_info, and the (width, height) of its LR frames when they were checked (else None)."""

BACKENDS = ('disk', 'lmdb')

#: Dataset keys that BasicSR itself reads (data loader, sampler) or adds (phase, scale).
LOADER_KEYS = ('name', 'type', 'phase', 'scale', 'batch_size_per_gpu', 'num_worker_per_gpu', 'dataset_enlarge_ratio',
               'prefetch_mode', 'num_prefetch_queue', 'pin_memory', 'persistent_workers', 'use_shuffle')

#: Kinds (see :data:`sl_arch.utils.options.KINDS`) of the data keys every sl_arch dataset takes.
COMMON_OPTION_KINDS = {'dataroot_gt': 'str', 'dataroot_lq': 'str', 'meta_info_file': 'str', 'io_backend': 'dict',
                       'semantics_root': 'str', 'flow_root': 'str', 'check_frames': 'bool'}

#: Kinds of the :data:`LOADER_KEYS` that have one.
LOADER_OPTION_KINDS = {'name': 'str', 'scale': 'int>0', 'batch_size_per_gpu': 'int>0', 'num_worker_per_gpu': 'int>=0',
                       'dataset_enlarge_ratio': 'number', 'pin_memory': 'bool', 'persistent_workers': 'bool'}

#: Most frame problems listed in one error (the rest are counted).
MAX_LISTED_PROBLEMS = 10

_PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'
_PNG_END = b'IEND\xaeB`\x82'
_JPEG_END = b'\xff\xd9'


class ClipStore:
    """Frames of one data-set root, by clip and frame name, read from disk or from an lmdb.

    Args:
        root (str): Folder of clip folders, or an lmdb folder (``*.lmdb``).
        backend (str): ``'disk'`` or ``'lmdb'``.
        role (str): ``'dataroot_gt'`` / ``'dataroot_lq'``, for messages.
    """

    def __init__(self, root, backend, role):
        if backend not in BACKENDS:
            raise SLError(f'io_backend type {backend!r} is not supported; use one of {BACKENDS}.')
        if not root or not os.path.isdir(root):
            raise SLError(f'{role} {root} does not exist or is not a folder; fix the path in the option file.')
        self.root = root
        self.backend = backend
        self.role = role
        self._env = None
        self._clips = None
        self._decoded = None  # {(clip, frame): image} once keep_decoded() is called
        if backend == 'lmdb':
            self.clips  # an lmdb's index is one small text file: read it now, so a wrong root fails here

    @property
    def clips(self):
        """dict[str, list[str]]: Clip name -> frame names, for every clip the root holds."""
        if self._clips is None:
            self._clips = read_lmdb_keys(self.root) if self.backend == 'lmdb' else find_clip_folders(self.root)
            if not self._clips:
                raise SLError(f'{self.role} {self.root} holds no frames (empty folder); put clip folders of '
                              'image frames there, e.g. with sl-prepare.')
        return self._clips

    def frames_of(self, clip):
        """Frame names of ``clip``; raises if the clip is absent."""
        if self.backend == 'disk' and self._clips is None:
            folder = os.path.join(self.root, clip)
            if not os.path.isdir(folder):
                raise SLError(f'clip folder {folder} does not exist; fix meta_info_file or {self.role}.')
            frames = list_frames(folder)
            if not frames:
                raise SLError(f'clip folder {folder} holds no image frames (empty folder); remove the clip '
                              'from meta_info_file or re-run sl-prepare.')
            return frames
        if clip not in self.clips:
            raise SLError(f'{self.role} {self.root} has no clip {clip!r}; fix meta_info_file or re-run sl-prepare.')
        return self.clips[clip]

    def location(self, clip, frame):
        """File path (disk) or ``<lmdb> key <key>`` (lmdb) of one frame, for messages and ``lq_path``."""
        if self.backend == 'lmdb':
            return f'{self.root} key {self.key(clip, frame)}'
        return os.path.join(self.root, clip, frame)

    @staticmethod
    def key(clip, frame):
        return frame if clip == '.' else f'{clip}/{frame}'

    def _open_lmdb(self):
        import lmdb
        return lmdb.open(self.root, readonly=True, lock=False, readahead=False)

    def keep_decoded(self):
        """Keep every frame :meth:`read` decodes in memory (per process), so that each is decoded once.

        The images it then returns are read-only: copy what you change.
        """
        if self._decoded is None:
            self._decoded = {}

    def read(self, clip, frame):
        """Read one frame as (h, w, 3) uint8 BGR (read-only after :meth:`keep_decoded`)."""
        if self._decoded is not None and (clip, frame) in self._decoded:
            return self._decoded[clip, frame]
        if self.backend == 'disk':
            img = read_image(os.path.join(self.root, clip, frame))
        else:
            if self._env is None:  # opened lazily, in the data-loader worker that reads
                self._env = self._open_lmdb()
            with self._env.begin(write=False) as txn:
                content = txn.get(self.key(clip, frame).encode('ascii'))
            img = decode_image(content, self.location(clip, frame))
        if self._decoded is not None:
            img.flags.writeable = False  # a crop flipped in place must not change the kept frame
            self._decoded[clip, frame] = img
        return img

    def frame_sizes(self, clips):
        """Check every frame's header without decoding it: present, an image, not truncated.

        Reads the first and last bytes of each frame (a PNG's IHDR and IEND chunks; other formats
        through PIL's header parser), so thousands of frames are checked per second.

        Args:
            clips (list[tuple[str, list[str]]]): (clip, frame names) pairs.

        Returns:
            tuple: ``{(clip, frame): (width, height)}`` of the good frames, and a list of problem
            messages for the others.
        """
        sizes, problems = {}, []

        def probe(clip, frame, head, tail, whole):
            try:
                sizes[clip, frame] = frame_header_size(head, tail, whole)
            except ValueError as error:
                problems.append(f'{self.location(clip, frame)} cannot be decoded ({error}); re-create it with '
                                'sl-prepare or delete its clip from the data set')

        if self.backend == 'disk':
            for clip, frames in clips:
                for frame in frames:
                    path = os.path.join(self.root, clip, frame)
                    try:
                        with open(path, 'rb') as handle:
                            head = handle.read(64)
                            handle.seek(max(0, os.fstat(handle.fileno()).st_size - 64))
                            tail = handle.read()
                    except OSError as error:
                        problems.append(f'{path} cannot be read ({error.strerror}); check its permissions')
                        continue
                    probe(clip, frame, head, tail, lambda path=path: open(path, 'rb'))
            return sizes, problems
        env = self._open_lmdb()  # not self._env: data-loader workers must not inherit an open environment
        try:
            with env.begin(write=False, buffers=True) as txn:
                for clip, frames in clips:
                    for frame in frames:
                        content = txn.get(self.key(clip, frame).encode('ascii'))
                        if content is None:
                            problems.append(f'{self.location(clip, frame)} does not exist; re-run sl-prepare or fix '
                                            'the meta_info file that lists it')
                        else:
                            probe(clip, frame, bytes(content[:64]), bytes(content[-64:]),
                                  lambda content=content: io.BytesIO(bytes(content)))
        finally:
            env.close()
        return sizes, problems

    def __getstate__(self):
        state = self.__dict__.copy()
        state['_env'] = None  # lmdb environments cannot cross process boundaries
        return state


def frame_header_size(head, tail, open_whole):
    """(width, height) of an encoded frame from its first and last bytes, without decoding it.

    Args:
        head (bytes): The first bytes (at least 33 for a PNG).
        tail (bytes): The last bytes (a PNG ends with its IEND chunk, a JPEG with FF D9).
        open_whole (callable): Returns a binary file object of the whole frame, for PIL's header
            parser (formats other than PNG).

    Raises:
        ValueError: the frame is empty, truncated, or not an image; the message says which.
    """
    if not head:
        raise ValueError('empty file')
    if head.startswith(_PNG_SIGNATURE):
        if len(head) < 24 or head[12:16] != b'IHDR':
            raise ValueError('truncated PNG header')
        if not tail.endswith(_PNG_END):
            raise ValueError('truncated PNG: no end chunk')
        return struct.unpack('>II', head[16:24])
    from PIL import Image, UnidentifiedImageError
    try:
        with open_whole() as handle, Image.open(handle) as img:
            size, kind = img.size, img.format
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        raise ValueError('not an image or truncated') from None
    if kind == 'JPEG' and not tail.rstrip(b'\0').endswith(_JPEG_END):
        raise ValueError('truncated JPEG: no end marker')
    return size


def require_options(opt, keys, dataset_type):
    """Raise one error naming every required option key that ``opt`` lacks."""
    missing = [key for key in keys if opt.get(key) is None]
    if missing:
        raise SLError(f'{dataset_type} needs the option(s) {", ".join(missing)}; add them to the dataset '
                      'section of the option file (see datasets/README.md).')


def check_dataset_options(dataset_cls, opt, section, check_paths=True):
    """Check a dataset section before anything is built: keys, kinds, backend, and that the roots exist.

    Args:
        dataset_cls (type): The dataset class; its ``OPTION_KINDS`` (key -> kind, beyond
            :data:`COMMON_OPTION_KINDS`), ``REQUIRED_OPTIONS`` and ``OPTION_KEYS`` describe the keys.
        opt (dict): The dataset options.
        section (str): Where they are in the option file, e.g. ``'datasets.train'``.
        check_paths (bool): Also check that the roots, ``meta_info_file`` and ``semantics_root`` exist.

    Raises:
        SLError: an unknown key (with the nearest valid key), a missing or mistyped one, an unknown
            io_backend, or a root / meta_info_file / semantics_root that does not exist.
    """
    name = dataset_cls.__name__
    reject_unknown_keys([key for key in opt if key not in dataset_cls.OPTION_KEYS], dataset_cls.OPTION_KEYS, section,
                        name)
    require_options(opt, dataset_cls.REQUIRED_OPTIONS, name)
    check_option_types(opt, {**COMMON_OPTION_KINDS, **dataset_cls.OPTION_KINDS, **LOADER_OPTION_KINDS},
                       f'{name} {section}')
    backend = (opt.get('io_backend') or {}).get('type', 'disk')
    if backend not in BACKENDS:
        raise SLError(f'{section}.io_backend type {backend!r} is not supported; use one of {BACKENDS}.')
    if not check_paths:
        return
    for role in ('dataroot_lq', 'dataroot_gt'):
        if opt.get(role) is not None:
            ClipStore(opt[role], backend, role)
    if opt.get('meta_info_file') is not None and not os.path.isfile(opt['meta_info_file']):
        raise SLError(f'meta_info_file {opt["meta_info_file"]} does not exist; fix the path or remove the option '
                      'to scan folders.')
    if opt.get('semantics_root') is not None and not os.path.isdir(opt['semantics_root']):
        raise SLError(f'semantics_root {opt["semantics_root"]} does not exist or is not a folder; fix the path or '
                      'remove the option to use the learned masks.')
    if opt.get('flow_root') is not None and not os.path.isdir(os.path.join(opt['flow_root'], 'flow_fwd')):
        raise SLError(f'flow_root {opt["flow_root"]} has no flow_fwd/ folder (sl-prepare --synthetic layout); fix the '
                      'path or remove the option to let the network estimate the flow.')


def dataset_option_keys(option_kinds):
    """Every key a dataset reads: the common data keys, its own (``option_kinds``), BasicSR's :data:`LOADER_KEYS`."""
    return (*COMMON_OPTION_KINDS, *option_kinds, *LOADER_KEYS)


def raise_problems(problems, what):
    """Raise one :class:`SLError` listing the first :data:`MAX_LISTED_PROBLEMS` problems and counting the rest.

    Args:
        problems (list[str]): Messages, each naming its file and fix; nothing happens when empty.
        what (str): What was checked, e.g. ``'the frames of dataroot_lq X'``.
    """
    if len(problems) == 1:
        raise SLError(f'{problems[0]}.')
    if problems:
        listed = '; '.join(f'[{number}] {problem}' for number, problem in enumerate(problems[:MAX_LISTED_PROBLEMS], 1))
        more = len(problems) - MAX_LISTED_PROBLEMS
        raise SLError(f'{len(problems)} problems in {what}: {listed}' + (f'; and {more} more.' if more > 0 else '.'))


def build_clip_index(dataroot_lq, dataroot_gt=None, backend='disk', meta_info_file=None, scale=4, check_frames=True):
    """Pair LR and GT clips and check that they match, reporting every problem at once.

    Args:
        dataroot_lq (str): Root of the LR frames.
        dataroot_gt (str | None): Root of the GT frames; None for LR-only data.
        backend (str): ``'disk'`` or ``'lmdb'``.
        meta_info_file (str | None): BasicSR meta_info file listing the clips to use; None to use
            every clip found under the roots.
        scale (int): GT frames must be ``scale`` times their LR frames.
        check_frames (bool): Also check every frame's header (:meth:`ClipStore.frame_sizes`):
            present, not truncated, one size per clip, GT = scale x LR.

    Returns:
        tuple: (lq_source, gt_source or None, list[Clip]); with ``check_frames`` every clip has its
        ``lq_size``.

    Raises:
        SLError: listing every missing clip, frame-count mismatch and bad frame.
    """
    lq_source = ClipStore(dataroot_lq, backend, 'dataroot_lq')
    gt_source = ClipStore(dataroot_gt, backend, 'dataroot_gt') if dataroot_gt else None
    main_source = gt_source or lq_source
    if meta_info_file:
        entries = read_meta_info(meta_info_file)
    else:
        entries = [(name, None, None) for name in main_source.clips]
        if gt_source is not None:
            extra = sorted(set(lq_source.clips) - set(gt_source.clips))
            if extra:
                raise SLError(f'dataroot_lq {dataroot_lq} has clips that dataroot_gt {dataroot_gt} lacks: '
                              f'{extra[:5]}; give both roots the same clips or list the clips in meta_info_file.')
    clips, problems = [], []
    for name, num_frames, shape in entries:
        try:
            lq_frames = lq_source.frames_of(name)
            gt_frames = gt_source.frames_of(name) if gt_source else None
        except SLError as error:
            problems.append(str(error).rstrip('.'))
            continue
        main_frames = gt_frames if gt_source else lq_frames
        if num_frames is not None and len(main_frames) != num_frames:
            problems.append(f'{meta_info_file} lists {num_frames} frames for clip {name!r} but '
                            f'{main_source.location(name, "")} holds {len(main_frames)}; '
                            'fix the meta_info file or re-run sl-prepare')
        elif gt_frames is not None and len(gt_frames) != len(lq_frames):
            problems.append(f'clip {name!r}: {lq_source.location(name, "")} has {len(lq_frames)} LR frames but '
                            f'{gt_source.location(name, "")} has {len(gt_frames)} GT frames; '
                            'give LR and GT the same frames (re-run sl-prepare)')
        else:
            clips.append(Clip(name, lq_frames, gt_frames, shape))
    if check_frames:
        clips = _check_frames(lq_source, gt_source, clips, scale, problems)
    raise_problems(problems, f'the clips of {dataroot_lq}' + (f' and {dataroot_gt}' if dataroot_gt else ''))
    return lq_source, gt_source, clips


def _check_frames(lq_source, gt_source, clips, scale, problems):
    """Check every frame header of ``clips``; append problems; return the clips with their ``lq_size``."""
    lq_sizes, lq_problems = lq_source.frame_sizes([(clip.name, clip.lq_frames) for clip in clips])
    problems += lq_problems
    gt_sizes = {}
    if gt_source is not None:
        gt_sizes, gt_problems = gt_source.frame_sizes([(clip.name, clip.gt_frames) for clip in clips])
        problems += gt_problems
    checked = []
    for clip in clips:
        sizes = [lq_sizes.get((clip.name, frame)) for frame in clip.lq_frames]
        problems += clip_size_problems(lq_source, clip.name, clip.lq_frames, sizes)
        if gt_source is not None:
            gt_frame_sizes = [gt_sizes.get((clip.name, frame)) for frame in clip.gt_frames]
            problems += clip_size_problems(gt_source, clip.name, clip.gt_frames, gt_frame_sizes)
            for lq_frame, gt_frame, lq_size, gt_size in zip(clip.lq_frames, clip.gt_frames, sizes, gt_frame_sizes):
                if lq_size and gt_size:  # the first frame pair of the clip with both headers good
                    problem = pair_problem(gt_source.location(clip.name, gt_frame), gt_size,
                                           lq_source.location(clip.name, lq_frame), lq_size, scale)
                    problems += [problem] if problem else []
                    break
        checked.append(clip._replace(lq_size=next((size for size in sizes if size), None)))
    return checked


def clip_size_problems(source, clip, frames, sizes):
    """One problem for each frame of a clip whose (width, height) differs from the clip's first good frame."""
    known = [(frame, size) for frame, size in zip(frames, sizes) if size]
    return [size_problem(source.location(clip, frame), size, source.location(clip, known[0][0]), known[0][1])
            for frame, size in known[1:] if size != known[0][1]]


def size_problem(path, size, first_path, first_size):
    """Message for a frame whose (width, height) ``size`` differs from its clip's first frame."""
    return (f'{path} is {size[0]}x{size[1]} but {first_path} is {first_size[0]}x{first_size[1]}; '
            'all frames of a clip must have one size (re-run sl-prepare with --resize)')


def pair_problem(gt_path, gt_size, lq_path, lq_size, scale):
    """Message when a GT frame (``gt_size`` = (width, height)) is not ``scale`` times its LR frame, else None."""
    (gt_w, gt_h), (lq_w, lq_h) = gt_size, lq_size
    if gt_h % scale or gt_w % scale:
        return (f'GT frame {gt_path} is {gt_w}x{gt_h}, not divisible by scale {scale}; '
                'crop GT to a multiple of the scale (sl-prepare does) or fix the scale option')
    if (gt_h, gt_w) != (lq_h * scale, lq_w * scale):
        return (f'GT frame {gt_path} is {gt_w}x{gt_h} but LR frame {lq_path} is {lq_w}x{lq_h}, not 1/{scale} of it; '
                'fix the scale option or re-run sl-prepare --scale')
    return None


def read_clip_frames(source, clip, frames):
    """Read several frames of one clip; all must have the same size.

    Returns:
        list[ndarray]: (h, w, 3) uint8 BGR frames.
    """
    imgs = [source.read(clip, frame) for frame in frames]
    for frame, img in zip(frames, imgs):
        if img.shape != imgs[0].shape:
            raise SLError(size_problem(source.location(clip, frame), img.shape[1::-1], source.location(clip, frames[0]),
                                       imgs[0].shape[1::-1]) + '.')
    return imgs


def check_pair(gt_source, lq_source, clip, *, frames, imgs, scale):
    """Raise if a GT frame is not ``scale`` times its LR frame (or not divisible by ``scale``).

    Args:
        gt_source, lq_source (ClipStore): Where the GT and LR frames come from (for messages).
        clip (str): Clip name.
        frames (tuple[str, str]): The GT frame and the LR frame (names within the clip).
        imgs (tuple[ndarray, ndarray]): Their images (h, w, c).
        scale (int): Upscaling factor.

    Raises:
        SLError: naming both files and their sizes.
    """
    (gt_frame, lq_frame), (gt_img, lq_img) = frames, imgs
    problem = pair_problem(gt_source.location(clip, gt_frame), gt_img.shape[1::-1], lq_source.location(clip, lq_frame),
                           lq_img.shape[1::-1], scale)
    if problem:
        raise SLError(f'{problem}.')


def read_clip_masks(semantics_root, clip, frames, lq_shape):
    """Read the instance-id masks of some LR frames.

    Returns:
        ndarray: (t, h, w) int32 instance ids.
    """
    return np.stack([read_mask(find_mask(semantics_root, clip, frame), lq_shape) for frame in frames])


def read_window_flows(flow_root, clip, frames, indices):
    """Read the exact LR-pixel flows between consecutive frames of a window, in SemanticLens' ``flows=`` order.

    The layout is ``sl-prepare --synthetic``'s: ``<flow_root>/flow_fwd/<clip>/<frame stem>.npy`` (h, w, 2),
    the frame's flow (dx, dy) to the next frame, and ``flow_bwd/...`` to the previous one.

    Args:
        flow_root (str): The folder holding ``flow_fwd/`` and ``flow_bwd/`` (a split of sl-prepare --synthetic).
        clip (str): Clip name.
        frames (list[str]): The window's LR frame names, in window order.
        indices (list[int]): Their positions in the clip; neighbours in the window must be neighbours in the
            clip (the window may run backwards).

    Returns:
        tuple[list[ndarray], list[ndarray]]: ``(backward, forward)``, t - 1 arrays (h, w, 2) float32 each:
        backward[i] is frame i's flow to frame i + 1 (it aligns frame i + 1 to frame i), forward[i] frame
        i + 1's flow to frame i.

    Raises:
        SLError: a window with a stride other than 1, or a missing flow file (named).
    """
    steps = [following - current for current, following in zip(indices, indices[1:])]
    if any(abs(step) != 1 for step in steps):
        raise SLError(f'flow_root {flow_root} holds flows between neighbouring frames only; clip {clip!r} was read '
                      f'with a stride of {max(abs(step) for step in steps)}: set interval_list to [1].')

    def read(position, step):
        path = os.path.join(flow_root, 'flow_fwd' if step == 1 else 'flow_bwd', clip,
                            os.path.splitext(frames[position])[0] + '.npy')
        if not os.path.isfile(path):
            raise SLError(f'{path} is missing: flow_root must hold the flow of every frame (sl-prepare --synthetic '
                          'layout); fix flow_root or remove it.')
        return np.load(path).astype(np.float32)

    return ([read(i, step) for i, step in enumerate(steps)], [read(i + 1, -step) for i, step in enumerate(steps)])
