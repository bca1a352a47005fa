"""What a video network needs from its input, resolved from its ``network_g`` options.

The one place these facts live: whether a network predicts the centre frame of a sliding window
(and of how many frames) or runs over the whole clip, its scale, the multiple the frame sides
must be, the smallest frame and clip it accepts, the most frames it can take at once without
CUDA, and whether it makes instance masks. ``sl-infer``, ``sl-export``, the benchmarks and the
demo read them through :func:`arch_spec`; :func:`check_input_fits` refuses an input that does not
fit with one line that names the limit and the fix.

Facts come from the network's own constructor defaults and class attributes where it has them
(read through BasicSR's ``ARCH_REGISTRY``); the rest are properties of BasicSR's code, noted where
they are stated. ``tests/test_checkpoint.py`` runs every network at its limits, so a fact that
drifts from the code fails there.
"""
import dataclasses
import inspect
from typing import Optional

from basicsr.utils.registry import ARCH_REGISTRY

from sl_arch.utils.errors import SLError

#: BasicSR's SpyNet (BasicVSR, IconVSR) resizes frames up to a multiple of 32 and halves them five
#: times, so a side of 32 leaves a 0-px coarsest level (a RuntimeError); 33 rounds up to 64.
SPYNET_MIN_SIZE = 33
#: BasicSR's BasicVSR++ asserts LR sides of at least 64 px for its flow
#: (``basicvsrpp_arch.py``: "The height and width of low-res inputs must be at least 64").
BASICVSRPP_MIN_LR_SIZE = 64
#: BasicSR's DUF takes exactly 7 frames ("x (Tensor): Input with shape (b, 7, c, h, w)").
DUF_FRAMES = 7


@dataclasses.dataclass(frozen=True)
class ArchSpec:
    """What one configured network needs from its input.

    Attributes:
        type (str): ``network_g.type``.
        scale (int | None): Output side / input side (None: not known for this type).
        sliding_window_frames (int | None): A centre-frame network's input frames per output
            frame, ``(b, n, c, h, w) -> (b, c, s*h, s*w)``; None for networks that take a whole
            clip, ``(b, t, c, h, w) -> (b, t, c, s*h, s*w)`` (recurrent and frame-wise).
        size_multiple (int): Input sides must be multiples of this (callers pad, e.g. sl-infer).
        min_size (int): Smallest input side (frame, or tile when tiled).
        min_frames (int): Smallest number of frames per call (whole-clip networks).
        max_frames_cpu (int | None): Most frames per call without CUDA (None: no limit).
        frame_wise (bool): Each frame is restored from itself alone (a single-frame network run on every frame).
        makes_masks (bool): ``forward(lqs, return_masks=True)`` returns learned instance masks.
        needs_masks (bool): ``forward`` needs instance masks given with the frames.
        graph_multiple (int): Sides that are multiples of this take the same code path (no
            padding branch), so a graph traced at one such size holds for the others.
        graph_min_size (int): Smallest side from which that holds (below it SemanticLens' flow
            pyramid uses fewer levels, a different graph).
    """
    type: str
    scale: Optional[int] = None
    sliding_window_frames: Optional[int] = None
    size_multiple: int = 1
    min_size: int = 1
    min_frames: int = 1
    max_frames_cpu: Optional[int] = None
    frame_wise: bool = False
    makes_masks: bool = False
    needs_masks: bool = False
    graph_multiple: int = 1
    graph_min_size: int = 1

    @property
    def is_sliding_window(self):
        """True for centre-frame networks (EDVR, DUF)."""
        return self.sliding_window_frames is not None


def options_with_defaults(net_opt):
    """``net_opt`` completed with the constructor defaults of its registered class.

    Args:
        net_opt (dict): ``type`` plus constructor keyword arguments.

    Returns:
        dict: Every constructor argument with a default, overridden by ``net_opt`` (``type`` kept).

    Raises:
        SLError: no ``type``, or a type that is not registered.
    """
    if not isinstance(net_opt, dict) or not net_opt.get('type'):
        raise SLError(f'network_g needs a type (e.g. SemanticLens, BasicVSR, IconVSR, EDVR); got {net_opt!r}.')
    net_type = net_opt['type']
    if net_type not in ARCH_REGISTRY:
        raise SLError(f'architecture {net_type!r} is not registered; check network_g.type '
                      '(e.g. SemanticLens, BasicVSR, IconVSR, EDVR).')
    parameters = inspect.signature(ARCH_REGISTRY.get(net_type).__init__).parameters.values()
    defaults = {parameter.name: parameter.default for parameter in parameters
                if parameter.default is not inspect.Parameter.empty}
    return dict(defaults, **net_opt)


def _semantic_lens(opt):
    uses_semantics = bool(opt['use_semantics'])
    extractor = dict(opt['semantic_extractor'] or {'type': 'SLSemanticExtractor'})
    extractor_class = ARCH_REGISTRY.get(extractor['type']) if extractor.get('type') in ARCH_REGISTRY else None
    needs_masks = uses_semantics and bool(getattr(extractor_class, 'needs_masks', False))
    min_size = ARCH_REGISTRY.get('SemanticLens').MIN_INPUT_SIZE
    full_pyramid = 1
    if opt['use_flow']:  # SLFlowWarper uses all its levels once the coarsest keeps min_level_size px
        warper = inspect.signature(ARCH_REGISTRY.get('SLFlowWarper').__init__).parameters
        full_pyramid = warper['min_level_size'].default * 2**(opt['flow_levels'] - 1)
    return dict(scale=opt['scale'], min_size=min_size, makes_masks=uses_semantics and not needs_masks,
                needs_masks=needs_masks, graph_multiple=opt['window_size'],
                graph_min_size=max(min_size, full_pyramid))


def _basicvsr(opt):
    return dict(scale=4, min_size=SPYNET_MIN_SIZE)  # two x2 pixel shuffles, no scale option


def _sl_basicvsr(opt):
    if opt['flow_estimator'] == 'dis':  # OpenCV's DIS refuses frames under its 12-px patch
        from sl_arch.archs.prealign_arch import DIS_MIN_SIZE
        return dict(scale=4, min_size=DIS_MIN_SIZE)
    return _basicvsr(opt)


def _iconvsr(opt):
    # its keyframe branch reflects frames 1..2*temporal_padding at both clip ends: frame 2*tp must exist
    return dict(_basicvsr(opt), min_frames=2 * opt['temporal_padding'] + 1)


def _sl_basicvsrpp(opt):
    low_res = bool(opt['is_low_res_input'])  # else the input is HR and the flow runs on it downscaled x4
    return dict(scale=4 if low_res else 1, min_size=BASICVSRPP_MIN_LR_SIZE * (1 if low_res else 4))


def _basicvsrpp(opt):
    # BasicSR's moves features with .cuda() once a clip is longer than cpu_cache_length (SLBasicVSRPlusPlus does not)
    return dict(_sl_basicvsrpp(opt), max_frames_cpu=opt['cpu_cache_length'])


def _edvr(opt):
    multiple = 16 if opt['hr_in'] else 4  # EDVR's own assertions (three pyramid levels, x4 more with hr_in)
    return dict(scale=1 if opt['hr_in'] else 4, sliding_window_frames=opt['num_frame'], size_multiple=multiple,
                min_size=multiple, graph_multiple=multiple)


def _duf(opt):
    return dict(scale=opt['scale'], sliding_window_frames=DUF_FRAMES)


def _frame_wise(opt):
    inner = dict(opt['network'] or {'type': 'MSRResNet', 'upscale': 4})
    inner_opt = options_with_defaults(inner)
    return dict(scale=inner_opt.get('upscale', inner_opt.get('scale')), frame_wise=True)


#: network_g.type -> function of the options (defaults filled in) giving the ArchSpec fields.
RESOLVERS = {
    'SemanticLens': _semantic_lens,
    'BasicVSR': _basicvsr,
    'SLBasicVSR': _sl_basicvsr,
    'IconVSR': _iconvsr,
    'BasicVSRPlusPlus': _basicvsrpp,
    'SLBasicVSRPlusPlus': _sl_basicvsrpp,
    'EDVR': _edvr,
    'DUF': _duf,
    'SLFrameWise': _frame_wise,
}


def arch_spec(net_opt):
    """The :class:`ArchSpec` of the network ``net_opt`` builds.

    Args:
        net_opt (dict): ``network_g``: ``type`` plus constructor keyword arguments.

    Returns:
        ArchSpec: Types without a resolver get the whole-clip defaults (no limits, scale None).

    Raises:
        SLError: no ``type``, or a type that is not registered.
    """
    opt = options_with_defaults(net_opt)
    resolver = RESOLVERS.get(opt['type'])
    return ArchSpec(type=opt['type'], **(resolver(opt) if resolver else {}))


def check_input_fits(spec, height, width, num_frames, tile=0, source='the input', clip_frames=None, device='cpu'):
    """Refuse frames, tiles or windows the network cannot process.

    Args:
        spec (ArchSpec): The network's spec.
        height, width (int): Input frame size.
        num_frames (int | Sequence[int]): Frames per call, or the length of every temporal window
            (the shortest is checked against ``min_frames``, the longest against ``max_frames_cpu``).
        tile (int): Spatial tile side (0: no tiling).
        source (str): The input, for messages (e.g. its path).
        clip_frames (int | None): Frames of the whole clip, for messages.
        device (str | torch.device): Where the network runs (``max_frames_cpu`` applies off CUDA).

    Raises:
        SLError: naming the input, the limit and the fix.
    """
    side = min(height, width, tile or max(height, width))
    if side < spec.min_size:
        raise SLError(f'{spec.type} needs frames and tiles of at least {spec.min_size}x{spec.min_size} input pixels; '
                      f'{source} is {width}x{height}' + (f' with --tile {tile}' if tile else '')
                      + ': use larger frames' + (' or a larger --tile.' if tile else '.'))
    if spec.is_sliding_window:
        return  # each output frame gets its window, padded at the clip ends
    lengths = [num_frames] if isinstance(num_frames, int) else list(num_frames)
    clip = f' ({clip_frames} frames)' if clip_frames is not None else ''
    if min(lengths) < spec.min_frames:
        raise SLError(f'{spec.type} needs at least {spec.min_frames} frames per window; {source} gives {min(lengths)}'
                      f'{clip}: raise --chunk to {spec.min_frames} or more, or use a longer clip.')
    if spec.max_frames_cpu is not None and not str(device).startswith('cuda') and max(lengths) > spec.max_frames_cpu:
        raise SLError(f'{spec.type} takes at most {spec.max_frames_cpu} frames per window without CUDA; {source} '
                      f'gives windows of {max(lengths)}{clip}: set --chunk {spec.max_frames_cpu} or less.')
