"""Pieces of exact resume: the sampler's order and mid-epoch start, draw-seeded items, generator states."""
import random

import numpy as np
import torch
from basicsr.data.data_sampler import EnlargedSampler

from sl_arch.data.sl_video_recurrent_dataset import SLVideoRecurrentDataset
from sl_arch.utils.resume import ResumableSampler, position_in_epoch, restore_rng_state, rng_state
from tests.conftest import write_clips


class Plain(torch.utils.data.Dataset):
    def __len__(self):
        return 10


class Drawn(Plain):
    takes_draw_numbers = True


def test_the_sampler_keeps_basicsr_order_and_starts_the_resumed_epoch_at_the_given_sample():
    ours, basicsr = ResumableSampler(Plain(), 2, 1, ratio=3), EnlargedSampler(Plain(), 2, 1, ratio=3)
    for epoch in (0, 4):
        ours.set_epoch(epoch)
        basicsr.set_epoch(epoch)
        assert list(ours) == list(basicsr)
    expected = list(ours)
    ours.start_at(4, 6)

    assert list(ours) == expected[6:]
    ours.set_epoch(5)
    assert len(list(ours)) == len(ours) == 15


def test_draw_numbers_are_unique_over_epochs_and_ranks_and_carry_the_basicsr_index():
    draws, indices = [], []
    for rank in (0, 1):
        sampler, plain = ResumableSampler(Drawn(), 2, rank, ratio=2), EnlargedSampler(Plain(), 2, rank, ratio=2)
        for epoch in range(3):
            sampler.set_epoch(epoch)
            plain.set_epoch(epoch)
            pairs = list(sampler)
            assert [index for index, _ in pairs] == list(plain)
            draws += [draw for _, draw in pairs]
    assert len(draws) == len(set(draws)) == 3 * 2 * 10


def test_an_item_with_a_draw_number_does_not_depend_on_or_move_the_global_generator(tmp_path):
    gt_root, lq_root = write_clips(tmp_path)
    dataset = SLVideoRecurrentDataset({'dataroot_gt': gt_root, 'dataroot_lq': lq_root, 'num_frame': 3, 'gt_size': 32,
                                       'interval_list': [1, 2], 'random_reverse': True, 'use_hflip': True,
                                       'use_rot': True})
    random.seed(1)
    before = random.getstate()
    first = dataset[(3, 17)]
    assert random.getstate() == before
    random.seed(2)
    second = dataset[(3, 17)]
    others = [dataset[(3, draw)] for draw in range(18, 26)]

    assert torch.equal(first['lq'], second['lq']) and torch.equal(first['gt'], second['gt'])
    assert first['key'] == second['key']
    assert any(not torch.equal(first['lq'], other['lq']) for other in others)


def test_generator_states_round_trip():
    state = rng_state()
    expected = (random.random(), np.random.rand(), torch.rand(1))
    restore_rng_state(state)

    assert (random.random(), np.random.rand()) == expected[:2] and torch.equal(torch.rand(1), expected[2])


def test_the_position_in_the_epoch_follows_basicsr_epochs_and_refuses_what_does_not_fit():
    assert position_in_epoch(0, 4, 6) == 4
    assert position_in_epoch(1, 8, 6) == 2
    assert position_in_epoch(1, 12, 6) == 6
    assert position_in_epoch(2, 8, 6) is None
    assert position_in_epoch(0, 7, 6) is None
