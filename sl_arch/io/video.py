"""Video files through PyAV (FFmpeg): probing, decoding, and encoding with the other streams copied.

Decoded frames are ``(h, w, 3)`` uint8 BGR (see :mod:`sl_arch.io.tensors`), turned upright when
the stream carries a display rotation (as FFmpeg's own command line does), converted from YUV
with the colour matrix and range the stream is tagged with.

A written video keeps what a viewer notices of its input: every frame's presentation timestamp
in the input's time base (so a variable frame rate stays variable), the duration, the colour
tags, and every audio and subtitle stream copied packet for packet, without re-encoding. It is
written under a temporary name of ours (:func:`sl_arch.utils.files.temporary_path`) and renamed
only when complete.
"""
import contextlib
import io
import os
from dataclasses import dataclass, field
from fractions import Fraction
from typing import List, Optional

import av
import numpy as np

from sl_arch.io.shots import THUMBNAIL_WIDTH
from sl_arch.utils.errors import SLError
from sl_arch.utils.files import output_error, temporary_path

#: Video containers sl_arch writes, by file extension -> FFmpeg muxer. Not AVI: it has no presentation
#: timestamps, so neither a variable frame rate nor H.264's reordered frames keep their times in it.
WRITE_FORMATS = {'.mp4': 'mp4', '.m4v': 'mp4', '.mov': 'mov', '.mkv': 'matroska', '.webm': 'webm'}
#: Encoder used when none is asked for; containers that cannot hold it get their own.
DEFAULT_CODEC = 'libx264'
CONTAINER_CODECS = {'webm': 'libvpx-vp9'}
DEFAULT_PIX_FMT = 'yuv420p'
#: Streams of the input copied into a written video, packet for packet.
COPIED_STREAM_TYPES = ('audio', 'subtitle')
#: Frame rate of a stream that reports none.
DEFAULT_RATE = Fraction(25)
#: Container and stream tags the muxer writes itself (copying the input's would be stale).
MUXER_TAGS = {'encoder', 'major_brand', 'minor_version', 'compatible_brands', 'duration', 'handler_name'}
#: Muxers that derive a track's duration from decoding timestamps plus the last packet's duration.
DTS_DURATION_MUXERS = ('mp4', 'mov')
COLOUR_TAGS = ('colorspace', 'color_range', 'color_primaries', 'color_trc')
UNSPECIFIED = {'colorspace': 2, 'color_range': 0, 'color_primaries': 2, 'color_trc': 2}
#: FFmpeg's colour-matrix tags (AVColorSpace) -> the swscale matrix that converts RGB to them.
SWS_COLORSPACES = {1: 'ITU709', 4: 'FCC', 5: 'ITU601', 6: 'ITU601', 7: 'SMPTE240M', 9: 'BT2020', 10: 'BT2020'}
CODEC_HINT = 'libx264, libx265, libsvtav1 or libvpx-vp9'
#: Largest constant-quality value (``--crf``) of the encoders named above, for 8-bit video: libx264 takes any larger
#: value silently as 51, the others refuse it when they start.
CRF_MAX = {'libx264': 51, 'libx265': 51, 'libsvtav1': 63, 'libvpx-vp9': 63}

os.environ.setdefault('SVT_LOG', '1')  # SVT-AV1 prints its whole configuration to stderr at level 3 (its default)


def is_video_output(path):
    """True when ``path`` names a video file sl_arch can write (by extension), False for a frame folder."""
    return os.path.splitext(path)[1].lower() in WRITE_FORMATS


def quiet_ffmpeg():
    """Silence FFmpeg's own log lines on stderr: the ``sl-*`` commands report a bad video in one line."""
    av.logging.set_level(av.logging.PANIC)


@contextlib.contextmanager
def _native_stderr_silenced():
    """Send file descriptor 2 to /dev/null: some encoders (x264) print errors themselves, not through FFmpeg's log."""
    try:
        saved = os.dup(2)
    except OSError:  # no stderr to silence
        yield
        return
    try:
        with open(os.devnull, 'w') as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


@dataclass
class Timing:
    """When each frame of a clip is shown: presentation timestamps in one time base.

    Attributes:
        time_base (Fraction): Seconds per timestamp unit.
        rate (Fraction): Nominal frames per second (the encoder's rate control uses it).
        timestamps (list[int]): Presentation timestamp of each frame, increasing.
        end (int): Timestamp at which the last frame stops being shown.
    """
    time_base: Fraction
    rate: Fraction
    timestamps: List[int]
    end: int

    @classmethod
    def constant(cls, num_frames, rate):
        """``num_frames`` frames at ``rate`` frames per second, from 0."""
        rate = Fraction(rate).limit_denominator(100000)
        return cls(1 / rate, rate, list(range(num_frames)), num_frames)

    def duration(self, index):
        """How long frame ``index`` is shown, in time-base units."""
        following = self.timestamps[index + 1] if index + 1 < len(self.timestamps) else self.end
        return following - self.timestamps[index]

    def seconds(self):
        """Duration of the clip in seconds, from its first timestamp to its end."""
        return float((self.end - self.timestamps[0]) * self.time_base)


@dataclass
class VideoInfo:
    """What :func:`probe_video` learned by decoding a video once.

    Attributes:
        path (str), width (int), height (int): After the display rotation is applied.
        num_frames (int): Frames decoded (exact: container frame counts are often estimates).
        timing (Timing): Timestamps of the decoded frames.
        rotation (int): Display rotation of the stream, degrees counter-clockwise (applied to frames).
        colour (dict): The stream's colour tags (``colorspace``, ``color_range``, ...), as FFmpeg enum values.
        copied_streams (list[str]): ``'<type> <codec>'`` of every stream a written video copies.
        other_streams (list[str]): ``'<type> <codec>'`` of the streams it does not (data, attachments).
    """
    path: str
    width: int
    height: int
    num_frames: int
    timing: Timing
    rotation: int = 0
    colour: dict = field(default_factory=dict)
    copied_streams: List[str] = field(default_factory=list)
    other_streams: List[str] = field(default_factory=list)


def _undecodable(path, error):
    reason = getattr(error, 'strerror', None) or str(error)
    return SLError(f'video {path} cannot be decoded by FFmpeg ({reason}); convert it '
                   f'(ffmpeg -i {path} -c:v libx264 out.mp4) or extract its frames into a folder.')


def open_video(path):
    """Open ``path`` with PyAV and return ``(container, first video stream)``.

    Raises:
        SLError: not a video FFmpeg reads, or one without a video stream.
    """
    try:
        container = av.open(path, metadata_errors='ignore')
    except (av.FFmpegError, OSError, UnicodeDecodeError) as error:
        raise _undecodable(path, error) from None
    if not container.streams.video:
        container.close()
        raise SLError(f'{path} has no video stream; give a video file or a folder of frames.')
    # FFmpeg's default threading (slices) only: with frame threads, closing a container before its last
    # frame can hang once torch is imported (PyAV issues 1849 and 1861), and sl_arch stops early on --end.
    return container, container.streams.video[0]


def _stream_label(stream):
    name = stream.codec_context.name if stream.codec_context is not None else 'unknown codec'
    return f'{stream.type} {name}'


def upright(img, rotation):
    """Turn a decoded frame as its display rotation says (``rotation`` degrees counter-clockwise)."""
    turns = round(rotation / 90) % 4
    return np.ascontiguousarray(np.rot90(img, turns)) if turns else img


def _frame_array(frame, rotation, width=None, height=None):
    img = frame.to_ndarray(format='bgr24', width=width, height=height, interpolation='AREA' if width else None)
    return upright(img, rotation)


def probe_video(path, limit=None, visit=None, thumbnail_width=THUMBNAIL_WIDTH, progress=None):
    """Decode a video once: exact frame count, timestamps, size, colour tags, the streams to copy.

    Args:
        path (str): A video file.
        limit (int | None): Stop after this many frames (``num_frames`` is then at most ``limit``).
        visit (callable | None): Called as ``visit(index, thumbnail)`` for every frame, the
            thumbnail a BGR uint8 ``(th, thumbnail_width, 3)`` area-downscaled copy of the
            upright frame (e.g. for shot detection).
        thumbnail_width (int): Width of the thumbnails given to ``visit``.
        progress (callable | None): ``progress(total_estimate)`` returns a tqdm-like bar, updated per frame.

    Returns:
        VideoInfo

    Raises:
        SLError: undecodable, no video stream, or no decodable frame.
    """
    container, stream = open_video(path)
    timestamps, last_duration, rotation, colour, width, height = [], 0, 0, {}, 0, 0
    bar = progress(stream.frames or None) if progress else None
    try:
        for frame in container.decode(stream):
            if not timestamps:
                rotation = frame.rotation or 0
                colour = {tag: int(getattr(frame, tag)) for tag in COLOUR_TAGS}
                width, height = (frame.height, frame.width) if round(rotation / 90) % 2 else (frame.width, frame.height)
            if visit is not None:
                thumb_height = max(1, round(height * thumbnail_width / width))
                size = (thumb_height, thumbnail_width) if round(rotation / 90) % 2 else (thumbnail_width, thumb_height)
                visit(len(timestamps), _frame_array(frame, rotation, *size))
            timestamps.append(frame.pts)
            last_duration = frame.duration or 0
            if bar is not None:
                bar.update(1)
            if limit is not None and len(timestamps) >= limit:
                break
    except av.FFmpegError as error:
        if not timestamps:
            raise _undecodable(path, error) from None
        raise SLError(f'video {path} stopped decoding after frame {len(timestamps) - 1} ({error.strerror}); '
                      'the file is damaged: re-encode it or extract its frames into a folder.') from None
    finally:
        if bar is not None:
            bar.close()
    if not timestamps:
        container.close()
        raise SLError(f'video {path} has no decodable frame (empty or damaged); convert it with ffmpeg '
                      'or extract its frames into a folder.')
    rate = stream.average_rate or stream.guessed_rate or DEFAULT_RATE
    time_base = stream.time_base or 1 / rate
    stream_end = stream.start_time + stream.duration if stream.start_time is not None and stream.duration else None
    copied = [_stream_label(other) for other in container.streams if other.type in COPIED_STREAM_TYPES]
    others = [_stream_label(other) for other in container.streams
              if other.type not in COPIED_STREAM_TYPES and other.index != stream.index]
    container.close()
    timing = _timing(timestamps, Fraction(time_base), Fraction(rate), stream_end, last_duration,
                     complete=limit is None or len(timestamps) < limit)
    return VideoInfo(path, width, height, len(timestamps), timing, rotation, colour, copied, others)


def _timing(timestamps, time_base, rate, stream_end, last_duration, complete):
    """Timestamps as decoded, or regenerated at ``rate`` when missing or not increasing (some raw streams)."""
    frame_ticks = max(1, round(1 / (rate * time_base)))
    if any(pts is None for pts in timestamps) or any(b <= a for a, b in zip(timestamps, timestamps[1:])):
        timestamps = [index * frame_ticks for index in range(len(timestamps))]
        return Timing(time_base, rate, timestamps, timestamps[-1] + frame_ticks)
    last = timestamps[-1]
    if complete and stream_end is not None and stream_end > last:
        end = stream_end
    elif last_duration > 0:
        end = last + last_duration
    else:
        end = last + (last - timestamps[-2] if len(timestamps) > 1 else frame_ticks)
    return Timing(time_base, rate, list(timestamps), end)


def decode_video(path, indices=None, num_frames=None):
    """Yield ``(index, frame)`` for the wanted frames of a video, in order; frame is BGR uint8 ``(h, w, 3)``.

    Args:
        path (str): The video.
        indices (Iterable[int] | None): Increasing frame indices to yield; None for every frame.
            Frames in between are decoded (video needs it) but not converted.
        num_frames (int | None): Frames the video had when probed, for messages.

    Raises:
        SLError: the video ends (or stops decoding) before the last wanted frame.
    """
    wanted = None if indices is None else iter(indices)
    target = None if wanted is None else next(wanted, None)
    if wanted is not None and target is None:
        return
    container, stream = open_video(path)
    index = -1
    try:
        for index, frame in enumerate(container.decode(stream)):
            if target is None or index == target:
                yield index, _frame_array(frame, frame.rotation or 0)
                if wanted is not None:
                    target = next(wanted, None)
                    if target is None:
                        return
    except av.FFmpegError as error:
        raise SLError(f'video {path} stopped decoding at frame {index + 1} ({error.strerror}); the file is '
                      'damaged: re-encode it or extract its frames into a folder.') from None
    finally:
        container.close()
    if target is not None:
        of = f' of {num_frames}' if num_frames else ''
        raise SLError(f'video {path} ended at frame {index + 1}{of}, before frame {target}; it is truncated or '
                      'changed since it was read: re-encode it, or lower --end.')


@dataclass
class EncoderSettings:
    """How :class:`VideoWriter` encodes: ``codec`` None picks the container's default (``libx264``)."""
    codec: Optional[str] = None
    pix_fmt: str = DEFAULT_PIX_FMT
    crf: Optional[float] = None
    preset: Optional[str] = None

    def options(self, codec):
        """FFmpeg encoder options (strings) for ``codec``."""
        options = {}
        if self.crf is not None:
            options['crf'] = f'{self.crf:g}'
            if codec.startswith('libvpx'):
                options['b'] = '0'  # libvpx takes crf as a cap unless the bitrate is 0: constant quality
        if self.preset is not None:
            options['preset'] = self.preset
        if codec == 'libx265':
            options['x265-params'] = 'log-level=error'  # x265 prints its whole configuration to stderr otherwise
        return options


def _container_format(path):
    return WRITE_FORMATS[os.path.splitext(path)[1].lower()]


def _add_copies(container, source, path, copy_from):
    """Add a copy of every audio and subtitle stream of ``source`` to ``container``; returns {input index: stream}."""
    copies = {}
    for stream in source.streams:
        if stream.type not in COPIED_STREAM_TYPES:
            continue
        try:
            copy = container.add_stream_from_template(stream)
        except ValueError:
            raise SLError(f'stream #{stream.index} of {copy_from} ({_stream_label(stream)}) cannot go into a '
                          f'{os.path.splitext(path)[1]} file; write .mkv (it holds most streams) '
                          'or write PNG frames (-o FOLDER).') from None
        for key, value in stream.metadata.items():
            if key.lower() not in MUXER_TAGS:
                copy.metadata[key] = value
        copy.disposition = stream.disposition
        copies[stream.index] = copy
    return copies


def _add_video_stream(container, path, settings, rate, time_base, width, height, colour):
    codec = settings.codec or CONTAINER_CODECS.get(container.format.name, DEFAULT_CODEC)
    try:
        stream = container.add_stream(codec, rate=rate)
    except ValueError:
        raise SLError(f'--codec {codec}: a {os.path.splitext(path)[1]} file cannot hold it; choose another codec '
                      f'({CODEC_HINT}) or another extension (.mkv holds them all).') from None
    stream.width, stream.height, stream.pix_fmt = width, height, settings.pix_fmt
    stream.time_base = time_base
    stream.codec_context.time_base = time_base
    for tag, value in colour.items():
        setattr(stream.codec_context, tag, value)
    stream.codec_context.options = settings.options(codec)
    return stream


def check_video_output(path, settings, copy_from=None):
    """Refuse, before any work, an encoder, pixel format or option that cannot make ``path``.

    Opens the encoder and writes the header of an in-memory file of the same container with the
    same streams (the video at a stand-in size), so that a wrong ``--codec``, ``--pix-fmt``,
    ``--preset`` or ``--crf``, and an input stream the container cannot hold, fail here in one line.

    Args:
        path (str): The output video (its extension picks the container).
        settings (EncoderSettings): The encoder settings.
        copy_from (str | None): The input video whose audio and subtitle streams will be copied.

    Returns:
        str: The encoder that will be used.

    Raises:
        SLError: naming the option or stream and the fix.
    """
    codec = settings.codec or CONTAINER_CODECS.get(_container_format(path), DEFAULT_CODEC)
    try:
        encoder = av.codec.Codec(codec, 'w')
    except av.codec.codec.UnknownCodecError:
        raise SLError(f'--codec {codec} is not an encoder of this FFmpeg; use {CODEC_HINT}.') from None
    if encoder.type != 'video':
        raise SLError(f'--codec {codec} is an {encoder.type} encoder; use a video encoder ({CODEC_HINT}).')
    if settings.crf is not None and settings.crf > CRF_MAX.get(codec, float('inf')):
        raise SLError(f'--crf {settings.crf:g}: {codec} takes 0-{CRF_MAX[codec]} (lower is better); choose one in that '
                      'range.')
    formats = [video_format.name for video_format in encoder.video_formats or []]
    if formats and settings.pix_fmt not in formats:
        raise SLError(f'--pix-fmt {settings.pix_fmt}: {codec} takes {", ".join(formats[:8])}; choose one of those.')
    container = av.open(io.BytesIO(), 'w', format=_container_format(path))
    try:
        stream = _add_video_stream(container, path, settings, DEFAULT_RATE, 1 / DEFAULT_RATE, 64, 64, {})
        if copy_from is not None:
            source, _ = open_video(copy_from)
            with source:
                _add_copies(container, source, path, copy_from)
        try:
            with _native_stderr_silenced():
                container.start_encoding()
        except av.FFmpegError as error:
            given = ' '.join(f'--{name} {value}' for name, value in (('preset', settings.preset), ('crf', settings.crf))
                             if value is not None)
            raise SLError(f'{codec} cannot start with {given or "its default settings"} ({error.strerror}); '
                          f'fix {"those options" if given else "--codec"}.') from None
        unused = [name for name in ('crf', 'preset') if name in stream.codec_context.options]
        if unused:
            raise SLError(f'--{unused[0]}: {codec} has no {unused[0]} option; drop --{unused[0]}.')
    finally:
        with contextlib.suppress(av.FFmpegError):
            container.close()
    return codec


class VideoWriter:
    """Encode frames into a video file; copy the audio and subtitle streams of ``copy_from``.

    Frames must come in order. Each gets the timestamp ``timing`` gives its index, in the input's
    time base (a muxer may pick a finer one, e.g. Matroska's milliseconds). The file is written
    under a temporary name beside ``path`` and renamed on :meth:`close`; :meth:`abort` removes it.

    Args:
        path (str): Output video; its extension (:data:`WRITE_FORMATS`) picks the container.
        timing (Timing): Timestamps of the frames to come.
        settings (EncoderSettings): Encoder, pixel format, quality.
        copy_from (str | None): Input video whose audio and subtitle streams are copied.
        colour (dict | None): Colour tags of the input (see :class:`VideoInfo`), kept by the output.
    """

    def __init__(self, path, timing, settings=None, copy_from=None, colour=None):
        self.path = path
        self.timing = timing
        self.settings = settings or EncoderSettings()
        self.copy_from = copy_from
        self.colour = {tag: value for tag, value in (colour or {}).items() if value != UNSPECIFIED[tag]}
        self.tmp_path = None
        self.container = None
        self.stream = None
        self.frames_written = 0
        self._source = None
        self._copies = {}
        self._copy_packets = iter(())
        self._next_copy = None
        self._held = None
        self._first_dts = None
        self._durations = {}

    def _open(self, width, height):
        video_format = av.VideoFormat(self.settings.pix_fmt)  # a chroma plane narrower than 4 of 4: subsampled
        if (video_format.chroma_width(4) < 4 and width % 2) or (video_format.chroma_height(4) < 4 and height % 2):
            raise SLError(f'output frames are {width}x{height}, but --pix-fmt {self.settings.pix_fmt} stores colour at '
                          'half resolution and needs an even width and height; use --pix-fmt yuv444p, or write PNG '
                          'frames (-o FOLDER).')
        ext = os.path.splitext(self.path)[1]
        self.tmp_path = temporary_path(self.path, suffix=ext)
        try:
            self.container = av.open(self.tmp_path, 'w', format=_container_format(self.path))
        except (av.FFmpegError, OSError) as error:
            raise output_error(self.path, error if isinstance(error, OSError) else OSError(str(error))) from None
        self.stream = _add_video_stream(self.container, self.path, self.settings, self.timing.rate,
                                        self.timing.time_base, width, height, self.colour)
        if self.copy_from is not None:
            self._source = av.open(self.copy_from, metadata_errors='ignore')
            self._copies = _add_copies(self.container, self._source, self.path, self.copy_from)
            for key, value in self._source.metadata.items():
                if key.lower() not in MUXER_TAGS:
                    self.container.metadata[key] = value
            if self._copies:
                self._copy_packets = self._source.demux(*(self._source.streams[i] for i in self._copies))
                self._next_copy = next(self._copy_packets, None)

    def write(self, index, img):
        """Append frame ``index`` (frames must come in order): BGR uint8 ``(h, w, 3)``."""
        if index != self.frames_written:
            raise ValueError(f'video frames must be written in order: got {index}, expected {self.frames_written}.')
        if self.container is None:
            self._open(img.shape[1], img.shape[0])
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format='bgr24')
        frame = frame.reformat(format=self.settings.pix_fmt,
                               dst_colorspace=SWS_COLORSPACES.get(self.colour.get('colorspace')),
                               dst_color_range=self.colour.get('color_range'))  # same values as FFmpeg's tags
        frame.pts = self.timing.timestamps[index]
        frame.time_base = self.timing.time_base
        self._durations[frame.pts] = self.timing.duration(index)
        self._mux_video(self.stream.encode(frame))
        self.frames_written += 1

    def _mux_video(self, packets, final=False):
        """Mux encoded packets one behind, so that the last one can get the duration that ends the clip."""
        for packet in packets:
            packet.duration = self._durations.pop(packet.pts, packet.duration)
            if self._first_dts is None:
                self._first_dts = packet.dts
            if self._held is not None:
                self._mux_held()
            self._held = packet
        if final and self._held is not None:
            if self.container.format.name in DTS_DURATION_MUXERS:
                # these muxers end a track at its last decoding timestamp plus that packet's duration
                span = self.timing.end - self.timing.timestamps[0]
                self._held.duration = max(self._held.duration, span - (self._held.dts - self._first_dts))
            self._mux_held()

    def _mux_held(self):
        packet, self._held = self._held, None
        time = packet.dts * packet.time_base if packet.dts is not None else None
        self.container.mux(packet)
        self._mux_copies(time)

    def _mux_copies(self, until=None):
        """Mux the copied streams' packets up to ``until`` seconds (all of them for None)."""
        while self._next_copy is not None:
            packet = self._next_copy
            when = packet.dts if packet.dts is not None else packet.pts
            if until is not None and when is not None and when * packet.time_base > until:
                return
            self._next_copy = next(self._copy_packets, None)
            if packet.size == 0:  # the demuxer's end-of-stream marker
                continue
            packet.stream = self._copies[packet.stream.index]
            self.container.mux(packet)

    def close(self):
        """Flush the encoder, copy the rest of the other streams, and move the file to its final name.

        Raises:
            SLError: no frame was written.
        """
        if self.container is None:
            raise SLError(f'no frame was written to {self.path}; nothing was saved.')
        try:
            self._mux_video(self.stream.encode(), final=True)
            self._mux_copies()
            self.container.close()
            self.container = None
            self._close_source()
            os.replace(self.tmp_path, self.path)
        except av.FFmpegError as error:
            raise SLError(f'FFmpeg could not finish {self.path} ({error.strerror}); nothing was saved: check the '
                          'disk, or write PNG frames instead (-o FOLDER).') from None
        except OSError as error:
            raise output_error(self.path, error) from None
        finally:
            self.abort()

    def _close_source(self):
        if self._source is not None:
            self._source.close()
            self._source = None

    def abort(self):
        """Drop the partial file: a video output is all or nothing."""
        if self.container is not None:
            with contextlib.suppress(av.FFmpegError, OSError):
                self.container.close()
            self.container = None
        self._close_source()
        if self.tmp_path is not None and os.path.exists(self.tmp_path):
            os.remove(self.tmp_path)
