"""Index of video clips shared by the training and test datasets.

A *frame source* is one root of frames, either a folder (``<root>/<clip>/<frame>.<ext>``, clips
may be nested as in Vimeo-90K) or a BasicSR lmdb (keys ``<clip>/<frame>``, listed in its
``meta_info.txt``). :func:`build_clip_index` pairs an LR source with an optional GT source and
checks them once at start-up, so that bad data fails before training starts.
"""
import os
from collections import namedtuple

import numpy as np
import torch
from basicsr.utils import img2tensor

from sl_arch.data.video_io import (decode_image, find_clip_folders, find_mask, list_frames, read_image,
                                   read_lmdb_keys, read_mask, read_meta_info)
from sl_arch.utils.errors import SLError

Clip = namedtuple('Clip', ['name', 'lq_frames', 'gt_frames', 'gt_shape'])
Clip.__doc__ = """One clip: its name, LR frame names, GT frame names (None without GT), GT shape (or None)."""

BACKENDS = ('disk', 'lmdb')


class FrameSource:
    """Frames of one root, by clip, read from disk or from an lmdb.

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

    def read(self, clip, frame):
        """Read one frame as (h, w, 3) uint8 BGR."""
        if self.backend == 'disk':
            return read_image(os.path.join(self.root, clip, frame))
        if self._env is None:  # opened lazily, in the data-loader worker that reads
            import lmdb
            self._env = lmdb.open(self.root, readonly=True, lock=False, readahead=False)
        with self._env.begin(write=False) as txn:
            content = txn.get(self.key(clip, frame).encode('ascii'))
        return decode_image(content, self.location(clip, frame))

    def __getstate__(self):
        state = self.__dict__.copy()
        state['_env'] = None  # lmdb environments cannot cross process boundaries
        return state


def require_options(opt, keys, dataset_type):
    """Raise one error naming every required option key that ``opt`` lacks."""
    missing = [key for key in keys if opt.get(key) is None]
    if missing:
        raise SLError(f'{dataset_type} needs the option(s) {", ".join(missing)}; add them to the dataset '
                      'section of the option file (see datasets/README.md).')


def build_clip_index(dataroot_lq, dataroot_gt=None, backend='disk', meta_info_file=None):
    """Pair LR and GT clips and check that they match.

    Args:
        dataroot_lq (str): Root of the LR frames.
        dataroot_gt (str | None): Root of the GT frames; None for LR-only data.
        backend (str): ``'disk'`` or ``'lmdb'``.
        meta_info_file (str | None): BasicSR meta_info file listing the clips to use; None to use
            every clip found under the roots.

    Returns:
        tuple: (lq_source, gt_source or None, list[Clip]).
    """
    lq_source = FrameSource(dataroot_lq, backend, 'dataroot_lq')
    gt_source = FrameSource(dataroot_gt, backend, 'dataroot_gt') if dataroot_gt else None
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
    clips = []
    for name, num_frames, shape in entries:
        lq_frames = lq_source.frames_of(name)
        gt_frames = gt_source.frames_of(name) if gt_source else None
        main_frames = gt_frames if gt_source else lq_frames
        if num_frames is not None and len(main_frames) != num_frames:
            raise SLError(f'{meta_info_file} lists {num_frames} frames for clip {name!r} but '
                          f'{main_source.location(name, "")} holds {len(main_frames)}; '
                          'fix the meta_info file or re-run sl-prepare.')
        if gt_frames is not None and len(gt_frames) != len(lq_frames):
            raise SLError(f'clip {name!r}: {lq_source.location(name, "")} has {len(lq_frames)} LR frames but '
                          f'{gt_source.location(name, "")} has {len(gt_frames)} GT frames; '
                          'give LR and GT the same frames (re-run sl-prepare).')
        clips.append(Clip(name, lq_frames, gt_frames, shape))
    return lq_source, gt_source, clips


def read_clip_frames(source, clip, frames):
    """Read several frames of one clip; all must have the same size.

    Returns:
        list[ndarray]: (h, w, 3) uint8 BGR frames.
    """
    imgs = [source.read(clip, frame) for frame in frames]
    for frame, img in zip(frames, imgs):
        if img.shape != imgs[0].shape:
            raise SLError(f'{source.location(clip, frame)} is {img.shape[1]}x{img.shape[0]} but '
                          f'{source.location(clip, frames[0])} is {imgs[0].shape[1]}x{imgs[0].shape[0]}; '
                          'all frames of a clip must have one size (re-run sl-prepare with --resize).')
    return imgs


def check_pair(gt_source, lq_source, clip, gt_frame, lq_frame, gt_img, lq_img, scale):
    """Raise if a GT frame is not ``scale`` times its LR frame (or not divisible by ``scale``)."""
    gt_h, gt_w = gt_img.shape[:2]
    lq_h, lq_w = lq_img.shape[:2]
    gt_path = gt_source.location(clip, gt_frame)
    if gt_h % scale or gt_w % scale:
        raise SLError(f'GT frame {gt_path} is {gt_w}x{gt_h}, not divisible by scale {scale}; '
                      'crop GT to a multiple of the scale (sl-prepare does) or fix the scale option.')
    if (gt_h, gt_w) != (lq_h * scale, lq_w * scale):
        raise SLError(f'GT frame {gt_path} is {gt_w}x{gt_h} but LR frame {lq_source.location(clip, lq_frame)} is '
                      f'{lq_w}x{lq_h}, not 1/{scale} of it; fix the scale option or re-run sl-prepare --scale.')


def read_clip_masks(semantics_root, clip, frames, lq_shape):
    """Read the instance-id masks of some LR frames.

    Returns:
        ndarray: (t, h, w) int32 instance ids.
    """
    return np.stack([read_mask(find_mask(semantics_root, clip, frame), lq_shape) for frame in frames])


def frames_to_tensor(imgs):
    """Stack BGR uint8 (or float in [0, 1]) frames into one RGB float tensor.

    Args:
        imgs (list[ndarray]): t frames of shape (h, w, 3).

    Returns:
        Tensor: (t, 3, h, w) float32 in [0, 1].
    """
    imgs = [img.astype(np.float32) / 255. if img.dtype == np.uint8 else img for img in imgs]
    return torch.stack(img2tensor(imgs, bgr2rgb=True, float32=True), dim=0)
