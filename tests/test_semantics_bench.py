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
        use = temporal_use(path, root, with_masks=False, exact_flow=True)
        gains[network_g['type']] = use['clip all'] - use['alone all']
        assert set(use) >= {'clip objects', 'alone background', 'clip per frame'}
        # the whole clip once more, aligned by the exact flow: only for a network that aligns by flow
        assert ('exact all' in use) == (network_g['type'] == 'SemanticLens')
        assert 'exact all' not in use or abs(use['exact all'] - use['clip all']) > 1e-3
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


def test_the_extractor_benchmark_can_read_exact_or_learned_flow_as_four_more_input_channels(tmp_path):
    import numpy as np
    import torch

    from sl_arch.bench import extractor
    from sl_arch.data.synthetic import write_synthetic
    root = str(tmp_path / 'synthetic')
    write_synthetic(root, num_train=1, num_val=2, size=(160, 96), num_frames=4, kinds=('BI',))
    exact = extractor.load_split(root, 'val', 'meta_info_crossing.txt', flow='exact')
    plain = extractor.load_split(root, 'val', 'meta_info_crossing.txt')
    frames, ids = exact[0]
    assert frames.shape == (4, 7, 24, 40) and torch.equal(frames[:, :3], plain[0][0]) and torch.equal(ids, plain[0][1])
    to_next = np.load(tmp_path / 'synthetic' / 'val' / 'flow_fwd' / 'crossing_001' / '00000001.npy')
    assert torch.equal(frames[1, 3:5], torch.from_numpy(to_next).permute(2, 0, 1))
    assert not frames[-1, 3:5].any() and not frames[0, 5:7].any() and frames[1:, 5:7].abs().sum() > 0
    # the pretrained warper's flow, in the same channels: to the next frame, then to the previous one
    from sl_arch.bench.flow import build_warper
    learned = extractor.load_split(root, 'val', 'meta_info_crossing.txt', flow='learned')[0][0]
    warper = build_warper('tiny', load_path=extractor.LEARNED_FLOW).eval()
    with torch.no_grad():
        assert torch.allclose(learned[1:2, 3:5], warper(frames[1:2, :3], frames[2:3, :3]), atol=1e-6)
        assert torch.allclose(learned[1:2, 5:7], warper(frames[1:2, :3], frames[0:1, :3]), atol=1e-6)
    assert not learned[-1, 3:5].any() and not learned[0, 5:7].any() and torch.equal(learned[:, :3], frames[:, :3])
    dis = extractor.load_split(root, 'val', 'meta_info_crossing.txt', flow='dis')[0][0]
    assert dis.shape == frames.shape and torch.equal(dis[:, :3], frames[:, :3]) and dis[:-1, 3:5].abs().sum() > 0
    # with motion channels too: the image difference is added, the flow kept
    assert extractor.with_motion(frames[None]).shape == (1, 4, 10, 24, 40)
    iou_all, iou_objects = extractor.train_and_score(root, iters=2, motion=True, fine_masks=True, num_frame=3,
                                                     flow='exact')
    assert 0 <= iou_objects <= iou_all <= 1


def test_rows_of_another_seed_train_with_it_under_their_own_name(tmp_path):
    from sl_arch.bench import semantics
    row = semantics.variants()['SL_no_semantics']
    for sub in ('train/GT', 'train/BI', 'val/GT', 'val/BI'):
        (tmp_path / sub).mkdir(parents=True)
    common = ['--iters', '5', '--synthetic-root', str(tmp_path), '--demo-root', '']
    name, train_opt, _, checkpoint = semantics.row_options('SL_no_semantics', row, semantics.parse_args(common))
    assert (name, train_opt['manual_seed'], train_opt['train']['total_iter']) == ('sem_SL_no_semantics', 0, 5)
    name, train_opt, test_opt, checkpoint = semantics.row_options(
        'SL_no_semantics', row, semantics.parse_args(common + ['--seed', '1']))
    # seed 1 does not overwrite (or read back) the default seed's run in the same work dir
    assert (name, train_opt['manual_seed'], train_opt['name']) == ('sem_SL_no_semantics_seed1', 1, name)
    assert checkpoint == 'experiments/sem_SL_no_semantics_seed1/models/net_g_latest.pth'
    assert test_opt['path']['pretrain_network_g'] == checkpoint
