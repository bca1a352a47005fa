"""Measurements of one benchmark row in a fresh process: GFLOPs and time per frame, peak memory.

:func:`measure` runs in a child process (:func:`sl_arch.bench.common.run_in_child`), one row after
another, so that each peak memory is its own and no training competes with the timing. The
upsampling rows (bicubic, bilinear) also get their PSNR-Y / SSIM-Y here, computed as the test
pipeline computes them.
"""
import os
import os.path as osp
import platform
import subprocess


def measure_row(payload):
    """Measure one row on the first clip of the first test set.

    Args:
        payload (dict): ``network_g`` (None for an upsampling row), ``upsampling`` (``'bicubic'`` or
            ``'bilinear'`` for those rows), ``checkpoint``, ``test_sets`` (name -> dataset options),
            ``threads``, ``repeats``, ``tile`` (``val.tile`` of the row or None), ``min_input_size`` (or None).

    Returns:
        dict: ``gflops_per_frame`` (None for an upsampling), ``ms_per_frame``, ``peak_mib`` (peak
        memory of the test forward: resident-set growth on the CPU, peak allocation on CUDA),
        ``frames``, ``lr_size``, ``device``; for an upsampling also ``metrics`` (dataset -> metric
        -> mean and sequences).
    """
    import torch

    torch.set_num_threads(payload['threads'])
    torch.manual_seed(0)
    first = first_clip(next(iter(payload['test_sets'].values())))
    lq = first['lq'].unsqueeze(0)
    result = {'frames': lq.shape[1], 'lr_size': f'{lq.shape[-1]}x{lq.shape[-2]}'}
    if payload['network_g'] is None:
        upsample = UPSAMPLE[payload['upsampling']]
        result.update(time_upsampling(upsample, first['lq'], payload['repeats']))
        result['metrics'] = {name: upsampling_metrics(upsample, test_set)
                             for name, test_set in payload['test_sets'].items()}
    else:
        net, device = load_row_network(payload)
        result.update(time_network(net, device, payload, lq))
        result['long_clip'] = long_clip_drop(net, device, payload, first)
    return result


def test_dataset(test_set):
    """The ``SLVideoTestDataset`` of a test set's options (items: ``lq`` (t, c, h, w), ``gt``, ``folder``)."""
    from basicsr.data import build_dataset
    return build_dataset(dict(test_set, phase='test', scale=4))


def first_clip(test_set):
    """The first item of a test set."""
    return test_dataset(test_set)[0]


#: Motion (LR pixels between consecutive frames) above which a pixel counts as moving in :func:`set_motion`.
MOVING_PX = 0.25


def set_motion(test_set, scale=4):
    """How much a held-out set moves: where other frames can add detail to a frame at all.

    OpenCV's DIS flow (medium preset) between consecutive GT frames of every clip, averaged down to
    LR pixels (:func:`sl_arch.bench.flow.reference_flow`). A pixel that keeps its place brings the
    same samples in every frame; a video network can gain over a single-frame one only where the
    pixels move, by fractions of an LR pixel.

    Returns:
        dict: ``median_px`` (median motion of all LR pixels and frame pairs) and ``moving_share``
        (share of them moving more than :data:`MOVING_PX`).
    """
    import numpy as np

    from sl_arch.bench.flow import reference_flow
    dataset = test_dataset(test_set)
    magnitudes = []
    for index in range(len(dataset)):
        frames = dataset[index]['gt'].permute(0, 2, 3, 1).numpy()
        for ref, supp in zip(frames[:-1], frames[1:]):
            flow = reference_flow(ref, supp, scale)
            magnitudes.append(np.hypot(flow[..., 0], flow[..., 1]).ravel())
    if not magnitudes:
        return {'median_px': None, 'moving_share': None}
    magnitudes = np.concatenate(magnitudes)
    return {'median_px': float(np.median(magnitudes)), 'moving_share': float((magnitudes > MOVING_PX).mean())}


def bicubic_frame(lq_frame):
    """MATLAB-bicubic x4 upsampling (BasicSR's ``imresize``) of one LR frame (c, h, w) in [0, 1], RGB.

    Returns:
        ndarray: (4h, 4w, 3) uint8 BGR, as ``tensor2img`` gives the network outputs.
    """
    import numpy as np

    from basicsr.utils import tensor2img
    from basicsr.utils.matlab_functions import imresize
    upsampled = imresize(tensor2img([lq_frame]).astype(np.float32) / 255.0, 4)
    return (np.clip(upsampled, 0, 1) * 255.0).round().astype(np.uint8)


def bilinear_frame(lq_frame):
    """Bilinear x4 upsampling of one LR frame (c, h, w) as BasicSR's BasicVSR, IconVSR, BasicVSR++ and
    EDVR compute the base they add their output to (``F.interpolate``, ``align_corners=False``).

    Returns:
        ndarray: (4h, 4w, 3) uint8 BGR.
    """
    from torch.nn import functional as F

    from basicsr.utils import tensor2img
    return tensor2img([F.interpolate(lq_frame[None], scale_factor=4, mode='bilinear', align_corners=False)[0]])


#: The upsampling of each upsampling row: one LR frame (c, h, w) -> (4h, 4w, 3) uint8 BGR.
UPSAMPLE = {'bicubic': bicubic_frame, 'bilinear': bilinear_frame}


def time_upsampling(upsample, lqs, repeats):
    """Time per frame and peak memory of ``upsample`` over ``lqs`` (t, c, h, w)."""
    from sl_arch.bench.common import max_rss_mib, median_seconds
    rss_before = max_rss_mib()
    seconds = median_seconds(lambda: [upsample(frame) for frame in lqs], repeats)
    return {'gflops_per_frame': None, 'ms_per_frame': seconds / len(lqs) * 1000,
            'peak_mib': max_rss_mib() - rss_before, 'device': 'cpu'}


def set_metrics(restore, test_set):
    """PSNR-Y / SSIM-Y on every frame of a test set: ``{metric: {'mean', 'sequences'}}``. ``restore(item)`` gives
    the restored frames of one clip of the set (an item of :func:`test_dataset`) as (4h, 4w, 3) uint8 BGR."""
    from basicsr.utils import tensor2img
    from sl_arch.utils.metrics import average_over_sequences, psnr_ssim_y
    dataset = test_dataset(test_set)
    frames = {}
    for index in range(len(dataset)):
        item = dataset[index]
        frames.setdefault(item['folder'], []).extend(
            psnr_ssim_y(restored, tensor2img([gt])) for restored, gt in zip(restore(item), item['gt']))
    return {metric: average_over_sequences({folder: [value[k] for value in values]
                                            for folder, values in frames.items()})
            for k, metric in enumerate(('psnr', 'ssim'))}


def upsampling_metrics(upsample, test_set):
    """PSNR-Y / SSIM-Y of ``upsample`` (one LR frame -> uint8 BGR) on every frame of a test set
    (:func:`set_metrics`)."""
    return set_metrics(lambda item: (upsample(lq) for lq in item['lq']), test_set)


def load_row_network(payload):
    """The row's trained network (``checkpoint``, ``network_g``) on CUDA where there is one, else the CPU; and
    that device."""
    import torch

    from sl_arch.utils.checkpoint import load_network
    device = torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    return load_network(payload['checkpoint'], payload['network_g'], param_key=payload['param_key'],
                        device=device).net, device


def network_input(clip, payload, device):
    """``clip`` (1, t, c, h, w) padded to the row's ``min_input_size`` (when it has one), on ``device``."""
    from sl_arch.models.sl_video_recurrent_model import pad_to_min_size
    return (pad_to_min_size(clip, payload['min_input_size']) if payload.get('min_input_size') else clip).to(device)


def run_network(net, clip, payload):
    """One test forward of ``clip`` as the row is tested: on sliding windows where it has a ``tile``."""
    from sl_arch.utils.tiling import forward_video
    tile = payload.get('tile')
    return forward_video(net, clip, **tile) if tile else net(clip)


def time_network(net, device, payload, lq):
    """GFLOPs, time per frame and peak memory of one test forward of the row's network over ``lq`` (1, t, c, h, w)."""
    import torch

    from sl_arch.bench.common import count_flops, max_rss_mib, median_seconds
    clip = network_input(lq, payload, device)

    def forward():
        output = run_network(net, clip, payload)
        if device.type == 'cuda':
            torch.cuda.synchronize()
        return output

    if device.type == 'cuda':
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    rss_before = max_rss_mib()
    seconds = median_seconds(forward, payload['repeats'])
    peak = (torch.cuda.max_memory_allocated() - base) / 2**20 if device.type == 'cuda' else max_rss_mib() - rss_before
    frames = lq.shape[1]
    result = {'gflops_per_frame': count_flops(net, forward) / frames / 1e9, 'ms_per_frame': seconds / frames * 1000,
              'peak_mib': peak, 'device': device.type}
    if payload['network_g']['type'].endswith('BasicVSRPlusPlus'):  # ours and BasicSR's
        result['deformable_alignment'] = len(net.deform_align) > 0
    return result


#: Frames of the long-clip test (:func:`long_clip_drop`): the first held-out clip played forth and back up to this.
LONG_CLIP_FRAMES = 192


def long_clip_drop(net, device, payload, item, min_frames=LONG_CLIP_FRAMES):
    """Whether a network holds its quality deep into a long clip: a recurrent one whose propagated state grows
    from frame to frame (trained on 7-frame clips, it never saw more) degrades after tens of frames.

    The first held-out clip (``item``) is played forth and back (ping-pong, so no frame jumps) until it has
    ``min_frames`` frames and upscaled in one forward, float32; every pass shows the same frames, so a
    network that holds gives about the same PSNR-Y in each.

    Args:
        net, device: From :func:`load_row_network`.
        payload (dict): The row's ``min_input_size`` and ``tile`` (as :func:`measure_row`'s).
        item (dict): A test-set item: ``lq`` (t, c, h, w) and ``gt``.
        min_frames (int): Frames of the long clip at least.

    Returns:
        dict: ``frames``, ``pass_psnr`` (PSNR-Y of each pass: mean over its frames), ``drop_db`` (median pass
        minus worst pass).
    """
    import statistics

    import torch
    from basicsr.metrics import calculate_psnr
    from basicsr.utils import tensor2img
    lq, gt = item['lq'], item['gt']
    order = []  # frame indices, forth and back
    for number in range(-(-min_frames // len(lq))):
        order += range(len(lq)) if number % 2 == 0 else reversed(range(len(lq)))
    clip = torch.stack([lq[index] for index in order]).unsqueeze(0)
    height, width = clip.shape[-2:]
    with torch.no_grad():
        output = run_network(net, network_input(clip, payload, device), payload)
    output = output[0, :, :, :4 * height, :4 * width].float().cpu()
    psnrs = [calculate_psnr(tensor2img([frame]), tensor2img([gt[index]]), 0, test_y_channel=True)
             for frame, index in zip(output, order)]
    per_pass = len(lq)
    pass_psnr = [statistics.fmean(psnrs[start:start + per_pass]) for start in range(0, len(psnrs), per_pass)]
    return {'frames': len(order), 'pass_psnr': pass_psnr, 'drop_db': statistics.median(pass_psnr) - min(pass_psnr)}


def versions():
    """Versions of Python, torch, BasicSR and sl_arch, the commit, the CPU or GPU and the platform."""
    import basicsr
    import torch

    import sl_arch
    commit = subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], capture_output=True, text=True,
                            cwd=osp.dirname(osp.abspath(__file__))).stdout.strip()
    cpu = platform.processor() or platform.machine()
    if osp.isfile('/proc/cpuinfo'):
        with open('/proc/cpuinfo', encoding='utf-8') as handle:
            names = [line.split(':', 1)[1].strip() for line in handle if line.startswith('model name')]
        cpu = names[0] if names else cpu
    return {'python': platform.python_version(), 'torch': torch.__version__, 'basicsr': basicsr.__version__,
            'sl_arch': sl_arch.__version__, 'commit': commit or 'unknown', 'cpu': cpu, 'cpu_count': os.cpu_count(),
            'cuda': torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            'platform': platform.platform()}
