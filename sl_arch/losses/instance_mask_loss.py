"""Signals for the Semantic Extractor's instance masks besides the SR loss.

* :class:`SLInstanceMaskLoss`: supervised where ground-truth instances exist. The true instances
  of a clip are matched to the predicted mask slots by the Hungarian algorithm (one matching for
  the whole clip, so an instance must keep its slot through time), as VITA and Mask2Former train
  their masks; then per-pixel cross-entropy to the matched slot plus a dice term per instance.
* :class:`SLMaskConsistencyLoss`: self-supervised on any video. The masks of frame t+1 warped by
  the network's own flow must agree with the masks of frame t; the slots' average usage over a
  batch is pushed towards uniform so that the masks cannot collapse into one or two slots, and
  each pixel's distribution towards one slot, so that they cannot dissolve into the uniform
  distribution (which satisfies the first two terms, and did in a 300-iteration run without it).

Both are registered in BasicSR's ``LOSS_REGISTRY`` and switched on by ``train.mask_opt`` /
``train.mask_consistency_opt`` in an option file (``SLVideoRecurrentModel``).
"""
import math

import torch
from torch import nn
from torch.nn import functional as F

from basicsr.archs.arch_util import flow_warp
from basicsr.utils.registry import LOSS_REGISTRY

_EPS = 1e-6


def match_instances(probs, ids):
    """Hungarian matching of the true instances of one clip to predicted slots.

    Args:
        probs (Tensor): (t, n, h, w) predicted distribution over ``n`` slots per pixel.
        ids (Tensor): (t, h, w) int64 true instance ids.

    Returns:
        tuple[Tensor, Tensor]: true ids and their matched slots (at most ``n`` pairs; instances beyond
        ``n`` stay unmatched).
    """
    from scipy.optimize import linear_sum_assignment
    true_ids = ids.unique()
    with torch.no_grad():
        targets = (ids.unsqueeze(0) == true_ids.view(-1, 1, 1, 1)).flatten(1).float()  # (k, t*h*w)
        flat = probs.permute(1, 0, 2, 3).flatten(1).float()  # (n, t*h*w)
        log_p = flat.clamp_min(_EPS).log()
        log_not_p = (1 - flat).clamp_min(_EPS).log()
        pixels = targets.size(1)
        cross_entropy = -(targets @ log_p.T + (1 - targets) @ log_not_p.T) / pixels  # (k, n)
        dice = 1 - (2 * targets @ flat.T + 1) / (targets.sum(1, keepdim=True) + flat.sum(1)[None] + 1)
        rows, cols = linear_sum_assignment((cross_entropy + dice).cpu().numpy())
    return true_ids[torch.as_tensor(rows, device=ids.device)], torch.as_tensor(cols, device=ids.device)


@LOSS_REGISTRY.register()
class SLInstanceMaskLoss(nn.Module):
    """Permutation-invariant instance-mask loss against ground-truth instance ids.

    Args:
        loss_weight (float): Weight of the whole loss. Default: 0.1.
        dice_weight (float): Weight of the dice term relative to the cross-entropy. Default: 1.0.
    """

    def __init__(self, loss_weight=0.1, dice_weight=1.0):
        super().__init__()
        self.loss_weight = loss_weight
        self.dice_weight = dice_weight

    def forward(self, masks, ids):
        """
        Args:
            masks (Tensor): (b, t, n, h, w) predicted masks, a distribution over n slots per pixel.
            ids (Tensor): (b, t, h, w) int64 true instance ids (any integers; 0 may be the background).

        Returns:
            Tensor: scalar loss.
        """
        losses = []
        for probs, clip_ids in zip(masks, ids):
            true_ids, slots = match_instances(probs, clip_ids)
            slot_of_pixel = torch.full_like(clip_ids, -100)  # unmatched instances are ignored
            for true_id, slot in zip(true_ids, slots):
                slot_of_pixel[clip_ids == true_id] = slot
            log_probs = probs.clamp_min(_EPS).log()  # (t, n, h, w)
            cross_entropy = F.nll_loss(log_probs, slot_of_pixel, ignore_index=-100)
            chosen = probs[:, slots]  # (t, k, h, w)
            targets = (clip_ids.unsqueeze(1) == true_ids.view(1, -1, 1, 1)).float()
            dims = (0, 2, 3)
            dice = 1 - (2 * (chosen * targets).sum(dims) + 1) / (chosen.sum(dims) + targets.sum(dims) + 1)
            losses.append(cross_entropy + self.dice_weight * dice.mean())
        return self.loss_weight * torch.stack(losses).mean()


@LOSS_REGISTRY.register()
class SLMaskConsistencyLoss(nn.Module):
    """Self-supervised mask signal: temporal consistency along the flow, and balanced slot usage.

    Args:
        loss_weight (float): Weight of the consistency term. Default: 0.1.
        balance_weight (float): Weight of the balance term, ``log(n) - H(mean slot usage)`` (0 when
            every slot covers the same share of the batch's pixels). Default: 0.01.
        sharpness_weight (float): Weight of the mean per-pixel entropy ``H(M(x)) / log(n)`` (0 for
            one-hot masks, 1 for uniform ones). Default: 0.01.
    """

    def __init__(self, loss_weight=0.1, balance_weight=0.01, sharpness_weight=0.01):
        super().__init__()
        self.loss_weight = loss_weight
        self.balance_weight = balance_weight
        self.sharpness_weight = sharpness_weight

    def forward(self, masks, flows_backward=None):
        """
        Args:
            masks (Tensor): (b, t, n, h, w) predicted masks.
            flows_backward (Tensor | None): (b, t - 1, 2, h, w) flows that align frame i+1 to frame i
                (SemanticLens' own, detached here); None: masks of neighbours are compared in place.

        Returns:
            Tensor: scalar loss.
        """
        b, t, n, h, w = masks.shape
        loss = masks.new_zeros(())
        if t > 1:
            following = masks[:, 1:].flatten(0, 1)
            if flows_backward is not None:
                grid = flows_backward.detach().flatten(0, 1).permute(0, 2, 3, 1)
                following = flow_warp(following, grid, padding_mode='border')
            loss = self.loss_weight * (following - masks[:, :-1].flatten(0, 1)).abs().sum(1).mean()
        usage = masks.mean(dim=(0, 1, 3, 4))  # (n,)
        usage_entropy = -(usage * usage.clamp_min(_EPS).log()).sum()
        pixel_entropy = -(masks * masks.clamp_min(_EPS).log()).sum(2).mean() / math.log(n)
        return loss + self.balance_weight * (math.log(n) - usage_entropy) + self.sharpness_weight * pixel_entropy
