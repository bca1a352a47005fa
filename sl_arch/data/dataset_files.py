"""Files of a data set beside its frames: meta_info lists, lmdb key lists, instance-id masks.

Frames themselves are listed and decoded by :mod:`sl_arch.io`; every function here raises
:class:`~sl_arch.utils.errors.SLError` with the file and the fix when the input is bad, so that
datasets report one clear line.
"""
import os
import re

import cv2
import numpy as np

from sl_arch.io.images import read_image
from sl_arch.io.listing import natural_key
from sl_arch.utils.errors import SLError

MASK_EXTENSIONS = ('.npy', '.png')


def read_mask(path, lq_shape):
    """Read a per-frame instance-id mask saved as ``.npy`` (h, w) or a single-channel PNG.

    Args:
        path (str): Mask file.
        lq_shape (tuple[int]): (h, w) of the LR frame the mask belongs to.

    Returns:
        ndarray: (h, w) int32 instance ids.
    """
    if not os.path.isfile(path):
        raise SLError(f'semantic mask {path} does not exist; write one mask per LR frame '
                      '(<semantics_root>/<clip>/<frame>.npy or .png) or remove semantics_root.')
    if path.endswith('.npy'):
        try:
            mask = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as error:
            raise SLError(f'semantic mask {path} cannot be read ({error}); re-create it.') from None
    else:
        mask = read_image(path, cv2.IMREAD_UNCHANGED)
    if mask.ndim == 3 and mask.shape[2] == 1:
        mask = mask[..., 0]
    if mask.ndim != 2 or not np.issubdtype(mask.dtype, np.integer):
        raise SLError(f'semantic mask {path} has shape {mask.shape} and dtype {mask.dtype}; '
                      'it must be a single-channel integer array of instance ids.')
    if tuple(mask.shape) != tuple(lq_shape):
        raise SLError(f'semantic mask {path} is {mask.shape[1]}x{mask.shape[0]} but its LR frame is '
                      f'{lq_shape[1]}x{lq_shape[0]}; masks must have the LR frame size.')
    return mask.astype(np.int32)


def find_mask(semantics_root, clip, frame_name):
    """Path of the mask of one frame: ``<semantics_root>/<clip>/<frame stem>.npy`` or ``.png``."""
    stem = os.path.join(semantics_root, clip, os.path.splitext(os.path.basename(frame_name))[0])
    for ext in MASK_EXTENSIONS:
        if os.path.isfile(stem + ext):
            return stem + ext
    return stem + MASK_EXTENSIONS[0]


def read_meta_info(path):
    """Parse a BasicSR video meta_info file: ``<clip> <num_frames> (h,w,c)`` per line.

    Returns:
        list[tuple[str, int, tuple[int] | None]]: (clip, number of frames, GT shape or None).
    """
    if not os.path.isfile(path):
        raise SLError(f'meta_info_file {path} does not exist; fix the path or remove the option to scan folders.')
    entries = []
    with open(path, encoding='utf-8') as handle:
        for line_number, line in enumerate(handle, 1):
            parts = line.split()
            if not parts:
                continue
            shape = None
            if len(parts) >= 3:
                shape = tuple(int(v) for v in re.findall(r'\d+', parts[2]))
            if len(parts) < 2 or not parts[1].isdigit():
                raise SLError(f'{path} line {line_number} reads {line.strip()!r}; expected '
                              '"<clip> <num_frames> (h,w,c)" as in BasicSR meta_info files.')
            entries.append((parts[0], int(parts[1]), shape))
    if not entries:
        raise SLError(f'meta_info_file {path} lists no clips; re-run sl-prepare or fix the file.')
    return entries


def format_meta_info(entries):
    """Inverse of :func:`read_meta_info`: lines ``<clip> <num_frames> (h,w,c)``."""
    return ''.join(f'{clip} {num} ({",".join(str(v) for v in shape)})\n' for clip, num, shape in entries)


def read_lmdb_keys(lmdb_path):
    """Keys of a BasicSR lmdb, from its ``meta_info.txt`` (``<key>.png (h,w,c) <level>`` lines).

    Returns:
        dict[str, list[str]]: Clip (key up to the last ``/``) -> frame names (rest of the key), in
        natural order.
    """
    meta = os.path.join(lmdb_path, 'meta_info.txt')
    if not os.path.isfile(os.path.join(lmdb_path, 'data.mdb')):
        raise SLError(f'{lmdb_path} is not an lmdb database (no data.mdb); create it with sl-prepare --lmdb '
                      'or set io_backend.type to disk.')
    if not os.path.isfile(meta):
        raise SLError(f'lmdb {lmdb_path} has no meta_info.txt (BasicSR layout); re-create it with sl-prepare --lmdb.')
    clips = {}
    with open(meta, encoding='utf-8') as handle:
        for line in handle:
            if line.strip():
                key = os.path.splitext(line.split()[0])[0]
                clip, _, frame = key.rpartition('/')
                clips.setdefault(clip or '.', []).append(frame)
    return {clip: sorted(frames, key=natural_key) for clip, frames in sorted(clips.items())}
