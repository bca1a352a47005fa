"""Image files through OpenCV: decoding with clear errors, and atomic PNG writing.

Arrays are OpenCV's: ``(h, w, 3)`` uint8 in BGR order (or ``(h, w)`` single-channel); the one
place colours turn into RGB tensors is :mod:`sl_arch.io.tensors`. Every write goes through
:func:`sl_arch.utils.files.atomic_write`, so a killed process leaves at most one hidden
temporary of ours, never a truncated file under its final name.
"""
import os
import re

import cv2
import numpy as np

from sl_arch.utils.errors import SLError
from sl_arch.utils.files import atomic_write, output_error

FRAME_NAME = re.compile(r'^(\d{8})\.png$')


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
    """Encode ``img`` (OpenCV order: BGR uint8 ``(h, w, 3)``, or ``(h, w)``) as PNG and write it atomically.

    Returns:
        int: The bytes written.
    """
    ok, encoded = cv2.imencode('.png', img, [cv2.IMWRITE_PNG_COMPRESSION, compress_level])
    if not ok:
        raise SLError(f'cannot encode a {img.shape} {img.dtype} image as PNG for {path}.')
    return atomic_write_bytes(path, encoded.tobytes())


def frame_name(index):
    """File name of output frame ``index`` (0-based) in a frame folder: ``00000000.png``, ..."""
    return f'{index:08d}.png'


def finished_frames(folder):
    """Indices of the frames already written to a frame folder (complete files only: they are renamed when done)."""
    if not os.path.isdir(folder):
        return set()
    return {int(match.group(1)) for match in map(FRAME_NAME.match, os.listdir(folder)) if match}


class FrameFolderWriter:
    """Write frames ``00000000.png, 00000001.png, ...`` into a folder, each atomically.

    Args:
        folder (str): Output folder (created).
    """

    def __init__(self, folder):
        self.folder = folder
        try:
            os.makedirs(folder, exist_ok=True)
        except OSError as error:
            raise output_error(folder, error) from None

    def write(self, index, img):
        """Write frame ``index``: BGR uint8 ``(h, w, 3)``."""
        write_png(os.path.join(self.folder, frame_name(index)), img)

    def close(self):
        """Nothing to finalise: every frame is complete once written."""

    def abort(self):
        """Keep the complete frames: a rerun resumes from them."""
