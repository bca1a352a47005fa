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
    scores = extractor.train_and_score(root, iters=2, motion=True, fine_masks=True, num_frame=3, flow='exact')
    assert 0 <= scores['clip_objects'] <= scores['clip_all'] <= 1 and 0 <= scores['foreground'] <= 1
    # block matching as flow, camera-compensated differences and a cost volume append their channels
    both = extractor.load_split(root, 'val', 'meta_info_crossing.txt', flow='blocks', camera='learned', costs=1)[0][0]
    assert both.shape == (4, 3 + 4 + 6 + 2 * 9, 24, 40) and torch.equal(both[:, :3], frames[:, :3])
    from sl_arch.bench.flow import block_matching_flow
    assert torch.equal(both[:-1, 3:5], block_matching_flow(frames[:-1, :3], frames[1:, :3]))
    camera = extractor.camera_flows(extractor.estimated_flows(warper, frames[:, :3]))
    assert torch.allclose(both[:, 7:13], extractor.compensated_differences(frames[:, :3], camera), atol=1e-6)


def test_block_matching_finds_a_whole_pixel_shift_and_the_camera_fit_ignores_a_moving_object():
    import torch

    from sl_arch.bench import extractor
    from sl_arch.bench.flow import block_matching_flow
    first = torch.rand(1, 3, 32, 48, generator=torch.Generator().manual_seed(0))
    second = torch.roll(first, shifts=(-1, 2), dims=(2, 3))  # content moves 2 px right, 1 px up
    inner = (slice(None), slice(None), slice(6, -6), slice(6, -6))
    assert (block_matching_flow(first, second)[inner] == torch.tensor([2.0, -1.0]).view(1, 2, 1, 1)).all()
    assert (block_matching_flow(second, first)[inner] == torch.tensor([-2.0, 1.0]).view(1, 2, 1, 1)).all()
    # in a clip: to the next frame, then to the previous; none for the last frame's next, the first's previous
    flows = extractor.estimated_flows(block_matching_flow, torch.cat([first, second]))
    assert not flows[1, :2].any() and not flows[0, 2:].any()
    # warped by that flow, each frame's neighbour matches it away from the border
    differences = extractor.compensated_differences(torch.cat([first, second]), flows)
    assert differences[inner].abs().max() < 1e-5
    # a zooming camera with an object moving against it: the robust fit returns the camera's motion
    h, w = 24, 40
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing='ij')
    camera = torch.stack([0.02 * (xs - w / 2) + 0.5, 0.02 * (ys - h / 2) - 0.3])
    seen = camera.clone()
    seen[:, 8:14, 10:16] = torch.tensor([3.0, -2.0]).view(2, 1, 1)  # the object
    fitted = extractor.camera_flows(torch.cat([seen, -seen])[None])
    assert (fitted[0, :2] - camera).abs().max() < 0.05 and (fitted[0, 2:] + camera).abs().max() < 0.05


def test_clip_mask_scores_tell_finding_the_objects_from_keeping_their_identity():
    from sl_arch.bench.semantics import clip_mask_scores
    true = np.zeros((2, 6, 6), int)
    true[:, 1:3, 1:3] = 1
    pred = np.where(true > 0, 1, 0)
    pred[1][true[1] > 0] = 2  # found in both frames, in another slot in the second

    scores = clip_mask_scores(pred, true, num_slots=3)

    assert scores['foreground'] == 1.0 and scores['frame_objects'] == 1.0
    assert scores['clip_objects'] == 0.5  # one matching for the clip: the object keeps slot 1 in one frame of two
    missed = clip_mask_scores(np.zeros_like(true), true, num_slots=3)
    assert missed['foreground'] == 0.0 and missed['clip_objects'] == 0.0


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


def test_the_report_gives_each_learned_mask_clip_and_the_mean_of_every_score():
    from sl_arch.bench.semantics import clip_mask_scores, markdown_report
    true = np.zeros((2, 6, 6), int)
    true[:, 1:3, 1:3] = 1
    # all pixels in the background slot: the background's IoU is 64 / 72, the object's 0
    quality = {'SL_learned': {'crossing_001': clip_mask_scores(true, true, 4),
                              'crossing_003': clip_mask_scores(np.zeros_like(true), true, 4)}}
    info = {'command': 'python -m sl_arch.bench.semantics', 'wall_minutes': 1.0, 'started': 'now',
            'budget': {'total_iter': 2, 'batch_size': 1, 'num_frame': 3, 'gt_size': 64, 'seed': 0}}

    report = markdown_report([{'key': 'SL_learned', 'label': 'learned masks'}], quality, info)

    assert '| learned masks | crossing_001 | 2 | 2 | 1.000 | 1.000 | 1.000 | 1.000 | 1.000 |' in report
    assert '| learned masks | crossing_003 | 2 | 1 | 0.444 | 0.000 | 0.444 | 0.000 | 0.000 |' in report
    assert '| **learned masks** | **mean** | | | **0.722** | **0.500** | **0.722** | **0.500** | **0.500** |' in report


def test_the_extractor_benchmark_refuses_bad_numbers_and_a_missing_root_in_one_line(tmp_path, capsys):
    import pytest

    from sl_arch.bench import extractor
    for argv, fragment in ((['--costs', '-1'], '--costs -1: give a radius'),
                           (['--iters', '-3'], '--iters -3: give a number of training iterations'),
                           (['--dim', '3'], '--dim 3: the width must be an even number'),
                           (['--seed', '-1'], '--seed -1: give a seed from 0'),
                           (['--root', str(tmp_path / 'none')], 'holds no synthetic clips')):
        with pytest.raises(SystemExit) as stop:
            extractor.main(argv)
        assert stop.value.code == 2 and fragment in capsys.readouterr().err
