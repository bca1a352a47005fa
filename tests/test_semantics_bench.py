"""The oracle test's mask-quality measure: Hungarian-matched IoU, per clip and per frame."""
import numpy as np

from sl_arch.bench.semantics import matched_iou


def test_a_relabelled_perfect_prediction_scores_one_whatever_slots_it_uses():
    true = np.random.default_rng(0).integers(0, 4, (3, 8, 8))
    pred = np.array([5, 2, 7, 0])[true]

    result = matched_iou(pred, true, num_slots=8)

    assert result['all'] == result['objects'] == 1.0
    assert result['match'] == {0: 5, 1: 2, 2: 7, 3: 0}


def test_one_matching_per_clip_punishes_an_instance_that_changes_slot_between_frames():
    true = np.zeros((2, 4, 4), int)
    true[:, :, 2:] = 1
    pred = true.copy()
    pred[1] = 1 - pred[1]  # the two instances swap slots in the second frame

    per_clip = matched_iou(pred, true, num_slots=2)
    per_frame = [matched_iou(pred[t], true[t], num_slots=2)['all'] for t in range(2)]

    assert per_frame == [1.0, 1.0]
    assert per_clip['all'] == 1 / 3  # each instance overlaps its clip-level slot in one frame of two


def test_instances_beyond_the_number_of_slots_count_as_missed():
    true = np.arange(3).repeat(4).reshape(3, 4)
    pred = np.zeros_like(true)

    result = matched_iou(pred, true, num_slots=1)

    assert result['all'] == 1 / 9  # 1/3 IoU for the matched instance, 0 for the two others
