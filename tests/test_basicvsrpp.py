"""SLBasicVSRPlusPlus: BasicSR's BasicVSR++ with its deformable alignment on the CPU.

The deformable convolution is ``torchvision.ops.deform_conv2d``; the first tests pin down that it
computes mmcv's modulated deformable convolution v2 (the op BasicVSR++ was trained with): offsets
per deformable group, (dy, dx) pairs per kernel position, mask per group and kernel position.
"""
import pytest
import torch
import torch.nn.functional as F
from torchvision.ops import deform_conv2d

from basicsr.archs import build_network
from basicsr.archs.arch_util import flow_warp
from basicsr.archs.basicvsrpp_arch import BasicVSRPlusPlus, SecondOrderDeformableAlignment
from sl_arch.archs.basicvsrpp_arch import SLBasicVSRPlusPlus
from sl_arch.utils.options import OptionError
from sl_arch.utils.precision import cpu_has_native

SMALL = dict(mid_channels=8, num_blocks=1, max_residue_magnitude=10, is_low_res_input=True, spynet_path=None)


def reference_modulated_deform_conv(x, offset, mask, weight, bias, padding):
    """mmcv's modulated deformable convolution v2 (stride and dilation 1), one kernel position at a time.

    Offset channel ``2 * (g * kh * kw + k)`` is dy and the next one dx of kernel position ``k``
    (row-major) in deformable group ``g``; mask channel ``g * kh * kw + k`` scales that sample.
    Samples are bilinear with zeros outside the image (``grid_sample``, ``align_corners=True``).

    Args:
        x (Tensor): (b, c, h, w) input.
        offset (Tensor): (b, 2 * groups * kh * kw, h_out, w_out).
        mask (Tensor): (b, groups * kh * kw, h_out, w_out).
        weight (Tensor): (c_out, c, kh, kw).
        bias (Tensor): (c_out,).
        padding (int): Zero padding on each side.

    Returns:
        Tensor: (b, c_out, h_out, w_out).
    """
    b, c, h, w = x.shape
    c_out, _, kh, kw = weight.shape
    groups = mask.shape[1] // (kh * kw)
    group_channels = c // groups
    h_out, w_out = offset.shape[-2:]
    ys, xs = torch.meshgrid(torch.arange(h_out, dtype=x.dtype), torch.arange(w_out, dtype=x.dtype), indexing='ij')
    out = bias.view(1, -1, 1, 1).expand(b, c_out, h_out, w_out).clone()
    for g in range(groups):
        channels = slice(g * group_channels, (g + 1) * group_channels)
        for k in range(kh * kw):
            i, j = divmod(k, kw)
            index = g * kh * kw + k
            py = ys - padding + i + offset[:, 2 * index]
            px = xs - padding + j + offset[:, 2 * index + 1]
            grid = torch.stack([2 * px / (w - 1) - 1, 2 * py / (h - 1) - 1], dim=-1)
            sampled = F.grid_sample(x[:, channels], grid, mode='bilinear', padding_mode='zeros', align_corners=True)
            out += torch.einsum('oc,bchw->bohw', weight[:, channels, i, j], sampled * mask[:, index, None])
    return out


def test_deform_conv2d_with_zero_offsets_and_unit_mask_is_plain_convolution():
    torch.manual_seed(0)
    x, weight, bias = torch.randn(2, 4, 9, 11), torch.randn(5, 4, 3, 3), torch.randn(5)
    offset, mask = torch.zeros(2, 2 * 2 * 9, 9, 11), torch.ones(2, 2 * 9, 9, 11)
    expected = F.conv2d(x, weight, bias, padding=1)
    torch.testing.assert_close(deform_conv2d(x, offset, weight, bias, padding=1, mask=mask), expected)


def test_deform_conv2d_offsets_are_dy_dx_pairs_per_kernel_position_and_group():
    """Integer offsets: each group's channels at each kernel position are the input shifted by (dy, dx)."""
    torch.manual_seed(0)
    x = torch.randn(1, 4, 9, 11)
    shifts = {0: (2, -1), 1: (-3, 1)}  # group -> (dy, dx); groups of 2 channels
    padded = F.pad(x, (5, 5, 5, 5))
    for k in range(9):
        i, j = divmod(k, 3)
        weight = torch.zeros(4, 4, 3, 3)
        weight[range(4), range(4), i, j] = 1
        offset = torch.zeros(1, 2 * 2 * 9, 9, 11)
        for g, (dy, dx) in shifts.items():
            offset[:, 2 * (g * 9 + k)] = dy
            offset[:, 2 * (g * 9 + k) + 1] = dx
        out = deform_conv2d(x, offset, weight, padding=1, mask=torch.ones(1, 2 * 9, 9, 11))
        for g, (dy, dx) in shifts.items():
            top, left = 5 + i - 1 + dy, 5 + j - 1 + dx
            expected = padded[:, 2 * g:2 * g + 2, top:top + 9, left:left + 11]
            torch.testing.assert_close(out[:, 2 * g:2 * g + 2], expected, msg=f'kernel position {k}, group {g}')


def test_deform_conv2d_matches_bilinear_sampling_reference_for_fractional_offsets_and_mask():
    torch.manual_seed(0)
    x, weight, bias = (torch.randn(2, 4, 8, 10, dtype=torch.float64), torch.randn(3, 4, 3, 3, dtype=torch.float64),
                       torch.randn(3, dtype=torch.float64))
    offset = 4 * torch.randn(2, 2 * 2 * 9, 8, 10, dtype=torch.float64)  # many samples fall partly or fully outside
    mask = torch.rand(2, 2 * 9, 8, 10, dtype=torch.float64)
    expected = reference_modulated_deform_conv(x, offset, mask, weight, bias, padding=1)
    torch.testing.assert_close(deform_conv2d(x, offset, weight, bias, padding=1, mask=mask), expected)


def test_second_order_alignment_with_zero_residue_samples_where_flow_warp_does():
    """The flipped flow added to the offsets is the displacement ``flow_warp`` applies (x first, then y)."""
    torch.manual_seed(0)
    mid = 8  # 16 input channels in 16 deformable groups: group g is channel g, groups 0-7 follow flow_1
    align = SecondOrderDeformableAlignment(2 * mid, mid, 3, padding=1, deformable_groups=16)
    with torch.no_grad():  # out[c] = in[c] + in[mid + c] at the centre tap; the residue conv starts at zero
        align.weight.zero_()
        align.weight[range(mid), range(mid), 1, 1] = 1
        align.weight[range(mid), range(mid, 2 * mid), 1, 1] = 1
        align.bias.zero_()
        x = torch.randn(1, 2 * mid, 12, 14)
        flow_1, flow_2 = 3 * torch.randn(1, 2, 12, 14), 3 * torch.randn(1, 2, 12, 14)
        out = align(x, torch.randn(1, 3 * mid, 12, 14), flow_1, flow_2)
    expected = 0.5 * (flow_warp(x[:, :mid], flow_1.permute(0, 2, 3, 1)) +  # mask sigmoid(0) = 0.5
                      flow_warp(x[:, mid:], flow_2.permute(0, 2, 3, 1)))
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)


def clip(frames=3, size=64, seed=0):
    return torch.rand(1, frames, 3, size, size, generator=torch.Generator().manual_seed(seed))


def test_state_dict_equals_basicsr_basicvsrpp_built_with_cuda_and_its_weights_give_the_same_output(monkeypatch):
    with monkeypatch.context() as patch:  # BasicSR adds its alignment only when it sees CUDA
        patch.setattr(torch.cuda, 'is_available', lambda: True)
        basicsr_net = BasicVSRPlusPlus(**SMALL)
    ours = build_network(dict(type='SLBasicVSRPlusPlus', **SMALL))
    assert isinstance(ours, SLBasicVSRPlusPlus) and ours.is_with_alignment
    assert [(key, value.shape) for key, value in ours.state_dict().items()] == \
        [(key, value.shape) for key, value in basicsr_net.state_dict().items()]
    assert sum(key.startswith('deform_align.') for key in ours.state_dict()) == 4 * 10  # weight, bias, 4 convs x 2

    ours.load_state_dict(basicsr_net.state_dict(), strict=True)
    with torch.no_grad():
        for net in (basicsr_net, ours):  # give the alignment a nonzero offset residue and mask
            for align in net.deform_align.values():
                align.conv_offset[-1].bias.copy_(torch.linspace(-1, 1, align.conv_offset[-1].bias.numel()))
        lqs = clip(frames=2)
        torch.testing.assert_close(ours(lqs), basicsr_net(lqs), atol=0, rtol=0)


def test_alignment_is_used_output_follows_the_deformable_offsets():
    torch.manual_seed(0)
    net = SLBasicVSRPlusPlus(**SMALL).eval()
    lqs = clip()
    with torch.no_grad():
        before = net(lqs)
        for align in net.deform_align.values():  # offset residue of every group and tap: 0.5 px
            align.conv_offset[-1].bias[:18 * 16] = torch.atanh(torch.tensor(0.05))
        after = net(lqs)
    assert (after - before).abs().max() > 1e-4


def test_forward_backward_on_a_small_cpu_clip_reaches_the_deformable_alignment():
    torch.manual_seed(0)
    net = SLBasicVSRPlusPlus(**SMALL)
    lqs = clip()
    out = net(lqs)
    assert out.shape == (1, 3, 3, 256, 256)
    out.mean().backward()
    for name, module in net.deform_align.items():
        for param in (module.weight, module.conv_offset[-1].weight):
            assert param.grad is not None and torch.isfinite(param.grad).all() and param.grad.abs().sum() > 0, name


def test_deformable_convolution_runs_in_float32_under_cpu_bf16_autocast_and_edvr_trains_with_it():
    torch.manual_seed(0)
    x, weight, bias = torch.rand(1, 4, 8, 8), torch.rand(4, 4, 3, 3, requires_grad=True), torch.rand(4)
    offset, mask = torch.rand(1, 18, 8, 8) * 2, torch.rand(1, 9, 8, 8)
    inputs = [tensor.bfloat16() for tensor in (x, offset, mask)]  # what bf16 layers before it hand over
    with torch.autocast('cpu', dtype=torch.bfloat16):  # torchvision's CPU kernel has no bf16: it raised here
        out = deform_conv2d(inputs[0], inputs[1], weight, bias, padding=1, mask=inputs[2])
    expected = deform_conv2d(*(tensor.float() for tensor in inputs[:2]), weight, bias, padding=1,
                             mask=inputs[2].float())
    assert out.dtype == torch.bfloat16 and torch.equal(out, expected.bfloat16())
    out.float().sum().backward()
    assert weight.grad.abs().sum() > 0
    train_under_bf16_autocast({'type': 'EDVR', 'num_feat': 8, 'num_frame': 3, 'deformable_groups': 2,
                               'num_extract_block': 1, 'num_reconstruct_block': 1}, torch.rand(1, 3, 3, 32, 32))


def train_under_bf16_autocast(network_opt, clip):
    net = build_network(network_opt)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        output = net(clip)
    output.float().mean().backward()
    assert all(param.grad is not None for param in net.parameters() if param.requires_grad)


@pytest.mark.skipif(not cpu_has_native('bf16'), reason='no bf16 arithmetic on this CPU: the SPyNet of a 64-px clip '
                    'would take PyTorch\'s slow bf16 path (90 s here), and sl-train refuses bf16 on such a CPU')
def test_basicvsrpp_with_its_deformable_alignment_trains_under_cpu_bf16_autocast():
    torch.manual_seed(0)
    train_under_bf16_autocast({'type': 'SLBasicVSRPlusPlus', **SMALL}, clip())


def test_a_clip_longer_than_cpu_cache_length_runs_on_the_cpu():
    torch.manual_seed(0)
    net = SLBasicVSRPlusPlus(**SMALL, cpu_cache_length=2)  # BasicSR's network moved its features to CUDA here
    with torch.no_grad():
        assert net(clip()).shape == (1, 3, 3, 256, 256)
    assert net.cpu_cache_length == 2


def test_mid_channels_must_fit_the_16_deformable_groups():
    with pytest.raises(OptionError, match='multiple of 8'):
        SLBasicVSRPlusPlus(mid_channels=12, num_blocks=1)
