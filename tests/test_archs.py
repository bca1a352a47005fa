"""Specification of the SemanticLens architecture and its parts (CPU, seconds)."""
import sys
from contextlib import nullcontext
import types

import pytest
import torch

import sl_arch  # noqa: F401  (registers, installs the torchvision shim)
from basicsr.archs import build_network
from basicsr.archs.spynet_arch import SpyNet
from basicsr.utils.registry import ARCH_REGISTRY

from sl_arch import _compat
from sl_arch.archs import attention
from sl_arch.archs.prealign_arch import SLFlowWarper
from sl_arch.archs.semantic_lens_arch import PRESETS, SemanticLens
from sl_arch.utils.errors import SLError

# Smaller than the tiny preset so that the whole file runs in seconds.
MICRO = dict(PRESETS['tiny'], num_feat=16, sem_dim=16, num_instances=4, num_video_instances=4, num_classes=4,
             window_size=4, flow_channels=[8, 8, 8, 8], num_upsample_feat=8)
ABLATIONS = ['use_image', 'use_gps', 'use_isee', 'use_flow', 'use_mfsab', 'use_semantics']


def build(**overrides):
    torch.manual_seed(0)
    return build_network(dict({'type': 'SemanticLens'}, **dict(MICRO, **overrides)))


def test_import_registers_our_architectures_under_names_basicsr_does_not_use():
    ours = ['SemanticLens', 'SLFlowWarper', 'SLSemanticExtractor', 'SLMaskedPreAlign', 'SLSPACEBlock',
            'SLMultiFrameSelfAttention', 'SLDISFlow']
    for name in ours:
        assert ARCH_REGISTRY.get(name).__module__.startswith('sl_arch.')


def test_compat_shim_is_a_no_op_where_torchvision_still_has_functional_tensor(monkeypatch):
    original = types.ModuleType(_compat._LEGACY)
    monkeypatch.setitem(sys.modules, _compat._LEGACY, original)
    assert _compat.install_torchvision_functional_tensor() is False
    assert sys.modules[_compat._LEGACY] is original
    monkeypatch.delitem(sys.modules, _compat._LEGACY)
    monkeypatch.setattr(_compat.importlib.util, 'find_spec', lambda name: object())
    assert _compat.install_torchvision_functional_tensor() is False
    assert _compat._LEGACY not in sys.modules


def test_compat_shim_provides_rgb_to_grayscale_where_torchvision_removed_it(monkeypatch):
    monkeypatch.delitem(sys.modules, _compat._LEGACY, raising=False)
    monkeypatch.setattr(_compat.importlib.util, 'find_spec', lambda name: None)
    assert _compat.install_torchvision_functional_tensor() is True
    from torchvision.transforms.functional import rgb_to_grayscale
    assert sys.modules[_compat._LEGACY].rgb_to_grayscale is rgb_to_grayscale


@pytest.mark.parametrize('frames', [1, 2, 7])
def test_output_is_scale_times_input_for_odd_sizes_and_any_clip_length(frames):
    net = build()
    with torch.no_grad():
        out = net(torch.rand(1, frames, 3, 37, 53))  # odd sizes on purpose
    assert out.shape == (1, frames, 3, 148, 212)


def test_scale_two_gives_twice_the_input_size():
    net = build(scale=2)
    with torch.no_grad():
        assert net(torch.rand(2, 3, 3, 19, 16)).shape == (2, 3, 3, 38, 32)


@pytest.mark.parametrize('disabled', [None] + ABLATIONS)
def test_every_parameter_gets_a_gradient_from_one_training_step(disabled):
    net = build(**({disabled: False} if disabled else {}))
    lqs = torch.rand(2, 3, 3, 20, 24)
    out = net(lqs)
    assert out.shape == (2, 3, 3, 80, 96)
    torch.nn.functional.l1_loss(out, torch.rand_like(out)).backward()
    without_grad = [name for name, p in net.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert without_grad == []


@pytest.mark.parametrize('disabled', ABLATIONS)
def test_switching_off_a_component_removes_its_parameters(disabled):
    full = {name for name, _ in build().named_parameters()}
    ablated = {name for name, _ in build(**{disabled: False}).named_parameters()}
    assert ablated < full


def test_instance_masks_are_a_distribution_over_instances_at_every_pixel():
    net = build()
    with torch.no_grad():
        _, masks = net(torch.rand(1, 4, 3, 23, 31), return_masks=True)
    assert masks.shape == (1, 4, MICRO['num_video_instances'], 23, 31)
    assert masks.min() >= 0
    torch.testing.assert_close(masks.sum(dim=2), torch.ones(1, 4, 23, 31))


def test_video_instance_identity_is_shared_by_all_frames():
    """One token per object for the whole clip: permuting the video queries permutes every frame's
    masks the same way, and the tokens have no time axis."""
    net = build().eval()
    extractor = net.semantic_extractor
    lqs = torch.rand(1, 5, 3, 24, 24)
    with torch.no_grad():
        semantics = extractor(lqs)
        order = torch.tensor([2, 0, 3, 1])
        extractor.instance_decoder.video_queries.copy_(extractor.instance_decoder.video_queries[order])
        permuted = extractor(lqs)
    assert semantics['video_instance_tokens'].shape == (1, MICRO['num_video_instances'], MICRO['sem_dim'])
    torch.testing.assert_close(permuted['masks'], semantics['masks'][:, :, order], atol=1e-5, rtol=1e-4)


def test_precomputed_instance_ids_replace_the_learned_masks():
    net = build()
    ids = torch.zeros(1, 3, 20, 20, dtype=torch.long)
    ids[..., 10:] = 1
    with torch.no_grad():
        _, masks = net(torch.rand(1, 3, 3, 20, 20), masks=ids, return_masks=True)
    assert torch.equal(masks.argmax(dim=2), ids)


def test_same_seed_gives_the_same_output():
    lqs = torch.rand(1, 3, 3, 20, 20)
    with torch.no_grad():
        assert torch.equal(build()(lqs), build()(lqs))


def test_training_reconstructs_all_frames_at_once_and_inference_frame_by_frame_to_the_same_clip(monkeypatch):
    net, lqs = build(), torch.rand(2, 4, 3, 20, 18)  # distinct frames and batch items: any mix-up shows
    calls = []
    monkeypatch.setattr(net.reconstruct, 'forward', lambda x, real=net.reconstruct.forward: calls.append(len(x)) or
                        real(x))
    trained = net(lqs)
    assert calls == [2 * 4]
    calls.clear()
    with torch.no_grad():
        inferred = net(lqs)
    assert calls == [2] * 4
    torch.testing.assert_close(trained.detach(), inferred, rtol=1e-5, atol=1e-5)


def test_no_attention_grows_on_both_sides_with_the_frame(monkeypatch):
    """Memory linear in frame area: in every attention call one side (window tokens, or semantic
    tokens) stays the same size when the frame grows."""
    seen = []
    sdpa = torch.nn.functional.scaled_dot_product_attention

    def recording(q, k, v, attn_mask=None):
        seen.append(min(q.shape[-2], k.shape[-2]))
        return sdpa(q, k, v, attn_mask=attn_mask)

    monkeypatch.setattr(attention.F, 'scaled_dot_product_attention', recording)
    net = build()
    bounded_side = {}
    for size in (16, 48):
        seen.clear()
        with torch.no_grad():
            net(torch.rand(1, 2, 3, size, size))
        bounded_side[size] = max(seen)
    assert bounded_side[16] == bounded_side[48] <= 2 * MICRO['window_size']**2


def test_attention_under_cpu_autocast_runs_in_float32_and_returns_the_autocast_dtype(monkeypatch):
    """bf16 flash attention on a CPU is slower than float32 (5.6x backward): under autocast the
    attention itself takes float32 inputs, the layer still returns bfloat16 like its neighbours."""
    seen = []
    sdpa = torch.nn.functional.scaled_dot_product_attention

    def recording(q, k, v, attn_mask=None):
        seen.append((q.dtype, k.dtype, v.dtype, None if attn_mask is None else attn_mask.dtype))
        return sdpa(q, k, v, attn_mask=attn_mask)

    monkeypatch.setattr(attention.F, 'scaled_dot_product_attention', recording)
    torch.manual_seed(0)
    layer = attention.MultiHeadAttention(16, 2)
    queries, keys = torch.rand(3, 10, 16), torch.rand(3, 7, 16)
    bias = torch.zeros(3, 1, 1, 7)
    bias[..., -2:] = attention.PAD_BIAS
    reference = layer(queries, keys, bias)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        mixed = layer(queries, keys, bias)
    assert seen == [(torch.float32,) * 4] * 2
    assert mixed.dtype == torch.bfloat16
    assert torch.allclose(mixed.float(), reference, atol=0.05)


def test_flow_warp_with_zero_flow_is_the_identity():
    frame = torch.rand(1, 3, 17, 23)
    torch.testing.assert_close(SLFlowWarper.warp(frame, torch.zeros(1, 2, 17, 23)), frame)


def test_frame_shifted_by_integer_offset_is_warped_back_exactly_in_the_interior():
    frame = torch.rand(1, 3, 32, 40)
    dx, dy = 3, -2
    shifted = torch.roll(frame, shifts=(dy, dx), dims=(2, 3))  # shifted[y, x] = frame[y - dy, x - dx]
    flow = torch.zeros(1, 2, 32, 40)
    flow[:, 0], flow[:, 1] = dx, dy  # the frame pixel (y, x) sits at (y + dy, x + dx) in shifted
    warped = SLFlowWarper.warp(shifted, flow)
    torch.testing.assert_close(warped[..., 4:-4, 4:-4], frame[..., 4:-4, 4:-4])


def test_neighbour_input_brings_each_neighbour_onto_its_frame_with_the_flow(monkeypatch):
    net = build(neighbour_input=True, use_semantics=False)
    dx, dy = 2, -1
    texture = torch.rand(1, 3, 40, 48)
    # frame i is the texture moved by i * (dx, dy): frame i pixel (y, x) sits at (y + dy, x + dx) in frame i + 1
    clip = torch.stack([torch.roll(texture, shifts=(i * dy, i * dx), dims=(2, 3)) for i in range(3)], dim=1)

    def exact_flow(ref, supp):  # the warper's contract: flow_warp(supp, flow) aligns supp to ref
        sign = 1 if torch.equal(supp, clip[:, 1:].flatten(0, 1)) else -1
        flow = torch.zeros(ref.shape[0], 2, *ref.shape[-2:])
        flow[:, 0], flow[:, 1] = sign * dx, sign * dy
        return flow

    monkeypatch.setattr(net.flow_warper, 'forward', exact_flow)
    flows_backward, flows_forward = net._flows(clip)
    fed = net._feature_input(clip, net._warped_neighbours(clip, flows_backward, flows_forward), flows_backward,
                             flows_forward)
    assert fed.shape == (1, 3, 9, 40, 48) and net.feat_extract[0].in_channels == 9
    interior = (..., slice(4, -4), slice(4, -4))
    torch.testing.assert_close(fed[:, 1, 3:6][interior], clip[:, 1][interior])  # previous frame, aligned
    torch.testing.assert_close(fed[:, 1, 6:9][interior], clip[:, 1][interior])  # next frame, aligned
    torch.testing.assert_close(fed[:, 0, 3:6], clip[:, 0])  # no previous frame: the frame itself
    torch.testing.assert_close(fed[:, 2, 6:9], clip[:, 2])
    assert (clip[:, 0] - clip[:, 1])[interior].abs().mean() > 0.1  # unaligned they differ
    assert net(clip).shape == (1, 3, 3, 160, 192)
    with pytest.raises(SLError, match='neighbour_input warps the neighbours with the flow warper'):
        build(neighbour_input=True, use_flow=False)


def test_neighbour_radius_2_brings_the_frames_two_steps_away_onto_each_frame_by_the_composed_flows(monkeypatch):
    net = build(neighbour_input=True, neighbour_radius=2, use_semantics=False)
    steps = [(2, -1), (-1, 2), (1, 1), (0, -2)]  # (dx, dy) from frame i to frame i + 1: the motion changes
    texture = torch.rand(1, 3, 48, 56)
    offsets = [(0, 0)]
    for dx, dy in steps:
        offsets.append((offsets[-1][0] + dx, offsets[-1][1] + dy))
    # frame i pixel (y, x) sits at (y + dy_i, x + dx_i) in frame i + 1
    clip = torch.stack([torch.roll(texture, shifts=(oy, ox), dims=(2, 3)) for ox, oy in offsets], dim=1)

    def exact_flow(ref, supp):  # the warper's contract: flow_warp(supp, flow) aligns supp to ref
        sign = 1 if torch.equal(supp, clip[:, 1:].flatten(0, 1)) else -1
        flow = torch.zeros(ref.shape[0], 2, *ref.shape[-2:])
        for pair, (dx, dy) in enumerate(steps):
            flow[pair, 0], flow[pair, 1] = sign * dx, sign * dy
        return flow

    monkeypatch.setattr(net.flow_warper, 'forward', exact_flow)
    flows_backward, flows_forward = net._flows(clip)
    fed = net._feature_input(clip, net._warped_neighbours(clip, flows_backward, flows_forward),
                             flows_backward, flows_forward)
    assert fed.shape == (1, 5, 15, 48, 56) and net.feat_extract[0].in_channels == 15
    interior = (..., slice(8, -8), slice(8, -8))
    for frame in range(5):
        for channels, neighbour in ((slice(3, 6), frame - 1), (slice(6, 9), frame + 1),
                                    (slice(9, 12), frame - 2), (slice(12, 15), frame + 2)):
            if 0 <= neighbour < 5:  # aligned onto the frame; unaligned it differs
                torch.testing.assert_close(fed[:, frame, channels][interior], clip[:, frame][interior])
                assert (clip[:, neighbour] - clip[:, frame])[interior].abs().mean() > 0.1
            else:  # no such neighbour: the frame itself
                torch.testing.assert_close(fed[:, frame, channels], clip[:, frame])
    short = build(neighbour_input=True, neighbour_radius=2, use_semantics=False)
    assert short(clip[:, :2]).shape == (1, 2, 3, 192, 224)  # a clip too short for the second neighbours
    with pytest.raises(SLError, match='set neighbour_input to true'):
        build(neighbour_radius=2, use_semantics=False)
    with pytest.raises(SLError, match='neighbour_radius must be an integer >= 1'):
        build(neighbour_input=True, neighbour_radius=0, use_semantics=False)


def test_neighbour_difference_feeds_each_aligned_neighbour_less_the_frame(monkeypatch):
    texture = torch.rand(1, 3, 40, 48)
    clip = torch.stack([torch.roll(texture, shifts=(-i, 2 * i), dims=(2, 3)) for i in range(3)], dim=1)
    fed = {}
    for difference in (False, True):
        net = build(neighbour_input=True, neighbour_difference=difference, use_semantics=False)
        flows = (torch.zeros(1, 2, 2, 40, 48), torch.zeros(1, 2, 2, 40, 48))
        flows[0][:, :, 0], flows[0][:, :, 1] = 2, -1  # frame i + 1 onto frame i
        flows[1][:, :, 0], flows[1][:, :, 1] = -2, 1
        fed[difference] = net._feature_input(clip, net._warped_neighbours(clip, *flows), *flows)
        assert net(clip, flows=flows).shape == (1, 3, 3, 160, 192)
    torch.testing.assert_close(fed[True][:, :, :3], clip)  # the frame itself
    torch.testing.assert_close(fed[True][:, :, 3:], fed[False][:, :, 3:] - clip.repeat(1, 1, 2, 1, 1))
    assert fed[True][:, 1, 3:, 4:-4, 4:-4].abs().max() < 1e-5  # aligned: nothing differs
    assert fed[True][:, 0, 3:6].abs().max() == 0 and fed[True][:, 2, 6:9].abs().max() == 0  # no neighbour: 0
    with pytest.raises(SLError, match='set neighbour_input to true'):
        build(neighbour_difference=True, use_semantics=False)


def test_neighbour_scale_multiplies_the_differences_as_weights_scaled_by_it_would():
    torch.manual_seed(0)
    texture = torch.rand(1, 3, 40, 48)
    clip = torch.stack([torch.roll(texture, shifts=(-i, 2 * i), dims=(2, 3)) for i in range(3)], dim=1)
    flows = (torch.full((1, 2, 2, 40, 48), 0.7), torch.full((1, 2, 2, 40, 48), -0.7))  # sub-pixel: differences remain
    plain = build(neighbour_input=True, neighbour_difference=True, use_semantics=False).eval()
    scaled = build(neighbour_input=True, neighbour_difference=True, neighbour_scale=4.0, use_semantics=False).eval()
    scaled.load_state_dict(plain.state_dict())
    fed = [net._feature_input(clip, net._warped_neighbours(clip, *flows), *flows) for net in (plain, scaled)]
    torch.testing.assert_close(fed[1][:, :, :3], fed[0][:, :, :3])  # the frame as it is
    torch.testing.assert_close(fed[1][:, :, 3:], 4 * fed[0][:, :, 3:])
    assert fed[0][:, :, 3:].abs().max() > 0.01
    with torch.no_grad():
        out = scaled(clip, flows=flows)
        assert (out - plain(clip, flows=flows)).abs().max() > 1e-3  # the scale changes what the network computes ...
        plain.feat_extract[0].weight[:, 3:] *= 4  # ... as the weights reading the differences scaled by it would
        torch.testing.assert_close(out, plain(clip, flows=flows), rtol=1e-4, atol=1e-5)
    for bad in (0, -1.0, True, '4'):
        with pytest.raises(SLError, match='neighbour_scale must be a positive number'):
            build(neighbour_input=True, neighbour_difference=True, neighbour_scale=bad, use_semantics=False)
    with pytest.raises(SLError, match='set neighbour_input and neighbour_difference to true'):
        build(neighbour_input=True, neighbour_scale=4.0, use_semantics=False)


def test_neighbour_offsets_give_the_sub_pixel_part_of_each_flow_and_nearest_sampling_keeps_the_pixels():
    texture = torch.rand(1, 3, 40, 48)
    clip = torch.stack([torch.roll(texture, shifts=(i, -2 * i), dims=(2, 3)) for i in range(3)], dim=1)
    flows = (torch.zeros(1, 2, 2, 40, 48), torch.zeros(1, 2, 2, 40, 48))
    flows[0][:, :, 0], flows[0][:, :, 1] = -2.3, 1.4  # frame i + 1 onto frame i, a sub-pixel part of (-0.3, 0.4)
    flows[1][:, :, 0], flows[1][:, :, 1] = 2.3, -1.4
    fed = {}
    for sampling in ('bilinear', 'nearest'):
        net = build(neighbour_input=True, neighbour_offsets=True, neighbour_sampling=sampling, use_semantics=False)
        assert net.feat_extract[0].in_channels == 13
        fed[sampling] = net._feature_input(clip, net._warped_neighbours(clip, *flows), *flows)
        assert fed[sampling].shape == (1, 3, 13, 40, 48) and net(clip, flows=flows).shape == (1, 3, 3, 160, 192)
    interior = (..., slice(4, -4), slice(4, -4))
    nearest, bilinear = fed['nearest'], fed['bilinear']
    # nearest: frame 1's pixel (y, x) gets frame 0's pixel (y - 1, x + 2), frame 2's (y + 1, x - 2), as they are
    torch.testing.assert_close(nearest[:, 1, 3:6][interior], clip[:, 1][interior])
    torch.testing.assert_close(nearest[:, 1, 6:9][interior], clip[:, 1][interior])
    assert (bilinear[:, 1, 3:6] - clip[:, 1])[interior].abs().mean() > 0.05  # interpolated 0.3 / 0.4 px off
    # the offsets: previous (forward flow) then next (backward flow), 0 where no neighbour
    for sampling in fed:
        torch.testing.assert_close(fed[sampling][:, 1:, 9:11], torch.tensor([0.3, -0.4]).view(1, 1, 2, 1, 1).expand(
            1, 2, 2, 40, 48))
        torch.testing.assert_close(fed[sampling][:, :2, 11:13], torch.tensor([-0.3, 0.4]).view(1, 1, 2, 1, 1).expand(
            1, 2, 2, 40, 48))
        assert fed[sampling][:, 0, 9:11].abs().max() == 0 and fed[sampling][:, 2, 11:13].abs().max() == 0
    radius = build(neighbour_input=True, neighbour_radius=2, neighbour_offsets=True, use_semantics=False)
    assert radius.feat_extract[0].in_channels == 23 and radius(clip, flows=flows).shape == (1, 3, 3, 160, 192)
    with pytest.raises(SLError, match='set neighbour_input to true, or neighbour_offsets to false'):
        build(neighbour_offsets=True, use_semantics=False)
    with pytest.raises(SLError, match='set neighbour_input to true, or neighbour_sampling to bilinear'):
        build(neighbour_sampling='nearest', use_semantics=False)
    with pytest.raises(SLError, match="neighbour_sampling must be 'bilinear', 'bicubic' or 'nearest'"):
        build(neighbour_input=True, neighbour_sampling='cubic', use_semantics=False)


def test_bicubic_neighbour_sampling_moves_detail_between_pixels_more_faithfully_than_bilinear():
    # a pattern of period 4 LR px along x, moved by a fraction of a pixel each frame: warped back with the flow, each
    # neighbour should equal the frame; cubic interpolation comes closer than bilinear, which smooths the pattern
    x = torch.arange(48, dtype=torch.float32)
    clip = torch.stack([(0.5 + 0.4 * torch.sin(2 * torch.pi * (x - 0.35 * i) / 4)).expand(1, 3, 40, 48)
                        for i in range(3)], dim=1)
    flows = (torch.zeros(1, 2, 2, 40, 48), torch.zeros(1, 2, 2, 40, 48))
    flows[0][:, :, 0], flows[1][:, :, 0] = 0.35, -0.35  # frame i + 1 onto frame i, frame i onto frame i + 1
    interior = (..., slice(4, -4), slice(4, -4))
    error = {}
    for sampling in ('bilinear', 'bicubic'):
        net = build(neighbour_input=True, neighbour_sampling=sampling, use_semantics=False)
        fed = net._feature_input(clip, net._warped_neighbours(clip, *flows), *flows)
        assert net(clip, flows=flows).shape == (1, 3, 3, 160, 192)
        error[sampling] = (fed[:, 1, 3:9] - clip[:, 1].repeat(1, 2, 1, 1))[interior].abs().mean()
    assert error['bicubic'] < 0.5 * error['bilinear'] and error['bilinear'] > 0.02
    # whole-pixel moves stay exact under cubic interpolation
    integer = (torch.full_like(flows[0], -1.), torch.full_like(flows[1], 1.))  # content 1 px left per frame
    integer[0][:, :, 1], integer[1][:, :, 1] = 0., 0.
    shifted = torch.stack([torch.roll(clip[:, 0], shifts=-i, dims=3) for i in range(3)], dim=1)
    net = build(neighbour_input=True, neighbour_sampling='bicubic', use_semantics=False)
    fed = net._feature_input(shifted, None, *integer)
    for neighbour in (slice(3, 6), slice(6, 9)):
        torch.testing.assert_close(fed[:, 1, neighbour][interior], shifted[:, 1][interior])


def test_align_gate_passes_features_where_the_flow_aligns_and_shuts_where_it_does_not():
    import cv2
    net = build(align_gate=True, use_semantics=False)
    dx, dy = 2, -1
    texture = torch.from_numpy(cv2.resize(torch.rand(10, 12, 3, generator=torch.Generator().manual_seed(1)).numpy(),
                                          (48, 40), interpolation=cv2.INTER_CUBIC)).permute(2, 0, 1)[None].clamp(0, 1)
    clip = torch.stack([torch.roll(texture, shifts=(i * dy, i * dx), dims=(2, 3)) for i in range(3)], dim=1)

    def flows(scale):  # scale 1: the exact motion in the warper's convention; 0: no motion found
        backward = torch.zeros(1, 2, 2, 40, 48)
        backward[:, :, 0], backward[:, :, 1] = scale * dx, scale * dy
        return backward, -backward

    def align_gates(lqs, backward, forward):
        return net._align_gates(lqs, net._warped_neighbours(lqs, backward, forward), backward, forward)

    interior = (..., slice(4, -4), slice(4, -4))
    exact = align_gates(clip, *flows(1))
    wrong = align_gates(clip, *flows(0))
    for gates in exact + wrong:
        assert gates.shape == (1, 2, 1, 40, 48)
    assert all(g[interior].min() > 0.9 for g in exact)  # exact flow: warped frame and frame agree
    assert all(g[interior].mean() < 0.7 for g in wrong)  # no flow on a moving texture: they differ
    # inconsistent flows (the reverse flow does not bring a pixel back) shut the gate even where the frames agree
    still = torch.full((1, 3, 3, 40, 48), 0.5)
    backward = torch.zeros(1, 2, 2, 40, 48)
    assert align_gates(still, backward, backward)[0][interior].min() > 0.9
    backward[:, :, 0] = 2.0
    assert align_gates(still, backward, backward)[0][interior].max() < 0.1

    # the gate scales the warped hidden state and learns from the SR loss
    net(clip, flows=flows(1)).mean().backward()
    assert net.align_gate.weight.grad.abs().sum() > 0
    assert sum(p.numel() for p in net.align_gate.parameters()) == 19
    assert build(align_gate=False).align_gate is None
    # align_gate_trained: false keeps the gate at its start (the same gates), the SR loss does not reach it
    fixed = build(align_gate=True, use_semantics=False, align_gate_trained=False)
    fixed(clip, flows=flows(1)).mean().backward()
    assert fixed.align_gate.weight.grad is None and fixed.align_gate.bias.grad is None
    assert not any(p.requires_grad for p in fixed.align_gate.parameters())
    torch.testing.assert_close(fixed.align_gate.weight, build(align_gate=True, use_semantics=False).align_gate.weight)
    # align_gate_error: false reads the flows' inconsistency alone: a wrong but consistent flow leaves it open
    consistency = build(align_gate=True, use_semantics=False, align_gate_error=False)
    assert sum(p.numel() for p in consistency.align_gate.parameters()) == 10
    wrong = consistency._align_gates(clip, consistency._warped_neighbours(clip, *flows(0)), *flows(0))
    assert all(g[interior].min() > 0.9 for g in wrong)
    backward = torch.zeros(1, 2, 2, 40, 48)
    backward[:, :, 0] = 2.0
    assert consistency._align_gates(still, consistency._warped_neighbours(still, backward, backward), backward,
                                    backward)[0][interior].max() < 0.1
    with pytest.raises(SLError, match='align_gate measures how well the flow warper aligns'):
        build(align_gate=True, use_flow=False)


def test_state_bound_keeps_the_propagated_features_within_it_and_changes_nothing_far_below_it():
    clip = torch.rand(1, 6, 3, 20, 24, generator=torch.Generator().manual_seed(2))

    def propagated(net):  # every propagation step's output, both directions
        outputs, original = [], net._propagate

        def record(*args, **kwargs):
            result = original(*args, **kwargs)
            outputs.extend(result)
            return result
        net._propagate = record
        with torch.no_grad():
            out = net(clip)
        return out, torch.stack(outputs)

    def amplified(**options):  # a trunk that multiplies the propagated features by 20 at every step
        net = build(use_semantics=False, use_image=False, use_mfsab=False, **options)
        with torch.no_grad():
            for trunk in net.trunk.values():
                trunk[0].weight[:, MICRO['num_feat']:] *= 20
        return net

    _, unbounded = propagated(amplified())
    _, bounded = propagated(amplified(state_bound=1.0))
    assert unbounded.abs().max() > 10 and bounded.abs().max() <= 1.0
    # a bound far above the features is the unbounded network (tanh(x) ~ x)
    out, features = propagated(build(use_semantics=False))
    out_loose, features_loose = propagated(build(use_semantics=False, state_bound=1e4))
    torch.testing.assert_close(features_loose, features, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(out_loose, out, rtol=1e-4, atol=1e-5)
    # no parameters, and the SR loss trains through it
    assert sum(p.numel() for p in build(state_bound=1.0).parameters()) == sum(p.numel() for p in build().parameters())
    net = build(use_semantics=False, state_bound=0.5)
    net(clip).mean().backward()
    assert net.trunk['forwards'][0].weight.grad.abs().sum() > 0
    for bad in (0, -1.0, 'one', True):
        with pytest.raises(SLError, match='state_bound must be a positive number'):
            build(state_bound=bad)


@pytest.mark.parametrize('scale', [1, 2, 3, 4])
def test_direct_upsample_runs_no_convolution_at_the_hr_size_and_starts_near_bicubic(scale):
    net = build(use_semantics=False, flow_estimator='dis', scale=scale, direct_upsample=True)
    convolved = []  # the spatial size of every convolution's input
    for module in net.modules():
        if isinstance(module, torch.nn.Conv2d):
            module.register_forward_hook(lambda module, args, output: convolved.append(tuple(args[0].shape[-2:])))
    clip = torch.rand(1, 3, 3, 19, 22, generator=torch.Generator().manual_seed(0))
    out = net(clip)
    assert out.shape == (1, 3, 3, 19 * scale, 22 * scale)
    assert set(convolved) == {(19, 22)}  # every convolution reads LR maps (the flow is DIS, no convolutions)
    bicubic = torch.nn.functional.interpolate(clip.flatten(0, 1), scale_factor=scale, mode='bicubic',
                                              align_corners=False).view_as(out)
    assert (out - bicubic).abs().mean() < 0.1  # a small last layer: the untrained network is near its bicubic skip
    torch.nn.functional.l1_loss(out, torch.rand_like(out)).backward()
    assert net.conv_last[0].weight.grad.abs().sum() > 0 and net.feat_extract[0].weight.grad.abs().sum() > 0
    staged = build(use_semantics=False, flow_estimator='dis', scale=scale)
    assert sum(p.numel() for p in net.parameters()) < sum(p.numel() for p in staged.parameters())
    assert not any(name.startswith('upsample.') for name, _ in net.named_parameters())


def test_share_propagation_runs_one_trunk_in_both_passes_and_sums_their_gradients():
    options = dict(use_semantics=False, use_image=False, use_mfsab=False, flow_estimator='dis', neighbour_input=True,
                   state_bound=1.0)
    shared, separate = build(share_propagation=True, **options), build(**options)
    assert shared.trunk['backward'] is shared.trunk['forwards']
    one_trunk = sum(p.numel() for p in separate.trunk['backward'].parameters())
    assert sum(p.numel() for p in separate.parameters()) - sum(p.numel() for p in shared.parameters()) == one_trunk
    # the separate network with the shared one's weights in both of its trunks computes the same clip
    weights = shared.state_dict()
    separate.load_state_dict(weights)
    for name, value in separate.trunk['forwards'].state_dict().items():
        assert torch.equal(value, separate.trunk['backward'].state_dict()[name])
    clip = torch.rand(2, 4, 3, 16, 18, generator=torch.Generator().manual_seed(0))
    target = torch.rand(2, 4, 3, 64, 72, generator=torch.Generator().manual_seed(1))
    for net in (shared, separate):
        torch.nn.functional.l1_loss(net(clip), target).backward()
    assert torch.allclose(shared(clip), separate(clip), atol=1e-6)
    # each shared weight's gradient is the sum of what the two passes give it
    for (name, param), backward, forwards in zip(shared.trunk['backward'].named_parameters(),
                                                 separate.trunk['backward'].parameters(),
                                                 separate.trunk['forwards'].parameters()):
        assert torch.allclose(param.grad, backward.grad + forwards.grad, atol=1e-6), name
        assert backward.grad.abs().sum() > 0 and forwards.grad.abs().sum() > 0
    # a checkpoint of the shared network loads back into one
    reloaded = build(share_propagation=True, **options)
    reloaded.load_state_dict(weights)
    assert reloaded.trunk['backward'] is reloaded.trunk['forwards']
    assert torch.equal(reloaded(clip), shared(clip).detach())


def test_without_recurrence_each_frame_is_the_recurrent_network_with_no_propagated_state(monkeypatch):
    options = dict(use_semantics=False, use_image=False, use_mfsab=False, flow_estimator='dis', neighbour_input=True,
                   neighbour_difference=True, state_bound=1.0)
    frame_wise, recurrent = build(recurrent=False, **options), build(**options)
    num_feat = MICRO['num_feat']
    for net in (frame_wise, recurrent):
        assert all(trunk[0].in_channels == (1 if net is frame_wise else 2) * num_feat for trunk in net.trunk.values())
    assert (sum(p.numel() for p in recurrent.parameters()) - sum(p.numel() for p in frame_wise.parameters())
            == 2 * num_feat * num_feat * 9)
    # the recurrent network with the frame-wise one's weights (its trunks' state inputs at 0) and its propagated
    # state replaced by zeros at every step computes the same clip
    weights = recurrent.state_dict()
    for name, value in frame_wise.state_dict().items():
        weights[name] = value if weights[name].shape == value.shape else torch.cat(
            [value, torch.zeros_like(value)], 1)
    recurrent.load_state_dict(weights)
    monkeypatch.setattr(recurrent, '_align', lambda direction, ref_feat, hidden, *args, **kwargs: hidden * 0)
    clip = torch.rand(2, 5, 3, 16, 18, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = frame_wise(clip)
        assert torch.allclose(out, recurrent(clip), atol=1e-5)
        # a frame's output depends on its neighbours and on no frame further away
        changed = clip.clone()
        changed[:, 0] = torch.rand(2, 3, 16, 18, generator=torch.Generator().manual_seed(1))
        difference = (frame_wise(changed) - out).abs().flatten(2).amax(-1)
        assert (difference[:, :2] > 0).all() and (difference[:, 2:] == 0).all()
    # training (all frames' reconstruction at once) computes what testing (frame by frame) does, and trains every part
    trained = frame_wise(clip)
    assert torch.allclose(trained, out, atol=1e-5)
    trained.mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in frame_wise.parameters() if p.requires_grad)


@pytest.mark.parametrize('option', [dict(use_image=True), dict(align_gate=True), dict(use_mfsab=True),
                                    dict(use_semantics=True), dict(recurrent='no')])
def test_without_recurrence_the_parts_that_act_on_the_propagated_state_are_refused(option):
    options = dict(use_semantics=False, use_image=False, use_mfsab=False, flow_estimator='dis', recurrent=False)
    with pytest.raises(SLError, match='recurrent'):
        build(**dict(options, **option))


def test_state_carry_starts_each_recurrent_step_adding_the_aligned_state_to_its_first_convolution():
    options = dict(use_semantics=False, use_image=False, use_mfsab=False, flow_estimator='dis', neighbour_input=True)
    carried, default = build(state_carry=0.5, **options), build(**options)
    num_feat = MICRO['num_feat']
    for direction, trunk in carried.trunk.items():
        weight = trunk[0].weight.detach()
        assert torch.equal(weight[:, num_feat:, 1, 1], 0.5 * torch.eye(num_feat))
        assert weight[:, num_feat:].abs().sum() == 0.5 * num_feat  # nothing else in the state half
        # the frame half and every other layer start as without it (same seed)
        assert torch.equal(weight[:, :num_feat], default.trunk[direction][0].weight.detach()[:, :num_feat])
    # the first convolution's output is its frame half's plus half the state, channel by channel
    feat, state = torch.randn(1, num_feat, 5, 6), torch.randn(1, num_feat, 5, 6)
    conv = carried.trunk['backward'][0]
    frame_half = torch.nn.functional.conv2d(feat, conv.weight[:, :num_feat], conv.bias, padding=1)
    assert torch.allclose(conv(torch.cat([feat, state], 1)), frame_half + 0.5 * state, atol=1e-5)
    with pytest.raises(SLError, match='state_carry'):
        build(state_carry=True, **options)
    with pytest.raises(SLError, match='state_carry'):
        build(state_carry=0.5, recurrent=False, **dict(options, align_gate=False))


def test_second_order_steps_read_the_state_two_frames_back_warped_by_the_composed_flows(monkeypatch):
    options = dict(use_semantics=False, use_image=False, use_mfsab=False, flow_estimator='dis', state_bound=1.0)
    second, first = build(second_order=True, **options), build(**options)
    num_feat = MICRO['num_feat']
    assert all(trunk[0].in_channels == 3 * num_feat for trunk in second.trunk.values())
    assert (sum(p.numel() for p in second.parameters()) - sum(p.numel() for p in first.parameters())
            == 2 * num_feat * num_feat * 9)
    clip = torch.rand(2, 5, 3, 16, 18, generator=torch.Generator().manual_seed(0))
    # with its second-order half at 0 and the first-order network's weights elsewhere, the same clip
    weights = second.state_dict()
    for name, value in first.state_dict().items():
        weights[name] = value if weights[name].shape == value.shape else torch.cat(
            [value, torch.zeros_like(value[:, :num_feat])], 1)
    second.load_state_dict(weights)
    with torch.no_grad():
        assert torch.allclose(second(clip), first(clip), atol=1e-5)
    # the composed flows: two steps of a translation by (1, -0.5) LR px are one of (2, -1)
    seen = []
    original = second._propagate
    monkeypatch.setattr(second, '_propagate', lambda *args, **kwargs: seen.append(kwargs['far_flows']) or original(
        *args, **kwargs))
    flow = torch.tensor([1., -0.5]).view(1, 1, 2, 1, 1).expand(2, 4, 2, 16, 18)
    with torch.no_grad():
        second(clip, flows=(flow, -flow))
    assert [tuple(far.shape) for far in seen] == [(2, 3, 2, 16, 18)] * 2
    assert torch.allclose(seen[0][..., 4:12, 4:12], 2 * flow[:, :3, :, 4:12, 4:12])
    assert torch.allclose(seen[1][..., 4:12, 4:12], -2 * flow[:, :3, :, 4:12, 4:12])
    # without the first-order state, what reaches a frame from the others comes from two, four... frames away
    torch.nn.init.normal_(second.trunk['backward'][0].weight, std=0.1)
    torch.nn.init.normal_(second.trunk['forwards'][0].weight, std=0.1)
    monkeypatch.setattr(second, '_propagate', original)
    monkeypatch.setattr(second, '_align', lambda direction, ref_feat, hidden, *args, **kwargs: hidden * 0)
    changed = clip.clone()
    changed[:, 0] = torch.rand(2, 3, 16, 18, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        difference = (second(changed) - second(clip)).abs().flatten(2).amax(-1)
    assert (difference[:, 0::2] > 0).all() and (difference[:, 1::2] == 0).all()
    # trained, every part gets a gradient
    second(clip).mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in second.parameters() if p.requires_grad)
    with pytest.raises(SLError, match='second_order'):
        build(second_order=True, recurrent=False, **options)
    with pytest.raises(SLError, match='second_order'):
        build(second_order='yes', **options)


def test_hr_state_channels_warp_those_features_at_the_hr_size_and_the_rest_as_before():
    from basicsr.archs.arch_util import flow_warp
    options = dict(use_semantics=False, use_image=False, use_mfsab=False, flow_estimator='dis', neighbour_input=True,
                   align_gate=True, state_bound=1.0)
    num_feat = MICRO['num_feat']  # 16: one HR channel at scale 4
    hr, lr = build(hr_state_channels=num_feat, **options), build(**options)
    assert sum(p.numel() for p in hr.parameters()) == sum(p.numel() for p in lr.parameters())  # no parameters
    generator = torch.Generator().manual_seed(0)
    image = torch.rand(2, 1, 96, 104, generator=generator)  # an HR map, as the state holds it space-to-depth
    state = torch.nn.functional.pixel_unshuffle(image, 4)  # (2, 16, 24, 26)
    # a quarter of an LR pixel to the right is one HR pixel: the HR channels move by exactly that, the sub-pixel
    # detail kept, where the LR warp blends neighbouring LR pixels
    quarter = torch.zeros(2, 2, 24, 26)
    quarter[:, 0] = 0.25
    moved = torch.nn.functional.pixel_shuffle(hr._warp_state(state, quarter), 4)
    assert torch.allclose(moved[..., :-1], image[..., 1:], atol=1e-4)  # grid_sample's rounding
    blended = torch.nn.functional.pixel_shuffle(lr._warp_state(state, quarter), 4)
    assert (blended[..., :-4] - image[..., 1:-3]).abs().mean() > 0.05
    # a whole LR pixel is the same move either way, and with no HR channels the warp is flow_warp's
    whole = quarter * 4
    assert torch.allclose(hr._warp_state(state, whole), lr._warp_state(state, whole), atol=1e-4)
    assert torch.equal(lr._warp_state(state, quarter), flow_warp(state, quarter.permute(0, 2, 3, 1)))
    # half HR, half LR: 32 channels at scale 4, the first 16 moved at the HR size
    wide = dict(options, num_feat=32)
    half = build(hr_state_channels=16, **wide)
    both = torch.cat([state, state], 1)
    warped = half._warp_state(both, quarter)
    assert torch.allclose(warped[:, :16], hr._warp_state(state, quarter), atol=1e-5)
    assert torch.allclose(warped[:, 16:], lr._warp_state(state, quarter), atol=1e-5)
    # the network runs and trains with it, under bf16 autocast and channels-last too
    clip = torch.rand(1, 4, 3, 16, 18, generator=generator)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = half.to(memory_format=torch.channels_last)(clip)
    assert out.shape == (1, 4, 3, 64, 72) and torch.isfinite(out).all()
    out.float().mean().backward()
    assert all(p.grad is not None for p in half.parameters() if p.requires_grad)
    for value in (8, 48, True, -16):  # not a multiple of 16, above num_feat, not an integer, negative
        with pytest.raises(SLError, match='hr_state_channels'):
            build(hr_state_channels=value, **wide)
    with pytest.raises(SLError, match='hr_state_channels'):
        build(hr_state_channels=16, recurrent=False, **dict(options, align_gate=False))


def test_hr_feedback_feeds_the_previous_hr_output_warped_at_the_hr_size_into_the_forward_step():
    from sl_arch.archs.upsample import bicubic_upsample
    options = dict(use_semantics=False, use_image=False, use_mfsab=False, flow_estimator='dis', neighbour_input=True,
                   align_gate=True, state_bound=1.0)
    num_feat = MICRO['num_feat']
    fed, plain = build(hr_feedback=True, **options), build(**options)
    assert fed.trunk['forwards'][0].in_channels == 2 * num_feat + 48
    assert fed.trunk['backward'][0].in_channels == 2 * num_feat
    assert (sum(p.numel() for p in fed.parameters()) - sum(p.numel() for p in plain.parameters())
            == 48 * num_feat * 9)
    generator = torch.Generator().manual_seed(0)
    clip = torch.rand(2, 5, 3, 16, 18, generator=generator)
    # with its feedback half at 0 and the plain network's weights elsewhere, the same clip (frame by frame)
    weights = fed.state_dict()
    for name, value in plain.state_dict().items():
        weights[name] = value if weights[name].shape == value.shape else torch.cat(
            [value, torch.zeros_like(weights[name][:, 2 * num_feat:])], 1)
    fed.load_state_dict(weights)
    with torch.no_grad():
        assert torch.allclose(fed(clip), plain(clip), atol=1e-5)
    # the input: the previous HR output moved at the HR size (a quarter LR pixel: one HR pixel, exactly) minus the
    # frame's bicubic upsampling, space-to-depth, scaled by the gate; zeros at the first frame
    previous = torch.rand(2, 3, 64, 72, generator=generator)
    lq = torch.rand(2, 3, 16, 18, generator=generator)
    flow = torch.zeros(2, 2, 16, 18)
    flow[:, 0] = 0.25
    gate = torch.full((2, 1, 16, 18), 0.5)
    like = torch.zeros(2, num_feat, 16, 18)
    got = torch.nn.functional.pixel_shuffle(fed._feedback(bicubic_upsample(lq, 4), previous, flow, gate, like), 4)
    expected = 0.5 * (previous - bicubic_upsample(lq, 4))
    assert torch.allclose(got[..., :-1], 0.5 * (previous[..., 1:] - bicubic_upsample(lq, 4)[..., :-1]), atol=1e-4)
    assert not torch.allclose(got, expected, atol=1e-2)  # it did move
    first = fed._feedback(bicubic_upsample(lq, 4), None, None, None,
                          like.to(torch.bfloat16).to(memory_format=torch.channels_last))
    assert first.shape == (2, 48, 16, 18) and first.dtype == torch.bfloat16 and not first.any()
    assert first.is_contiguous(memory_format=torch.channels_last)
    # trained, the feedback weights get a gradient; inference (frame by frame, no autograd) computes the same
    torch.nn.init.normal_(fed.trunk['forwards'][0].weight, std=0.1)
    out = fed(clip)
    out.mean().backward()
    assert fed.trunk['forwards'][0].weight.grad[:, 2 * num_feat:].abs().sum() > 0
    assert all(p.grad is not None for p in fed.parameters() if p.requires_grad)
    with torch.no_grad():
        assert torch.allclose(fed(clip), out, atol=1e-6)
        # the fed-back output reaches the later frames, not the first (whose input is zeros)
        original = fed._feedback
        fed._feedback = lambda skip, previous, *args: original(skip, None, *args)
        cut = fed(clip)
        del fed._feedback
    assert torch.equal(cut[:, 0], out[:, 0].detach()) and (cut[:, 1:] - out[:, 1:]).abs().amax() > 1e-4
    for bad in (dict(hr_feedback='yes'), dict(hr_feedback=True, share_propagation=True),
                dict(hr_feedback=True, recurrent=False, align_gate=False)):
        with pytest.raises(SLError, match='hr_feedback'):
            build(**dict(options, **bad))


@pytest.mark.parametrize('scale', [1, 2, 3, 4])
def test_bicubic_upsample_gives_pytorchs_bicubic_values_in_float32_under_autocast(scale):
    from sl_arch.archs.upsample import bicubic_upsample
    for shape in ((2, 3, 17, 22), (1, 1, 1, 5), (3, 2, 6, 1)):
        x = torch.rand(*shape, generator=torch.Generator().manual_seed(scale))
        expected = torch.nn.functional.interpolate(x, scale_factor=scale, mode='bicubic', align_corners=False)
        out = bicubic_upsample(x, scale)
        assert out.shape == expected.shape and out.dtype == torch.float32
        assert torch.allclose(out, expected, atol=1e-5, rtol=0)
        with torch.autocast('cpu', dtype=torch.bfloat16):  # the skip keeps float32's precision under autocast
            assert torch.allclose(bicubic_upsample(x, scale), expected, atol=1e-5, rtol=0)
        double = x.double()
        assert torch.allclose(bicubic_upsample(double, scale), torch.nn.functional.interpolate(
            double, scale_factor=scale, mode='bicubic', align_corners=False), atol=1e-12, rtol=0)
        # an input that needs a gradient gets PyTorch's own, differentiable
        grad_input = x.clone().requires_grad_()
        bicubic_upsample(grad_input, scale).sum().backward()
        assert grad_input.grad is not None


def test_residual_blocks_compute_what_basicsr_blocks_with_the_same_weights_compute():
    from basicsr.archs.arch_util import ResidualBlockNoBN
    from sl_arch.archs.semantic_lens_arch import ResidualBlock
    x = torch.randn(2, 8, 9, 11, generator=torch.Generator().manual_seed(1))
    for res_scale in (1, 0.2):
        ours, basicsr = ResidualBlock(8, res_scale), ResidualBlockNoBN(8, res_scale)
        assert ours.load_state_dict(basicsr.state_dict()) is not None  # same parameter names and shapes
        x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
        y1, y2 = ours(x1), basicsr(x2)
        assert torch.equal(y1, y2)  # bit for bit: multiplying by 1 changes nothing
        y1.square().sum().backward()
        y2.square().sum().backward()
        assert torch.equal(x1.grad, x2.grad) and torch.equal(ours.conv1.weight.grad, basicsr.conv1.weight.grad)


def test_under_bf16_autocast_the_recurrent_steps_convolutions_read_bf16_channels_last_maps():
    # the flow warp runs in float32 under autocast; its output goes back to the features' type and memory order before
    # the concatenation, which would otherwise be promoted to float32 and reordered again for every step's convolution
    net = build(use_semantics=False, use_image=False, use_mfsab=False, flow_estimator='dis', align_gate=True,
                state_bound=1.0).to(memory_format=torch.channels_last)
    read = []
    for trunk in net.trunk.values():
        trunk[0].register_forward_hook(lambda module, args, output: read.append(args[0]))
    clip = torch.rand(2, 4, 3, 20, 24, generator=torch.Generator().manual_seed(3))
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = net(clip)
    assert len(read) == 8
    assert all(x.dtype == torch.bfloat16 and x.is_contiguous(memory_format=torch.channels_last) for x in read)
    # the same network in float32, default memory order, computes the same clip up to bf16 rounding
    reference = build(use_semantics=False, use_image=False, use_mfsab=False, flow_estimator='dis', align_gate=True,
                      state_bound=1.0)
    with torch.no_grad():
        assert (reference(clip) - out.float()).abs().mean() < 0.01


def test_dis_flow_does_not_depend_on_the_frames_seen_before():
    # OpenCV lowers DIS's finest scale for good on a small frame: the flow of a 68x160 pair must not
    # depend on whether a 24x24 training patch came first (it did: 0.68 vs 1.08 LR px on real footage)
    import cv2
    import numpy as np
    from sl_arch.archs.prealign_arch import SLDISFlow
    from sl_arch.bench.flow import dis_flow
    big = torch.from_numpy(cv2.resize(torch.rand(9, 20, 3, generator=torch.Generator().manual_seed(2)).numpy(),
                                      (160, 68), interpolation=cv2.INTER_CUBIC)).permute(2, 0, 1)[None].clamp(0, 1)
    moved = torch.roll(big, shifts=(1, 3), dims=(2, 3))
    small = torch.rand(1, 3, 24, 24)
    net = SLDISFlow()
    fresh = net(big, moved)
    net(small, small)
    torch.testing.assert_close(net(big, moved), fresh)
    assert net.finest_scale == 0
    with pytest.raises(SLError, match='finest_scale must be an integer >= 0'):
        SLDISFlow(finest_scale=-1)
    # the GT pseudo ground truth keeps the preset's half-resolution finest scale, whatever came before
    to_numpy = lambda frames: np.ascontiguousarray(frames[0].permute(1, 2, 0).numpy())  # noqa: E731
    first = dis_flow(to_numpy(big), to_numpy(moved))
    dis_flow(to_numpy(small), to_numpy(small))
    np.testing.assert_array_equal(dis_flow(to_numpy(big), to_numpy(moved)), first)
    assert not np.array_equal(first, fresh[0].permute(1, 2, 0).numpy())  # a different level than SLDISFlow's


def test_dis_flow_finds_a_known_shift_in_the_warper_convention_and_semantic_lens_can_use_it():
    import cv2
    from sl_arch.archs.prealign_arch import SLDISFlow
    texture = cv2.resize(torch.rand(12, 14, 3, generator=torch.Generator().manual_seed(0)).numpy(), (112, 96),
                         interpolation=cv2.INTER_CUBIC)
    frame = torch.from_numpy(texture).permute(2, 0, 1)[None].clamp(0, 1)
    dx, dy = 2, -1
    shifted = torch.roll(frame, shifts=(dy, dx), dims=(2, 3))  # frame pixel (y, x) sits at (y + dy, x + dx)
    flow = SLDISFlow()(frame, shifted)
    assert flow.shape == (1, 2, 96, 112) and flow.dtype == frame.dtype
    interior = (..., slice(8, -8), slice(8, -8))
    assert abs(flow[:, 0][interior].median() - dx) < 0.1 and abs(flow[:, 1][interior].median() - dy) < 0.1
    assert (SLFlowWarper.warp(shifted, flow) - frame)[interior].abs().mean() < 0.2 * (shifted - frame).abs().mean()

    net = build(flow_estimator='dis', neighbour_input=True)
    assert not any('flow_warper' in name for name, _ in net.named_parameters())
    clip = torch.rand(1, 3, 3, 24, 32, requires_grad=True)
    net(clip).mean().backward()
    assert net.feat_extract[0].weight.grad.abs().sum() > 0
    with pytest.raises(SLError, match='flow_estimator dis .* remove flow_load_path'):
        build(flow_estimator='dis', flow_load_path='model_zoo/slflow_tiny_synthetic_dis.pth')
    with pytest.raises(SLError, match='semanticlens_tiny_x4_bi.pth holds no flow network .* give flow weights'):
        build(flow_load_path='model_zoo/semanticlens_tiny_x4_bi.pth')  # an SR checkpoint
    with pytest.raises(SLError, match="flow_estimator must be 'learned' or 'dis'"):
        build(flow_estimator='raft')


@pytest.mark.parametrize('size', [(16, 16), (17, 23), (64, 90)])
def test_flow_warper_works_from_16_px_up(size):
    warper = SLFlowWarper(num_levels=6, channels=(8, 8, 8, 8), kernel_size=3)
    with torch.no_grad(), pytest.warns(UserWarning) if min(size) < 128 else nullcontext():
        flow = warper(torch.rand(2, 3, *size), torch.rand(2, 3, *size))
    assert flow.shape == (2, 2, *size)


def test_flow_warper_loads_spynet_weights_and_reproduces_spynet_flow(tmp_path):
    torch.manual_seed(0)
    spynet = SpyNet()
    path = tmp_path / 'spynet.pth'
    torch.save({'params': spynet.state_dict()}, path)
    warper = SLFlowWarper(min_level_size=2, load_path=str(path))
    ref, supp = torch.rand(1, 3, 64, 64), torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(warper(ref, supp), spynet.process(ref, supp), atol=1e-4, rtol=1e-4)


def test_flow_warper_refuses_spynet_weights_of_another_size_with_a_clear_error(tmp_path):
    path = tmp_path / 'spynet.pth'
    torch.save({'params': SpyNet().state_dict()}, path)
    with pytest.raises(SLError, match='channels=\\[32, 64, 32, 16\\]'):
        SLFlowWarper(num_levels=3, channels=(8, 8, 8, 8), load_path=str(path))


def test_four_dimensional_input_gets_a_clear_error():
    with pytest.raises(SLError, match=r'\(b, t, c, h, w\)'):
        build()(torch.rand(1, 3, 32, 32))


def test_wrong_number_of_input_channels_gets_a_clear_error():
    with pytest.raises(SLError, match='num_in_ch=3'):
        build()(torch.rand(1, 2, 4, 32, 32))


def test_unknown_option_key_gets_a_clear_error_with_the_nearest_valid_key():
    with pytest.raises(SLError, match="'num_feats' \\(did you mean 'num_feat'\\?\\)"):
        build_network({'type': 'SemanticLens', 'num_feats': 32})


def test_presets_build_and_the_paper_size_is_larger_than_tiny():
    tiny = SemanticLens(**PRESETS['tiny'])
    paper = SemanticLens(**PRESETS['paper'])
    count = lambda net: sum(p.numel() for p in net.parameters())  # noqa: E731
    assert count(paper) > 5 * count(tiny)


def test_given_flows_replace_the_estimate_and_a_wrong_shape_gets_a_clear_error():
    net = build().eval()
    clip = torch.rand(1, 4, 3, 16, 20)
    with torch.no_grad():
        estimated = net._flows(clip)
        assert torch.allclose(net(clip, flows=estimated), net(clip), atol=1e-6)
        zero = tuple(torch.zeros_like(flow) for flow in estimated)
        assert not torch.allclose(net(clip, flows=zero), net(clip), atol=1e-4)
        # one frame: nothing to align, the flows are not read
        assert net(clip[:, :1], flows=(torch.zeros(1, 0, 2, 16, 20),) * 2).shape == (1, 1, 3, 64, 80)
    with pytest.raises(SLError, match=r'the forward flows must be \(b, t - 1, 2, h, w\) = \(1, 3, 2, 16, 20\)'):
        net(clip, flows=(estimated[0], estimated[1][:, :2]))


def test_float32_propagation_runs_the_recurrent_steps_in_float32_under_bf16_autocast_and_nothing_else():
    options = dict(use_semantics=False, use_image=False, use_mfsab=False, flow_estimator='dis', neighbour_input=True,
                   neighbour_difference=True, align_gate=True, state_bound=1.0)
    plain, wide = build(**options), build(float32_propagation=True, **options)
    wide.load_state_dict(plain.state_dict())  # no parameters of its own
    clip = torch.rand(2, 4, 3, 16, 18, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(wide(clip), plain(clip), rtol=0, atol=0)  # without autocast: the same network
    for net in (plain, wide):
        net.to(memory_format=torch.channels_last)
    seen = {}

    def record(name):
        return lambda module, inputs, output: seen.setdefault(name, []).append((inputs[0].dtype, output.dtype))

    outputs = {}
    for label, net in (('plain', plain), ('wide', wide)):
        seen.clear()
        hooks = [net.trunk['backward'][0].register_forward_hook(record('trunk')),
                 net.trunk['forwards'][0].register_forward_hook(record('trunk')),
                 net.feat_extract[0].register_forward_hook(record('extract')),
                 net.upsample[0].register_forward_hook(record('upsample'))]
        with torch.autocast('cpu', dtype=torch.bfloat16):
            out = net(clip)
        for hook in hooks:
            hook.remove()
        out.float().mean().backward()
        assert all(p.grad is not None for p in net.parameters() if p.requires_grad)
        outputs[label] = (out.detach().float(), dict(seen))
    wanted = {'plain': torch.bfloat16, 'wide': torch.float32}
    for label, (_, dtypes) in outputs.items():
        assert len(dtypes['trunk']) == 2 * clip.shape[1]  # every step of both directions
        assert {output for _, output in dtypes['trunk']} == {wanted[label]}
        assert {output for _, output in dtypes['extract'] + dtypes['upsample']} == {torch.bfloat16}
    with torch.no_grad():
        reference = plain(clip)  # float32 throughout
    errors = {label: (out - reference).abs().mean() for label, (out, _) in outputs.items()}
    assert errors['wide'] < errors['plain']  # closer to the float32 network
    for bad, message in ((1, 'must be true or false'), ('yes', 'must be true or false')):
        with pytest.raises(SLError, match=message):
            build(float32_propagation=bad, **options)
    with pytest.raises(SLError, match='true only with recurrent: true'):
        build(float32_propagation=True, recurrent=False, use_semantics=False, use_image=False, use_mfsab=False)


@pytest.mark.parametrize('options', [{}, dict(use_semantics=False, flow_estimator='dis', neighbour_input=True,
                                               hr_feedback=True)])
def test_output_frames_reconstructs_only_those_frames_with_the_whole_clips_state(options):
    net = build(**options)
    clip = torch.rand(1, 5, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    full = net(clip)  # training: all frames' HR stage at once
    part = net(clip, output_frames=slice(1, 4))
    assert part.shape == (1, 3, 3, 64, 64) and torch.allclose(part, full[:, 1:4], atol=1e-6)
    part.mean().backward()  # every parameter still learns from the three frames (the state carries the others)
    assert all(param.grad is not None for name, param in net.named_parameters()
               if param.requires_grad and 'flow_warper' not in name)
    with torch.no_grad():  # inference: frame by frame
        assert torch.allclose(net(clip, output_frames=slice(2, None)), full[:, 2:], atol=1e-6)
    for bad in ([1, 2], slice(0, 5, 2), slice(3, 3)):
        with pytest.raises(SLError, match='output_frames must be a slice of contiguous frames of the 5-frame clip'):
            net(clip, output_frames=bad)


def test_a_size_of_zero_is_refused_in_one_line_when_the_network_is_built():
    from sl_arch.utils.options import OptionError
    for key in ('window_size', 'num_heads', 'num_feat'):  # window_size 0 had ended in a ZeroDivisionError at the first step
        with pytest.raises(OptionError, match=f'^network_g \\(SemanticLens\\): {key}: 0 is not a positive integer'):
            SemanticLens(**dict(PRESETS['tiny'], **{key: 0}))
