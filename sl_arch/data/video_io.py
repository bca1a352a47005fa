"""Reading and writing video frames: folder listing, decoding with clear errors, atomic writes.

Every function here raises :class:`~sl_arch.utils.errors.SLError` with the file and the fix when the
input is bad, so that datasets and the preparation tool report one clear line.
"""
import os
import re

import cv2
import numpy as np

from sl_arch.utils.errors import SLError
from sl_arch.utils.files import atomic_write

IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp')
VIDEO_EXTENSIONS = ('.mp4', '.avi', '.mov', '.mkv', '.webm', '.m4v', '.mpg', '.mpeg', '.wmv', '.flv', '.y4m',
                    '.ogv', '.3gp', '.ts')
MASK_EXTENSIONS = ('.npy', '.png')


def natural_key(name):
    """Sort key that orders ``im2`` before ``im10`` (digit runs compare as numbers)."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r'(\d+)', name)]


def is_image_file(name):
    """True for the name of an image frame (hidden files, e.g. macOS ``._*`` or our temporaries, are not)."""
    return name.lower().endswith(IMAGE_EXTENSIONS) and not name.startswith('.')


def list_frames(folder):
    """File names of the image frames directly inside ``folder``, in natural order.

    Args:
        folder (str): A clip folder.

    Returns:
        list[str]: File names (not paths), e.g. ``['im1.png', 'im2.png', ..., 'im10.png']``.
    """
    with os.scandir(folder) as entries:
        names = [entry.name for entry in entries if entry.is_file() and is_image_file(entry.name)]
    return sorted(names, key=natural_key)


def find_clip_folders(root):
    """Every folder under ``root`` that holds image frames, as paths relative to ``root``.

    Handles the REDS layout (``root/000/*.png``) as well as the nested Vimeo-90K layout
    (``root/00001/0001/im1.png``); ``root`` itself counts as a clip named ``'.'`` if it holds frames.
    Clip folders may be symbolic links (each real folder is read once, so a link loop ends).

    Returns:
        dict[str, list[str]]: Clip name (relative path with ``/``) -> frame file names.
    """
    clips = {}
    seen = set()  # real paths walked: clip folders may be symbolic links (to combine data sets), never twice
    for folder, subfolders, files in os.walk(root, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen:
            subfolders[:] = []
            continue
        seen.add(real)
        subfolders.sort()
        names = sorted((name for name in files if is_image_file(name)), key=natural_key)
        if names:
            clips[os.path.relpath(folder, root).replace(os.sep, '/')] = names
    return dict(sorted(clips.items(), key=lambda item: natural_key(item[0])))


def open_video(path):
    """``cv2.VideoCapture(path)`` without FFmpeg's own log lines on stderr: callers report a bad video in one line."""
    os.environ.setdefault('OPENCV_FFMPEG_LOGLEVEL', '-8')  # AV_LOG_QUIET; read when OpenCV first loads FFmpeg
    return cv2.VideoCapture(path)


def decode_image(content, source, flag=cv2.IMREAD_COLOR, fix=None):
    """Decode image bytes; raise a clear error for a truncated or non-image file.

    Args:
        content (bytes | None): Encoded image; None means the file or key was not found.
        source (str): File path or lmdb location, for messages.
        flag (int): OpenCV imread flag.
        fix (str | None): What the user should do, for messages. Default: the fix for a data-set frame
            (re-create it with sl-prepare).

    Returns:
        ndarray: The decoded image, (h, w, 3) uint8 BGR for the default flag.
    """
    if content is None:
        raise SLError(f'{source} does not exist; {fix or "re-run sl-prepare or fix the meta_info file that lists it"}.')
    img = None
    if len(content):
        img = cv2.imdecode(np.frombuffer(content, np.uint8), flag)
    if img is None:
        raise SLError(f'{source} cannot be decoded (truncated or not an image); '
                      f'{fix or "re-create it with sl-prepare or delete its clip from the data set"}.')
    return img


def read_image(path, flag=cv2.IMREAD_COLOR, fix=None):
    """Read an image file with :func:`decode_image`'s errors (``fix``: see there)."""
    try:
        with open(path, 'rb') as handle:
            content = handle.read()
    except FileNotFoundError:
        content = None
    except OSError as error:
        raise SLError(f'{path} cannot be read ({error}); check its permissions.') from None
    return decode_image(content, path, flag, fix)


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


def atomic_write_bytes(path, content):
    """Write ``content`` to ``path`` through :func:`~sl_arch.utils.files.atomic_write`; returns its length.

    A killed process leaves at most one of our hidden temporaries, never a truncated ``path``.
    """

    def write(tmp_path):
        with open(tmp_path, 'wb') as handle:
            handle.write(content)

    atomic_write(path, write)
    return len(content)


def write_png(path, img, compress_level=1):
    """Encode ``img`` (BGR uint8) as PNG and write it atomically; returns the bytes written."""
    ok, encoded = cv2.imencode('.png', img, [cv2.IMWRITE_PNG_COMPRESSION, compress_level])
    if not ok:
        raise SLError(f'cannot encode a {img.shape} {img.dtype} image as PNG for {path}.')
    return atomic_write_bytes(path, encoded.tobytes())


def missing_frame_numbers(names):
    """Numbers missing from a numbered frame sequence, e.g. ``[3]`` for ``0001.png, 0002.png, 0004.png``.

    Names count as one sequence when they differ only in one run of digits (the last one), such as
    ``im1.png ... im7.png`` or ``frame_0001.jpg ...``; other names give no gaps.

    Returns:
        list[int]: The numbers between the first and the last frame that no name has.
    """
    parts = [re.fullmatch(r'(.*?)(\d+)(\D*)', name) for name in names]
    if not parts or not all(parts) or len({(m.group(1).lower(), m.group(3).lower()) for m in parts}) != 1:
        return []
    numbers = {int(match.group(2)) for match in parts}
    return sorted(set(range(min(numbers), max(numbers) + 1)) - numbers)


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
