"""BasicVSR++ with its second-order deformable alignment on every device.

BasicSR 1.4.2's ``BasicVSRPlusPlus`` adds its ``SecondOrderDeformableAlignment`` modules only when
``torch.cuda.is_available()``; without CUDA it warns and propagates with flow warping alone, so
a CPU comparison would run against a model without its main component. That alignment module
already computes its modulated deformable convolution (DCN v2) with
``torchvision.ops.deform_conv2d``, which runs on the CPU and on CUDA with the offset and mask
layout of mmcv's compiled op (per deformable group, interleaved (dy, dx) pairs per kernel
position; ``tests/test_basicvsrpp.py`` checks it against plain convolution, shifted inputs, a
bilinear-sampling reference and ``flow_warp``). ``SLBasicVSRPlusPlus`` therefore reuses BasicSR's
network and alignment module unchanged and only builds the alignment where BasicSR leaves it out.
"""
import warnings

from basicsr.archs.basicvsrpp_arch import BasicVSRPlusPlus, SecondOrderDeformableAlignment
from basicsr.utils.registry import ARCH_REGISTRY
from sl_arch.utils.options import OptionError

#: Deformable groups of BasicVSR++'s alignment (BasicSR's and mmagic's value; weights depend on it).
DEFORMABLE_GROUPS = 16


@ARCH_REGISTRY.register()
class SLBasicVSRPlusPlus(BasicVSRPlusPlus):
    """BasicSR's BasicVSR++ that keeps its second-order deformable alignment without CUDA.

    Same constructor, forward and state dict as ``BasicVSRPlusPlus`` built with CUDA available,
    so official BasicSR / mmagic BasicVSR++ weights load strictly (``deform_align.<branch>.*``
    included). On CUDA machines it is BasicSR's network as is; elsewhere the four
    ``deform_align`` modules are added after BasicSR's constructor (so a seed draws different
    initial weights than on CUDA, where they are built between the propagation branches).
    ``mid_channels`` must be a multiple of 8 (``2 * mid_channels`` input channels of the
    deformable convolution in 16 groups). Forward: (b, t, 3, h, w) LR clip, h and w at least 64
    (SPyNet) -> (b, t, 3, 4h, 4w), or (b, t, 3, h, w) with ``is_low_res_input=False``.

    Args:
        mid_channels (int): Channels of the intermediate features. Default: 64.
        num_blocks (int): Residual blocks in each propagation branch. Default: 7.
        max_residue_magnitude (int): Bound of the offset residue on top of the flow (Eq. 6 of
            the paper). Default: 10.
        is_low_res_input (bool): LR input (x4 output) if True, else same-size output. Default: True.
        spynet_path (str | None): Pretrained SPyNet weights. Default: None.
        cpu_cache_length (int): On CUDA, clips longer than this keep features on the CPU between
            steps, as in BasicSR. On the CPU it does nothing (BasicSR's network then moved them to
            CUDA and failed on clips longer than this). Default: 100.
    """

    def __init__(self, mid_channels=64, num_blocks=7, max_residue_magnitude=10, is_low_res_input=True,
                 spynet_path=None, cpu_cache_length=100):
        if (2 * mid_channels) % DEFORMABLE_GROUPS:
            raise OptionError(f'SLBasicVSRPlusPlus mid_channels must be a multiple of {DEFORMABLE_GROUPS // 2} '
                              f'(deformable groups), got {mid_channels}.')
        with warnings.catch_warnings():  # BasicSR's "alignment is skipped" warning: the alignment is added below
            warnings.filterwarnings('ignore', message='Deformable alignment module is not added', category=UserWarning)
            super().__init__(mid_channels, num_blocks, max_residue_magnitude, is_low_res_input, spynet_path,
                             cpu_cache_length)
        for module in self.backbone:  # BasicSR's branch order: backward_1, forward_1, backward_2, forward_2
            if module not in self.deform_align:
                self.deform_align[module] = SecondOrderDeformableAlignment(
                    2 * mid_channels, mid_channels, 3, padding=1, deformable_groups=DEFORMABLE_GROUPS,
                    max_residue_magnitude=max_residue_magnitude)
        self.is_with_alignment = True

    def forward(self, lqs):
        if lqs.is_cuda:
            return super().forward(lqs)
        length = self.cpu_cache_length
        self.cpu_cache_length = max(length, lqs.size(1))  # the features are on the CPU already: no cache
        try:
            return super().forward(lqs)
        finally:
            self.cpu_cache_length = length
