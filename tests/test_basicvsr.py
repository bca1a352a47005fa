"""SLBasicVSR: BasicSR's BasicVSR with its SpyNet or OpenCV's DIS as the flow."""
import pytest
import torch

from basicsr.archs import build_network
from basicsr.archs.basicvsr_arch import BasicVSR
from sl_arch.archs.basicvsr_arch import SLBasicVSR
from sl_arch.archs.prealign_arch import SLDISFlow
from sl_arch.utils.options import OptionError

SMALL = dict(num_feat=8, num_block=1)


def textured_clip(shift=2, frames=3, size=24):
    """A smooth random texture moving ``shift`` px to the right per frame: (1, t, 3, size, size)."""
    torch.manual_seed(0)
    texture = torch.nn.functional.interpolate(torch.rand(1, 3, 12, 24), size=(size, size + shift * frames),
                                              mode='bicubic', align_corners=False).clamp(0, 1)
    return torch.stack([texture[..., shift * (frames - i):shift * (frames - i) + size] for i in range(frames)], 1)


def test_with_spynet_it_is_basicsrs_basicvsr_and_loads_its_weights_strictly():
    torch.manual_seed(0)
    reference = BasicVSR(**SMALL).eval()
    ours = build_network(dict(type='SLBasicVSR', **SMALL)).eval()
    ours.load_state_dict(reference.state_dict(), strict=True)
    lqs = torch.rand(1, 3, 3, 33, 33)
    with torch.no_grad():
        assert torch.equal(ours(lqs), reference(lqs))


def test_with_dis_it_has_no_spynet_parameters_uses_dis_flow_and_learns():
    net = build_network(dict(type='SLBasicVSR', flow_estimator='dis', **SMALL))
    assert isinstance(net.spynet, SLDISFlow)
    assert not [name for name, _ in net.named_parameters() if 'spynet' in name]
    reference = BasicVSR(**SMALL)
    assert (sum(p.numel() for p in reference.parameters()) - sum(p.numel() for p in reference.spynet.parameters())
            == sum(p.numel() for p in net.parameters()))
    lqs = textured_clip(shift=2)
    forward, backward = net.get_flow(lqs)
    # frame i+1 is frame i moved 2 px right: BasicVSR's backward flow (frame i -> i+1) points right
    # (away from the borders, where the texture enters and leaves)
    assert backward[:, :, 0, 6:-6, 6:-6].mean().item() == pytest.approx(2, abs=0.3)
    assert forward[:, :, 0, 6:-6, 6:-6].mean().item() == pytest.approx(-2, abs=0.3)
    assert backward[:, :, 1, 6:-6, 6:-6].abs().mean().item() < 0.3
    out = net(lqs)
    assert out.shape == (1, 3, 3, 96, 96)
    out.mean().backward()
    assert all(p.grad is not None for p in net.parameters())


def test_bad_options_and_too_small_frames_are_one_line_errors():
    with pytest.raises(OptionError, match="flow_estimator must be one of spynet, dis, got 'raft'"):
        SLBasicVSR(flow_estimator='raft', **SMALL)
    with pytest.raises(OptionError, match='flow_estimator dis .* remove spynet_path'):
        SLBasicVSR(flow_estimator='dis', spynet_path='model_zoo/spynet_synthetic_dis.pth', **SMALL)
    net = SLBasicVSR(flow_estimator='dis', **SMALL)
    with pytest.raises(ValueError, match=r'DIS optical flow needs frames of at least 12x12 px, got \(11, 20\)'):
        net(torch.rand(1, 2, 3, 11, 20))
