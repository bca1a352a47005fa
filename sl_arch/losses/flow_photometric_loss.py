"""Self-supervision of the flow warper during SR training: the photometric loss of unsupervised flow.

The flows SemanticLens estimates between neighbouring LR frames (``return_aux``) must explain the
frames: frame i+1 warped by the backward flow should look like frame i, and frame i warped by the
forward flow like frame i+1 (the photometric term of unsupervised optical flow, as UnFlow and
ARFlow train; robust Charbonnier penalty, pixels whose flow leaves the frame left out), while the
flow stays smooth except at image edges (first-order edge-aware smoothness). The SR loss alone
trains the flow only as far as aligned features lower the SR error; this term gives it a direct
signal on every video, labels or not.

Registered in BasicSR's ``LOSS_REGISTRY``; switched on by ``train.flow_photometric_opt`` in an option
file (``SLVideoRecurrentModel``).
"""
import torch
from basicsr.archs.arch_util import flow_warp
from basicsr.utils.registry import LOSS_REGISTRY
from torch import nn

_EPS = 1e-3


def _valid(flow):
    """(n, 1, h, w) 1 where ``flow`` (n, 2, h, w) points inside the frame, else 0."""
    n, _, h, w = flow.shape
    ys, xs = torch.meshgrid(torch.arange(h, device=flow.device, dtype=flow.dtype),
                            torch.arange(w, device=flow.device, dtype=flow.dtype), indexing='ij')
    x, y = xs + flow[:, 0], ys + flow[:, 1]
    return ((x >= 0) & (x <= w - 1) & (y >= 0) & (y <= h - 1)).unsqueeze(1).to(flow.dtype)


def photometric_error(target, source, flow):
    """Mean Charbonnier error of ``source`` warped by ``flow`` against ``target`` over the pixels it reaches.

    Args:
        target, source (Tensor): (n, c, h, w) frames.
        flow (Tensor): (n, 2, h, w) flow in pixels (x, y) from ``target`` to ``source``.

    Returns:
        Tensor: scalar.
    """
    warped = flow_warp(source, flow.permute(0, 2, 3, 1), padding_mode='border')
    valid = _valid(flow.detach())
    error = torch.sqrt((warped - target) ** 2 + _EPS ** 2).mean(1, keepdim=True)
    return (error * valid).sum() / valid.sum().clamp_min(1.0)


def edge_aware_smoothness(flow, image, alpha=10.0):
    """Mean first-order flow gradient, down-weighted where ``image`` has an edge.

    Args:
        flow (Tensor): (n, 2, h, w). image (Tensor): (n, c, h, w) in [0, 1].
    """
    def gradients(tensor):
        return tensor[..., :, 1:] - tensor[..., :, :-1], tensor[..., 1:, :] - tensor[..., :-1, :]

    flow_dx, flow_dy = gradients(flow)
    image_dx, image_dy = gradients(image)
    weight_x = torch.exp(-alpha * image_dx.abs().mean(1, keepdim=True))
    weight_y = torch.exp(-alpha * image_dy.abs().mean(1, keepdim=True))
    return (weight_x * flow_dx.abs()).mean() + (weight_y * flow_dy.abs()).mean()


@LOSS_REGISTRY.register()
class SLPhotometricFlowLoss(nn.Module):
    """Photometric and smoothness loss of the network's own flows between neighbouring LR frames.

    Args:
        loss_weight (float): Weight of the photometric term (both directions averaged). Default: 0.05.
        smooth_weight (float): Weight of the edge-aware smoothness term. Default: 0.01.
    """

    def __init__(self, loss_weight=0.05, smooth_weight=0.01):
        super().__init__()
        self.loss_weight = loss_weight
        self.smooth_weight = smooth_weight

    def forward(self, lqs, flows_backward, flows_forward):
        """
        Args:
            lqs (Tensor): (b, t, c, h, w) the LR clip.
            flows_backward (Tensor): (b, t - 1, 2, h, w), flow i -> i+1 that aligns frame i+1 to frame i.
            flows_forward (Tensor): (b, t - 1, 2, h, w), flow i+1 -> i that aligns frame i to frame i+1.

        Returns:
            Tensor: scalar loss.
        """
        current, following = lqs[:, :-1].flatten(0, 1), lqs[:, 1:].flatten(0, 1)
        backward, forward = flows_backward.flatten(0, 1), flows_forward.flatten(0, 1)
        photometric = 0.5 * (photometric_error(current, following, backward)
                             + photometric_error(following, current, forward))
        smoothness = 0.5 * (edge_aware_smoothness(backward, current) + edge_aware_smoothness(forward, following))
        return self.loss_weight * photometric + self.smooth_weight * smoothness
