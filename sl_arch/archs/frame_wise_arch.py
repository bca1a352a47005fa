"""A single-image SR network applied to every frame of a clip: the single-frame reference of a comparison."""
from torch import nn

from basicsr.archs import build_network
from basicsr.utils.registry import ARCH_REGISTRY
from sl_arch.utils.options import OptionError


@ARCH_REGISTRY.register()
class SLFrameWise(nn.Module):
    """Any BasicSR single-image network (default SRResNet, BasicSR's ``MSRResNet``) frame by frame.

    It sees one frame at a time, so it shows what a video network gains from its neighbours at
    the same parameter count: the reference row of every comparison. Trains and tests through
    ``SLVideoRecurrentModel`` and ``sl-infer`` like the video networks.

    Args:
        network (dict): ``type`` and keyword arguments of the single-image network, e.g.
            ``{type: MSRResNet, num_feat: 48, num_block: 7, upscale: 4}``. Default: that one
            (0.48 M parameters, within 2% of SemanticLens ``PRESETS['tiny']``).
    """

    def __init__(self, network=None):
        super().__init__()
        network = dict(network or {'type': 'MSRResNet', 'num_feat': 48, 'num_block': 7, 'upscale': 4})
        if 'type' not in network:
            raise OptionError('SLFrameWise network needs a type, e.g. {type: MSRResNet, num_feat: 48, num_block: 7}.')
        self.net = build_network(network)

    def forward(self, lqs):
        """
        Args:
            lqs (Tensor): (b, t, c, h, w) LR clip.

        Returns:
            Tensor: (b, t, c_out, scale*h, scale*w), every frame super-resolved on its own.
        """
        b, t = lqs.shape[:2]
        out = self.net(lqs.flatten(0, 1))
        return out.view(b, t, *out.shape[1:])
