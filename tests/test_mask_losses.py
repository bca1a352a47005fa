"""Instance-mask losses: Hungarian-matched supervision, flow consistency and slot balance, in training."""

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from basicsr.data import build_dataloader, build_dataset
from basicsr.models import build_model
from basicsr.utils.registry import LOSS_REGISTRY
from sl_arch.losses.instance_mask_loss import SLInstanceMaskLoss, SLMaskConsistencyLoss
from sl_arch.utils.errors import SLError
from tests.conftest import mask_options


def one_hot_masks(ids, slots, num_slots, sharpness=0.999):
    masks = F.one_hot(torch.as_tensor(slots)[ids], num_slots).permute(0, 1, 4, 2, 3).float()
    return masks * sharpness + (1 - sharpness) / num_slots


def test_the_supervised_loss_is_the_same_for_any_slot_order_and_lowest_for_the_right_masks():
    torch.manual_seed(0)
    ids = torch.randint(0, 3, (2, 4, 8, 8))
    loss = LOSS_REGISTRY.get('SLInstanceMaskLoss')(loss_weight=1.0)

    right = [loss(one_hot_masks(ids, slots, 5), ids).item() for slots in ([0, 1, 2], [4, 2, 0], [3, 0, 1])]
    wrong = loss(one_hot_masks(torch.roll(ids, 3, dims=-1), [0, 1, 2], 5), ids).item()
    random_masks = torch.randn(2, 4, 5, 8, 8).softmax(2)

    assert max(right) < 0.01 and max(right) - min(right) < 1e-6
    assert wrong > 1 and loss(random_masks, ids).item() > 1


def test_the_supervised_loss_keeps_one_slot_per_instance_through_the_clip():
    ids = torch.zeros(1, 2, 4, 4, dtype=torch.long)
    ids[..., 2:] = 1
    swapped = one_hot_masks(ids, [0, 1], 2)
    swapped[:, 1] = swapped[:, 1].flip(1)  # the instances change slots in the second frame

    assert SLInstanceMaskLoss(1.0)(swapped, ids) > SLInstanceMaskLoss(1.0)(one_hot_masks(ids, [0, 1], 2), ids) + 1


def test_consistency_is_zero_for_masks_that_move_with_the_flow_and_balance_is_zero_for_equal_usage():
    ids = torch.zeros(1, 1, 8, 8, dtype=torch.long)
    ids[..., :, 4:] = 1
    first = one_hot_masks(ids, [0, 1], 2, sharpness=1.0)
    following = torch.roll(first, 1, dims=-1)  # moved one pixel right
    masks = torch.cat([first, following], 1)
    flow = torch.zeros(1, 1, 2, 8, 8)
    flow[:, :, 0] = 1.0  # frame 1 seen from frame 0: one pixel to the right
    loss = SLMaskConsistencyLoss(loss_weight=1.0, balance_weight=1.0, sharpness_weight=1.0)

    interior = loss(masks[..., 2:-1], flow[..., 2:-1])  # columns where both slots cover half of the pixels
    unaligned = loss(masks, None)

    assert interior.item() < 1e-6  # equal usage of both slots, and the flow explains the motion
    assert unaligned.item() > 0.1
    collapsed = torch.zeros(1, 2, 2, 8, 8)
    collapsed[:, :, 0] = 1
    assert loss(collapsed, None).item() == pytest.approx(np.log(2), abs=1e-4)  # one slot for everything
    assert loss(torch.full((1, 2, 2, 8, 8), 0.5), None).item() == pytest.approx(1.0, abs=1e-4)  # no slot at all


def test_training_with_mask_losses_uses_the_dataset_masks_as_targets_and_trains_the_extractor(tmp_path):
    opt = mask_options(tmp_path, mask_opt={'type': 'SLInstanceMaskLoss', 'loss_weight': 1.0},
                       mask_consistency_opt={'type': 'SLMaskConsistencyLoss'})
    model = build_model(opt)
    batch = next(iter(build_dataloader(build_dataset(opt['datasets']['train']), opt['datasets']['train'], num_gpu=0)))
    calls = []
    forward = model.net_g.forward
    model.net_g.forward = lambda *args, **kwargs: calls.append(kwargs) or forward(*args, **kwargs)

    model.feed_data(batch)
    model.optimize_parameters(1)

    assert calls == [{'return_aux': True}]  # no masks fed in: they are the loss's targets
    assert model.log_dict['l_mask'] > 0 and model.log_dict['l_mask_consistency'] > 0


def test_mask_supervision_without_instance_ids_is_one_clear_error(tmp_path):
    opt = mask_options(tmp_path, mask_opt={'type': 'SLInstanceMaskLoss'})
    del opt['datasets']['train']['semantics_root']
    model = build_model(opt)
    batch = next(iter(build_dataloader(build_dataset(opt['datasets']['train']), opt['datasets']['train'], num_gpu=0)))

    model.feed_data(batch)
    with pytest.raises(SLError, match='train.mask_opt needs ground-truth instance ids: set semantics_root'):
        model.optimize_parameters(1)
