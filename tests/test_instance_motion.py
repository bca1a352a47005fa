"""Instance-centric motion: affine fits under masks, mask centroid shifts, the per-instance choice."""
import math

import pytest
import torch
from basicsr.archs.arch_util import flow_warp

from sl_arch.archs.prealign_arch import instance_affine_flow, instance_motion_flow, mask_centroid_shift
from sl_arch.archs.semantic_lens_arch import PRESETS, SemanticLens
from sl_arch.utils.errors import SLError
from sl_arch.utils.options import OptionError


def affine_field(h, w, matrix):
    """(1, 2, h, w) flow of the affine map ``matrix`` (2x3) over normalised coordinates in [-1, 1]."""
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing='ij')
    basis = torch.stack([xs, ys, torch.ones_like(xs)])
    return torch.einsum('ci,ihw->chw', torch.tensor(matrix), basis).unsqueeze(0)


def two_instances(h=24, w=40):
    masks = torch.zeros(1, 2, h, w)
    masks[:, 1, 6:14, 10:20] = 1
    masks[:, 0] = 1 - masks[:, 1]
    return masks


def test_affine_fit_recovers_each_instance_motion_despite_outliers():
    masks = two_instances()
    background = affine_field(24, 40, [[0.5, 0.1, 1.0], [-0.1, 0.5, 0.2]])
    obj = affine_field(24, 40, [[0.0, 0.0, -2.5], [0.0, 0.0, 1.5]])
    exact = masks[:, :1] * background + masks[:, 1:] * obj
    noisy = exact.clone()
    noisy[..., 0:3, 0:40] += 4.0  # a badly wrong band, as a flow network makes at borders
    error = (noisy - exact).abs().mean()
    assert (instance_affine_flow(noisy, masks, iterations=1) - exact).abs().mean() > error  # plain least squares
    assert (instance_affine_flow(noisy, masks, iterations=5) - exact).abs().mean() < 0.01 * error  # robust refits
    assert torch.allclose(instance_affine_flow(exact, masks), exact, atol=5e-3)  # the ridge pulls a little


def test_centroid_shift_is_the_translation_and_zero_for_an_absent_instance():
    ref = two_instances()
    supp = torch.roll(ref, shifts=(2, -3), dims=(-2, -1))
    shift = mask_centroid_shift(ref, supp)
    assert torch.allclose(shift[0, 1], torch.tensor([-3.0, 2.0]), atol=1e-4)
    supp[:, 1] = 0
    assert torch.equal(mask_centroid_shift(ref, supp)[0, 1], torch.zeros(2))


def test_a_small_fast_object_the_pixel_flow_misses_gets_its_motion_from_its_masks():
    torch.manual_seed(0)
    h, w = 24, 40
    background = torch.rand(1, 3, h, w) * 0.3
    patch = torch.rand(1, 3, 6, 6) * 0.5 + 0.5
    ref, supp = background.clone(), background.clone()
    ref[..., 8:14, 10:16] = patch
    supp[..., 8:14, 14:20] = patch  # the object moves 4 px right; the background stays
    ref_masks, supp_masks = torch.zeros(1, 2, h, w), torch.zeros(1, 2, h, w)
    ref_masks[:, 1, 8:14, 10:16] = 1
    supp_masks[:, 1, 8:14, 14:20] = 1
    ref_masks[:, 0], supp_masks[:, 0] = 1 - ref_masks[:, 1], 1 - supp_masks[:, 1]
    pixel_flow = torch.zeros(1, 2, h, w)  # a flow network that saw no motion
    flow = instance_motion_flow(pixel_flow, ref, supp, ref_masks, supp_masks)
    assert torch.allclose(flow[0, :, 8:14, 10:16].mean((1, 2)), torch.tensor([4.0, 0.0]), atol=0.05)
    assert flow[0, :, 18:, :].abs().max() < 0.05  # background keeps its (zero) motion
    warped = flow_warp(supp, flow.permute(0, 2, 3, 1))
    before = (flow_warp(supp, pixel_flow.permute(0, 2, 3, 1)) - ref)[..., 8:14, 10:16].abs().mean()
    assert (warped - ref)[..., 8:14, 10:16].abs().mean() < 0.1 * before


def test_semantic_lens_instance_motion_uses_the_masks_and_trains_the_flow():
    torch.manual_seed(0)
    net = SemanticLens(**PRESETS['tiny'], instance_motion=True, semantic_extractor={'type': 'SLPrecomputedSemantics'})
    lqs = torch.rand(1, 3, 3, 24, 32)
    ids = torch.zeros(1, 3, 24, 32, dtype=torch.long)
    for t in range(3):
        ids[:, t, 6:12, 4 + 3 * t:10 + 3 * t] = 1
    out = net(lqs, masks=ids)
    out.mean().backward()
    grads = [p.grad for p in net.flow_warper.parameters()]
    assert any(g is not None and g.abs().sum() > 0 for g in grads)
    with torch.no_grad():
        moved = net(lqs, masks=torch.roll(ids, 6, dims=-1))
    assert not math.isclose((out - moved).abs().max().item(), 0.0, abs_tol=1e-7)


def test_instance_motion_without_flow_is_refused_and_without_the_semantic_branch_moves_the_given_masks():
    with pytest.raises(OptionError, match='instance_motion refines the flow warper'):
        SemanticLens(**PRESETS['tiny'], instance_motion=True, use_flow=False)
    torch.manual_seed(0)
    net = SemanticLens(**PRESETS['tiny'], instance_motion=True, use_semantics=False).eval()
    assert net.semantic_extractor is None
    lqs = torch.rand(1, 3, 3, 24, 32)
    ids = torch.zeros(1, 3, 24, 32, dtype=torch.long)
    for t in range(3):
        ids[:, t, 6:12, 4 + 3 * t:10 + 3 * t] = 1
    with torch.no_grad():
        assert not torch.allclose(net(lqs, masks=ids), net(lqs, masks=torch.roll(ids, 6, dims=-1)), atol=1e-6)
    with pytest.raises(SLError, match='instance_motion without the semantic branch moves the instances of given masks'):
        net(lqs)
