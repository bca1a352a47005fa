"""``python -m sl_arch.bench.semantics``: do instance semantics help? The oracle test.

On the synthetic clips of :mod:`sl_arch.data.synthetic` (real photographs, ground-truth instances
and motion), every model is trained with ``sl-train`` from one template (same data, iterations,
batch, patch, seed, optimizer, schedule; :func:`sl_arch.bench.options.train_options`) and tested
with ``sl-test`` on the held-out clips of each motion regime (``pan``, ``crossing``) and on the
held-out real demo frames:

* SemanticLens fed the ground-truth instance masks (train and test: the oracle), with the learned
  extractor's tokens or with ``SLPrecomputedSemantics`` (tokens pooled under the given masks);
* SemanticLens with its learned masks, from the SR loss alone, with the supervised
  ``SLInstanceMaskLoss`` (ground truth as targets, not inputs) and with the self-supervised
  ``SLMaskConsistencyLoss``;
* SemanticLens without its semantic branch;
* a single-frame network of equal parameter count (``SLFrameWise``, SRResNet).

BasicVSR is not a row: its SPyNet needs LR frames of at least 64 px, and the synthetic clips'
LR frames (40x24) and training patches (24x24) are smaller; ``sl-bench`` compares it.

Then the learned masks are compared with the ground truth on the held-out crossing clips: mean
IoU after Hungarian matching of predicted slots to true instances, once per clip (an instance must
keep its slot through the clip) and once per frame (the best any per-frame labelling could do).
Writes ``results/semantics/`` (``report.md``, ``results.json``, ``masks_<model>.png``); option files,
logs and checkpoints go to ``experiments/semantics/``; rows whose options did not change since a
finished run are read back instead of trained again.
"""
import argparse
import concurrent.futures
import json
import os
import os.path as osp
import sys
import time

import cv2
import numpy as np
import yaml

from sl_arch.bench import options as bench_options
from sl_arch.bench.common import check_seed, named_list, print_rows, unknown_rows
from sl_arch.bench.report import check_report_folder
from sl_arch.bench.runs import WORK_DIR_ENTRIES, final_checkpoint, run_command, train_then_test
from sl_arch.utils.errors import SLError, check_at_least, cli_entry
from sl_arch.utils.files import check_work_folder, write_json, write_text

SYNTHETIC_ROOT = 'datasets/synthetic'
DEMO_ROOT = 'datasets/demo_bbb'
#: Logs of the data this bench makes when it is missing (sl-prepare's output), in ``--work-dir``.
PREPARE_LOGS = ('prepare_synthetic.out', 'prepare_demo.out')
BUDGET = dict(total_iter=300, batch_size=2, num_frame=7, gt_size=96, lr=1e-3, eta_min=1e-5, fix_flow_fraction=0,
              flow_lr_mul=0.25, seed=0)


#: Pretrained flow of the tiny warper (model_zoo/README.md): rows ending ``_pf`` / ``_motion`` start from it.
PRETRAINED_FLOW = 'model_zoo/slflow_tiny_synthetic_dis.pth'
MASK_LOSS = {'type': 'SLInstanceMaskLoss', 'loss_weight': 0.1}
MASK_CONSISTENCY = {'type': 'SLMaskConsistencyLoss', 'loss_weight': 0.1, 'balance_weight': 0.01,
                    'sharpness_weight': 0.01}


def variants():
    """Rows of the oracle test: key -> label, ``network_g``, ``masks`` (``'input'``: the ground truth is
    fed to the network, ``'target'``: it supervises the learned masks, None: unused), ``exact_flow`` (the
    clips' exact flow replaces the network's estimate, in training and test) and extra ``train`` options."""
    tiny = bench_options.semantic_lens_options('tiny')
    pooled = dict(tiny, semantic_extractor={'type': 'SLPrecomputedSemantics'})
    no_semantics = bench_options.semantic_lens_options('tiny', {'use_semantics': False})
    flow = osp.abspath(PRETRAINED_FLOW)
    return {
        'SL_gt_masks': dict(label='SemanticLens, ground-truth masks (oracle)', network_g=tiny, masks='input'),
        'SL_gt_masks_pooled': dict(label='SemanticLens, ground-truth masks, tokens pooled under them (oracle)',
                                   network_g=dict(tiny, semantic_extractor={'type': 'SLPrecomputedSemantics'}),
                                   masks='input'),
        'SL_gt_masks_gate': dict(label='SemanticLens, ground-truth masks + mask gate (oracle)',
                                 network_g=dict(tiny, use_mask_gate=True), masks='input'),
        'SL_learned': dict(label='SemanticLens, learned masks (SR loss only)', network_g=tiny),
        'SL_learned_gate': dict(label='SemanticLens, learned masks + mask gate',
                                network_g=dict(tiny, use_mask_gate=True)),
        'SL_mask_supervised': dict(label='SemanticLens, learned masks + SLInstanceMaskLoss', network_g=tiny,
                                   masks='target', train={'mask_opt': MASK_LOSS}),
        'SL_mask_selfsup': dict(label='SemanticLens, learned masks + SLMaskConsistencyLoss', network_g=tiny,
                                train={'mask_consistency_opt': MASK_CONSISTENCY}),
        'SL_no_semantics': dict(label='SemanticLens w/o semantic branch',
                                network_g=no_semantics),
        'single_frame': dict(label='single-frame SRResNet, equal size', network_g={'type': 'SLFrameWise'}),
        # the same questions with the flow warper starting pretrained, and instance-centric motion
        'SL_no_semantics_pf': dict(label='SemanticLens w/o semantic branch, pretrained flow',
                                   network_g=dict(no_semantics, flow_load_path=flow)),
        'SL_gt_masks_pf': dict(label='SemanticLens, ground-truth masks, tokens pooled (oracle), pretrained flow',
                               network_g=dict(pooled, flow_load_path=flow), masks='input'),
        'SL_gt_masks_motion': dict(label='SemanticLens, ground-truth masks, tokens pooled + instance motion (oracle), '
                                   'pretrained flow', network_g=dict(pooled, flow_load_path=flow, instance_motion=True),
                                   masks='input'),
        'SL_learned_motion': dict(label='SemanticLens, learned masks + instance motion, pretrained flow',
                                  network_g=dict(tiny, flow_load_path=flow, instance_motion=True)),
        # the neighbours' pixels warped onto each frame and read by its feature extractor (neighbour_input):
        # with instance motion, each object of a neighbour is read back at its own new position
        'SL_no_semantics_nb': dict(label='SemanticLens w/o semantic branch, pretrained flow, aligned neighbours in',
                                   network_g=dict(no_semantics, neighbour_input=True, flow_load_path=flow)),
        'SL_gt_masks_motion_nb': dict(label='SemanticLens, ground-truth masks, tokens pooled + instance motion '
                                      '(oracle), pretrained flow, aligned neighbours in',
                                      network_g=dict(pooled, flow_load_path=flow, instance_motion=True,
                                                     neighbour_input=True), masks='input'),
        # the ceiling of any alignment: the clips' exact flow (an oracle), with the flow-frozen rows to compare
        'SL_no_semantics_exact': dict(label='SemanticLens w/o semantic branch, exact flow (oracle)',
                                      network_g=no_semantics, exact_flow=True),
        'SL_gt_masks_exact': dict(label='SemanticLens, ground-truth masks, tokens pooled (oracle), exact flow (oracle)',
                                  network_g=pooled, masks='input', exact_flow=True),
        'SL_no_semantics_frozen': dict(label='SemanticLens w/o semantic branch, pretrained flow frozen',
                                       network_g=dict(no_semantics, flow_load_path=flow),
                                       train=dict(bench_options.FROZEN_FLOW)),
        'SL_motion_only': dict(label='SemanticLens w/o semantic branch, pretrained flow + instance motion of the '
                               'ground-truth masks (oracle)',
                               network_g=dict(no_semantics, flow_load_path=flow, instance_motion=True), masks='input'),
        'SL_gt_masks_motion_frozen': dict(label='SemanticLens, ground-truth masks, tokens pooled + instance motion '
                                          '(oracle), pretrained flow frozen',
                                          network_g=dict(pooled, flow_load_path=flow, instance_motion=True),
                                          masks='input', train=dict(bench_options.FROZEN_FLOW)),
        # the true instances on a warper that stays a flow (frozen), and what else they know: which propagated
        # pixels belong to another instance after the warp (occlusion, crossing; use_mask_gate suppresses them)
        'SL_motion_only_frozen': dict(label='SemanticLens w/o semantic branch, pretrained flow frozen + instance '
                                      'motion of the ground-truth masks (oracle)',
                                      network_g=dict(no_semantics, flow_load_path=flow, instance_motion=True),
                                      masks='input', train=dict(bench_options.FROZEN_FLOW)),
        'SL_motion_gate_frozen': dict(label='SemanticLens w/o semantic branch, pretrained flow frozen + instance '
                                      'motion and mask gate of the ground-truth masks (oracle)',
                                      network_g=dict(no_semantics, flow_load_path=flow, instance_motion=True,
                                                     use_mask_gate=True),
                                      masks='input', train=dict(bench_options.FROZEN_FLOW)),
        'SL_exact_gate': dict(label='SemanticLens w/o semantic branch, exact flow (oracle) + mask gate of the '
                              'ground-truth masks (oracle)',
                              network_g=dict(no_semantics, use_mask_gate=True), masks='input', exact_flow=True),
        # a learned gate on the warp's photometric error and flow inconsistency (align_gate) cuts what any
        # motion, instance motion included, gets wrong: occlusion without the masks' say
        'SL_frozen_align_gate': dict(label='SemanticLens w/o semantic branch, pretrained flow frozen + align gate',
                                     network_g=dict(no_semantics, flow_load_path=flow, align_gate=True),
                                     train=dict(bench_options.FROZEN_FLOW)),
        'SL_motion_align_gate_frozen': dict(label='SemanticLens w/o semantic branch, pretrained flow frozen + '
                                            'instance motion of the ground-truth masks (oracle) + align gate',
                                            network_g=dict(no_semantics, flow_load_path=flow, instance_motion=True,
                                                           align_gate=True),
                                            masks='input', train=dict(bench_options.FROZEN_FLOW)),
        # the best pixel flow we have on these clips without learning (OpenCV DIS: 0.03 px on pans, 1.4 px on
        # the objects against the warper's 0.20 / 2.0), and the true instances' motion on top of it
        'SL_no_semantics_dis': dict(label='SemanticLens w/o semantic branch, DIS flow',
                                    network_g=dict(no_semantics, flow_estimator='dis')),
        'SL_motion_only_dis': dict(label='SemanticLens w/o semantic branch, DIS flow + instance motion of the '
                                   'ground-truth masks (oracle)',
                                   network_g=dict(no_semantics, flow_estimator='dis', instance_motion=True),
                                   masks='input'),
        'SL_dis_gate': dict(label='SemanticLens w/o semantic branch, DIS flow + mask gate of the ground-truth masks '
                            '(oracle)', network_g=dict(no_semantics, flow_estimator='dis', use_mask_gate=True),
                            masks='input'),
        # the same cut without masks, from where the DIS flow fails (warp error, forward-backward inconsistency):
        # learned (align_gate), or kept at its start, a fixed occlusion test
        'SL_dis_align_gate': dict(label='SemanticLens w/o semantic branch, DIS flow + align gate',
                                  network_g=dict(no_semantics, flow_estimator='dis', align_gate=True)),
        'SL_dis_fixed_gate': dict(label='SemanticLens w/o semantic branch, DIS flow + fixed align gate',
                                  network_g=dict(no_semantics, flow_estimator='dis', align_gate=True,
                                                 align_gate_trained=False)),
        # the flows' forward-backward inconsistency alone (no photometric error, which a right flow keeps over
        # aliased texture): an occlusion test, fixed or learned
        'SL_dis_fb_gate': dict(label='SemanticLens w/o semantic branch, DIS flow + fixed forward-backward gate',
                               network_g=dict(no_semantics, flow_estimator='dis', align_gate=True,
                                              align_gate_trained=False, align_gate_error=False)),
        'SL_dis_fb_gate_learned': dict(label='SemanticLens w/o semantic branch, DIS flow + learned forward-backward '
                                       'gate', network_g=dict(no_semantics, flow_estimator='dis', align_gate=True,
                                                              align_gate_error=False)),
    }


def test_sets(synthetic_root, demo_root, with_masks, exact_flow=False):
    """Test datasets: synthetic ``pan`` and ``crossing`` clips, and the real demo frames (not for the oracles:
    neither true masks nor exact flow exist there)."""
    root = osp.abspath(synthetic_root)
    sets = {}
    for number, regime in enumerate(('pan', 'crossing'), 1):
        sets[f'test_{number}'] = {
            'name': f'synthetic_{regime}', 'type': 'SLVideoTestDataset',
            'dataroot_gt': osp.join(root, 'val', 'GT'), 'dataroot_lq': osp.join(root, 'val', 'BI'),
            'meta_info_file': osp.join(root, 'val', f'meta_info_{regime}.txt'), 'io_backend': {'type': 'disk'}}
        if with_masks:
            sets[f'test_{number}']['semantics_root'] = osp.join(root, 'val', 'masks')
        if exact_flow:
            sets[f'test_{number}']['flow_root'] = osp.join(root, 'val')
    if not with_masks and not exact_flow and demo_root:
        _, demo = bench_options.prepared_dataset_options(demo_root)
        sets['test_3'] = dict(demo, name='demo_real')
    return sets


#: What decides a row's result: a row whose option files agree on these is read back, not retrained
#: (logging frequency and the like do not count).
RECIPE_KEYS = ('network_g', 'datasets', 'train', 'val', 'manual_seed', 'scale', 'path')


def unchanged(path, options):
    """Whether the YAML file ``path`` exists and holds the same recipe (:data:`RECIPE_KEYS`) as ``options``."""
    if not osp.isfile(path):
        return False
    with open(path, encoding='utf-8') as handle:
        written = yaml.safe_load(handle) or {}
    return all(written.get(key) == options.get(key) for key in RECIPE_KEYS)


def progress(message):
    print(f'[sl-bench semantics] {message}', flush=True)


def row_options(key, variant, args):
    """One row's run name and its sl-train / sl-test options: ``(name, train_opt, test_opt, checkpoint)``.
    Rows of a seed other than the default are named ``sem_<row>_seed<N>``, beside the default's."""
    name = f'sem_{key}' + (f'_seed{args.seed}' if args.seed != BUDGET['seed'] else '')
    network_opt = variant['network_g']
    train_set, _ = bench_options.prepared_dataset_options(args.synthetic_root)
    if variant.get('masks'):
        train_set['semantics_root'] = osp.join(osp.abspath(args.synthetic_root), 'train', 'masks')
    if variant.get('exact_flow'):
        train_set['flow_root'] = osp.join(osp.abspath(args.synthetic_root), 'train')
    train_opt = bench_options.train_options(name, network_opt, dict(BUDGET, total_iter=args.iters, seed=args.seed),
                                              train_set)
    train_opt['train'].update(variant.get('train', {}))
    checkpoint = final_checkpoint('', name)  # relative to the folder the runs start in
    sets = test_sets(args.synthetic_root, args.demo_root, variant.get('masks') == 'input', variant.get('exact_flow'))
    test_opt = bench_options.test_options(name, network_opt, {test['name']: test for test in sets.values()}, checkpoint)
    return name, train_opt, test_opt, checkpoint


def train_and_test(key, variant, args):
    """Train and test one row through sl-train / sl-test; returns its figures.

    A row whose recipe is unchanged since a finished earlier run is read back, not rerun.
    """
    name, train_opt, test_opt, checkpoint = row_options(key, variant, args)
    work_dir = osp.abspath(args.work_dir)
    network_opt = variant['network_g']
    done = osp.join(work_dir, 'logs', f'{name}.done.json')
    if (unchanged(osp.join(work_dir, 'options', f'train_{name}.yml'), train_opt)
            and unchanged(osp.join(work_dir, 'options', f'test_{name}.yml'), test_opt) and osp.isfile(done)):
        with open(done, encoding='utf-8') as handle:
            progress(f'{variant["label"]}: unchanged since {done}, read back')
            return dict(json.load(handle), read_back=True)
    run = train_then_test(name, train_opt, test_opt, work_dir, 1)
    metrics = {dataset: {metric: {'mean': values['mean'], 'sequences': values['sequences']}
                         for metric, values in figures.items()} for dataset, figures in run['metrics'].items()}
    result = {'train_wall_s': run['train_wall_s'], 's_per_iter': run['train']['seconds_per_iteration'],
              'metrics': metrics, 'checkpoint': osp.join(work_dir, checkpoint),
              'params': bench_options.parameter_counts(network_opt)[0]}
    write_json(done, result, indent=1)
    return result


# ---------------------------------------------------------------------------------- mask quality
def matched_iou(pred, true, num_slots):
    """Mean IoU of true instances after the Hungarian matching of predicted slots to them.

    Args:
        pred (ndarray): int predicted slot per pixel, any shape (a frame, or a clip: one matching).
        true (ndarray): int true instance id per pixel, same shape.
        num_slots (int): Predicted slots.

    Returns:
        dict: ``{'all': mean IoU over true instances, 'objects': over true ids > 0, 'match': {true: slot}}``.
    """
    from scipy.optimize import linear_sum_assignment
    ids = np.unique(true)
    pred_onehot = pred.reshape(-1)[:, None] == np.arange(num_slots)[None]
    true_onehot = true.reshape(-1)[:, None] == ids[None]
    intersection = true_onehot.T.astype(np.float64) @ pred_onehot.astype(np.float64)
    union = true_onehot.sum(0)[:, None] + pred_onehot.sum(0)[None] - intersection
    iou = intersection / np.maximum(union, 1)
    rows, cols = linear_sum_assignment(-iou)
    per_id = {int(ids[row]): float(iou[row, col]) for row, col in zip(rows, cols)}
    per_id.update({int(i): 0.0 for i in ids if int(i) not in per_id})  # more instances than slots
    objects = [value for key, value in per_id.items() if key > 0]
    return {'all': float(np.mean(list(per_id.values()))), 'objects': float(np.mean(objects)) if objects else None,
            'match': {int(ids[row]): int(col) for row, col in zip(rows, cols)}}


def load_checkpoint_network(checkpoint):
    """The network of an sl-train checkpoint (its ``network_g``; weights ``params_ema`` where it has
    them, else ``params``), in eval mode on the CPU."""
    from sl_arch.utils.checkpoint import load_network
    return load_network(checkpoint).net


def read_frames(synthetic_root, clip, num_frames, kind='BI', split='val'):
    """Frames (BGR uint8) of a synthetic clip: ``kind`` is ``'BI'``, ``'BD'`` or ``'GT'``."""
    from sl_arch.io.images import read_image
    return [read_image(osp.join(synthetic_root, split, kind, clip, f'{t:08d}.png')) for t in range(num_frames)]


def read_clip(synthetic_root, clip, num_frames, split='val', kind='BI'):
    """LR frames (``kind``: ``'BI'`` or ``'BD'``) of a synthetic clip and its true instance ids (t, h, w) int64."""
    from sl_arch.data.clips import read_clip_masks
    frames = read_frames(synthetic_root, clip, num_frames, kind, split)
    ids = read_clip_masks(osp.join(synthetic_root, split, 'masks'), clip,
                          [f'{t:08d}.png' for t in range(num_frames)], frames[0].shape[:2])
    return frames, ids.astype(np.int64)


def read_exact_flows(synthetic_root, clip, num_frames, split='val'):
    """The exact LR-pixel flows of a synthetic clip in SemanticLens' ``flows=`` order: ``(backward, forward)``,
    each (1, t - 1, 2, h, w) float32. backward[i] aligns frame i + 1 to frame i: frame i's flow to frame i + 1;
    forward[i] aligns frame i to frame i + 1: frame i + 1's flow to frame i."""
    import torch

    from sl_arch.data.clips import read_window_flows
    from sl_arch.data.synthetic import FLOW_NAME
    return tuple(torch.from_numpy(np.stack(flows)).permute(0, 3, 1, 2).unsqueeze(0) for flows in read_window_flows(
        osp.join(synthetic_root, split), clip, [FLOW_NAME.format(t) for t in range(num_frames)],
        list(range(num_frames))))


def learned_masks(net, synthetic_root, clip, num_frames):
    """LR frames (BGR uint8), true ids (t, h, w) and ``net``'s learned masks (t, n, h, w) of a held-out clip."""
    import torch

    from sl_arch.io.tensors import frames_to_tensor
    frames, ids = read_clip(synthetic_root, clip, num_frames)
    with torch.no_grad():
        _, masks = net(frames_to_tensor(frames).unsqueeze(0), return_masks=True)
    return frames, ids, masks[0].numpy()


def mask_sensitivity(checkpoint, synthetic_root, exact_flow=False):
    """How much a network fed masks uses them: mean PSNR-Y on the held-out crossing clips with the
    true masks, with one instance everywhere, and with the true masks shifted 6 px sideways (``exact_flow``:
    the network is fed the clips' exact flow, as it was trained)."""
    import torch
    from basicsr.metrics import calculate_psnr
    from basicsr.utils import tensor2img

    from sl_arch.data.dataset_files import read_meta_info
    from sl_arch.io.tensors import frames_to_tensor
    net = load_checkpoint_network(checkpoint)
    scores = {'true': [], 'one instance': [], 'shifted 6 px': []}
    for clip, num_frames, _ in read_meta_info(osp.join(synthetic_root, 'val', 'meta_info_crossing.txt')):
        frames, ids = read_clip(synthetic_root, clip, num_frames)
        gts = read_frames(synthetic_root, clip, num_frames, 'GT')
        ids = torch.from_numpy(ids).unsqueeze(0)
        lq = frames_to_tensor(frames).unsqueeze(0)
        flows = {'flows': read_exact_flows(synthetic_root, clip, num_frames)} if exact_flow else {}
        for name, masks in (('true', ids), ('one instance', torch.zeros_like(ids)),
                            ('shifted 6 px', torch.roll(ids, 6, dims=-1))):
            with torch.no_grad():
                output = net(lq, masks=masks, **flows)[0]
            scores[name] += [calculate_psnr(tensor2img([output[t]]), gts[t], 0, test_y_channel=True)
                             for t in range(num_frames)]
    return {name: float(np.mean(values)) for name, values in scores.items()}


def temporal_use(checkpoint, synthetic_root, with_masks, regime='crossing', kind='BI', exact_flow=False):
    """How much a trained network takes from the other frames of the clip, on held-out clips of ``regime``.

    PSNR-Y of the whole clip (recurrent propagation over all frames) against each frame upscaled
    alone (a clip of one frame: nothing to propagate), over all pixels and apart on the background
    and on the object pixels (true ids > 0, nearest-upsampled to the GT grid). PSNR from the mean
    squared error pooled over every frame of every clip, and (``'<clip | alone> per frame'``) as
    the mean of per-frame PSNR-Y, as the tables of sl-test report it. A network that gains nothing
    from time cannot gain from better alignment either. ``kind``: the LR frames, ``'BI'`` or ``'BD'``.
    With ``exact_flow`` (a network with its flow warper), also the whole clip aligned by the clips'
    exact flow instead of the network's own (``'exact ...'``): what perfect alignment would give the
    trained network.

    Returns:
        dict: ``{'<clip | alone | exact> <all | background | objects | per frame>': PSNR-Y}``.
    """
    import torch
    from basicsr.utils import tensor2img
    from basicsr.utils.color_util import bgr2ycbcr

    from sl_arch.data.dataset_files import read_meta_info
    from sl_arch.io.tensors import frames_to_tensor
    net = load_checkpoint_network(checkpoint)
    exact_flow = exact_flow and getattr(net, 'flow_warper', None) is not None
    errors, per_frame = {}, {name: [] for name in ('clip', 'alone') + (('exact',) if exact_flow else ())}

    def add(key, squared):
        total, count = errors.get(key, (0.0, 0))
        errors[key] = (total + float(squared.sum()), count + squared.size)

    for clip, num_frames, _ in read_meta_info(osp.join(synthetic_root, 'val', f'meta_info_{regime}.txt')):
        frames, ids = read_clip(synthetic_root, clip, num_frames, kind=kind)
        gts = read_frames(synthetic_root, clip, num_frames, 'GT')
        lq = frames_to_tensor(frames).unsqueeze(0)
        masks = torch.from_numpy(ids).unsqueeze(0) if with_masks else None
        with torch.no_grad():
            whole = net(lq, **({} if masks is None else {'masks': masks}))[0]
            alone = torch.cat([net(lq[:, t:t + 1], **({} if masks is None else {'masks': masks[:, t:t + 1]}))[0]
                               for t in range(num_frames)])
            outputs = {'clip': whole, 'alone': alone}
            if exact_flow:
                outputs['exact'] = net(lq, flows=read_exact_flows(synthetic_root, clip, num_frames),
                                       **({} if masks is None else {'masks': masks}))[0]
        for t in range(num_frames):
            gt_y = bgr2ycbcr(gts[t].astype(np.float32) / 255, y_only=True) * 255
            objects = cv2.resize((ids[t] > 0).astype(np.uint8), gt_y.shape[::-1], interpolation=cv2.INTER_NEAREST) > 0
            for name, output in outputs.items():
                out_y = bgr2ycbcr(tensor2img([output[t]]).astype(np.float32) / 255, y_only=True) * 255
                squared = (out_y - gt_y) ** 2
                add(f'{name} all', squared)
                add(f'{name} background', squared[~objects])
                add(f'{name} objects', squared[objects])
                per_frame[name].append(10 * np.log10(255 ** 2 / max(float(squared.mean()), 1e-10)))
    psnr = {key: float(10 * np.log10(255 ** 2 / (total / count))) for key, (total, count) in errors.items() if count}
    return dict(psnr, **{f'{name} per frame': float(np.mean(values)) for name, values in per_frame.items()})


def temporal_use_real(checkpoint, lq_root, gt_root):
    """How much a trained network takes from the other frames on real clips: ``{clip: (whole, alone)}``.

    Mean per-frame PSNR-Y (as sl-test) of every clip folder of ``lq_root`` upscaled whole and frame
    by frame, against the frames of ``gt_root/<clip>``.
    """
    import torch

    from sl_arch.bench.precision import clip_names, clip_psnr, read_frames as read_folder
    from sl_arch.io.tensors import frames_to_tensor, tensor_to_frame
    net = load_checkpoint_network(checkpoint)
    results = {}
    for clip in clip_names(lq_root, gt_root):
        lq = frames_to_tensor(read_folder(osp.join(lq_root, clip))).unsqueeze(0)
        gts = read_folder(osp.join(gt_root, clip))
        with torch.no_grad():
            whole = net(lq)[0]
            alone = torch.cat([net(lq[:, t:t + 1])[0] for t in range(lq.shape[1])])
        results[clip] = tuple(clip_psnr([tensor_to_frame(frame) for frame in output], gts) for output in (whole, alone))
    return results


def print_temporal_use(checkpoint, synthetic_root, with_masks, real_roots=None, kind='BI', exact_flow=False):
    """``--temporal-use``: the table of :func:`temporal_use` for one checkpoint, both regimes (and the real
    clips of ``real_roots``, ``{label: folder holding GT/ and kind/}``), on ``kind`` LR frames (``'BI'`` or ``'BD'``);
    with ``exact_flow`` a second row per regime: the whole clip aligned by the exact flow."""
    regions = ('per frame', 'all', 'background', 'objects')
    print(f'{checkpoint}: PSNR-Y of the whole clip / each frame alone (gain), held-out synthetic clips, {kind} x4')
    print('| regime | ' + ' | '.join(regions) + ' |\n|---|' + '---|' * len(regions))
    for regime in ('pan', 'crossing'):
        use = temporal_use(checkpoint, synthetic_root, with_masks, regime, kind, exact_flow)
        for whole, label in (('clip', regime), ('exact', f'{regime}, exact flow')):
            if f'{whole} all' not in use:
                continue
            cells = [f'{use[f"{whole} {region}"]:.2f} / {use[f"alone {region}"]:.2f} '
                     f'({use[f"{whole} {region}"] - use[f"alone {region}"]:+.2f})' if f'{whole} {region}' in use
                     else '—' for region in regions]
            print(f'| {label} | ' + ' | '.join(cells) + ' |')
    if real_roots and not with_masks:
        print('\nReal held-out clips, mean per-frame PSNR-Y, whole clip / each frame alone (gain):')
        for label, real_root in real_roots.items():
            use = temporal_use_real(checkpoint, osp.join(real_root, kind), osp.join(real_root, 'GT'))
            for clip, (whole, alone) in use.items():
                print(f'- {label}, {clip}: {whole:.2f} / {alone:.2f} ({whole - alone:+.2f})')


def clip_mask_scores(pred, true, num_slots):
    """How a clip's predicted slots (t, h, w) meet its true instance ids (t, h, w).

    Returns:
        dict: ``clip_all`` / ``clip_objects``: matched mean IoU with one matching for the whole
        clip (a slot must keep its instance through time), over all instances / objects only;
        ``frame_all`` / ``frame_objects``: the same matched frame by frame (identity may change),
        so the gap between the two is what identity switches cost; ``foreground``: IoU of the
        pixels outside the slot matched to the background (id 0) with the true objects' pixels,
        whichever slots they fall in (are the objects found at all); ``slots_used``, ``instances``.
    """
    per_clip = matched_iou(pred, true, num_slots)
    per_frame = [matched_iou(pred[t], true[t], num_slots) for t in range(len(pred))]
    found = pred != per_clip['match'].get(0, -1)
    objects = true > 0
    return {
        'clip_all': per_clip['all'], 'clip_objects': per_clip['objects'],
        'frame_all': float(np.mean([item['all'] for item in per_frame])),
        'frame_objects': float(np.mean([item['objects'] for item in per_frame if item['objects'] is not None])),
        'foreground': float((found & objects).sum() / max((found | objects).sum(), 1)),
        'slots_used': int(len(np.unique(pred))), 'instances': int(len(np.unique(true))),
    }


def mask_quality(checkpoint, synthetic_root):
    """:func:`clip_mask_scores` of the learned masks on every held-out crossing clip."""
    from sl_arch.data.dataset_files import read_meta_info
    net = load_checkpoint_network(checkpoint)
    rows = {}
    for clip, num_frames, _ in read_meta_info(osp.join(synthetic_root, 'val', 'meta_info_crossing.txt')):
        _, true, masks = learned_masks(net, synthetic_root, clip, num_frames)
        rows[clip] = clip_mask_scores(masks.argmax(1), true, masks.shape[1])
    return rows


def save_mask_figure(checkpoint, synthetic_root, clip, path, columns=6):
    """LR frames, true instance ids, and learned ids coloured by their matched true instance, over time."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    from sl_arch.data.dataset_files import read_meta_info
    from sl_arch.utils.visualize import instance_palette
    num_frames = dict((name, count) for name, count, _ in
                      read_meta_info(osp.join(synthetic_root, 'val', 'meta_info.txt')))[clip]
    frames, true, masks = learned_masks(load_checkpoint_network(checkpoint), synthetic_root, clip, num_frames)
    pred = masks.argmax(1)
    match = matched_iou(pred, true, masks.shape[1])['match']
    palette = instance_palette(masks.shape[1] + int(true.max()) + 1)
    colour_of_slot = {slot: true_id for true_id, slot in match.items()}
    unmatched = iter(range(int(true.max()) + 1, len(palette)))
    slot_colour = np.array([colour_of_slot.get(slot, None) for slot in range(masks.shape[1])], dtype=object)
    slot_colour = np.array([value if value is not None else next(unmatched) for value in slot_colour])
    times = np.linspace(0, num_frames - 1, columns).round().astype(int)
    figure, axes = plt.subplots(3, columns, figsize=(2.0 * columns, 4.2), squeeze=False)
    for column, t in enumerate(times):
        rgb = cv2.cvtColor(frames[t], cv2.COLOR_BGR2RGB)
        for row, image in enumerate((rgb, palette[true[t]], palette[slot_colour[pred[t]]])):
            axes[row, column].imshow(image, interpolation='nearest')
            axes[row, column].set_xticks([])
            axes[row, column].set_yticks([])
        axes[0, column].set_title(f'frame {t}', fontsize=8)
    for row, label in enumerate(('LR frame', 'true instances', 'learned (matched)')):
        axes[row, 0].set_ylabel(label, fontsize=8)
    figure.suptitle(f'{clip}: learned instance masks against ground truth (one matching for the whole clip)',
                    fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


# ---------------------------------------------------------------------------------- report
def markdown_report(rows, quality, info):
    datasets = ['synthetic_pan', 'synthetic_crossing', 'demo_real']
    lines = [
        '# Do instance semantics help? The oracle test',
        '',
        f'Command: `{info["command"]}` ({info["wall_minutes"]:.0f} min on this machine, {info["started"]}). '
        f'Every model trained {info["budget"]["total_iter"]} iterations (batch {info["budget"]["batch_size"]}, '
        f'{info["budget"]["num_frame"]} frames, GT patch {info["budget"]["gt_size"]}, '
        f'seed {info["budget"]["seed"]}) on the synthetic training clips, one thread each; PSNR-Y / SSIM-Y on '
        'held-out clips whose photographs no training clip uses.',
        '',
        '| model | params | s/iter | ' + ' | '.join(datasets) + ' |',
        '|---|---|---|' + '---|' * len(datasets),
    ]
    for row in rows:
        cells = []
        for name in datasets:
            metric = row.get('metrics', {}).get(name)
            cells.append(f'{metric["psnr"]["mean"]:.2f} / {metric["ssim"]["mean"]:.4f}' if metric else '—')
        params = f'{row["params"] / 1e6:.2f}M' if row.get('params') else '—'
        s_per_iter = f'{row["s_per_iter"]:.2f}' if row.get('s_per_iter') else '—'
        lines.append(f'| {row["label"]} | {params} | {s_per_iter} | ' + ' | '.join(cells) + ' |')
    lines += ['', 'The oracle has no row on the real frames: they have no ground-truth instances.']
    if any(row.get('read_back') for row in rows):
        lines.append('Rows trained by an earlier run of this command with the same options were read back: '
                     + ', '.join(row['label'] for row in rows if row.get('read_back')) + '. Seconds per '
                     'iteration come from the training logs, with whatever else ran on the machine then.')
    lines.append('')
    sensitive = [row for row in rows if row.get('mask_sensitivity')]
    if sensitive:
        names = list(sensitive[0]['mask_sensitivity'])
        lines += ['## Does a network fed masks use them? (held-out crossing clips, PSNR-Y)', '',
                  '| model | ' + ' | '.join(f'masks: {name}' for name in names) + ' |', '|---|' + '---|' * len(names)]
        for row in sensitive:
            lines.append(f'| {row["label"]} | ' + ' | '.join(f'{row["mask_sensitivity"][name]:.2f}' for name in names)
                         + ' |')
        lines.append('')
    temporal = [row for row in rows if row.get('temporal_use')]
    if temporal:
        lines += ['## Do the networks use the other frames? (held-out crossing clips, PSNR-Y)', '',
                  'Whole clip (aligned by the flow the network was trained with) against each frame upscaled alone; '
                  'pooled MSE over all frames; objects are the pixels of true instances other than the background '
                  '(about a tenth of the pixels). The last two columns: the whole clip aligned by the exact flow '
                  'instead (what perfect alignment gives the trained network, no retraining).', '',
                  '| model | clip | frame alone | gain | background gain | objects gain | exact flow: gain | '
                  'objects gain |', '|---|---|---|---|---|---|---|---|']
        for row in temporal:
            use = row['temporal_use']
            whole = 'exact' if row.get('exact_flow') else 'clip'
            exact = [f'{use["exact all"] - use["alone all"]:+.2f}',
                     f'{use["exact objects"] - use["alone objects"]:+.2f}'] if 'exact all' in use else ['—', '—']
            lines.append(f'| {row["label"]} | {use[f"{whole} all"]:.2f} | {use["alone all"]:.2f} | '
                         f'{use[f"{whole} all"] - use["alone all"]:+.2f} | '
                         f'{use[f"{whole} background"] - use["alone background"]:+.2f} | '
                         f'{use[f"{whole} objects"] - use["alone objects"]:+.2f} | ' + ' | '.join(exact) + ' |')
        lines.append('')
    if quality:
        labels = {row['key']: row['label'] for row in rows}
        lines += ['## Learned masks against the ground truth (held-out crossing clips)', '',
                  '| model | clip | instances | slots used | mIoU, one matching per clip | objects only | '
                  'mIoU, matching per frame | objects only | objects found (foreground IoU) |',
                  '|---|---|---|---|---|---|---|---|---|']
        for key, clips in quality.items():
            for clip, item in clips.items():
                lines.append(f'| {labels[key]} | {clip} | {item["instances"]} | {item["slots_used"]} | '
                             f'{item["clip_all"]:.3f} | {item["clip_objects"]:.3f} | {item["frame_all"]:.3f} | '
                             f'{item["frame_objects"]:.3f} | {item["foreground"]:.3f} |')
            means = {name: np.mean([item[name] for item in clips.values()]) for name in
                     ('clip_all', 'clip_objects', 'frame_all', 'frame_objects', 'foreground')}
            lines.append(f'| **{labels[key]}** | **mean** | | | **{means["clip_all"]:.3f}** | '
                         f'**{means["clip_objects"]:.3f}** | **{means["frame_all"]:.3f}** | '
                         f'**{means["frame_objects"]:.3f}** | **{means["foreground"]:.3f}** |')
        lines += ['', 'Instances include the background (id 0). `masks_<model>.png`: a clip over time, learned '
                  'slots coloured by the true instance they are matched to.', '']
    return '\n'.join(lines)


def parse_args(argv):
    parser = argparse.ArgumentParser(prog='python -m sl_arch.bench.semantics', description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--iters', type=int, default=BUDGET['total_iter'], help='training iterations of every model')
    parser.add_argument('--models', help='comma-separated subset of the rows (default: all; --list-models prints them)')
    parser.add_argument('--list-models', action='store_true', help='print every row, its key then its label, and exit')
    parser.add_argument('--jobs', type=int, default=2, help='trainings side by side (default 2)')
    parser.add_argument('--seed', type=int, default=BUDGET['seed'],
                        help=f'training seed of every row (default {BUDGET["seed"]}); rows of another seed are named '
                        '<row>_seed<N> in the work dir, beside those of the default')
    parser.add_argument('--synthetic-root', default=SYNTHETIC_ROOT, help='made with sl-prepare --synthetic if missing')
    parser.add_argument('--demo-root', default=DEMO_ROOT, help='real held-out frames (sl-prepare --demo); "" for none')
    parser.add_argument('--work-dir', default=osp.join('experiments', 'semantics'))
    parser.add_argument('--out', default=osp.join('results', 'semantics'))
    parser.add_argument('--temporal-use', metavar='CHECKPOINT',
                        help='only print how much this checkpoint takes from the other frames (pan and crossing '
                        'clips, whole clip vs each frame alone) and exit')
    parser.add_argument('--with-masks', action='store_true',
                        help='with --temporal-use: feed the true instance masks (networks trained on them)')
    parser.add_argument('--exact-flow', action='store_true',
                        help='with --temporal-use: also align the whole clip by the clips\' exact flow instead of '
                             'the network\'s own (a network with its flow warper)')
    parser.add_argument('--degradation', choices=('bi', 'bd'), default='bi',
                        help='with --temporal-use: the LR frames of the held-out clips (the checkpoint\'s training '
                             'degradation; default bi)')
    return parser.parse_args(argv)


@cli_entry
def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    if args.temporal_use:
        if not osp.isfile(args.temporal_use):
            raise SLError(f'--temporal-use {args.temporal_use} is not a file; give an sl-train checkpoint (.pth).')
        real_roots = {test['label']: osp.join('datasets', test['folder']) for test in bench_options.TEST_SETS.values()
                      if test['real'] and osp.isdir(osp.join('datasets', test['folder'], args.degradation.upper()))}
        print_temporal_use(args.temporal_use, args.synthetic_root, args.with_masks, real_roots, args.degradation.upper(),
                           args.exact_flow)
        return
    table = variants()
    if args.list_models:
        print_rows({key: row['label'] for key, row in table.items()})
        return
    keys = list(table) if args.models is None else named_list(args.models, '--models')
    unknown = [key for key in keys if key not in table]
    if unknown:
        raise unknown_rows('--models', unknown, table, 'python -m sl_arch.bench.semantics --list-models')
    check_at_least({'--iters': args.iters, '--jobs': args.jobs})
    check_seed(args.seed)
    check_work_folder(args.work_dir, '--work-dir', WORK_DIR_ENTRIES + PREPARE_LOGS)
    check_report_folder(args.out, ('results.json', 'report.md'))
    os.makedirs(args.work_dir, exist_ok=True)
    started, started_at = time.perf_counter(), time.strftime('%Y-%m-%d %H:%M %Z')
    if not osp.isfile(osp.join(args.synthetic_root, 'val', 'meta_info_crossing.txt')):
        run_command(['sl_arch.prepare', '--synthetic', '-o', args.synthetic_root], os.getcwd(),
                    osp.join(args.work_dir, PREPARE_LOGS[0]), 1)
    if args.demo_root and not osp.isdir(osp.join(args.demo_root, 'val')):
        if osp.abspath(args.demo_root) != osp.abspath(DEMO_ROOT):
            raise SLError(f'--demo-root {args.demo_root} has no val/ folder; make it with sl-prepare or pass another.')
        run_command(['sl_arch.prepare', '--demo'], os.getcwd(), osp.join(args.work_dir, PREPARE_LOGS[1]), 1)
    rows = [{'key': key, 'label': table[key]['label'], 'network_g': table[key]['network_g'],
             'masks': table[key].get('masks'), 'train': table[key].get('train'),
             'exact_flow': bool(table[key].get('exact_flow'))} for key in keys]

    def job(row):
        progress(f'training {row["label"]} ...')
        try:
            row.update(train_and_test(row['key'], table[row['key']], args))
        except SLError as error:
            row['error'] = str(error)
            progress(f'{row["label"]} FAILED: {error}')
            return
        progress(f'{row["label"]}: {row["s_per_iter"]:.2f} s/iter, ' + ', '.join(
            f'{name} {metric["psnr"]["mean"]:.2f} dB' for name, metric in row['metrics'].items()))

    with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        list(pool.map(job, rows))
    quality = {}
    os.makedirs(args.out, exist_ok=True)
    for row in rows:
        if row['masks'] == 'input' and not row.get('error'):
            row['mask_sensitivity'] = mask_sensitivity(row['checkpoint'], args.synthetic_root, row['exact_flow'])
        if row['network_g']['type'] == 'SemanticLens' and not row.get('error') and 'temporal_use' not in row:
            row['temporal_use'] = temporal_use(row['checkpoint'], args.synthetic_root, row['masks'] == 'input',
                                               exact_flow=True)
    for row in rows:  # the models that learn their masks
        if row['network_g'].get('use_semantics', True) and row['network_g']['type'] == 'SemanticLens' \
                and row['masks'] != 'input' and not row.get('error'):
            quality[row['key']] = mask_quality(row['checkpoint'], args.synthetic_root)
            save_mask_figure(row['checkpoint'], args.synthetic_root, next(iter(quality[row['key']])),
                             osp.join(args.out, f'masks_{row["key"]}.png'))
    info = {'command': 'python -m sl_arch.bench.semantics ' + ' '.join(argv),
            'budget': dict(BUDGET, total_iter=args.iters, seed=args.seed),
            'started': started_at, 'wall_minutes': (time.perf_counter() - started) / 60}
    write_json(osp.join(args.out, 'results.json'), {'info': info, 'rows': rows, 'mask_quality': quality})
    report = markdown_report(rows, quality, info)
    write_text(osp.join(args.out, 'report.md'), report + '\n')
    print(report)
    failed = [row['label'] for row in rows if row.get('error')]
    if failed:
        raise SLError(f'{len(failed)} row(s) failed: {", ".join(failed)}; see {args.work_dir}/logs.')


if __name__ == '__main__':
    main()
