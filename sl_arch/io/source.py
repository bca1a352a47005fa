"""One input clip, video file or folder of frames, read as a stream of BGR frames.

The input is checked before any work starts (missing, undecodable, empty, a frame of another
size), so that a bad input fails with one :class:`~sl_arch.utils.errors.SLError` and nothing is
written. Videos are decoded by PyAV (:mod:`sl_arch.io.video`), image files by OpenCV
(:mod:`sl_arch.io.images`); folders are listed by :func:`sl_arch.io.listing.list_frames`.
"""
import os

import cv2
from tqdm import tqdm

from sl_arch.io.images import read_image
from sl_arch.io.listing import IMAGE_EXTENSIONS, is_image_file, list_frames
from sl_arch.io.shots import THUMBNAIL_WIDTH
from sl_arch.io.video import DEFAULT_RATE, Timing, decode_video, probe_video
from sl_arch.utils.errors import SLError

FRAME_FIX = 'replace or remove it'


class FrameSource:
    """Frames of a video file or of a folder of images (sorted naturally by name), decoded one at a time.

    Args:
        path (str): A video file FFmpeg decodes, or a folder of images.
        fps (float | None): Frame rate of a folder (default 25); a video keeps its own timestamps.
        limit (int | None): Read at most this many frames (a video is decoded no further).
        visit (callable | None): ``visit(index, thumbnail)`` for every frame, in order, while the input
            is checked: thumbnail is BGR uint8, :data:`~sl_arch.io.shots.THUMBNAIL_WIDTH` wide (e.g.
            :meth:`sl_arch.io.shots.ShotDetector.add`). A folder's frames are then decoded here too.
        check_sizes (bool): Refuse a folder whose frames differ in size.
        option (str): How messages name the input, e.g. ``'-i'``.
        frame_fix (str): What messages tell the user to do with a bad frame of a folder.
        progress (bool): Show a progress bar while a video is checked (it is decoded once).
        thumbnail_width (int): Width of the thumbnails given to ``visit``.

    Attributes:
        path (str), is_video (bool), num_frames (int), width (int), height (int),
        timing (:class:`~sl_arch.io.video.Timing`): when each frame is shown,
        video (:class:`~sl_arch.io.video.VideoInfo` | None): what probing the video found,
        names (list[str] | None): frame file names of a folder.

    Raises:
        SLError: the input is missing, undecodable, empty, or a folder frame has another size.
    """

    def __init__(self, path, fps=None, limit=None, visit=None, check_sizes=True, option='-i', frame_fix=FRAME_FIX,
                 progress=False, thumbnail_width=THUMBNAIL_WIDTH):
        self.path = path
        self.frame_fix = frame_fix
        self.video = None
        self.names = None
        if not os.path.exists(path):
            raise SLError(f'input {path} does not exist; give a video file or a folder of frames ({option}).')
        self.is_video = os.path.isfile(path)
        if self.is_video and is_image_file(os.path.basename(path)):
            raise SLError(f'input {path} is a single image; give the folder that holds the frames of the clip '
                          f'({option}).')
        if self.is_video:
            bar = (lambda total: tqdm(total=total, unit='frame', desc='reading', dynamic_ncols=True, leave=False,
                                      delay=1)) if progress else None  # no bar for inputs read within a second
            self.video = probe_video(path, limit, visit, thumbnail_width, bar)
            self.num_frames, self.width, self.height = self.video.num_frames, self.video.width, self.video.height
            self.timing = self.video.timing
        else:
            self._probe_folder(limit, visit, check_sizes, thumbnail_width)
            self.timing = Timing.constant(self.num_frames, fps or DEFAULT_RATE)

    def _probe_folder(self, limit, visit, check_sizes, thumbnail_width):
        try:
            names = list_frames(self.path)
        except OSError as error:
            raise SLError(f'input folder {self.path} cannot be read ({error.strerror}); check its permissions.') \
                from None
        if not names:
            raise SLError(f'input folder {self.path} holds no image ({", ".join(IMAGE_EXTENSIONS)}); '
                          'give a video file or a folder of frames.')
        self.names = names[:limit]
        self.num_frames = len(self.names)
        if visit is not None:
            sizes = self._visit_frames(visit, thumbnail_width, check_sizes)
        else:
            sizes = self._header_sizes(check_sizes)
        self.width, self.height = sizes

    def _file(self, index):
        return os.path.join(self.path, self.names[index])

    def _check_size(self, index, size, first_size):
        if size != first_size:
            raise SLError(f'frame {self._file(index)} is {size[0]}x{size[1]} but {self._file(0)} is '
                          f'{first_size[0]}x{first_size[1]}; every frame of a folder must have the same size: '
                          'resize or remove it.')

    def _header_sizes(self, check_sizes):
        """(width, height) of the first frame, every frame's header checked (cheap: no decoding)."""
        from PIL import Image
        first_size = None
        for index in range(self.num_frames if check_sizes else 1):
            try:
                with Image.open(self._file(index)) as image:
                    size = image.size
            except Exception as error:  # PIL raises several types for a broken file
                raise SLError(f'frame {self._file(index)} cannot be read ({type(error).__name__}); '
                              f'{self.frame_fix}.') from None
            first_size = first_size or size
            self._check_size(index, size, first_size)
        return first_size

    def _visit_frames(self, visit, thumbnail_width, check_sizes):
        first_size = None
        for index, img in self.frames():
            size = (img.shape[1], img.shape[0])
            first_size = first_size or size
            if check_sizes:
                self._check_size(index, size, first_size)
            height = max(1, round(size[1] * thumbnail_width / size[0]))
            visit(index, cv2.resize(img, (thumbnail_width, height), interpolation=cv2.INTER_AREA))
        return first_size

    def frames(self, indices=None):
        """Yield ``(index, frame)`` for the given increasing frame indices (default: all); frame is BGR uint8.

        Raises:
            SLError: a frame cannot be decoded, or a video ends early.
        """
        if self.is_video:
            yield from decode_video(self.path, indices, self.num_frames)
            return
        for index in range(self.num_frames) if indices is None else indices:
            yield index, read_image(self._file(index), fix=self.frame_fix)
