"""The photometric self-supervision of the flow warper: the loss finds true motion, and training uses it."""
import pytest
import torch
from torch.nn import functional as F

from basicsr.data import build_dataloader, build_dataset
from basicsr.models import build_model
from basicsr.utils.registry import LOSS_REGISTRY
from sl_arch.losses.flow_photometric_loss import SLPhotometricFlowLoss, edge_aware_smoothness, photometric_error
from sl_arch.utils.options import OptionError
from tests.conftest import mask_options


def textured_pair(shift=(1.5, -0.75), size=32, seed=0):
    """A smooth random texture and the same texture moved by ``shift`` (x, y) pixels: (1, 3, h, w) each."""
    generator = torch.Generator().manual_seed(seed)
    texture = F.interpolate(torch.rand(1, 3, size // 4 + 4, size // 4 + 4, generator=generator),
                            size=(size + 16, size + 16), mode='bicubic', align_corners=False)
    first = texture[..., 8:8 + size, 8:8 + size]
    dx, dy = shift
    theta = torch.tensor([[[1, 0, -2 * dx / (size + 16)], [0, 1, -2 * dy / (size + 16)]]], dtype=torch.float32)
    grid = F.affine_grid(theta, texture.shape, align_corners=False)
    second = F.grid_sample(texture, grid, mode='bicubic', align_corners=False)[..., 8:8 + size, 8:8 + size]
    return first, second


def test_the_photometric_error_is_lowest_at_the_true_motion_and_descent_finds_it():
    first, second = textured_pair(shift=(1.5, -0.75))
    true = torch.tensor([1.5, -0.75]).view(1, 2, 1, 1).expand(1, 2, 32, 32)
    assert photometric_error(second, first, -true) < 0.5 * photometric_error(second, first, torch.zeros_like(true))
    motion = torch.zeros(1, 2, 1, 1, requires_grad=True)
    optimizer = torch.optim.Adam([motion], lr=0.05)
    for _ in range(200):
        optimizer.zero_grad()
        photometric_error(first, second, motion.expand(1, 2, 32, 32)).backward()
        optimizer.step()
    assert motion.detach().flatten().tolist() == pytest.approx([1.5, -0.75], abs=0.15)


def test_smoothness_is_zero_for_constant_flow_and_cheaper_across_image_edges():
    image = torch.zeros(1, 3, 16, 16)
    image[..., 8:] = 1.0  # an edge between columns 7 and 8
    assert edge_aware_smoothness(torch.ones(1, 2, 16, 16), image) == 0
    step = torch.zeros(1, 2, 16, 16)
    step[..., 8:] = 1.0
    moved = torch.zeros(1, 2, 16, 16)
    moved[..., 4:] = 1.0
    assert edge_aware_smoothness(step, image) < 0.01 * edge_aware_smoothness(moved, image)


def test_the_loss_is_registered_and_weighs_both_directions():
    first, second = textured_pair()
    lqs = torch.stack([first, second], 1)  # (1, 2, 3, h, w)
    zero = torch.zeros(1, 1, 2, 32, 32)
    loss = LOSS_REGISTRY.get('SLPhotometricFlowLoss')(loss_weight=1.0, smooth_weight=0.0)
    assert isinstance(loss, SLPhotometricFlowLoss)
    expected = 0.5 * (photometric_error(first, second, zero[:, 0]) + photometric_error(second, first, zero[:, 0]))
    assert loss(lqs, zero, zero).item() == pytest.approx(expected.item(), rel=1e-6)


def test_training_with_the_flow_loss_trains_the_flow_warper_from_the_frames(tmp_path):
    opt = mask_options(tmp_path, flow_photometric_opt={'type': 'SLPhotometricFlowLoss', 'loss_weight': 1.0})
    model = build_model(opt)
    batch = next(iter(build_dataloader(build_dataset(opt['datasets']['train']), opt['datasets']['train'], num_gpu=0)))
    model.feed_data(batch)
    model.optimizer_g.zero_grad()
    model.optimize_parameters(1)
    assert model.log_dict['l_flow_photometric'] > 0
    flow_grads = [p.grad for p in model.net_g.flow_warper.parameters() if p.grad is not None]
    assert flow_grads and any(grad.abs().sum() > 0 for grad in flow_grads)


def test_the_flow_loss_on_a_network_without_flows_is_one_clear_error(tmp_path):
    opt = mask_options(tmp_path, flow_photometric_opt={'type': 'SLPhotometricFlowLoss'})
    opt['network_g'] = {'type': 'SLFrameWise', 'network': {'type': 'MSRResNet', 'num_feat': 8, 'num_block': 1}}
    with pytest.raises(OptionError, match='train.flow_photometric_opt reads the instance masks and flows of '
                                          'SemanticLens; SLFrameWise has none'):
        build_model(opt)
