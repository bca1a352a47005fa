"""The oracle test's measures: Hungarian-matched mask IoU (per clip and per frame) and temporal use."""
import os.path as osp

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


def test_temporal_use_is_zero_for_a_frame_wise_network_and_not_for_a_recurrent_one(tmp_path):
    import torch
    from basicsr.archs import build_network

    from sl_arch.bench.semantics import temporal_use, temporal_use_real
    from sl_arch.data.synthetic import write_synthetic
    root = str(tmp_path / 'synthetic')
    write_synthetic(root, num_train=0, num_val=2, size=(160, 96), num_frames=4, kinds=('BI',))
    gains, real_gains = {}, {}
    for network_g in ({'type': 'SLFrameWise'}, {'type': 'SemanticLens', 'num_feat': 16, 'num_upsample_feat': 8}):
        torch.manual_seed(0)
        net = build_network(dict(network_g))
        for parameter in net.parameters():  # away from the near-identity start, so propagation shows
            parameter.data.add_(torch.randn_like(parameter) * 0.05)
        path = str(tmp_path / f'{network_g["type"]}.pth')
        torch.save({'params': net.state_dict(), 'network_g': network_g}, path)
        use = temporal_use(path, root, with_masks=False)
        gains[network_g['type']] = use['clip all'] - use['alone all']
        assert set(use) >= {'clip objects', 'alone background', 'clip per frame'}
        real = temporal_use_real(path, osp.join(root, 'val', 'BI'), osp.join(root, 'val', 'GT'))
        assert len(real) == 2 and all(10 < value < 60 for pair in real.values() for value in pair)
        real_gains[network_g['type']] = np.mean([whole - alone for whole, alone in real.values()])
    assert abs(gains['SLFrameWise']) < 1e-4  # batched vs one frame: float rounding only
    assert abs(gains['SemanticLens']) > 1e-2, gains
    assert abs(real_gains['SLFrameWise']) < 1e-3 and abs(real_gains['SemanticLens']) > 1e-2, real_gains


def test_temporal_use_reads_the_lr_frames_of_the_degradation_it_is_given(tmp_path):
    import torch
    from basicsr.archs import build_network

    from sl_arch.bench.semantics import temporal_use
    from sl_arch.data.synthetic import write_synthetic
    root = str(tmp_path / 'synthetic')
    write_synthetic(root, num_train=0, num_val=2, size=(160, 96), num_frames=3, kinds=('BI', 'BD'))
    network_g = {'type': 'SLFrameWise'}
    torch.manual_seed(0)
    path = str(tmp_path / 'net.pth')
    torch.save({'params': build_network(dict(network_g)).state_dict(), 'network_g': network_g}, path)
    scores = {kind: temporal_use(path, root, with_masks=False, kind=kind)['alone all'] for kind in ('BI', 'BD')}
    assert scores['BI'] > scores['BD'] + 0.1  # an untrained network: bicubic-like, and BD frames are blurred
