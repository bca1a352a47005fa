"""SLFrameWise: a single-image network frame by frame, the equal-size single-frame reference."""
import pytest
import torch

from basicsr.archs import build_network
from sl_arch.archs.semantic_lens_arch import PRESETS
from sl_arch.utils.errors import SLError


def count(net):
    return sum(param.numel() for param in net.parameters())


def test_the_default_has_the_parameter_count_of_semantic_lens_tiny_and_sees_each_frame_alone():
    torch.manual_seed(0)
    net = build_network({'type': 'SLFrameWise'}).eval()
    tiny = build_network(dict(PRESETS['tiny'], type='SemanticLens'))
    clip = torch.rand(2, 3, 3, 12, 16)
    other = clip.clone()
    other[:, 0] = torch.rand(2, 3, 12, 16)

    with torch.no_grad():
        out, out_other = net(clip), net(other)

    assert abs(count(net) - count(tiny)) / count(tiny) < 0.03
    assert out.shape == (2, 3, 3, 48, 64)
    assert torch.equal(out[:, 1:], out_other[:, 1:]) and not torch.equal(out[:, 0], out_other[:, 0])


def test_a_network_without_type_is_one_clear_error():
    with pytest.raises(SLError, match='SLFrameWise network needs a type'):
        build_network({'type': 'SLFrameWise', 'network': {'num_feat': 8}})
