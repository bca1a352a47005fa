"""``python -m sl_arch.bench.flow``: pretrained flow weights that we make ourselves.

Every video SR model here starts from a flow network (SemanticLens' ``SLFlowWarper``, the SPyNet
of BasicSR's BasicVSR / IconVSR / BasicVSR++). No pretrained weights can be downloaded, so this
command trains ``SLFlowWarper`` on LR frame pairs with known flow and evaluates it:

``train``
    Two sources of (reference, supporting, flow) pairs, mixed half and half:

    * the synthetic clips of :mod:`sl_arch.data.synthetic` (``sl-prepare --synthetic``), whose
      flow is exact: ``SLFlowWarper(ref=frame t, supp=frame t+1)`` must return ``flow_fwd/t``
      (for each pixel of frame t, where its surface is in frame t+1, which is what
      ``flow_warp(supp, flow)`` samples) and ``SLFlowWarper(frame t+1, frame t)`` ``flow_bwd/t+1``;
    * real footage (the training part of the demo clip, ``sl-prepare --demo``) with OpenCV's DIS
      flow (medium preset) as pseudo ground truth, for pairs 1, 2, 4 and 8 frames apart in both
      directions. DIS runs on the GT frames and its flow is area-averaged down to the LR pixels
      (``--real-scale``): on the held-out synthetic clips that reference is nearly twice as
      accurate as DIS run on the LR frames themselves (see the ``DIS`` row of the table).

    Loss: Charbonnier of the end-point error, ``sqrt(|flow - gt|^2 + eps^2)`` with ``eps`` 0.5 px
    (robust to large errors; quadratic below 0.5 px, which gets training off the zero-flow
    plateau where a smaller ``eps`` stayed for over a thousand iterations), on the final flow and,
    with ``--multiscale r > 0``, with weight ``r ** k`` on the flow of the level ``k`` steps coarser
    (against the area-averaged ground truth; off by default: it slowed the start). Random crops
    and flips; Adam with a cosine schedule. From scratch, the last convolution of every level gets
    a standard initialisation (``SLFlowWarper`` shrinks it so that an untrained warper predicts
    almost no motion, which also nearly stops its gradients).

    ``--layout tiny`` is the SemanticLens tiny preset's warper (3 levels, channels 16-32-16-8,
    kernel 5), trained on 40x24 crops of LR frames; ``--layout spynet`` is SPyNet's own layout
    (6 levels, 32-64-32-16, kernel 7), which needs larger frames: it trains on 64x64 crops of
    ``datasets/synthetic_flow`` (``sl-prepare --synthetic -o datasets/synthetic_flow --size 320x256
    --train-clips 32 --degradation bi``: LR 80x64) and of the demo frames at half the GT size
    (160x90, ``--real-scale 2``), with the pyramid's coarsest level drawn from 2 or 4 px per
    iteration so that both BasicSR's SpyNet (always 6 levels) and ``SLFlowWarper`` (coarsest level
    >= 4 px) find trained levels. ``--init`` starts it from the tiny weights, widened (net2net:
    the small kernels and channels embedded in the large ones, the rest small random), which
    skips the slow start of training from scratch.

    The result is a BasicSR checkpoint ``{'params': state_dict, 'flow_train': {...}}`` with
    BasicSR SpyNet's key names, written atomically; saved in float16 when that changes the
    held-out EPE by at most 1% (``--dtype auto``); loading copies it into float32 parameters.
    Training state is saved every ``--save-every`` iterations under ``--work-dir``; run the same
    command again to resume (``--restart`` starts over).

``evaluate``
    Mean end-point error (LR pixels, all pixels) on held-out data only: the held-out synthetic
    clips (exact flow; all and the ``crossing`` ones), optionally a second synthetic set of larger
    frames, and the held-out demo frames against DIS (on GT, downscaled) as the reference. Rows:
    zero flow, DIS on the LR frames, and for every weights file the untrained network of its
    layout and the trained one (for SPyNet's layout also through BasicSR's own ``SpyNet``).
    Prints the table and writes it into ``--readme`` (``model_zoo/README.md``).
"""
import argparse
import glob
import json
import os
import os.path as osp
import shlex
import sys
import time

import cv2
import numpy as np
import torch
from torch.nn import functional as F

from sl_arch.utils.errors import SLError, check_at_least, cli_entry

LAYOUTS = {
    'tiny': dict(num_levels=3, channels=[16, 32, 16, 8], kernel_size=5),
    'spynet': dict(num_levels=6, channels=[32, 64, 32, 16], kernel_size=7),
}
#: Per-layout defaults of ``train``.
TRAIN_DEFAULTS = {
    'tiny': dict(synthetic='datasets/synthetic', crop='40x24', batch=16, real_scale=4, min_level_sizes='4',
                 out='model_zoo/slflow_tiny_synthetic_dis.pth'),
    'spynet': dict(synthetic='datasets/synthetic_flow', crop='64x64', batch=4, real_scale=2, min_level_sizes='2,4',
                   out='model_zoo/spynet_synthetic_dis.pth'),
}
REAL_ROOT = 'datasets/demo_bbb'
REAL_STRIDES = (1, 2, 4, 8)
EVAL_REAL_STRIDES = (1, 4)
CHARBONNIER_EPS = 0.5


# ----------------------------------------------------------------------------------------- data


def read_rgb(path):
    """A frame as float32 RGB (h, w, 3) in [0, 1]."""
    img = cv2.imread(path, cv2.IMREAD_COLOR)
    if img is None:
        raise SLError(f'cannot read frame {path}; it is missing or corrupt, run sl-prepare again.')
    return img[..., ::-1].astype(np.float32) / 255.


def dis_flow(ref, supp):
    """OpenCV DIS flow (medium preset, its half-resolution finest scale) from ``ref`` to ``supp`` (uint8 or
    float BGR/RGB/grey GT frames): for each pixel of ``ref``, where it is in ``supp`` (the convention of
    ``SLFlowWarper``). The pseudo ground truth of real footage; on LR frames use ``SLDISFlow``. A new DIS
    object each call (about 10 us), so no call depends on the frames an earlier one saw."""
    from sl_arch.archs.prealign_arch import dis_estimator
    cv2.setNumThreads(1)

    def grey(img):
        if img.dtype != np.uint8:
            img = np.clip(np.round(img * 255), 0, 255).astype(np.uint8)
        return cv2.cvtColor(img, cv2.COLOR_RGB2GRAY) if img.ndim == 3 else img

    return dis_estimator('medium', finest_scale=1).calc(grey(ref), grey(supp), None)


def reference_flow(ref, supp, scale):
    """The benchmark's reference flow between two GT frames, in LR pixels: :func:`dis_flow` on the GT frames,
    averaged down to the LR pixels (:func:`downscale_flow`). The pseudo ground truth of the flow training and
    evaluation here, of ``sl-bench``'s motion statistics and of ``bench.flow_ceiling``'s oracle."""
    return downscale_flow(dis_flow(ref, supp), scale)


def clip_reference_flows(frames, scale):
    """:func:`reference_flow` between every two consecutive GT ``frames`` (t, H, W, 3) of a clip, both ways:
    ``(backward, forward)``, each (t - 1, H // scale, W // scale, 2) float32; ``backward[i]`` lies at frame i and
    points to where its pixels are in frame i + 1, ``forward[i]`` at frame i + 1, pointing into frame i."""
    if len(frames) < 2:
        empty = np.zeros((0, frames.shape[1] // scale, frames.shape[2] // scale, 2), np.float32)
        return empty, empty.copy()
    backward = np.stack([reference_flow(frames[i], frames[i + 1], scale) for i in range(len(frames) - 1)])
    forward = np.stack([reference_flow(frames[i + 1], frames[i], scale) for i in range(len(frames) - 1)])
    return backward, forward


def downscale_flow(flow, scale):
    """Flow of a frame ``scale`` times larger, averaged over each LR pixel's block, in LR pixels."""
    if scale == 1:
        return flow.astype(np.float32)
    h, w = flow.shape[0] // scale, flow.shape[1] // scale
    flow = flow[:h * scale, :w * scale]
    return cv2.resize(flow, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32) / scale


class PairSet:
    """Frame pairs with flow, kept in memory: ``frames[clip]`` (t, h, w, 3) float32 RGB, ``pairs`` a
    list of ``(clip, ref index, supp index, flow (h, w, 2) float32, tag)``."""

    def __init__(self, name):
        self.name = name
        self.frames = {}
        self.pairs = []

    def __len__(self):
        return len(self.pairs)

    @property
    def frame_size(self):
        """(width, height) of the frames (all frames of a set have one size)."""
        first = next(iter(self.frames.values()))
        return first.shape[2], first.shape[1]


def _clip_folders(root, what):
    if not osp.isdir(root):
        raise SLError(f'{what} {root} does not exist; make it first (see datasets/README.md), or pass another path.')
    folders = sorted(entry for entry in os.listdir(root) if osp.isdir(osp.join(root, entry)))
    if not folders:
        raise SLError(f'{what} {root} has no clip folders; make it first (see datasets/README.md).')
    return folders


def load_synthetic(root, split, kind='BI'):
    """The pairs of one split of a synthetic set (:mod:`sl_arch.data.synthetic`), both directions.

    Tags are the clips' motion regimes (``pan``, ``crossing``, ``wander``).
    """
    lr_root = osp.join(root, split, kind)
    regimes = {}
    info_path = osp.join(root, split, 'clips.json')
    if osp.isfile(info_path):
        with open(info_path) as handle:
            regimes = {clip: entry.get('regime', '') for clip, entry in json.load(handle).items()}
    pairs = PairSet(f'{root}/{split}')
    for clip in _clip_folders(lr_root, 'synthetic LR folder'):
        paths = sorted(glob.glob(osp.join(lr_root, clip, '*.png')))
        if len(paths) < 2:
            continue
        pairs.frames[clip] = np.stack([read_rgb(path) for path in paths])
        tag = regimes.get(clip, clip.split('_')[0])
        for t in range(len(paths) - 1):
            for ref, supp, folder, index in ((t, t + 1, 'flow_fwd', t), (t + 1, t, 'flow_bwd', t + 1)):
                flow_path = osp.join(root, split, folder, clip, f'{index:08d}.npy')
                if not osp.isfile(flow_path):
                    raise SLError(f'{flow_path} is missing: {root} is not a complete synthetic set; '
                                  f'make it with sl-prepare --synthetic -o {root}.')
                pairs.pairs.append((clip, ref, supp, np.load(flow_path).astype(np.float32), tag))
    return checked(pairs, lr_root)


def checked(pairs, root):
    """``pairs`` after checking that it holds pairs, all of one frame size (``root`` names it in errors)."""
    sizes = {frames.shape[1:3] for frames in pairs.frames.values()}
    if len(sizes) > 1:
        raise SLError(f'{root} holds frames of several sizes {sorted(sizes)}; one size per set is supported.')
    if not pairs.pairs:
        raise SLError(f'{root} has no clip of two frames or more.')
    return pairs


def load_real(root, split, scale, strides):
    """Real footage: GT frames of ``root/split/GT/<clip>``, BI-downscaled by ``scale``, paired
    ``stride`` frames apart in both directions, with DIS on the GT frames (downscaled) as flow.

    Tags are ``stride<k>``.
    """
    from sl_arch.data.degradations import bi_degrade, mod_crop
    gt_root = osp.join(root, split, 'GT')
    pairs = PairSet(f'{root}/{split}')
    for clip in _clip_folders(gt_root, 'real GT folder'):
        paths = sorted(glob.glob(osp.join(gt_root, clip, '*.png')))
        gts = []
        for path in paths:
            img = cv2.imread(path, cv2.IMREAD_COLOR)
            if img is None:
                raise SLError(f'cannot read frame {path}; it is missing or corrupt, run sl-prepare again.')
            gts.append(mod_crop(img, scale))
        if len(gts) < 2:
            continue
        lrs = [gt if scale == 1 else bi_degrade(gt, scale) for gt in gts]
        pairs.frames[clip] = np.stack([lr[..., ::-1].astype(np.float32) / 255. for lr in lrs])
        for stride in strides:
            for t in range(len(gts) - stride):
                for ref, supp in ((t, t + stride), (t + stride, t)):
                    flow = reference_flow(gts[ref], gts[supp], scale)
                    pairs.pairs.append((clip, ref, supp, flow, f'stride{stride}'))
    return checked(pairs, gt_root)


def sample_batch(sets, weights, batch, crop, rng):
    """A training batch: ``ref, supp`` (b, 3, h, w) and ``flow`` (b, 2, h, w) tensors.

    Each item picks a set by ``weights``, a pair, a random ``crop`` (w, h) and random flips.
    """
    crop_w, crop_h = crop
    refs, supps, flows = [], [], []
    for _ in range(batch):
        pairs = sets[rng.choice(len(sets), p=weights)]
        clip, ref_index, supp_index, flow, _ = pairs.pairs[rng.integers(len(pairs))]
        frames = pairs.frames[clip]
        h, w = flow.shape[:2]
        top, left = rng.integers(0, h - crop_h + 1), rng.integers(0, w - crop_w + 1)
        window = (slice(top, top + crop_h), slice(left, left + crop_w))
        ref, supp, flow = frames[ref_index][window], frames[supp_index][window], flow[window].copy()
        if rng.random() < 0.5:  # horizontal flip: x motion changes sign
            ref, supp, flow = ref[:, ::-1], supp[:, ::-1], flow[:, ::-1] * np.array([-1, 1], np.float32)
        if rng.random() < 0.5:  # vertical flip
            ref, supp, flow = ref[::-1], supp[::-1], flow[::-1] * np.array([1, -1], np.float32)
        refs.append(np.ascontiguousarray(ref))
        supps.append(np.ascontiguousarray(supp))
        flows.append(np.ascontiguousarray(flow))

    def tensor(items):
        return torch.from_numpy(np.stack(items)).permute(0, 3, 1, 2).contiguous()

    return tensor(refs), tensor(supps), tensor(flows)


# ---------------------------------------------------------------------------------------- model


def build_warper(layout, min_level_size=4, load_path=None, seed=0):
    """An ``SLFlowWarper`` of ``layout`` (a :data:`LAYOUTS` key or dict), initialised from ``seed``."""
    from sl_arch.archs.prealign_arch import SLFlowWarper
    layout = LAYOUTS[layout] if isinstance(layout, str) else layout
    torch.manual_seed(seed)
    return SLFlowWarper(layout['num_levels'], tuple(layout['channels']), layout['kernel_size'],
                        min_level_size=min_level_size, load_path=load_path)


def reset_for_training(warper, seed=0):
    """Give the last convolution of every level a standard initialisation for training from scratch.

    ``SLFlowWarper`` shrinks it 100x so that an untrained warper predicts almost no motion; trained
    from there its gradients almost vanish and it stays at zero flow for thousands of iterations.
    """
    torch.manual_seed(seed + 1)
    for level in warper.basic_module:
        level.basic_module[-1].reset_parameters()


def embed_weights(warper, state, noise=0.1, seed=0):
    """Start ``warper`` from the weights of a smaller layout (net2net-style widening).

    Each level of ``state`` is copied into the matching level of ``warper`` (finest to finest; the
    extra coarser levels get copies of the coarsest one), its kernels centred in the larger
    kernels and its channels first; every other weight keeps ``noise`` times its standard
    initialisation, so the widened network computes nearly the small one's flow and can still
    use its extra channels.
    """
    torch.manual_seed(seed + 2)
    own = warper.state_dict()
    small_levels = 1 + max(int(key.split('.')[1]) for key in state if key.startswith('basic_module.'))
    offset = warper.num_levels - small_levels
    embedded = {}
    for key, value in own.items():
        parts = key.split('.')
        source = '.'.join([parts[0], str(max(0, int(parts[1]) - offset))] + parts[2:])
        small = state[source].float()
        big = value.clone() * noise if value.dim() > 1 else torch.zeros_like(value)
        if value.dim() > 1:
            out_ch, in_ch, k = small.shape[0], small.shape[1], small.shape[-1]
            start = (value.shape[-1] - k) // 2
            big[:out_ch, :in_ch, start:start + k, start:start + k] = small
        else:
            big[:small.shape[0]] = small
        embedded[key] = big
    warper.load_state_dict(embedded)


def charbonnier_epe(flow, target, eps=CHARBONNIER_EPS):
    """Mean of ``sqrt(|flow - target|^2 + eps^2)`` over pixels: a differentiable end-point error."""
    return torch.sqrt(((flow - target)**2).sum(1) + eps**2).mean()


def flow_loss(warper, ref, supp, target, multiscale, eps=CHARBONNIER_EPS):
    """Charbonnier EPE of the final flow plus ``multiscale ** k`` times that of the level ``k`` steps
    coarser (in full-resolution pixels, against the area-averaged target). Returns (loss, flow)."""
    flow, levels = warper(ref, supp, return_levels=True)
    loss = charbonnier_epe(flow, target, eps)
    if multiscale > 0 and len(levels) > 1:
        padded_h, padded_w = levels[-1].shape[-2:]
        h, w = target.shape[-2:]
        padded = F.pad(target, (0, padded_w - w, 0, padded_h - h), mode='replicate')
        for k, level in enumerate(reversed(levels[:-1]), start=1):
            factor = 2**k
            coarse = F.avg_pool2d(padded, factor, factor) / factor
            loss = loss + multiscale**k * charbonnier_epe(level * factor, coarse * factor, eps)
    return loss, flow


def state_dict_for_saving(warper, dtype):
    """The warper's weights (BasicSR SpyNet key names) as ``dtype`` CPU tensors."""
    return {key: value.detach().to('cpu', dtype).clone() for key, value in warper.state_dict().items()}


# ----------------------------------------------------------------------------------- evaluation


def mean_epe(flow_fn, pairs, batch=16, tags=None):
    """Mean end-point error (pixels, all pixels of every pair) of ``flow_fn(ref, supp)`` over ``pairs``.

    Args:
        flow_fn (callable): (n, 3, h, w) ref, supp tensors -> (n, 2, h, w) flow.
        pairs (PairSet): Evaluation pairs.
        tags (set[str] | None): Only the pairs with these tags.
    """
    chosen = [pair for pair in pairs.pairs if tags is None or pair[4] in tags]
    if not chosen:
        return float('nan')
    total, count = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(chosen), batch):
            items = chosen[start:start + batch]
            ref = torch.from_numpy(np.stack([pairs.frames[c][r] for c, r, _, _, _ in items])).permute(0, 3, 1, 2)
            supp = torch.from_numpy(np.stack([pairs.frames[c][s] for c, _, s, _, _ in items])).permute(0, 3, 1, 2)
            target = torch.from_numpy(np.stack([f for _, _, _, f, _ in items])).permute(0, 3, 1, 2)
            flow = flow_fn(ref.contiguous(), supp.contiguous()).float()
            total += torch.linalg.vector_norm(flow - target, dim=1).sum().item()
            count += target[:, 0].numel()
    return total / count


def zero_flow(ref, supp):
    return ref.new_zeros(ref.shape[0], 2, *ref.shape[-2:])


def matching_costs(ref, supp, radius=4, patch=3):
    """(n, (2 radius + 1)^2, h, w): for every whole-pixel displacement d within ``radius`` (dy-major,
    dx within), the mean absolute difference between ``ref`` (n, c, h, w) at p and ``supp`` at p + d,
    averaged over a ``patch`` x ``patch`` window (the frame's edge replicated). The costs a flow
    network starts from, before any smoothing or pyramid."""
    h, w = ref.shape[-2:]
    size = 2 * radius + 1
    padded = F.pad(supp, [radius] * 4, mode='replicate')
    shifted = torch.stack([padded[..., dy:dy + h, dx:dx + w] for dy in range(size) for dx in range(size)], dim=1)
    error = (ref.unsqueeze(1) - shifted).abs().mean(2)
    return F.avg_pool2d(error, patch, 1, patch // 2, count_include_pad=False)


def block_matching_flow(ref, supp, radius=4, patch=5):
    """Flow (n, 2, h, w) from ``ref`` to ``supp`` by block matching: each pixel's whole-pixel displacement of
    least :func:`matching_costs`. No smoothing and no pyramid, so an object a few pixels wide that moves
    faster than a coarse level resolves keeps its own motion; noisy where texture is flat."""
    steps = torch.arange(-radius, radius + 1, dtype=ref.dtype, device=ref.device)
    dy, dx = (grid.flatten() for grid in torch.meshgrid(steps, steps, indexing='ij'))
    best = matching_costs(ref, supp, radius, patch).argmin(1)
    return torch.stack([dx[best], dy[best]], dim=1)


def basicsr_spynet(load_path=None, seed=0):
    """BasicSR's own ``SpyNet`` (as BasicVSR / IconVSR / BasicVSR++ build it from ``spynet_path``)."""
    from basicsr.archs.spynet_arch import SpyNet
    torch.manual_seed(seed)
    return SpyNet(load_path=load_path).eval()


# -------------------------------------------------------------------------------------- commands


def parse_size(text, option):
    try:
        width, height = (int(part) for part in text.lower().split('x'))
    except ValueError:
        raise SLError(f'{option} {text!r} is not WIDTHxHEIGHT, e.g. 40x24.') from None
    if width < 1 or height < 1:
        raise SLError(f'{option} {text!r} must be positive.')
    return width, height


def command_line(argv):
    return 'python -m sl_arch.bench.flow ' + ' '.join(shlex.quote(arg) for arg in argv)


def check_crop(pairs, crop, layout_name):
    width, height = pairs.frame_size
    if crop[0] > width or crop[1] > height:
        hint = (' (SPyNet layout: make larger clips, sl-prepare --synthetic -o datasets/synthetic_flow --size 320x256)'
                if layout_name == 'spynet' else '')
        raise SLError(f'--crop {crop[0]}x{crop[1]} is larger than the {width}x{height} frames of {pairs.name}; '
                      f'choose a smaller --crop{hint}.')


def train(args, argv):
    """``train``: returns the path written."""
    from tqdm import tqdm

    from sl_arch.utils.checkpoint import atomic_torch_save, read_checkpoint
    from sl_arch.utils.files import check_work_folder, check_writable

    defaults = TRAIN_DEFAULTS[args.layout]
    for key, value in defaults.items():
        if key != 'synthetic' and getattr(args, key) is None:
            setattr(args, key, value)
    crop = parse_size(args.crop, '--crop')
    min_level_sizes = [int(value) for value in str(args.min_level_sizes).split(',')]
    check_at_least({'--iters': args.iters, '--batch': args.batch})
    if not args.lr > 0:
        raise SLError(f'--lr {args.lr}: give a learning rate above 0.')
    if not args.synthetic and not args.real:
        raise SLError('no training data: give --synthetic ROOT and/or --real ROOT.')
    check_writable(args.out, '--out', is_folder=False)
    work_dir = args.work_dir or osp.join('experiments', 'flow', osp.splitext(osp.basename(args.out))[0])
    check_work_folder(work_dir, '--work-dir', ('state.pth',))
    state_path = osp.join(work_dir, 'state.pth')
    config = dict(layout=args.layout, synthetic=args.synthetic, real=args.real, real_scale=args.real_scale,
                  iters=args.iters, batch=args.batch, crop=list(crop), lr=args.lr, multiscale=args.multiscale,
                  min_level_sizes=min_level_sizes, real_fraction=args.real_fraction, seed=args.seed,
                  init=args.init, charbonnier_eps=args.charbonnier_eps)

    cpu_start = time.process_time()
    print(f'loading data (layout {args.layout}) ...', flush=True)
    sets, weights = [], []
    synthetic_roots = args.synthetic.split(',') if args.synthetic else []
    for root in synthetic_roots:
        synthetic = load_synthetic(root, 'train')
        check_crop(synthetic, crop, args.layout)
        sets.append(synthetic)
        weights.append((1 - args.real_fraction if args.real else 1.0) / len(synthetic_roots))
    if args.real:
        real = load_real(args.real, 'train', args.real_scale, REAL_STRIDES)
        check_crop(real, crop, args.layout)
        sets.append(real)
        weights.append(args.real_fraction if args.synthetic else 1.0)
    weights = np.asarray(weights) / np.sum(weights)
    print('  ' + '; '.join(f'{pairs.name}: {len(pairs)} pairs of {pairs.frame_size[0]}x{pairs.frame_size[1]}'
                           for pairs in sets), flush=True)

    warper = build_warper(args.layout, min_level_sizes[0], seed=args.seed)
    if args.init:
        from sl_arch.utils.checkpoint import network_state_dict
        init_state = network_state_dict(read_checkpoint(args.init), 'params', args.init)
        layout, _ = load_meta(args.init)
        wanted = LAYOUTS[args.layout]
        if (layout['num_levels'] > wanted['num_levels'] or layout['kernel_size'] > wanted['kernel_size']
                or any(a > b for a, b in zip(layout['channels'], wanted['channels']))
                or len(layout['channels']) != len(wanted['channels'])):
            raise SLError(f'--init {args.init} has a layout ({layout}) larger than --layout {args.layout}; '
                          'give weights of the same or a smaller layout.')
        embed_weights(warper, init_state, seed=args.seed)
        init_meta = load_meta(args.init)[1]
    else:
        reset_for_training(warper, args.seed)
        init_meta = {}
    optimizer = torch.optim.Adam(warper.parameters(), lr=args.lr, betas=(0.9, 0.999))
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=args.iters, eta_min=args.lr * 0.01)
    rng = np.random.default_rng(args.seed)
    start, cpu_before = 0, 0.0
    if osp.isfile(state_path) and not args.restart:
        state = read_checkpoint(state_path)
        if state.get('config') != config:
            changed = sorted(key for key in config if state.get('config', {}).get(key) != config[key])
            raise SLError(f'{state_path} was saved by a run with other settings ({", ".join(changed)}); '
                          'pass --restart to start over, or another --work-dir.')
        warper.load_state_dict(state['params'])
        optimizer.load_state_dict(state['optimizer'])
        scheduler.load_state_dict(state['scheduler'])
        rng.bit_generator.state = state['rng']
        torch.set_rng_state(state['torch_rng'])
        start, cpu_before = state['iter'], state['cpu_seconds']
        print(f'resuming from {state_path} at iteration {start}', flush=True)

    def cpu_seconds():
        return cpu_before + time.process_time() - cpu_start

    def save_state(iteration):
        atomic_torch_save(dict(config=config, iter=iteration, cpu_seconds=cpu_seconds(), params=warper.state_dict(),
                               optimizer=optimizer.state_dict(), scheduler=scheduler.state_dict(),
                               rng=rng.bit_generator.state, torch_rng=torch.get_rng_state()), state_path)

    warper.train()
    bar = tqdm(range(start, args.iters), initial=start, total=args.iters, desc=f'flow {args.layout}', unit='it',
               dynamic_ncols=True)
    running = None
    for iteration in bar:
        warper.min_level_size = min_level_sizes[rng.integers(len(min_level_sizes))]
        ref, supp, target = sample_batch(sets, weights, args.batch, crop, rng)
        loss, flow = flow_loss(warper, ref, supp, target, args.multiscale, args.charbonnier_eps)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        epe = torch.linalg.vector_norm(flow.detach() - target, dim=1).mean().item()
        running = epe if running is None else 0.98 * running + 0.02 * epe
        bar.set_postfix(loss=f'{loss.item():.4f}', epe=f'{running:.4f}', refresh=False)
        done = iteration + 1
        if done % args.log_every == 0 or done == args.iters:
            bar.write(f'iter {done}/{args.iters} loss {loss.item():.4f} train EPE (running) {running:.4f} '
                      f'lr {scheduler.get_last_lr()[0]:.2e} cpu {cpu_seconds():.0f} s')
        if done % args.save_every == 0 and done < args.iters:
            save_state(done)
    bar.close()
    warper.min_level_size = 4
    warper.eval()
    if start < args.iters:
        save_state(args.iters)
        train_cpu = cpu_seconds()
    else:  # a finished run read back: its own CPU time, not this process's loading
        train_cpu = cpu_before

    # float16 when it keeps the held-out EPE within 1% (the decision uses the held-out split, not training)
    dtype = torch.float32
    fp32_epe = fp16_epe = None
    if args.dtype == 'float16':
        dtype = torch.float16
    elif args.dtype == 'auto' and synthetic_roots and osp.isdir(osp.join(synthetic_roots[0], 'val')):
        held_out = load_synthetic(synthetic_roots[0], 'val')
        fp32_epe = mean_epe(warper, held_out)
        rounded = build_warper(args.layout)
        rounded.load_state_dict({k: v.half().float() for k, v in warper.state_dict().items()})
        rounded.eval()
        fp16_epe = mean_epe(rounded, held_out)
        if abs(fp16_epe - fp32_epe) <= 0.01 * fp32_epe:
            dtype = torch.float16
        print(f'held-out EPE ({held_out.name}): float32 {fp32_epe:.4f}, float16 {fp16_epe:.4f} -> saving '
              f'{str(dtype).replace("torch.", "")}', flush=True)
    data = []
    data += [f'{root}/train (exact flow)' for root in synthetic_roots]
    if args.real:
        data.append(f'{args.real}/train (DIS on GT, x1/{args.real_scale})')
    meta = dict(layout=dict(LAYOUTS[args.layout]), layout_name=args.layout, iterations=args.iters,
                cpu_seconds=round(train_cpu, 1), data=' + '.join(data), command=command_line(argv),
                dtype=str(dtype).replace('torch.', ''), batch=args.batch, crop=f'{crop[0]}x{crop[1]}',
                torch_threads=torch.get_num_threads())
    if args.init:
        meta.update(init=args.init, init_cpu_seconds=init_meta.get('cpu_seconds'),
                    init_iterations=init_meta.get('iterations'))
    if fp32_epe is not None:
        meta.update(heldout_epe_float32=round(fp32_epe, 5), heldout_epe_float16=round(fp16_epe, 5))
    atomic_torch_save({'params': state_dict_for_saving(warper, dtype), 'flow_train': meta}, args.out)
    print(f'wrote {args.out} ({osp.getsize(args.out) / 1024:.0f} KB, {meta["dtype"]}): {args.iters} iterations, '
          f'{train_cpu:.0f} CPU s', flush=True)
    return args.out


#: Prefix of the flow warper's weights inside a SemanticLens checkpoint.
SR_FLOW_PREFIX = 'flow_warper.'


def sr_checkpoint_flow(state):
    """The flow warper's weights of a SemanticLens state dict (prefix removed), or None for a flow-only one."""
    if not any(key.startswith(SR_FLOW_PREFIX) for key in state):
        return None
    return {key[len(SR_FLOW_PREFIX):]: value for key, value in state.items() if key.startswith(SR_FLOW_PREFIX)}


def load_meta(path):
    """``(layout, meta)`` of a flow weights file, or of the flow warper inside an sl-train SemanticLens checkpoint."""
    from sl_arch.utils.checkpoint import network_state_dict, read_checkpoint
    from sl_arch.archs.prealign_arch import SLFlowWarper
    checkpoint = read_checkpoint(path)
    state = network_state_dict(checkpoint, 'params', path)
    inner = sr_checkpoint_flow(state)
    if inner is not None:
        return SLFlowWarper.checkpoint_layout(inner), {'data': 'trained inside SemanticLens (sl-train checkpoint)',
                                                       'dtype': 'float32', 'sr_state': inner}
    try:
        layout = SLFlowWarper.checkpoint_layout(state)
    except (ValueError, IndexError) as error:
        raise SLError(f'{path} holds no SPyNet-format flow weights ({error}).') from None
    meta = checkpoint.get('flow_train', {}) if isinstance(checkpoint, dict) else {}
    return layout, meta


def format_epe(value):
    """An end-point error for the table: three decimals, a dash when there is none."""
    return '—' if value is None or value != value else f'{value:.3f}'


def evaluate(args, argv):
    """``evaluate``: returns (headers, rows) of the table."""
    from sl_arch.bench.common import markdown_table

    print('loading held-out data ...', flush=True)
    columns = []  # (header, PairSet, tags)
    synthetic = load_synthetic(args.synthetic, 'val')
    width, height = synthetic.frame_size
    columns += [(f'synthetic val {width}x{height}: all', synthetic, None),
                (f'synthetic val {width}x{height}: crossing', synthetic, {'crossing'})]
    if args.synthetic_large:
        large = load_synthetic(args.synthetic_large, 'val')
        width, height = large.frame_size
        columns += [(f'synthetic val {width}x{height}: all', large, None),
                    (f'synthetic val {width}x{height}: crossing', large, {'crossing'})]
    if args.real:
        real = load_real(args.real, 'val', 4, EVAL_REAL_STRIDES)
        width, height = real.frame_size
        columns += [(f'demo val {width}x{height} vs DIS: {stride} frame{"s" * (stride > 1)} apart', real,
                     {f'stride{stride}'}) for stride in EVAL_REAL_STRIDES]
    if args.real_moving:
        moving = load_real(args.real_moving, 'train', 4, (1,))
        width, height = moving.frame_size
        columns.append((f'{osp.basename(osp.normpath(args.real_moving))} {width}x{height} vs DIS: 1 frame apart',
                        moving, {'stride1'}))

    def epes(flow_fn):
        cells = []
        for _, pairs, tags in columns:
            try:
                cells.append(mean_epe(flow_fn, pairs, tags=tags))
            except Exception as error:  # BasicSR's SpyNet fails on frames too small for its pyramid
                print(f'  ({type(error).__name__} on {pairs.name}: {str(error).splitlines()[0][:120]})', flush=True)
                cells.append(None)
        return cells

    rows = []

    def add(model, flow_fn, data='—', iterations='—', cpu='—', size='—', name='—', command='—'):
        print(f'evaluating {model} ...', flush=True)
        rows.append([model, data, iterations, cpu] + [format_epe(value) for value in epes(flow_fn)] + [size, name, command])

    add('zero flow', zero_flow)
    from sl_arch.archs.prealign_arch import SLDISFlow
    add('OpenCV DIS (medium) on the LR frames (`SLDISFlow`)', SLDISFlow())
    seen_layouts = []
    for path in args.weights:
        layout, meta = load_meta(path)
        shape = f'{layout["num_levels"]} levels, {"-".join(map(str, layout["channels"]))}, k{layout["kernel_size"]}'
        is_spynet = layout == LAYOUTS['spynet']
        if layout not in seen_layouts:
            seen_layouts.append(layout)
            add(f'SLFlowWarper {shape}, untrained', build_warper(layout).eval())
            if is_spynet:
                add('BasicSR SpyNet, untrained', basicsr_spynet())
        size = f'{osp.getsize(path) / 1024:.0f}'
        cpu, iterations = meta.get('cpu_seconds', '?'), meta.get('iterations', '?')
        if meta.get('init'):  # started from other weights: their cost too
            cpu = f'{cpu} + {meta.get("init_cpu_seconds")} for `{meta["init"]}`'
            iterations = f'{iterations} + {meta.get("init_iterations")}'
        common = dict(data=meta.get('data', '?'), iterations=iterations, cpu=cpu, size=size, name=f'`{path}`',
                      command=f'`{meta["command"]}`' if 'command' in meta else '?')
        if 'sr_state' in meta:
            warper = build_warper(layout)
            warper.load_state_dict(meta['sr_state'])
            add(f'SLFlowWarper {shape}, after SR training', warper.eval(), **common)
            continue
        add(f'SLFlowWarper {shape}, pretrained ({meta.get("dtype", "?")})', build_warper(layout, load_path=path).eval(),
            **common)
        if is_spynet:
            add('BasicSR SpyNet(load_path=...), pretrained', basicsr_spynet(path), **common)
    headers = ['model', 'training data', 'iterations', 'CPU s'] + [header for header, _, _ in columns] + \
        ['KB', 'file', 'command']
    table = markdown_table(headers, rows)
    print(table)
    if args.readme:
        from sl_arch.utils.files import write_text
        write_text(args.readme, readme_text(table, command_line(argv), args.weights))
        print(f'wrote {args.readme}', flush=True)
    return headers, rows


def load_snippet(path, layout):
    """Python lines that load the weights ``path`` of ``layout`` into our models and BasicSR's."""
    channels = ', '.join(map(str, layout['channels']))
    lines = [f"# {path}: {layout['num_levels']} levels, channels {channels}, kernel {layout['kernel_size']}"]
    for name, preset in (('tiny', 'tiny'), ('spynet', 'paper')):
        if layout == LAYOUTS[name]:
            lines.append(f"net = build_network({{'type': 'SemanticLens', **PRESETS['{preset}'],\n"
                         f"                     'flow_load_path': '{path}'}})")
    lines.append(f"warper = SLFlowWarper({layout['num_levels']}, ({channels}), {layout['kernel_size']}, "
                 f"load_path='{path}')")
    if layout == LAYOUTS['spynet']:
        lines.append("net = build_network({'type': 'BasicVSR', 'num_feat': 64, 'num_block': 30,\n"
                     f"                     'spynet_path': '{path}'}})  # IconVSR, BasicVSRPlusPlus alike")
        lines.append(f"spynet = SpyNet(load_path='{path}')")
    return '\n'.join(lines)


def readme_text(table, command, weights):
    """``model_zoo/README.md``: what the files are, how to load them, the EPE table and its command."""
    files = '\n'.join(f'- `{path}`' for path in weights)
    snippets = '\n'.join(load_snippet(path, load_meta(path)[0]) for path in weights)
    return f"""# model_zoo: flow weights we made ourselves

Pretrained weights for the flow networks of our models, trained here on one CPU thread by
`python -m sl_arch.bench.flow train` (no downloaded weights or data): `SLFlowWarper` on LR frame
pairs with known flow, half from the synthetic clips of `sl-prepare --synthetic` (exact flow) and
half from the training frames of the demo clip (`sl-prepare --demo`) with OpenCV's DIS flow
(medium preset, run on the GT frames and area-averaged to the LR pixels) as pseudo ground truth.
Loss: Charbonnier end-point error; random crops and flips; Adam, cosine schedule. See the
docstring of `sl_arch/bench/flow.py` for every choice.

{files}

Each file is a BasicSR checkpoint, `{{'params': state_dict, 'flow_train': {{...how it was made}}}}`,
with BasicSR SpyNet's key names (`basic_module.<level>.basic_module.<conv>.weight`), stored in
float16 where that changed the held-out EPE by at most 1%; loading copies the weights into the
network's float32 parameters.

## Load them

```python
import sl_arch
from basicsr.archs import build_network
from basicsr.archs.spynet_arch import SpyNet
from sl_arch.archs.prealign_arch import SLFlowWarper
from sl_arch.archs.semantic_lens_arch import PRESETS
{snippets}
```

Data (none of it downloaded): `sl-prepare --demo` (demo clip, 100 training and 2 x 16 held-out
frames), `sl-prepare --synthetic` (`datasets/synthetic`, LR 40x24) and, for the SPyNet layout,
`sl-prepare --synthetic -o datasets/synthetic_flow --size 320x256 --train-clips 32 --degradation bi`
(LR 80x64). The training command of each file is in the table (and in the file's `flow_train`).

In an option file: `network_g: {{type: SemanticLens, ..., flow_load_path: <file>}}` (with the
preset's `flow_levels`, `flow_channels`, `flow_kernel_size`), or
`network_g: {{type: BasicVSR, ..., spynet_path: <SPyNet-layout file>}}`.

## End-point error on held-out data

Mean end-point error in LR pixels over all pixels (lower is better), on data no network trained on:
the held-out synthetic clips (exact flow; their photographs appear in no training clip; consecutive
frames, both directions; `crossing` = the clips with 3-6 crossing, occluding objects) and the
held-out frames of the demo clip (`datasets/demo_bbb/val`) against DIS on their GT frames,
area-averaged to LR, as the reference (pairs 1 and 4 frames apart, both directions). "Untrained" is
the network as its constructor initialises it (seed 0): SLFlowWarper's last convolutions start near
zero; BasicSR's SpyNet has no such initialisation. CPU seconds: the training command's process CPU
time on one thread (data preparation included) on this project's shared two-core x86_64 machine.
"—": not applicable or the network cannot run on frames that small.

{table}

Made by:

```bash
{command}
```
"""


def build_parser():
    parser = argparse.ArgumentParser(prog='python -m sl_arch.bench.flow',
                                     description='Train and evaluate pretrained flow (SLFlowWarper / SPyNet layout).')
    commands = parser.add_subparsers(dest='command', required=True)
    tr = commands.add_parser('train', help='train SLFlowWarper on synthetic exact flow + DIS on real frames')
    tr.add_argument('--layout', choices=sorted(LAYOUTS), default='tiny',
                    help='tiny: SemanticLens tiny (3 levels, 16-32-16-8, k5); '
                    'spynet: SPyNet (6 levels, 32-64-32-16, k7)')
    tr.add_argument('--synthetic', help='synthetic sets (comma-separated) with train/ (the first one\'s val/ decides '
                    '--dtype auto); default per layout: '
                    + ', '.join(f'{k}: {v["synthetic"]}' for k, v in TRAIN_DEFAULTS.items()) + "; '' for none")
    tr.add_argument('--real', default=REAL_ROOT,
                    help=f"real footage with train/GT/<clip> (default {REAL_ROOT}; '' for none)")
    tr.add_argument('--real-scale', type=int, help='LR scale of the real frames (default: tiny 4, spynet 2)')
    tr.add_argument('--real-fraction', type=float, default=0.5, help='share of real pairs in a batch (default 0.5)')
    tr.add_argument('--iters', type=int, default=2000, help='iterations (default 2000)')
    tr.add_argument('--batch', type=int, help='batch size (default: tiny 16, spynet 4)')
    tr.add_argument('--crop', help='crop WIDTHxHEIGHT (default: tiny 40x24, spynet 64x64)')
    tr.add_argument('--lr', type=float, default=1e-3, help='Adam learning rate, cosine-annealed to 1%% (default 1e-3)')
    tr.add_argument('--multiscale', type=float, default=0.0,
                    help='loss weight ratio per coarser level; 0: final flow only (default 0)')
    tr.add_argument('--charbonnier-eps', type=float, default=CHARBONNIER_EPS,
                    help=f'eps of the Charbonnier EPE loss, px (default {CHARBONNIER_EPS})')
    tr.add_argument('--init', help='start from these weights (same or smaller layout, widened), e.g. the tiny ones')
    tr.add_argument('--min-level-sizes', help='coarsest pyramid level sizes to draw from (default: tiny 4, spynet 2,4)')
    tr.add_argument('--seed', type=int, default=0)
    tr.add_argument('--dtype', choices=['auto', 'float32', 'float16'], default='auto',
                    help='saved weights; auto: float16 if the held-out EPE stays within 1%% (default)')
    tr.add_argument('--out', help='weights file (default: tiny model_zoo/slflow_tiny_synthetic_dis.pth, '
                    'spynet model_zoo/spynet_synthetic_dis.pth)')
    tr.add_argument('--work-dir', help='training state for resuming (default experiments/flow/<out name>)')
    tr.add_argument('--restart', action='store_true', help='ignore a saved training state')
    tr.add_argument('--save-every', type=int, default=200, help='save the training state every N iterations')
    tr.add_argument('--log-every', type=int, default=100, help='print a log line every N iterations')
    ev = commands.add_parser('evaluate', help='EPE table on held-out data')
    ev.add_argument('--weights', nargs='+', required=True, help='weights files (SPyNet format), or sl-train '
                    'SemanticLens checkpoints (their flow warper after SR training)')
    ev.add_argument('--synthetic', default='datasets/synthetic',
                    help='synthetic set with val/ (default datasets/synthetic)')
    ev.add_argument('--synthetic-large', default=None, help='a second synthetic set with larger frames (val/)')
    ev.add_argument('--real', default=REAL_ROOT,
                    help=f"real footage with val/GT/<clip> (default {REAL_ROOT}; '' for none)")
    ev.add_argument('--real-moving', default=None,
                    help='more real footage, with train/GT/<clip> (sl-prepare without a split), e.g. '
                         'datasets/real_moving: the panning part of bikes')
    ev.add_argument('--readme', help='write the table into this markdown file (e.g. model_zoo/README.md)')
    return parser


@cli_entry
def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    torch.set_num_threads(int(os.environ.get('OMP_NUM_THREADS', '1') or 1))
    if args.command == 'train':
        if args.synthetic is None:
            args.synthetic = TRAIN_DEFAULTS[args.layout]['synthetic']
        args.synthetic = args.synthetic or None
        args.real = args.real or None
        return train(args, argv)
    args.real = args.real or None
    if args.readme:
        from sl_arch.utils.files import check_writable
        check_writable(args.readme, '--readme', is_folder=False)
    return evaluate(args, argv)


if __name__ == '__main__':
    main()
