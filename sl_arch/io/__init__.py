"""Reading and writing frames and videos: the one I/O layer of sl_arch.

- :mod:`~sl_arch.io.listing`: which files of a folder are frames or videos, in which order.
- :mod:`~sl_arch.io.images`: image files through OpenCV, atomic PNG writing, frame folders.
- :mod:`~sl_arch.io.video`: video files through PyAV: probe, decode, encode with audio and
  subtitles copied.
- :mod:`~sl_arch.io.source`: :class:`FrameSource`, one input clip (video or folder) as a stream.
- :mod:`~sl_arch.io.shots`: shot-cut detection on thumbnails seen while decoding.
- :mod:`~sl_arch.io.tensors`: the colour boundary, BGR arrays <-> RGB tensors.

Frame arrays are ``(h, w, 3)`` uint8 BGR everywhere in this package; tensors are RGB.
"""
from sl_arch.io.images import (FrameFolderWriter, atomic_write_bytes, decode_image, finished_frames, frame_name,
                               read_image, write_png)
from sl_arch.io.listing import (IMAGE_EXTENSIONS, VIDEO_EXTENSIONS, find_clip_folders, is_image_file, is_video_file,
                                list_frames, list_videos, missing_frame_numbers, natural_key)
from sl_arch.io.shots import ShotDetector
from sl_arch.io.source import FrameSource
from sl_arch.io.tensors import frames_to_tensor, tensor_to_frame
from sl_arch.io.video import (WRITE_FORMATS, EncoderSettings, Timing, VideoInfo, VideoWriter, check_video_output,
                              decode_video, is_video_output, probe_video, quiet_ffmpeg)

__all__ = [
    'FrameFolderWriter', 'atomic_write_bytes', 'decode_image', 'finished_frames', 'frame_name', 'read_image',
    'write_png', 'IMAGE_EXTENSIONS', 'VIDEO_EXTENSIONS', 'find_clip_folders', 'is_image_file', 'is_video_file',
    'list_frames', 'list_videos', 'missing_frame_numbers', 'natural_key', 'ShotDetector', 'FrameSource',
    'frames_to_tensor', 'tensor_to_frame', 'WRITE_FORMATS', 'EncoderSettings', 'Timing', 'VideoInfo', 'VideoWriter',
    'check_video_output', 'decode_video', 'is_video_output', 'probe_video', 'quiet_ffmpeg',
]
