"""Streaming frame readers and writers: a video file or a folder of frames, one frame at a time.

Inputs are checked before any work starts (missing, undecodable, empty, a frame of another size)
so that a bad input fails with one :class:`~sl_arch.utils.errors.SLError` and nothing is written.
Writers never leave a half-written file under its final name: frames and videos are written under
a temporary name of ours (:func:`sl_arch.utils.files.temporary_path`) and renamed when complete.
"""
import os
import re

import cv2
import numpy as np

from sl_arch.data.video_io import IMAGE_EXTENSIONS, is_image_file, list_frames, open_video
from sl_arch.utils.errors import SLError
from sl_arch.utils.files import atomic_write, output_error, temporary_path

VIDEO_FOURCC = {'.mp4': 'mp4v', '.m4v': 'mp4v', '.mov': 'mp4v', '.mkv': 'mp4v', '.avi': 'MJPG'}
FRAME_NAME = re.compile(r'^(\d{8})\.png$')
DEFAULT_FPS = 25.0


def is_video_path(path):
    """True when ``path`` names a video file we can write (by extension), False for a folder."""
    return os.path.splitext(path)[1].lower() in VIDEO_FOURCC


class FrameSource:
    """Frames of a video file or of a folder of images, decoded one at a time.

    Args:
        path (str): A video file OpenCV decodes, or a folder of images (sorted naturally by name).
        fps (float | None): Frame rate to report for a folder (videos report their own).

    Attributes:
        num_frames (int), height (int), width (int), fps (float), is_video (bool).

    Raises:
        SLError: the input is missing, undecodable, empty, or a folder frame has another size.
    """

    def __init__(self, path, fps=None):
        self.path = path
        if not os.path.exists(path):
            raise SLError(f'input {path} does not exist; give a video file or a folder of frames (-i).')
        self.is_video = os.path.isfile(path)
        if self.is_video and is_image_file(os.path.basename(path)):
            raise SLError(f'input {path} is a single image; give the folder that holds the frames of the clip (-i).')
        if self.is_video:
            self._probe_video()
        else:
            self._probe_folder()
        if fps is not None:
            self.fps = float(fps)

    def _probe_video(self):
        capture = open_video(self.path)
        if not capture.isOpened():
            raise SLError(f'input {self.path} cannot be decoded by OpenCV; convert it to mp4 '
                          f'(e.g. ffmpeg -i {self.path} out.mp4) or extract its frames into a folder.')
        fps = capture.get(cv2.CAP_PROP_FPS)
        self.fps = fps if fps and fps > 0 else DEFAULT_FPS
        ok, frame = capture.read()
        if not ok or frame is None:
            capture.release()
            raise SLError(f'input {self.path} has no decodable frame; check the file '
                          'or extract its frames into a folder.')
        self.height, self.width = frame.shape[:2]
        count = 1
        while capture.grab():  # exact count: container frame counts are often estimates
            count += 1
        capture.release()
        self.num_frames = count

    def _probe_folder(self):
        from PIL import Image
        try:
            names = list_frames(self.path)
        except OSError as error:
            raise SLError(f'input folder {self.path} cannot be read ({error.strerror}); check its permissions.') \
                from None
        if not names:
            raise SLError(f'input folder {self.path} holds no image ({", ".join(IMAGE_EXTENSIONS)}); '
                          'give a video file or a folder of frames.')
        self.files = [os.path.join(self.path, name) for name in names]
        size = None
        for file in self.files:  # headers only: cheap, and catches a bad frame before any work
            try:
                with Image.open(file) as image:
                    frame_size = image.size
            except Exception as error:  # PIL raises several types for a broken file
                raise SLError(f'frame {file} cannot be read ({type(error).__name__}); replace or remove it.') from None
            if size is None:
                size, first = frame_size, file
            elif frame_size != size:
                raise SLError(f'frame {file} is {frame_size[0]}x{frame_size[1]} but {first} is {size[0]}x{size[1]}; '
                              'every frame of a folder must have the same size: resize or remove it.')
        self.width, self.height = size
        self.num_frames = len(self.files)
        self.fps = DEFAULT_FPS

    def frames(self, start=0, stop=None):
        """Yield ``(index, frame)`` for frames ``[start, stop)``; frame is RGB uint8 ``(h, w, 3)``.

        Raises:
            SLError: a frame cannot be decoded.
        """
        stop = self.num_frames if stop is None else stop
        if self.is_video:
            yield from self._video_frames(start, stop)
            return
        for index in range(start, stop):
            frame = cv2.imread(self.files[index], cv2.IMREAD_COLOR)
            if frame is None:
                raise SLError(f'frame {self.files[index]} cannot be decoded; replace or remove it.')
            yield index, cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)

    def _video_frames(self, start, stop):
        capture = open_video(self.path)
        try:
            for index in range(stop):
                if index < start:
                    ok = capture.grab()
                    frame = None
                else:
                    ok, frame = capture.read()
                if not ok:
                    raise SLError(f'input {self.path} stopped decoding at frame {index} of {self.num_frames}; '
                                  'the file is damaged: re-encode it or extract its frames into a folder.')
                if frame is not None:
                    yield index, cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
        finally:
            capture.release()


def write_png_atomic(path, rgb):
    """Write an RGB uint8 ``(h, w, 3)`` image as PNG under a temporary name, then rename it to ``path``."""

    def write(tmp_path):
        if not cv2.imwrite(tmp_path, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)):
            raise SLError(f'cannot write {path}; check that the output folder is writable and the disk not full.')

    atomic_write(path, write, suffix='.png')  # cv2.imwrite picks the format by the extension


def frame_name(index):
    """File name of output frame ``index`` (0-based) in a frame folder."""
    return f'{index:08d}.png'


def finished_frames(folder):
    """Indices of the frames already written to a frame folder (complete files only)."""
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

    def write(self, index, rgb):
        """Write frame ``index``: RGB uint8 ``(h, w, 3)``."""
        write_png_atomic(os.path.join(self.folder, frame_name(index)), rgb)

    def close(self):
        """Nothing to finalise: every frame is complete once written."""

    def abort(self):
        """Keep the complete frames: a rerun resumes from them."""


class VideoFileWriter:
    """Write frames to a video file through a temporary file renamed on :meth:`close`.

    Args:
        path (str): Output video (``.mp4``, ``.m4v``, ``.mov``, ``.mkv`` or ``.avi``).
        fps (float): Frame rate.
    """

    def __init__(self, path, fps):
        self.path = path
        self.fps = fps
        self.ext = os.path.splitext(path)[1]
        self.fourcc = VIDEO_FOURCC[self.ext.lower()]
        self.tmp_path = None
        self.writer = None
        self.frames_written = 0

    def write(self, index, rgb):
        """Append frame ``index`` (frames must come in order): RGB uint8 ``(h, w, 3)``."""
        if index != self.frames_written:
            raise ValueError(f'video frames must be written in order: got {index}, expected {self.frames_written}.')
        if self.writer is None:
            self.tmp_path = temporary_path(self.path, suffix=self.ext)  # OpenCV picks the container by it
            height, width = rgb.shape[:2]
            fourcc = cv2.VideoWriter_fourcc(*self.fourcc)
            self.writer = cv2.VideoWriter(self.tmp_path, fourcc, self.fps, (width, height))
            if not self.writer.isOpened():
                self.abort()
                raise SLError(f'OpenCV cannot write {self.path} with codec {self.fourcc}; '
                              'write a folder of PNG frames instead (-o FOLDER) or use .mp4/.avi.')
        self.writer.write(np.ascontiguousarray(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)))
        self.frames_written += 1

    def close(self):
        """Finish the file and move it to its final name.

        Raises:
            SLError: OpenCV wrote nothing (it reports no write error itself, e.g. on a full disk).
        """
        if self.writer is not None:
            self.writer.release()
            self.writer = None
        if self.tmp_path is None or not os.path.getsize(self.tmp_path):
            raise SLError(f'OpenCV wrote no video data for {self.path}; check that the disk is not full, '
                          'or write a folder of PNG frames instead (-o FOLDER).')
        try:
            os.replace(self.tmp_path, self.path)
        except OSError as error:
            raise output_error(self.path, error) from None

    def abort(self):
        """Drop the partial file: a video output is all or nothing."""
        if self.writer is not None:
            self.writer.release()
            self.writer = None
        if self.tmp_path is not None and os.path.exists(self.tmp_path):
            os.remove(self.tmp_path)
