"""Bounded-memory video inference: overlapping temporal windows and overlapping spatial tiles.

Written once for every caller (``sl-infer`` streams a video through it, a training model's
validation passes whole tensors), after VRT's ``test_video`` / ``test_clip``: the clip is cut into
overlapping windows in time and overlapping tiles in space, each piece goes through the network,
and the pieces are accumulated with weights and divided once.

Blending weights are linear ramps across each interior overlap (a cross-fade), 1 elsewhere, so a
seam is never a hard cut. Window and tile positions are deterministic functions of the lengths,
which lets an interrupted run recompute exactly the same windows when it resumes.

Two kinds of networks are supported:

* recurrent (``t -> t``, e.g. BasicVSR, SemanticLens): ``net(lqs (b, t, c, h, w)) -> (b, t, c, s*h, s*w)``;
  windows overlap and are blended.
* sliding window (centre frame, e.g. EDVR): ``net(lqs (b, n, c, h, w)) -> (b, c, s*h, s*w)`` for the
  centre of ``n`` neighbours; each output frame sees exactly the frames it would see in one
  whole-clip pass, so any window split gives the same result and windows need no overlap.

A clip may be cut into shots (``cuts``: the first frame of every shot but the first). Windows are
then planned per shot and never span a cut, so no recurrent state and no blend crosses one, and
a sliding window's neighbours come from its own shot (padded at a cut as at a clip border): the
frames of a shot come out exactly as if the shot were a clip of its own.
"""
import bisect
from typing import Callable, List, NamedTuple, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F

Outputs = Union[torch.Tensor, Tuple[torch.Tensor, ...]]

PADDINGS = ('replicate', 'reflection', 'reflection_circle')


def tile_starts(length: int, tile: int, overlap: int) -> List[int]:
    """Start positions of tiles of size ``tile`` covering ``[0, length)`` with ``overlap`` shared.

    The last tile is aligned to the end, so every tile has the full size (VRT's rule).

    Args:
        length (int): Length of the axis to cover.
        tile (int): Tile size; ``<= 0`` or ``>= length`` means one tile covering everything.
        overlap (int): Minimum number of positions shared by neighbouring tiles, ``< tile``.

    Returns:
        list[int]: Increasing start positions; the first is 0, the last is ``length - tile``.
    """
    if tile <= 0 or tile >= length:
        return [0]
    if not 0 <= overlap < tile:
        raise ValueError(f'overlap ({overlap}) must be >= 0 and smaller than the tile/chunk size ({tile}).')
    stride = tile - overlap
    return list(range(0, length - tile, stride)) + [length - tile]


def ramp_weights(start: int, size: int, length: int, overlap: int) -> torch.Tensor:
    """Blending weight of each position of one tile: a linear ramp over interior overlaps.

    Args:
        start (int): First position of the tile on the axis.
        size (int): Tile size.
        length (int): Length of the whole axis (edges of the axis get no ramp).
        overlap (int): Width of the ramp.

    Returns:
        Tensor: ``(size,)`` float weights in ``(0, 1]``.
    """
    return _ramp(size, overlap, rise=start > 0, fall=start + size < length)


def _ramp(size: int, overlap: int, rise: bool, fall: bool) -> torch.Tensor:
    """``(size,)`` weights: 1, rising over the first ``overlap`` positions if ``rise``, falling over the last if
    ``fall``."""
    position = torch.arange(size, dtype=torch.float32)
    weight = torch.ones(size)
    if overlap > 0 and rise:
        weight = torch.minimum(weight, (position + 1) / (overlap + 1))
    if overlap > 0 and fall:
        weight = torch.minimum(weight, (size - position) / (overlap + 1))
    return weight


def _as_tuple(outputs: Outputs) -> Tuple[torch.Tensor, ...]:
    return outputs if isinstance(outputs, tuple) else (outputs,)


def _pad_to_multiple(tensor: torch.Tensor, multiple: int) -> Tuple[torch.Tensor, int, int]:
    """Reflect-pad the last two dims of ``(..., h, w)`` up to a multiple; returns padded, h, w."""
    height, width = tensor.shape[-2:]
    pad_h, pad_w = (-height) % multiple, (-width) % multiple
    if pad_h == 0 and pad_w == 0:
        return tensor, height, width
    flat = tensor.reshape(-1, *tensor.shape[-3:])
    mode = 'reflect' if pad_h < height and pad_w < width else 'replicate'
    flat = F.pad(flat, (0, pad_w, 0, pad_h), mode=mode)
    return flat.reshape(*tensor.shape[:-2], height + pad_h, width + pad_w), height, width


def _forward_padded(net_fn: Callable[[torch.Tensor], Outputs], lqs: torch.Tensor, multiple: int) -> Outputs:
    """Run ``net_fn`` on ``lqs`` padded to ``multiple`` and crop every output back."""
    padded, height, width = _pad_to_multiple(lqs, multiple)
    outputs = net_fn(padded)
    if padded is lqs:
        return outputs
    cropped = []
    for output in _as_tuple(outputs):
        scale = output.shape[-1] // padded.shape[-1]
        cropped.append(output[..., :height * scale, :width * scale])
    return tuple(cropped) if isinstance(outputs, tuple) else cropped[0]


def forward_tiled(net_fn: Callable[[torch.Tensor], Outputs],
                  lqs: torch.Tensor,
                  tile: int = 0,
                  tile_overlap: int = 16,
                  multiple: int = 1) -> Outputs:
    """Apply ``net_fn`` on overlapping spatial tiles and blend the outputs (divide once).

    Without tiling (``tile <= 0`` or a tile covering the frame) this is exactly ``net_fn(lqs)``.

    Args:
        net_fn (callable): Maps ``(..., c, th, tw)`` to a tensor ``(..., c', s*th, s*tw)`` or a
            tuple of such tensors, each with its own integer scale ``s`` (e.g. an SR output at
            ``s = 4`` and instance masks at ``s = 1``). Leading dims may differ from the input's.
        lqs (Tensor): Input ``(..., c, h, w)``, e.g. ``(b, t, c, h, w)``.
        tile (int): Tile size in input pixels (square); 0 disables tiling.
        tile_overlap (int): Input pixels shared by neighbouring tiles.
        multiple (int): Each tile is reflect-padded to a multiple of this before ``net_fn``
            (for networks with a down-sampling pyramid) and its output cropped back.

    Returns:
        Tensor | tuple[Tensor]: Same structure as ``net_fn``'s output, spatial size ``(s*h, s*w)``.
    """
    height, width = lqs.shape[-2:]
    if tile <= 0 or (tile >= height and tile >= width):
        return _forward_padded(net_fn, lqs, multiple)
    tile_h, tile_w = min(tile, height), min(tile, width)
    overlap_h, overlap_w = min(tile_overlap, tile_h - 1), min(tile_overlap, tile_w - 1)
    accumulators, weight_sums, scales = None, None, None
    for top in tile_starts(height, tile_h, overlap_h):
        for left in tile_starts(width, tile_w, overlap_w):
            piece = lqs[..., top:top + tile_h, left:left + tile_w]
            outputs = _as_tuple(_forward_padded(net_fn, piece, multiple))
            if accumulators is None:
                scales = [output.shape[-1] // tile_w for output in outputs]
                accumulators = [output.new_zeros(*output.shape[:-2], height * s, width * s)
                                for output, s in zip(outputs, scales)]
                weight_sums = [outputs[0].new_zeros(height * s, width * s) for s in scales]
            for output, scale, accumulator, weight_sum in zip(outputs, scales, accumulators, weight_sums):
                weight = torch.outer(
                    ramp_weights(top * scale, tile_h * scale, height * scale, overlap_h * scale),
                    ramp_weights(left * scale, tile_w * scale, width * scale, overlap_w * scale)).to(output)
                rows = slice(top * scale, (top + tile_h) * scale)
                cols = slice(left * scale, (left + tile_w) * scale)
                accumulator[..., rows, cols] += output * weight
                weight_sum[rows, cols] += weight
    blended = tuple(accumulator / weight_sum for accumulator, weight_sum in zip(accumulators, weight_sums))
    return blended if len(blended) > 1 else blended[0]


class Window(NamedTuple):
    """One temporal window: output frames ``[start, stop)`` computed from input frames ``[in_start, in_stop)``."""
    start: int
    stop: int
    in_start: int
    in_stop: int


def shot_bounds(num_frames: int, cuts: Sequence[int] = ()) -> List[Tuple[int, int]]:
    """``[(start, stop), ...]`` of the shots of a clip of ``num_frames`` frames cut at ``cuts``.

    Args:
        num_frames (int): Frames in the clip.
        cuts (Sequence[int]): First frame of every shot but the first, increasing, each in ``(0, num_frames)``.

    Raises:
        ValueError: cuts that are not increasing or fall outside the clip.
    """
    edges = [0, *cuts, num_frames]
    if any(stop <= start for start, stop in zip(edges, edges[1:])):
        raise ValueError(f'cuts must increase strictly inside (0, {num_frames}), got {list(cuts)}.')
    return list(zip(edges, edges[1:]))


def sliding_frame_indices(num_frames: int,
                          num_neighbours: int,
                          padding: str = 'reflection',
                          cuts: Sequence[int] = ()) -> Callable[[int], List[int]]:
    """Input frames a centre-frame network reads for each output frame (BasicSR's padding modes).

    Args:
        num_frames (int): Frames in the clip.
        num_neighbours (int): Odd number of frames the network takes (EDVR's ``num_frame``).
        padding (str): ``'replicate' | 'reflection' | 'reflection_circle'`` (clip borders).
        cuts (Sequence[int]): Shot cuts (see :func:`shot_bounds`); neighbours never come from another
            shot: each shot is padded at its ends as a clip is.

    Returns:
        callable: ``frame index -> list of num_neighbours input indices``.
    """
    from basicsr.data.data_util import generate_frame_indices
    if padding not in PADDINGS:
        raise ValueError(f'padding must be one of {PADDINGS}, got {padding!r}.')
    if num_neighbours % 2 != 1:
        raise ValueError(f'a sliding-window network needs an odd number of frames, got {num_neighbours}.')
    bounds = shot_bounds(num_frames, cuts)
    starts = [start for start, _ in bounds]

    def indices(frame):
        start, stop = bounds[bisect.bisect_right(starts, frame) - 1]
        length = stop - start
        # generate_frame_indices assumes the clip is at least as long as the reflection it needs.
        return [start + min(max(index, 0), length - 1)
                for index in generate_frame_indices(frame - start, length, num_neighbours, padding)]

    return indices


def plan_windows(num_frames: int,
                 chunk: int = 0,
                 overlap: int = 0,
                 frame_inputs: Optional[Callable[[int], Sequence[int]]] = None,
                 cuts: Sequence[int] = ()) -> List[Window]:
    """Split ``num_frames`` output frames into overlapping windows (deterministic in the arguments).

    Args:
        num_frames (int): Frames in the clip.
        chunk (int): Output frames per window; ``<= 0`` means one window for the whole clip (shot).
        overlap (int): Output frames shared by consecutive windows (blended), ``< chunk``.
        frame_inputs (callable | None): ``frame -> input frame indices`` it needs (see
            :func:`sliding_frame_indices`, given the same ``cuts``); None means each output frame
            needs its own input frame.
        cuts (Sequence[int]): Shot cuts (see :func:`shot_bounds`): every shot gets windows of its own.

    Returns:
        list[Window]: Windows in increasing order of ``start``; none spans a cut.
    """
    if num_frames <= 0:
        raise ValueError('a clip needs at least one frame.')
    windows = []
    for shot_start, shot_stop in shot_bounds(num_frames, cuts):
        length = shot_stop - shot_start
        size = length if chunk <= 0 else min(chunk, length)
        for offset in tile_starts(length, size, overlap if size < length else 0):
            start, stop = shot_start + offset, shot_start + offset + size
            if frame_inputs is None:
                in_start, in_stop = start, stop
            else:
                needed = [index for frame in range(start, stop) for index in frame_inputs(frame)]
                in_start, in_stop = min(needed), max(needed) + 1
            windows.append(Window(start, stop, in_start, in_stop))
    return windows


def first_window_for(windows: Sequence[Window], frame: int) -> int:
    """Index of the first window that contributes to output ``frame`` (where a resumed run restarts).

    Every window contributing to a frame ``>= frame`` has this index or a later one, so restarting
    here reproduces an uninterrupted run for all frames from ``frame`` on.
    """
    for index, window in enumerate(windows):
        if window.stop > frame:
            return index
    raise ValueError(f'frame {frame} is outside the planned windows.')


class TemporalBlender:
    """Blend per-window outputs over time and emit each frame once no later window can touch it.

    Usage (streaming): call :meth:`add` with the outputs of windows in order (optionally starting
    at :func:`first_window_for`); it returns the finished frames, so at most about one window of
    frames is held at a time.

    Args:
        windows (list[Window]): From :func:`plan_windows`.
        overlap (int): Ramp width in frames (the ``overlap`` given to :func:`plan_windows`).
        num_frames (int): Frames in the clip.
    """

    def __init__(self, windows: Sequence[Window], overlap: int, num_frames: int):
        self.windows = list(windows)
        self.overlap = overlap
        self.num_frames = num_frames
        self.pending = {}

    def add(self, index: int, outputs: Outputs) -> List[Tuple[int, Outputs]]:
        """Accumulate the outputs of window ``index``.

        Args:
            index (int): Window index in ``windows``.
            outputs (Tensor | tuple[Tensor]): Each ``(b, stop - start, ...)``: the window's frames.

        Returns:
            list[tuple[int, Tensor | tuple[Tensor]]]: ``(frame, outputs)`` for every frame now
            final, in increasing order; each output ``(b, ...)`` has the time dim removed.
        """
        window = self.windows[index]
        is_tuple = isinstance(outputs, tuple)
        outputs = _as_tuple(outputs)
        # ramps only where a neighbouring window overlaps: never at a clip border or a shot cut
        rise = index > 0 and self.windows[index - 1].stop > window.start
        fall = index + 1 < len(self.windows) and self.windows[index + 1].start < window.stop
        weights = _ramp(window.stop - window.start, self.overlap, rise, fall)
        for offset, frame in enumerate(range(window.start, window.stop)):
            weight = float(weights[offset])
            frame_outputs = [output[:, offset] * weight for output in outputs]
            if frame in self.pending:
                sums, weight_sum = self.pending[frame]
                self.pending[frame] = ([s + o for s, o in zip(sums, frame_outputs)], weight_sum + weight)
            else:
                self.pending[frame] = (frame_outputs, weight)
        next_start = self.windows[index + 1].start if index + 1 < len(self.windows) else self.num_frames
        finished = []
        for frame in sorted(f for f in self.pending if f < next_start):
            sums, weight_sum = self.pending.pop(frame)
            blended = tuple(s / weight_sum for s in sums)
            finished.append((frame, blended if is_tuple else blended[0]))
        return finished


def forward_window(net_fn: Callable[[torch.Tensor], Outputs],
                   lqs: torch.Tensor,
                   window: Window,
                   frame_inputs: Optional[Callable[[int], Sequence[int]]] = None,
                   tile: int = 0,
                   tile_overlap: int = 16,
                   multiple: int = 1) -> Outputs:
    """Compute the output frames of one window, tiled in space.

    Args:
        net_fn (callable): The network. Recurrent: ``(b, t, c, h, w) -> (b, t, c, s*h, s*w)`` (or a
            tuple of such, e.g. with masks ``(b, t, n, h, w)``). Sliding window (``frame_inputs``
            given): ``(B, n, c, h, w) -> (B, c, s*h, s*w)`` for the centre frame.
        lqs (Tensor): Input frames ``[in_start, in_stop)`` of the window, ``(b, t_in, c, h, w)``.
        window (Window): The window.
        frame_inputs (callable | None): For sliding-window networks, ``frame -> input indices``.
        tile, tile_overlap, multiple: See :func:`forward_tiled`.

    Returns:
        Tensor | tuple[Tensor]: ``(b, stop - start, c, s*h, s*w)`` (per output of ``net_fn``).
    """
    if frame_inputs is None:
        return forward_tiled(net_fn, lqs, tile, tile_overlap, multiple)
    batch = lqs.shape[0]
    neighbourhoods = torch.stack([
        lqs[:, [index - window.in_start for index in frame_inputs(frame)]]
        for frame in range(window.start, window.stop)
    ], dim=1)  # (b, t_out, n, c, h, w)
    flat = neighbourhoods.flatten(0, 1)
    outputs = _as_tuple(forward_tiled(net_fn, flat, tile, tile_overlap, multiple))
    if outputs[0].dim() != 4:
        raise ValueError(f'a sliding-window network must return (B, c, h, w) for the centre frame, '
                         f'got shape {tuple(outputs[0].shape)}.')
    unflat = tuple(output.reshape(batch, window.stop - window.start, *output.shape[1:]) for output in outputs)
    return unflat if len(unflat) > 1 else unflat[0]


def forward_video(net_fn: Callable[[torch.Tensor], Outputs],
                  lqs: torch.Tensor,
                  chunk: int = 0,
                  overlap: int = 0,
                  tile: int = 0,
                  tile_overlap: int = 16,
                  num_neighbours: int = 0,
                  padding: str = 'reflection',
                  multiple: int = 1) -> Outputs:
    """Whole-tensor convenience (e.g. validation): windows in time, tiles in space, blended.

    With ``chunk <= 0`` (or ``>= t``) and ``tile <= 0`` this equals a single ``net_fn(lqs)`` call
    for a recurrent network.

    Args:
        net_fn (callable): See :func:`forward_window`.
        lqs (Tensor): The whole clip ``(b, t, c, h, w)``.
        chunk (int): Frames per temporal window, 0 for the whole clip.
        overlap (int): Frames shared by consecutive windows (recurrent networks).
        tile, tile_overlap, multiple: See :func:`forward_tiled`.
        num_neighbours (int): > 0 marks a sliding-window network taking this many frames.
        padding (str): Clip-border padding of a sliding-window network.

    Returns:
        Tensor | tuple[Tensor]: ``(b, t, c, s*h, s*w)`` (per output of ``net_fn``).
    """
    num_frames = lqs.shape[1]
    frame_inputs = sliding_frame_indices(num_frames, num_neighbours, padding) if num_neighbours > 0 else None
    if frame_inputs is not None:
        overlap = 0
    windows = plan_windows(num_frames, chunk, overlap, frame_inputs)
    blender = TemporalBlender(windows, overlap, num_frames)
    frames = {}
    for index, window in enumerate(windows):
        outputs = forward_window(net_fn, lqs[:, window.in_start:window.in_stop], window, frame_inputs, tile,
                                 tile_overlap, multiple)
        frames.update(blender.add(index, outputs))
    per_frame = [_as_tuple(frames[frame]) for frame in range(num_frames)]
    stacked = tuple(torch.stack(parts, dim=1) for parts in zip(*per_frame))
    return stacked if len(stacked) > 1 else stacked[0]
