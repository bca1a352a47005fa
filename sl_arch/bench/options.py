"""The option files of ``sl-bench``: which models, their sizes, the data and the shared training budget.

Every trained row gets one training and one test option file from :func:`train_options` and
:func:`test_options`: only ``name``, ``network_g`` and ``min_input_size`` differ between rows.
"""
import functools
import itertools
import os.path as osp

import yaml

from sl_arch.utils.errors import SLError
from sl_arch.utils.files import write_text

#: Benchmark rows: key -> (label, kind, ablation options). Kinds: 'SemanticLens', a registered
#: architecture name, or an upsampling without training (:data:`UPSAMPLINGS`).
MODELS = {
    'bicubic': ('Bicubic', 'bicubic', None),
    'bilinear': ('Bilinear (where the BasicSR models start)', 'bilinear', None),
    'SemanticLens': ('SemanticLens', 'SemanticLens', {}),
    'SingleFrame': ('Single-frame SRResNet, the full tiny network\'s size', 'SLFrameWise', None),
    # the size of the lean rows (0.185M) rather than of the full tiny network: 32 ch / 6 blocks, 0.196M, the nearest
    # SRResNet not smaller than them
    'SingleFrame_lean': ('Single-frame SRResNet, 32 ch / 6 blocks (the lean rows\' size)', 'SLFrameWise',
                         {'network': dict(type='MSRResNet', upscale=4, num_feat=32, num_block=6)}),
    'BasicVSR': ('BasicVSR', 'BasicVSR', None),
    # the flow SemanticLens' DIS rows use, for BasicVSR too (sl_arch/archs/basicvsr_arch.py)
    'BasicVSR_dis': ('BasicVSR, DIS flow', 'SLBasicVSR', {'flow_estimator': 'dis'}),
    'IconVSR': ('IconVSR', 'IconVSR', None),
    'BasicVSRPP': ('BasicVSR++', 'SLBasicVSRPlusPlus', None),  # BasicSR's, with its deformable alignment on the CPU too
    'EDVR': ('EDVR', 'EDVR', None),
    'SL_no_semantics': ('SemanticLens w/o semantic branch', 'SemanticLens', {'use_semantics': False}),
    'SL_no_flow': ('SemanticLens w/o flow pre-alignment', 'SemanticLens', {'use_flow': False}),
    'SL_no_image': ('SemanticLens w/o IMAGE', 'SemanticLens', {'use_image': False}),
    'SL_no_gps': ('SemanticLens w/o GPS', 'SemanticLens', {'use_gps': False}),
    'SL_no_isee': ('SemanticLens w/o ISEE', 'SemanticLens', {'use_isee': False}),
    'SL_flow_photometric': ('SemanticLens + photometric flow loss', 'SemanticLens', {}),
    'SL_frozen_flow': ('SemanticLens, pretrained flow frozen', 'SemanticLens', {}),
    'SL_neighbours': ('SemanticLens + aligned neighbours in, flow frozen', 'SemanticLens', {'neighbour_input': True}),
    'SL_neighbours_no_semantics': ('SemanticLens + aligned neighbours in, flow frozen, w/o semantic branch',
                                   'SemanticLens', {'neighbour_input': True, 'use_semantics': False}),
    # the semantic branch's parameters spent on width instead: 40 channels, the single-frame network's size
    'SL_wide_no_semantics': ('SemanticLens w/o semantic branch, 40 ch (equal size), aligned neighbours in, flow frozen',
                             'SemanticLens', {'neighbour_input': True, 'use_semantics': False, 'num_feat': 40}),
    # OpenCV's DIS flow instead of the pretrained flow warper (no flow parameters: 0.10M smaller)
    'SL_dis_flow': ('SemanticLens, DIS flow', 'SemanticLens', {'flow_estimator': 'dis'}),
    'SL_dis_neighbours': ('SemanticLens + aligned neighbours in, DIS flow', 'SemanticLens',
                          {'flow_estimator': 'dis', 'neighbour_input': True}),
    'SL_dis_neighbours_no_semantics': ('SemanticLens + aligned neighbours in, DIS flow, w/o semantic branch',
                                       'SemanticLens', {'flow_estimator': 'dis', 'neighbour_input': True,
                                                        'use_semantics': False}),
    # the propagated features gated by how well the flow aligns (warped-LR error, flow inconsistency)
    'SL_dis_gate': ('SemanticLens, DIS flow, alignment gate', 'SemanticLens', {'flow_estimator': 'dis', 'align_gate': True}),
    'SL_dis_neighbours_no_semantics_gate': ('SemanticLens + aligned neighbours in, DIS flow, w/o semantic branch, '
                                            'alignment gate', 'SemanticLens',
                                            {'flow_estimator': 'dis', 'neighbour_input': True, 'use_semantics': False,
                                             'align_gate': True}),
    # the gate kept at its start (align_gate_trained: false): a fixed occlusion test, nothing learned
    'SL_dis_fixed_gate': ('SemanticLens, DIS flow, fixed alignment gate', 'SemanticLens',
                          {'flow_estimator': 'dis', 'align_gate': True, 'align_gate_trained': False}),
    'SL_dis_neighbours_no_semantics_fixed_gate': ('SemanticLens + aligned neighbours in, DIS flow, w/o semantic '
                                                  'branch, fixed alignment gate', 'SemanticLens',
                                                  {'flow_estimator': 'dis', 'neighbour_input': True,
                                                   'use_semantics': False, 'align_gate': True,
                                                   'align_gate_trained': False}),
    # the flows' forward-backward inconsistency alone (align_gate_error: false), learned
    'SL_dis_neighbours_no_semantics_fb_gate': ('SemanticLens + aligned neighbours in, DIS flow, w/o semantic '
                                               'branch, forward-backward gate', 'SemanticLens',
                                               {'flow_estimator': 'dis', 'neighbour_input': True,
                                                'use_semantics': False, 'align_gate': True,
                                                'align_gate_error': False}),
    # without the multi-frame self-attention block (MFSAB): 0.02M fewer parameters, 0.76-0.81x the CPU time per
    # iteration
    'SL_dis_neighbours_no_semantics_no_mfsab_gate': ('SemanticLens + aligned neighbours in, DIS flow, w/o semantic '
                                                     'branch, w/o MFSAB, alignment gate', 'SemanticLens',
                                                     {'flow_estimator': 'dis', 'neighbour_input': True,
                                                      'use_semantics': False, 'use_mfsab': False, 'align_gate': True}),
    # the same with 16 instead of 32 channels in the x2 / x4 upsampling stages, where a 96-px patch spends two
    # thirds of its multiply-adds (at 32 channels)
    'SL_dis_neighbours_no_semantics_no_mfsab_gate_up16': ('SemanticLens + aligned neighbours in, DIS flow, w/o '
                                                          'semantic branch, w/o MFSAB, alignment gate, 16-ch upsampling',
                                                          'SemanticLens',
                                                          {'flow_estimator': 'dis', 'neighbour_input': True,
                                                           'use_semantics': False, 'use_mfsab': False,
                                                           'align_gate': True, 'num_upsample_feat': 16}),
    # the same without IMAGE (the masked pre-alignment's window attention): 0.74x the CPU time per bf16 iteration
    'SL_dis_neighbours_no_semantics_no_mfsab_no_image_gate_up16': ('SemanticLens + aligned neighbours in, DIS flow, '
                                                                   'w/o semantic branch, w/o MFSAB, w/o IMAGE, '
                                                                   'alignment gate, 16-ch upsampling', 'SemanticLens',
                                                                   {'flow_estimator': 'dis', 'neighbour_input': True,
                                                                    'use_semantics': False, 'use_mfsab': False,
                                                                    'use_image': False, 'align_gate': True,
                                                                    'num_upsample_feat': 16}),
    # the same at the single-frame network's size: 46 channels, 0.479M parameters against its 0.481M
    'SL_dis_wide_neighbours_no_semantics_gate': ('SemanticLens + aligned neighbours in, DIS flow, w/o semantic branch, '
                                                 'alignment gate, 46 ch (equal size)', 'SemanticLens',
                                                 {'flow_estimator': 'dis', 'neighbour_input': True,
                                                  'use_semantics': False, 'align_gate': True, 'num_feat': 46}),
}


#: ``train`` options that keep the pretrained flow as it is for the whole run: trained by the SR loss it
#: drifts away from motion (EPE on real frames 0.06 -> 0.63 px after 1200 CPU-s: README, sl-bench).
FROZEN_FLOW = {'fix_flow': 10**9}
#: Rows trained with more than the shared template: key -> ``train`` options added.
TRAIN_CHANGES = {
    'SL_flow_photometric': {'flow_photometric_opt': {'type': 'SLPhotometricFlowLoss', 'loss_weight': 0.05,
                                                     'smooth_weight': 0.01}},
    'SL_frozen_flow': FROZEN_FLOW,
    'SL_neighbours': FROZEN_FLOW,
    'SL_neighbours_no_semantics': FROZEN_FLOW,
    'SL_wide_no_semantics': FROZEN_FLOW,
}
#: Rows whose training set has more options than the shared one: key -> dataset options added (:func:`_variant`).
TRAIN_SET_CHANGES = {}
#: Rows trained on other clips or at another rate than the mode's: key -> budget values (``sl-bench --num-frame
#: ROW=...``, ``--lr ROW=...`` and the like override them; :func:`_variant`).
ROW_BUDGETS = {}


def _variant(key, base, label_suffix, budget=None, train_set=None, train=None, label=None, **network_changes):
    """Add row ``key``: row ``base``'s network with ``network_changes``, labelled as ``base`` + ``label_suffix`` (or
    ``label``), trained as ``base`` is (its :data:`ROW_BUDGETS`, :data:`TRAIN_SET_CHANGES` and :data:`TRAIN_CHANGES`)
    with ``budget``, ``train_set`` and ``train`` values of its own on top where given."""
    base_label, kind, ablation = MODELS[base]
    MODELS[key] = (label or f'{base_label}, {label_suffix}', kind,
                   ablation if ablation is None and not network_changes else dict(ablation or {}, **network_changes))
    for table, own in ((ROW_BUDGETS, budget), (TRAIN_SET_CHANGES, train_set), (TRAIN_CHANGES, train)):
        values = {**table.get(base, {}), **(own or {})}
        if values:
            table[key] = values


LEAN16 = 'SL_dis_neighbours_no_semantics_no_mfsab_gate_up16'
LEAN16_NO_IMAGE = 'SL_dis_neighbours_no_semantics_no_mfsab_no_image_gate_up16'
# lean16 trained on 14-frame clips, batch 1 (the same frames per iteration): tried for a propagated state that
# stays bounded over long clips; at 1200 CPU s it did not (docs/benchmark-rounds.md, fourteenth round)
_variant(f'{LEAN16}_long', LEAN16, '14-frame clips', budget={'num_frame': 14, 'batch_size': 1})
# lean16 and its no-IMAGE variant with the propagated features soft-bounded (state_bound: 1): trained for long, the
# unbounded ones lose quality deep into long clips (the long-clip drop)
_variant(f'{LEAN16}_bounded', LEAN16, 'bounded state', state_bound=1.0)
_variant(f'{LEAN16_NO_IMAGE}_bounded', LEAN16_NO_IMAGE, 'bounded state', state_bound=1.0)
# the bounded no-IMAGE row with its 32 LR channels changed: wider (40) learns more per iteration, narrower (24) takes
# more iterations in the same CPU time
_variant(f'{LEAN16_NO_IMAGE}_bounded_w40', f'{LEAN16_NO_IMAGE}_bounded', '40 ch', num_feat=40)
_variant(f'{LEAN16_NO_IMAGE}_bounded_w24', f'{LEAN16_NO_IMAGE}_bounded', '24 ch', num_feat=24)
# the same network at two and three times the learning rate
_variant(f'{LEAN16_NO_IMAGE}_bounded_lr2e-3', f'{LEAN16_NO_IMAGE}_bounded', 'lr 2e-3', budget={'lr': 2e-3})
_variant(f'{LEAN16_NO_IMAGE}_bounded_lr3e-3', f'{LEAN16_NO_IMAGE}_bounded', 'lr 3e-3', budget={'lr': 3e-3})
_variant(f'{LEAN16}_bounded_lr2e-3', f'{LEAN16}_bounded', 'lr 2e-3', budget={'lr': 2e-3})
# at 2e-3 with 40 channels, and on shorter clips of a larger batch (5 x 3 frames per iteration instead of 7 x 2)
_variant(f'{LEAN16_NO_IMAGE}_bounded_w40_lr2e-3', f'{LEAN16_NO_IMAGE}_bounded_w40', 'lr 2e-3', budget={'lr': 2e-3})
_variant(f'{LEAN16_NO_IMAGE}_bounded_lr2e-3_5x3', f'{LEAN16_NO_IMAGE}_bounded', 'lr 2e-3, 5-frame clips, batch 3',
         budget={'lr': 2e-3, 'num_frame': 5, 'batch_size': 3})
# trained on the DIS flow of whole frames, estimated once per frame pair by the dataset (dis_flows) instead of on
# each crop at every iteration; tested as every DIS row is
WHOLE_FRAME_FLOW = {'dis_flows': True}
_variant(f'{LEAN16_NO_IMAGE}_bounded_frameflow', f'{LEAN16_NO_IMAGE}_bounded', 'trained on whole-frame flow',
         train_set=WHOLE_FRAME_FLOW)
_variant(f'{LEAN16_NO_IMAGE}_bounded_frameflow_lr2e-3', f'{LEAN16_NO_IMAGE}_bounded',
         'trained on whole-frame flow, lr 2e-3', budget={'lr': 2e-3}, train_set=WHOLE_FRAME_FLOW)
# batches of 4 clips instead of 2: the recurrent steps' many small operations cost little more on twice the clips
# (one thread: 1.65x the CPU time of a batch of 2), where the single-frame network's convolutions cost 2.3x
_variant(f'{LEAN16_NO_IMAGE}_bounded_b4', f'{LEAN16_NO_IMAGE}_bounded', 'batch 4', budget={'batch_size': 4})
_variant(f'{LEAN16_NO_IMAGE}_bounded_frameflow_b4', f'{LEAN16_NO_IMAGE}_bounded',
         'trained on whole-frame flow, batch 4', budget={'batch_size': 4}, train_set=WHOLE_FRAME_FLOW)
# the bounded no-IMAGE row at 2e-3 reconstructing with one convolution and one pixel shuffle from the LR features
# (direct_upsample): no convolution at the HR size, 0.72x the CPU time per iteration, so more iterations in a budget
_variant(f'{LEAN16_NO_IMAGE}_bounded_direct_lr2e-3', f'{LEAN16_NO_IMAGE}_bounded', 'direct upsampling, lr 2e-3',
         budget={'lr': 2e-3}, direct_upsample=True)
# the 2e-3 row with 8-channel pixel-shuffle stages and HR refinement instead of 16 (0.85x the time per iteration):
# halving them from 32 to 16 paid at 300 s (thirteenth round)
_variant(f'{LEAN16_NO_IMAGE}_bounded_up8_lr2e-3', f'{LEAN16_NO_IMAGE}_bounded', '8-ch upsampling, lr 2e-3',
         budget={'lr': 2e-3}, num_upsample_feat=8)
# at 3e-3, where one seed of two trained badly without a warm-up, with the rate raised linearly over the first 200
# iterations (BasicSR's train.warmup_iter; about a twelfth of the 300-s budget)
_variant(f'{LEAN16_NO_IMAGE}_bounded_lr3e-3_warmup', f'{LEAN16_NO_IMAGE}_bounded', 'lr 3e-3, 200-iteration warm-up',
         budget={'lr': 3e-3}, train={'warmup_iter': 200})
# batches of one clip at 2e-3: batches of 4 lost 0.1 dB at 300 s (half the optimiser steps), so the other way, about
# 1.6x the steps of a batch of 2 in the same CPU time
_variant(f'{LEAN16_NO_IMAGE}_bounded_b1_lr2e-3', f'{LEAN16_NO_IMAGE}_bounded', 'batch 1, lr 2e-3',
         budget={'batch_size': 1, 'lr': 2e-3})
# the same residual blocks per frame spent elsewhere (nineteenth round): the recurrent steps' blocks moved into the
# extractor, which reads each frame with its two DIS-aligned neighbours (early fusion, learned like a single-frame
# network), or into the extractor and the reconstruction; parameters and multiply-adds as the 2e-3 row
_variant(f'{LEAN16_NO_IMAGE}_bounded_e3p1_lr2e-3', f'{LEAN16_NO_IMAGE}_bounded',
         '3 extractor blocks, 1 per recurrent step, lr 2e-3', budget={'lr': 2e-3}, num_extract_block=3, num_block=1)
_variant(f'{LEAN16_NO_IMAGE}_bounded_e2p1r2_lr2e-3', f'{LEAN16_NO_IMAGE}_bounded',
         '2 extractor blocks, 1 per recurrent step, 2 reconstruction blocks, lr 2e-3', budget={'lr': 2e-3},
         num_extract_block=2, num_block=1, num_reconstruct_block=2)
# and the other way: every residual block in the recurrent steps (3 per step and direction), none in the extractor
# and the reconstruction (the 3-1 split above lost on both seeds tried)
_variant(f'{LEAN16_NO_IMAGE}_bounded_e0p3r0_lr2e-3', f'{LEAN16_NO_IMAGE}_bounded',
         'no extractor or reconstruction blocks, 3 per recurrent step, lr 2e-3', budget={'lr': 2e-3},
         num_extract_block=0, num_block=3, num_reconstruct_block=0)
# deeper still at a smaller size: 4 blocks per recurrent step and direction at 28 channels (0.175M)
_variant(f'{LEAN16_NO_IMAGE}_bounded_e0p4r0_w28_lr2e-3', f'{LEAN16_NO_IMAGE}_bounded',
         '28 ch, no extractor or reconstruction blocks, 4 per recurrent step, lr 2e-3', budget={'lr': 2e-3},
         num_feat=28, num_extract_block=0, num_block=4, num_reconstruct_block=0)
# the 3-blocks-per-step row on clips drawn at frame intervals 1 and 2 (BasicSR's interval_list): larger motions to
# align per step, as the test footage's fast bikes have; the single-frame network sees the same frames either way
_variant(f'{LEAN16_NO_IMAGE}_bounded_e0p3r0_interval12_lr2e-3', f'{LEAN16_NO_IMAGE}_bounded_e0p3r0_lr2e-3',
         'frame intervals 1-2', train_set={'interval_list': [1, 2]})  # the base row's rate, 2e-3
# the 3-blocks-per-step row reading the frames 2 steps away besides its neighbours (neighbour_radius): more
# sub-pixel samples reach each frame's features before the recurrence has learned to carry them
_variant(f'{LEAN16_NO_IMAGE}_bounded_e0p3r0_n2_lr2e-3', f'{LEAN16_NO_IMAGE}_bounded_e0p3r0_lr2e-3',
         'frames +-2 in', neighbour_radius=2)
# the neighbours read as their differences from the frame (neighbour_difference)
_variant(f'{LEAN16_NO_IMAGE}_bounded_e0p3r0_diff_lr2e-3', f'{LEAN16_NO_IMAGE}_bounded_e0p3r0_lr2e-3',
         'neighbours in as differences', neighbour_difference=True)
# the neighbours with where their samples sit between the frame's pixels (neighbour_offsets), read bilinearly as
# before or taken as they are (neighbour_sampling: nearest): multi-frame detail is in those sub-pixel positions
_variant(f'{LEAN16_NO_IMAGE}_bounded_e0p3r0_offsets_lr2e-3', f'{LEAN16_NO_IMAGE}_bounded_e0p3r0_lr2e-3',
         'sub-pixel offsets in', neighbour_offsets=True)
_variant(f'{LEAN16_NO_IMAGE}_bounded_e0p3r0_offsets_nearest_lr2e-3', f'{LEAN16_NO_IMAGE}_bounded_e0p3r0_lr2e-3',
         'nearest neighbour pixels and their sub-pixel offsets in', neighbour_offsets=True,
         neighbour_sampling='nearest')
# the neighbour-difference row and the base row with every training clip reversed at random (BasicSR's
# random_reverse): each motion also played backwards, which a single-frame network cannot tell from the clip as it is
# (best 300-s row, twenty-second round); and on clips of 14 frames, one per batch (the same frames per iteration):
# each frame's features carry twice the context, as long test clips do
_variant(f'{LEAN16_NO_IMAGE}_bounded_e0p3r0_diff_reverse_lr2e-3', f'{LEAN16_NO_IMAGE}_bounded_e0p3r0_diff_lr2e-3',
         'clips reversed at random', train_set={'random_reverse': True})
_variant(f'{LEAN16_NO_IMAGE}_bounded_e0p3r0_reverse_lr2e-3', f'{LEAN16_NO_IMAGE}_bounded_e0p3r0_lr2e-3',
         'clips reversed at random', train_set={'random_reverse': True})
# the reversed-clip row (_diff_reverse) with its neighbours warped in by cubic interpolation instead of bilinear
# (neighbour_sampling: bicubic), which smooths less of the detail between their pixels that a video network draws on
_variant(f'{LEAN16_NO_IMAGE}_bounded_e0p3r0_diff_reverse_bicubic_lr2e-3',
         f'{LEAN16_NO_IMAGE}_bounded_e0p3r0_diff_reverse_lr2e-3', 'neighbours warped bicubically',
         neighbour_sampling='bicubic')
# the reversed-clip row (_diff_reverse) on clips drawn at frame intervals 1 and 2 (BasicSR's interval_list; larger
# motions, each also played backwards): best 300-s row, twenty-third round, its gain on the footage that moves most.
# Over the single-frame network of its size at 300 CPU s: +0.262 ± 0.015 dB over 50 runs (Intel Xeon with AMX, bf16),
# +0.26 ± 0.05 over eight (AMD EPYC with AVX2 only, float32, where it gets 1.36x that network's iterations)
_variant(f'{LEAN16_NO_IMAGE}_bounded_e0p3r0_diff_reverse_interval12_lr2e-3',
         f'{LEAN16_NO_IMAGE}_bounded_e0p3r0_diff_reverse_lr2e-3', 'frame intervals 1-2',
         train_set={'interval_list': [1, 2]})
# and at interval 2 alone: the training clips' median motion (synthetic pans 0.36 LR px per frame, crossings 0.29)
# doubled, near that of the moving held-out footage (bikes' moving part 0.78)
_variant(f'{LEAN16_NO_IMAGE}_bounded_e0p3r0_diff_reverse_interval2_lr2e-3',
         f'{LEAN16_NO_IMAGE}_bounded_e0p3r0_diff_reverse_lr2e-3', 'frame interval 2',
         train_set={'interval_list': [2]})
# the interval-1-2 row on clips of 8 frames instead of 7 (the longest whose interval-2 windows fit the synthetic clips'
# 16 frames): each frame's features carry more context, at 8/7 the frames per iteration
_variant(f'{LEAN16_NO_IMAGE}_bounded_e0p3r0_diff_reverse_interval12_f8_lr2e-3',
         f'{LEAN16_NO_IMAGE}_bounded_e0p3r0_diff_reverse_interval12_lr2e-3', '8-frame clips', budget={'num_frame': 8})
# the interval-1-2 row on clips whose frames each move by up to 2 GT pixels (half an LR pixel) at random, their LR frames
# made again (datasets.train.camera_shake): every window, still footage too, gives a frame's neighbours other sub-pixel
# samples of it (at 300 s it lost 1.1 dB on real footage, 3.8 on the validation shots: twenty-fourth round); and the
# single-frame network on the same windows, which for it are the same pairs moved
_variant(f'{LEAN16_NO_IMAGE}_bounded_e0p3r0_diff_reverse_interval12_shake2_lr2e-3',
         f'{LEAN16_NO_IMAGE}_bounded_e0p3r0_diff_reverse_interval12_lr2e-3', 'camera shake of 2 GT px',
         train_set={'camera_shake': 2})
# the interval-1-2 row with one propagation trunk for both directions (share_propagation): with clips reversed at random
# the two passes see the same motions, so one set of weights learns from both at every iteration (0.111M parameters,
# the same compute)
_variant(f'{LEAN16_NO_IMAGE}_bounded_e0p3r0_diff_reverse_interval12_share_lr2e-3',
         f'{LEAN16_NO_IMAGE}_bounded_e0p3r0_diff_reverse_interval12_lr2e-3', 'one trunk for both directions',
         share_propagation=True)
# the interval-1-2 row and the single-frame network tested with an exponential moving average of their weights
# (BasicSR's train.ema_decay; 0.998: the last ~500 iterations, under 1% of the untrained start left after 2500): the
# video network's two-pass test-time ensembles gained more than the single-frame network's (twenty-fourth round), and
# an average of weights is the one-pass counterpart of an average of outputs
EMA = {'ema_decay': 0.998}
_variant(f'{LEAN16_NO_IMAGE}_bounded_e0p3r0_diff_reverse_interval12_ema_lr2e-3',
         f'{LEAN16_NO_IMAGE}_bounded_e0p3r0_diff_reverse_interval12_lr2e-3', 'weights averaged (EMA 0.998)', train=EMA)
# the averaged-weights row with 8-channel pixel-shuffle stages and HR refinement instead of 16 (0.167M): at 1200 CPU s
# in float32 the video network is still gaining when the budget ends (3200-3500 iterations, thirty-third round) and
# the HR-size convolutions are about 40% of its iteration; this takes 0.86x the time per iteration (step_time, AMD
# EPYC, one thread, float32). At 1200 s there (thirty-fourth round, four seeds): 1.2-1.6x the iterations, +0.28 dB over
# the single-frame network on the real held-out sets (the 16-channel row +0.27 on those seeds), but -0.13 to -0.17 on
# the validation shots every time (the 16-channel row -0.02 to +0.09): not an improvement
_variant(f'{LEAN16_NO_IMAGE}_bounded_e0p3r0_diff_reverse_interval12_ema_up8_lr2e-3',
         f'{LEAN16_NO_IMAGE}_bounded_e0p3r0_diff_reverse_interval12_ema_lr2e-3', '8-ch upsampling',
         num_upsample_feat=8)
# the interval-1-2 row without recurrence (recurrent: false): each frame's features from itself and its warped
# neighbours only, all frames of a clip at once (an early-fusion sliding window); the alignment gate, which scales
# the propagated features, goes with it (0.167M). The recurrent row's iterations cost 1.2-1.5x the single-frame
# network's at this shape, the convolutions of each recurrent step being small and run one frame after another;
# and with zero flow that row scores as the single-frame network does (twenty-first round), so what it gains is
# what reaches it from the neighbours. Also with the frames two steps away (neighbour_radius: 2). At 300 s (twenty-sixth
# round): -0.18 and +0.02 dB against the single-frame network, the recurrent row +0.23; the carry row below +0.21.
_variant(f'{LEAN16_NO_IMAGE}_bounded_e0p3r0_diff_reverse_interval12_frame_lr2e-3',
         f'{LEAN16_NO_IMAGE}_bounded_e0p3r0_diff_reverse_interval12_lr2e-3', 'no recurrence, no alignment gate',
         recurrent=False, align_gate=False)
_variant(f'{LEAN16_NO_IMAGE}_bounded_e0p3r0_diff_reverse_interval12_frame_n2_lr2e-3',
         f'{LEAN16_NO_IMAGE}_bounded_e0p3r0_diff_reverse_interval12_frame_lr2e-3', 'frames two steps away too',
         neighbour_radius=2)
# the interval-1-2 row with each recurrent step's state half started at half the identity (state_carry): the state
# carries the previous frames' features from the first iteration, not a random mixture of them
_variant(f'{LEAN16_NO_IMAGE}_bounded_e0p3r0_diff_reverse_interval12_carry_lr2e-3',
         f'{LEAN16_NO_IMAGE}_bounded_e0p3r0_diff_reverse_interval12_lr2e-3', 'state started at half the identity',
         state_carry=0.5)
# the interval-1-2 row with second-order propagation (second_order, BasicVSR++'s): each recurrent step also reads the
# state of the frame two steps back, warped by the composed flows (0.204M: the trunks' first convolutions read 32 more
# channels); the lead at 300 s is the recurrent state (twenty-sixth round), this gives it a shorter path. At 300 s
# (twenty-seventh round, four seeds): +0.33 dB over the single-frame network, the row without it +0.36
_variant(f'{LEAN16_NO_IMAGE}_bounded_e0p3r0_diff_reverse_interval12_second_lr2e-3',
         f'{LEAN16_NO_IMAGE}_bounded_e0p3r0_diff_reverse_interval12_lr2e-3', 'second-order propagation',
         second_order=True)
# the interval-1-2 row with its propagated features warped at the HR size (hr_state_channels): all 32 (two HR channels)
# or the first 16 (one), the rest at the LR size. A motion of a fraction of an LR pixel is a whole number of HR pixels,
# moved as it is, where the LR warp blends the sub-pixel detail the state carries (FRVSR's HR warp, applied to the state).
# At 300 s (twenty-eighth round): all 32 lost 0.7 dB on the validation shots, 16 lost 0.08 dB against the best row
for _channels, _suffix, _label in ((32, '', 'state warped at the HR size'),
                                    (16, '16', 'half the state warped at the HR size')):
    _variant(f'{LEAN16_NO_IMAGE}_bounded_e0p3r0_diff_reverse_interval12_hrstate{_suffix}_lr2e-3',
             f'{LEAN16_NO_IMAGE}_bounded_e0p3r0_diff_reverse_interval12_lr2e-3', _label, hr_state_channels=_channels)
del _channels, _suffix, _label
# the interval-1-2 row whose forward pass reads the previous frame's HR output, warped at the HR size, minus the frame's
# bicubic upsampling, space-to-depth (hr_feedback; FRVSR's recurrence beside the LR state; 0.199M). At 300 s
# (twenty-eighth round, two seeds): 1.3x the CPU per iteration, 0.18 dB behind the best row
_variant(f'{LEAN16_NO_IMAGE}_bounded_e0p3r0_diff_reverse_interval12_feedback_lr2e-3',
         f'{LEAN16_NO_IMAGE}_bounded_e0p3r0_diff_reverse_interval12_lr2e-3', 'HR output fed back', hr_feedback=True)
# the interval-1-2 row with its neighbours' differences scaled up (neighbour_scale) to the frame's spread (x4: standard
# deviation 0.07 -> 0.28 against the frames' 0.24 on the training patches) or beyond (x8): Adam moves every weight by
# about the rate, so the first convolution's weights that read the small differences change the features a third as
# fast as those that read the frame; what is slow at 300 s is learning to use the aligned neighbours. At 300 s
# (twenty-ninth round, four seeds): -0.03 and -0.05 dB against the row without the scale
for _scale in (4, 8):
    _variant(f'{LEAN16_NO_IMAGE}_bounded_e0p3r0_diff_reverse_interval12_nscale{_scale}_lr2e-3',
             f'{LEAN16_NO_IMAGE}_bounded_e0p3r0_diff_reverse_interval12_lr2e-3', f'neighbour differences x{_scale}',
             neighbour_scale=float(_scale))
del _scale
# the interval-1-2 row trained in float32 while `sl-bench --autocast bf16` trains every other row in bf16: on this
# CPU bf16 speeds the single-frame network's iterations 3.8x and this row's 1.5x (fourteenth round), and what the
# video network learns at 300 s is sub-pixel detail, small beside the features that carry it (bf16 keeps 8 bits). At
# 300 s (twenty-ninth round, four seeds): 0.67x the iterations, -0.06 dB against the bf16 row, what that many fewer
# iterations cost it; with only the recurrent steps in float32, -0.03
_variant(f'{LEAN16_NO_IMAGE}_bounded_e0p3r0_diff_reverse_interval12_fp32_lr2e-3',
         f'{LEAN16_NO_IMAGE}_bounded_e0p3r0_diff_reverse_interval12_lr2e-3', 'float32', budget={'autocast': False})
# and with only its recurrent steps in float32 (float32_propagation), the extractor and the HR stage in bf16
_variant(f'{LEAN16_NO_IMAGE}_bounded_e0p3r0_diff_reverse_interval12_fp32prop_lr2e-3',
         f'{LEAN16_NO_IMAGE}_bounded_e0p3r0_diff_reverse_interval12_lr2e-3', 'recurrent steps in float32',
         float32_propagation=True)
# the interval-1-2 row with its HR stage (fusion, pixel-shuffle stages, last convolution: 0.033M of its 0.185M) at half
# the rate (1e-3), the recurrent steps at 2e-3 (train.lr_mul). The single-frame network of this size, which is all an
# HR stage on per-frame features, does best at 1e-3 (2e-3: -0.15 dB, eighteenth round), while the video network as a
# whole does best at 2e-3 (3e-3 trained badly on one seed of two, sixteenth round). At 300 s (thirtieth round, four
# seeds): the HR stage at half the rate +0.26 dB over the single-frame network (validation -0.15), the row without it
# +0.29 (-0.07) on the same seeds: the HR stage wants 2e-3
HR_STAGE = ('fusion', 'upsample', 'conv_last')
_variant(f'{LEAN16_NO_IMAGE}_bounded_e0p3r0_diff_reverse_interval12_hrlr0p5_lr2e-3',
         f'{LEAN16_NO_IMAGE}_bounded_e0p3r0_diff_reverse_interval12_lr2e-3', 'HR stage at half the rate',
         train={'lr_mul': dict.fromkeys(HR_STAGE, 0.5)})
# the interval-1-2 row with no loss on the first and last frame of each 7-frame training clip
# (train.loss_border_frames), whose HR stage is then not run: 0.91x the CPU time per iteration (one thread, bf16,
# channels-last). Those two frames see the clip from one side only, as few frames of a long test clip do; their features
# still carry the state. At 300 s (thirtieth round, eight runs on four seeds): +0.26 dB over the single-frame network
# against the row's +0.31 on the same seeds, validation shots +0.01 against -0.04
_variant(f'{LEAN16_NO_IMAGE}_bounded_e0p3r0_diff_reverse_interval12_inner_lr2e-3',
         f'{LEAN16_NO_IMAGE}_bounded_e0p3r0_diff_reverse_interval12_lr2e-3', 'no loss on the clips\' end frames',
         train={'loss_border_frames': 1})
# the interval-1-2 row and the single-frame network with no loss on the outer 2 LR pixels (8 GT pixels) of each 24-px
# training patch (train.loss_border_pixels): there a patch's DIS flow and warped neighbours lack what lies outside it,
# which a whole test frame has; the single-frame network loses its convolutions' context there too. At 300 s (thirtieth
# round, seed 0, each trained beside its row without the option): the video row -0.06 dB, the single-frame network -0.24
_variant(f'{LEAN16_NO_IMAGE}_bounded_e0p3r0_diff_reverse_interval12_border2_lr2e-3',
         f'{LEAN16_NO_IMAGE}_bounded_e0p3r0_diff_reverse_interval12_lr2e-3', 'no loss on the patches\' 2-px border',
         train={'loss_border_pixels': 2})
_variant('SingleFrame_lean_border2', 'SingleFrame_lean', 'no loss on the patches\' 2-px border',
         train={'loss_border_pixels': 2})
# the interval-1-2 row and the single-frame network on patches chosen where the frames change (datasets.train.motion_crops:
# of 4 random crops of each window, the one whose LR frames differ most from one to the next): a random 24-px patch of the
# training mix is often still or flat (the demo footage barely moves), where a video network has nothing to learn from
# its neighbours; what is slow at 300 s is learning to use them. At 300 s (thirty-second round, AMD EPYC, float32, four
# seeds): the single-frame network gains more from it (+0.12 dB: +0.08, +0.19, +0.07, +0.14) than the video row (+0.02),
# which leads the single-frame network trained alike by +0.27 where the best row led the plain one by +0.37 on those
# seeds: a stronger single-frame reference, not a better video row
_variant(f'{LEAN16_NO_IMAGE}_bounded_e0p3r0_diff_reverse_interval12_mcrop4_lr2e-3',
         f'{LEAN16_NO_IMAGE}_bounded_e0p3r0_diff_reverse_interval12_lr2e-3', 'patches where the frames change (1 of 4)',
         train_set={'motion_crops': 4})
_variant('SingleFrame_lean_mcrop4', 'SingleFrame_lean', 'patches where the frames change (1 of 4)',
         train_set={'motion_crops': 4})
_variant(f'{LEAN16_NO_IMAGE}_bounded_e0p3r0_diff_b1x14_lr2e-3', f'{LEAN16_NO_IMAGE}_bounded_e0p3r0_diff_lr2e-3',
         'batch 1 of 14-frame clips', budget={'batch_size': 1, 'num_frame': 14})
# lean16 with IMAGE (the 1200-s row, lr 1e-3) with every residual block in the recurrent steps, as e0p3r0 above
_variant(f'{LEAN16}_bounded_e0p3r0', f'{LEAN16}_bounded', 'no extractor or reconstruction blocks, 3 per recurrent step',
         num_extract_block=0, num_block=3, num_reconstruct_block=0)
# lean16 with IMAGE (0.194M) trained as the best 300-s row is: every block in the recurrent steps, neighbours in as
# differences, clips reversed at random and drawn at frame intervals 1-2, lr 2e-3; IMAGE paid at 1200 s, not at 300 s
# without these (sixteenth and seventeenth rounds)
_variant(f'{LEAN16}_bounded_e0p3r0_diff_reverse_interval12_lr2e-3', f'{LEAN16}_bounded_e0p3r0',
         'neighbours in as differences, clips reversed at random, frame intervals 1-2, lr 2e-3', budget={'lr': 2e-3},
         train_set={'random_reverse': True, 'interval_list': [1, 2]}, neighbour_difference=True)
# the lean rows' size of single-frame network at the tiny reference's rate (5e-4) and at the lean rows' 300-s rate
# (2e-3); the mode's 1e-3 otherwise
_variant('SingleFrame_lean_lr5e-4', 'SingleFrame_lean', 'lr 5e-4', budget={'lr': 5e-4})
_variant('SingleFrame_lean_lr2e-3', 'SingleFrame_lean', 'lr 2e-3', budget={'lr': 2e-3})
# and on the camera-shake row's windows (datasets.train.camera_shake: 2), the same pairs moved, for a fair reading of it
_variant('SingleFrame_lean_ema', 'SingleFrame_lean', 'weights averaged (EMA 0.998)', train=EMA)
_variant('SingleFrame_lean_shake2', 'SingleFrame_lean', 'camera shake of 2 GT px', train_set={'camera_shake': 2})
# the model zoo's 1200-s row and the single-frame network of the full tiny size (the stronger one at 1200 s) with
# averaged weights, for checkpoints trained on other synthetic clips (scripts/synthetic_mix_data.sh)
_variant(f'{LEAN16}_bounded_ema', f'{LEAN16}_bounded', 'weights averaged (EMA 0.998)', train=EMA)
# the best 300-s row's training (all blocks in the recurrent steps, differences, reversed clips, intervals 1-2, 2e-3)
# on the 1200-s row (IMAGE, averaged weights): a CPU without bf16 arithmetic makes about as many iterations in 1200
# CPU s in float32 as the Xeon made in 300 in bf16 (thirty-second round), the regime that training was tuned for. There
# (thirty-third round, four seeds) it leads the single-frame network by +0.26, the no-IMAGE row trained so by +0.27,
# the zoo's design by +0.18
_variant(f'{LEAN16}_bounded_e0p3r0_diff_reverse_interval12_ema_lr2e-3',
         f'{LEAN16}_bounded_e0p3r0_diff_reverse_interval12_lr2e-3', 'weights averaged (EMA 0.998)', train=EMA)
_variant('SingleFrame_ema', 'SingleFrame', 'weights averaged (EMA 0.998)', train=EMA)
#: The best design at 300 CPU s under a short name (the same network and training as its long key): the verdict's
#: first row, set against every reference as a design of its own rather than as an ablation of the full network.
BEST_300S = f'{LEAN16_NO_IMAGE}_bounded_e0p3r0_diff_reverse_interval12_lr2e-3'
_variant('SL_lean', BEST_300S, '', label='SemanticLens lean: DIS flow, aligned neighbours in as differences, alignment '
         'gate, bounded state, w/o semantic branch, MFSAB and IMAGE, 16-ch upsampling; reversed training clips at '
         'frame intervals 1-2, lr 2e-3 (the best design at 300 CPU s)')
#: Rows the verdict sets against every reference before the full network (:func:`sl_arch.bench.report.verdict`).
DESIGN_ROWS = ('SL_lean',)
#: The rows ``sl-bench`` runs without ``--models``: the upsamplings, the best design and the single-frame network of
#: its size, the full tiny network and the single-frame network of its size, BasicSR's video models sized to the full
#: tiny network, and two ablations of it.
DEFAULT_MODELS = ('bicubic', 'bilinear', 'SL_lean', 'SingleFrame_lean', 'SemanticLens', 'SingleFrame', 'BasicVSR',
                  'IconVSR', 'BasicVSRPP', 'EDVR', 'SL_no_semantics', 'SL_no_flow')
#: Rows without a network: MATLAB-bicubic upsampling (the VSR papers' reference) and bilinear
#: upsampling, which BasicVSR, IconVSR, BasicVSR++ and EDVR add their output to.
UPSAMPLINGS = ('bicubic', 'bilinear')
#: The single-frame references: the full tiny network's size (0.48M) and the lean rows' (0.196M).
SINGLE_FRAME_ROWS = ('SingleFrame', 'SingleFrame_lean')
#: The video models SemanticLens is set against in the verdict, after the single-frame rows (:func:`reference_keys`).
VIDEO_BASELINES = ('BasicVSR', 'BasicVSR_dis', 'IconVSR', 'BasicVSRPP', 'EDVR')


def is_single_frame(key):
    """Whether row ``key`` is a single-frame network: a row of :data:`SINGLE_FRAME_ROWS` or one of their variants
    (``SingleFrame_lean_ema``: averaged weights, another rate, ...), all built as ``SLFrameWise``."""
    return key in MODELS and MODELS[key][1] == 'SLFrameWise'


def reference_keys(keys):
    """The rows of ``keys`` SemanticLens is set against in the verdict: the single-frame networks (in ``keys``' order)
    first, then those of :data:`VIDEO_BASELINES`."""
    keys = list(keys)
    return [key for key in keys if is_single_frame(key)] + [key for key in VIDEO_BASELINES if key in keys]

#: Budgets of the two modes. ``seconds`` of training per model, on the ``clock`` (``'cpu'``: CPU
#: seconds of the one-thread training process; ``'gpu'``: synchronized GPU seconds, CUDA only);
#: ``max_iter`` only bounds a run. ``pretrained_flow``: flow-using models start from model_zoo's flow.
#: ``row_changes``: rows' own values in that mode (``sl-bench --lr ROW=...`` and the like change them): in quick mode
#: the 0.48M single-frame network trains at 5e-4, the rate the validation shots chose for it (docs/benchmark-rounds.md,
#: thirteenth round; at the template's 1e-3 its test score was 0.17 dB lower).
MODES = {
    'quick': dict(preset='tiny', clock='cpu', seconds=300, max_iter=100000, batch_size=2, num_frame=7, gt_size=96,
                  lr=1e-3, eta_min=1e-5, flow_lr_mul=0.25, seed=0, pretrained_flow=True, jobs=2, repeats=2,
                  out='results/benchmark',
                  row_changes={key: {'lr': 5e-4} for key in ('SingleFrame', 'SingleFrame_ema')}),
    'full': dict(preset='paper', clock='gpu', seconds=7200, max_iter=1000000, batch_size=8, num_frame=15, gt_size=96,
                 lr=2e-4, eta_min=1e-7, flow_lr_mul=0.125, seed=0, pretrained_flow=False, jobs=1, repeats=5,
                 out='results/benchmark/full'),
}

#: Pretrained flow (model_zoo/README.md), relative to the folder sl-bench runs in: BasicSR's SPyNet
#: layout for every baseline built with a SpyNet (BasicVSR, IconVSR, BasicVSR++: ``spynet_path``), and
#: SemanticLens' flow warper of each preset that has one (``flow_load_path``).
PRETRAINED_SPYNET = 'model_zoo/spynet_synthetic_dis.pth'
PRETRAINED_SL_FLOW = {'tiny': 'model_zoo/slflow_tiny_synthetic_dis.pth'}

#: Width and block axes of the BasicVSR family's size grid.
BASICVSR_AXES = {'num_feat': (16, 24, 32, 48, 64), 'num_block': tuple(range(1, 31))}
#: How each baseline is sized: (options of a grid point, searched axes, the width axis first).
SIZE_GRIDS = {
    # SRResNet from 48 channels and 5 residual blocks up (the model zoo's reference of SemanticLens tiny
    # is 48 ch / 7 blocks): no narrow-and-deep or wide-and-shallow extremes of the same count
    'SLFrameWise': (lambda **size: {'type': 'SLFrameWise', 'network': dict(type='MSRResNet', upscale=4, **size)},
                    {'num_feat': (48, 64, 96, 128, 192), 'num_block': tuple(range(5, 41))}),
    'BasicVSR': (lambda **size: dict(type='BasicVSR', spynet_path=None, **size), BASICVSR_AXES),
    'SLBasicVSR': (lambda **size: dict(type='SLBasicVSR', spynet_path=None, **size), BASICVSR_AXES),
    'IconVSR': (lambda **size: dict(type='IconVSR', keyframe_stride=5, temporal_padding=2, spynet_path=None,
                                    edvr_path=None, **size),
                BASICVSR_AXES),
    # widths multiples of 8: the 16 deformable groups of its alignment take 2 * mid_channels channels
    'SLBasicVSRPlusPlus': (lambda **size: dict(type='SLBasicVSRPlusPlus', max_residue_magnitude=10,
                                               is_low_res_input=True, spynet_path=None, **size),
                           {'mid_channels': (16, 24, 32, 48, 64), 'num_blocks': tuple(range(1, 21))}),
    # widths multiples of its 8 deformable groups
    'EDVR': (lambda **size: dict(type='EDVR', num_in_ch=3, num_out_ch=3, num_frame=5, deformable_groups=8,
                                 hr_in=False, with_predeblur=False, with_tsa=True, **size),
             {'num_feat': (16, 24, 32, 48, 64), 'num_extract_block': (1, 2, 3, 5),
              'num_reconstruct_block': (1, 2, 3, 5, 10)}),
}
METRICS = {
    'psnr': {'type': 'calculate_psnr', 'crop_border': 0, 'test_y_channel': True},
    'ssim': {'type': 'calculate_ssim', 'crop_border': 0, 'test_y_channel': True},
}

#: ``sl-bench --data-root``'s default.
DATA_ROOT = 'datasets'
#: The data ``scripts/zoo_data.sh`` makes under ``--data-root``: training clips (synthetic clips and
#: the demo footage's training frames, side by side) and the held-out test sets: name -> folder,
#: meta_info file (or None), whether it is real footage, label.
TRAIN_FOLDER = 'zoo_mix/train'
TEST_SETS = {
    'demo_bbb_val': dict(folder='demo_bbb/val', meta='meta_info.txt', real=True, label='demo held-out (real)'),
    'real_heldout': dict(folder='real_heldout/train', meta=None, real=True, label='bikes + carphone (real)'),
    'real_moving': dict(folder='real_moving/train', meta=None, real=True, label='bikes, moving part (real)'),
    'synthetic_pan': dict(folder='synthetic/val', meta='meta_info_pan.txt', real=False, label='synthetic pan'),
    'synthetic_crossing': dict(folder='synthetic/val', meta='meta_info_crossing.txt', real=False,
                               label='synthetic crossing'),
}
DATA_SCRIPT = 'bash scripts/zoo_data.sh'
#: Name of the validation set (``sl-bench --val-set``, ``python -m sl_arch.bench.validate --set``): footage no
#: test set holds, tested like the test sets but not in their real mean, for choosing settings without tuning on them.
VALIDATION_SET = 'validation'


# ---------------------------------------------------------------------------------- sizes
def parameter_counts(network_opt):
    """``(total, without SPyNet)`` parameter counts of a network option dict (built on the meta device).

    Pretrained-weight files (``*_path`` options) are not read: they do not change the counts.
    """
    import torch

    from basicsr.archs import build_network
    network_opt = {key: value for key, value in network_opt.items() if not key.endswith('_path')}
    try:
        with torch.device('meta'):
            net = build_network(network_opt)
    except Exception:  # a constructor that needs real tensors: build it on the CPU
        net = build_network(network_opt)
    total = sum(p.numel() for p in net.parameters())
    spynet = sum(p.numel() for name, p in net.named_parameters() if 'spynet' in name)
    return total, total - spynet


def check_preset(preset, option='preset'):
    """Refuse (:class:`SLError`, naming ``option``) a ``preset`` that is not one of SemanticLens' ``PRESETS``."""
    from sl_arch.archs.semantic_lens_arch import PRESETS
    if preset not in PRESETS:
        raise SLError(f'{option} {preset}: unknown SemanticLens preset; choose one of {", ".join(PRESETS)}.')


def semantic_lens_options(preset, ablation=None):
    """``network_g`` of SemanticLens ``PRESETS[preset]`` with the ``ablation`` switches."""
    from sl_arch.archs.semantic_lens_arch import PRESETS
    check_preset(preset)
    return dict(type='SemanticLens', **dict(PRESETS[preset], **(ablation or {})))


@functools.lru_cache(maxsize=None)
def sl_parameter_count(preset):
    """Parameter count of the full SemanticLens ``preset``: the size every baseline is matched to."""
    return parameter_counts(semantic_lens_options(preset))[0]


def size_baseline(arch_type, target, **fixed):
    """The grid point of ``arch_type`` whose parameter count without SPyNet is closest to ``target``.

    The first grid axis is the width; counts grow linearly along the others (stacks of identical
    blocks), so each width is built with every block count at 1 and with each at 2, and the rest of
    the grid follows. Ties go to the smaller network. ``fixed`` options (e.g. EDVR's
    ``num_frame``) replace the grid's. Returns the option dict for ``network_g``.
    """
    grid_make, axes = SIZE_GRIDS[arch_type]

    def make(**size):
        return dict(grid_make(**size), **fixed)

    width_axis, *block_axes = axes
    best = None
    for width in axes[width_axis]:
        ones = {width_axis: width, **{axis: 1 for axis in block_axes}}
        base_total, base = parameter_counts(make(**ones))
        steps = {axis: parameter_counts(make(**dict(ones, **{axis: 2})))[1] - base for axis in block_axes}
        for blocks in itertools.product(*(axes[axis] for axis in block_axes)):
            matched = base + sum(steps[axis] * (count - 1) for axis, count in zip(block_axes, blocks))
            key = (abs(matched - target), base_total - base + matched)
            if best is None or key < best[0]:
                best = (key, make(**dict(ones, **dict(zip(block_axes, blocks)))))
    return best[1]


def network_options(key, preset, pretrained_flow, num_frame=5):
    """``network_g`` of benchmark row ``key`` (None for an upsampling), with the pretrained flow where it has one.

    ``num_frame`` is the training clip length: EDVR is built to take that many frames.

    Raises:
        SLError: a pretrained flow file is missing, or SemanticLens ``preset`` has none.
    """
    _, kind, ablation = MODELS[key]
    if kind in UPSAMPLINGS:
        return None
    if kind == 'SemanticLens':
        network_opt = semantic_lens_options(preset, ablation)
        learned_flow = network_opt.get('use_flow', True) and network_opt.get('flow_estimator') != 'dis'
        if pretrained_flow and learned_flow:
            if preset not in PRETRAINED_SL_FLOW:
                raise SLError(f'model_zoo has no pretrained flow of SemanticLens {preset!r} '
                              f'(only {", ".join(PRETRAINED_SL_FLOW)}); pass --no-pretrained-flow.')
            network_opt['flow_load_path'] = pretrained_file(PRETRAINED_SL_FLOW[preset])
        return network_opt
    fixed = dict(ablation or {}, **({'num_frame': num_frame} if kind == 'EDVR' else {}))
    network_opt = size_baseline(kind, sl_parameter_count(preset), **fixed)
    total, without_spynet = parameter_counts(network_opt)
    if pretrained_flow and total > without_spynet:  # built with a SpyNet (not EDVR, SRResNet, BasicVSR on DIS)
        network_opt['spynet_path'] = pretrained_file(PRETRAINED_SPYNET)
    return network_opt


def pretrained_file(path):
    """Absolute path of a model_zoo file, which must exist."""
    if not osp.isfile(path):
        raise SLError(f'{path} is missing; run sl-bench from the repository root (where model_zoo/ is) or pass '
                      '--no-pretrained-flow.')
    return osp.abspath(path)


# ---------------------------------------------------------------------------------- data
def dataset_options(data_root, degradation='BI'):
    """Training set and held-out test sets under ``data_root`` (as ``scripts/zoo_data.sh`` makes them).

    ``degradation`` names the LR frames of every set: ``'BI'`` (MATLAB bicubic) or ``'BD'`` (Gaussian
    blur, sigma 1.6, then every 4th pixel: more aliasing, where other frames can add most).

    Returns:
        tuple[dict, dict]: BasicSR options of the training set (``SLVideoRecurrentDataset``, no
        augmentation or batch settings yet) and ``{name: options}`` of the test sets
        (``SLVideoTestDataset``), in :data:`TEST_SETS` order.

    Raises:
        SLError: naming the first missing folder or file and the command that makes it.
    """
    root = osp.abspath(data_root)
    train = osp.join(root, TRAIN_FOLDER)
    tests = {}
    for name, test_set in TEST_SETS.items():
        folder = osp.join(root, test_set['folder'])
        tests[name] = {'name': name, 'type': 'SLVideoTestDataset', 'dataroot_gt': osp.join(folder, 'GT'),
                       'dataroot_lq': osp.join(folder, degradation), 'io_backend': {'type': 'disk'}}
        if test_set['meta']:
            tests[name]['meta_info_file'] = osp.join(folder, test_set['meta'])
    needed = [osp.join(train, 'GT'), osp.join(train, degradation)]
    needed += [path for test in tests.values() for path in (test['dataroot_gt'], test['dataroot_lq'],
                                                              test.get('meta_info_file'))]
    for path in needed:
        if path and not osp.exists(path):
            raise SLError(f'{path} is missing; make the benchmark data with {DATA_SCRIPT} or pass --data-root.')
    train_set = {'name': osp.basename(osp.dirname(train)), 'type': 'SLVideoRecurrentDataset',
                 'dataroot_gt': osp.join(train, 'GT'), 'dataroot_lq': osp.join(train, degradation),
                 'io_backend': {'type': 'disk'}}
    return train_set, tests


def validation_set(folder, degradation, option='--set'):
    """``SLVideoTestDataset`` options of ``folder`` (``GT/`` and ``BI/`` or ``BD/`` clip folders) as the
    :data:`VALIDATION_SET`; SLError naming ``option`` and a missing sub-folder."""
    folder = osp.abspath(folder)
    for sub in ('GT', degradation):
        if not osp.isdir(osp.join(folder, sub)):
            raise SLError(f'{option} {folder} has no {sub}/ folder; give a folder of clip folders as sl-prepare makes '
                          'them (e.g. datasets/real_other_shots_split, made by bash scripts/indomain_data.sh).')
    return {'name': VALIDATION_SET, 'type': 'SLVideoTestDataset', 'dataroot_gt': osp.join(folder, 'GT'),
            'dataroot_lq': osp.join(folder, degradation), 'io_backend': {'type': 'disk'}}


def held_out_label(name):
    """The label of a held-out set: a test set's, or the validation set's."""
    return TEST_SETS[name]['label'] if name in TEST_SETS else f'{name} (other real shots, --val-set)'


def prepared_dataset_options(data_root):
    """Training set and validation set of one ``sl-prepare`` output root (train/ and val/, GT and BI).

    Returns:
        tuple[dict, dict]: Options of ``SLVideoRecurrentDataset`` (train/) and ``SLVideoTestDataset`` (val/).
    """
    root = osp.abspath(data_root)
    for sub in ('train/GT', 'train/BI', 'val/GT', 'val/BI'):
        if not osp.isdir(osp.join(root, sub)):
            raise SLError(f'{osp.join(root, sub)} is missing; make the data with sl-prepare or pass another folder.')
    sets = []
    for split, kind, name in (('train', 'SLVideoRecurrentDataset', osp.basename(root)),
                              ('val', 'SLVideoTestDataset', osp.basename(root) + '_val')):
        options = {'name': name, 'type': kind, 'dataroot_gt': osp.join(root, split, 'GT'),
                   'dataroot_lq': osp.join(root, split, 'BI'), 'io_backend': {'type': 'disk'}}
        if osp.isfile(osp.join(root, split, 'meta_info.txt')):
            options['meta_info_file'] = osp.join(root, split, 'meta_info.txt')
        sets.append(options)
    return tuple(sets)


def real_test_sets():
    """Names of the held-out sets of real footage (the verdict's headline sets)."""
    return [name for name, test_set in TEST_SETS.items() if test_set['real']]


# ---------------------------------------------------------------------------------- option files
def min_input_size(network_opt):
    """The ``min_input_size`` option of a network: its smallest input side (:func:`sl_arch.archs.spec.arch_spec`).

    Clips and training patches below it are padded by SLVideoRecurrentModel: BasicSR's SPyNet
    (BasicVSR, IconVSR) needs 33 px, BasicVSR++ 64 px, and the synthetic clips are 24 px high.
    None for networks that take any size.
    """
    from sl_arch.archs.spec import arch_spec
    size = arch_spec(network_opt).min_size
    return size if size > 1 else None


def with_min_input_size(options, network_opt):
    """``options`` with ``min_input_size`` set when the network needs it."""
    size = min_input_size(network_opt)
    return dict(options, min_input_size=size) if size else options


def weights_key(key):
    """The weights row ``key`` is tested and measured with: its averaged weights (``params_ema``) where it trains with
    ``train.ema_decay`` (:data:`TRAIN_CHANGES`), else those of its last iteration (``params``)."""
    return 'params_ema' if TRAIN_CHANGES.get(key, {}).get('ema_decay', 0) > 0 else 'params'


def row_budget(budget, key):
    """``budget`` with row ``key``'s own values: its :data:`ROW_BUDGETS`, then ``budget['row_changes']``
    (``sl-bench --lr ROW=...``, ``--num-frame ROW=...``, ...)."""
    return {**budget, **ROW_BUDGETS.get(key, {}), **budget.get('row_changes', {}).get(key, {})}


def train_options(name, network_opt, budget, train_set):
    """The shared training template: only ``name``, ``network_g`` and ``min_input_size`` differ between rows.

    Args:
        name (str): Run name (``experiments/<name>``).
        network_opt (dict): ``network_g``.
        budget (dict): A time budget as in :data:`MODES` (``clock``, ``seconds``, ``max_iter``,
            batch, ...; optional ``autocast`` and ``channels_last``), or an iteration budget:
            ``total_iter`` (and ``fix_flow_fraction``) instead of ``clock`` / ``seconds`` / ``max_iter``,
            the cosine then running over the iterations.
        train_set (dict): From :func:`dataset_options` or :func:`prepared_dataset_options`.
    """
    train = {
        'ema_decay': 0,
        'optim_g': {'type': 'Adam', 'lr': budget['lr'], 'weight_decay': 0, 'betas': [0.9, 0.99]},
        'warmup_iter': -1,
        'fix_flow': 0,
        'flow_lr_mul': budget['flow_lr_mul'],
        'pixel_opt': {'type': 'CharbonnierLoss', 'loss_weight': 1.0, 'reduction': 'mean'},
    }
    # set only when asked, so that the option files of float32, default-order runs stay as they were
    # (a finished row is read back only when its options are the same)
    train.update({key: budget[key] for key in ('autocast', 'channels_last') if budget.get(key)})
    if budget.get('seconds') is not None:
        train.update({'scheduler': {'type': 'BudgetCosineLR', 'eta_min': budget['eta_min']},
                      'total_iter': budget['max_iter'], f'{budget["clock"]}_seconds': budget['seconds']})
    else:
        total_iter = budget['total_iter']
        train.update({'scheduler': {'type': 'CosineAnnealingRestartLR', 'periods': [total_iter],
                                    'restart_weights': [1], 'eta_min': budget['eta_min']},
                      'total_iter': total_iter, 'fix_flow': int(total_iter * budget.get('fix_flow_fraction', 0))})
    options = {
        'name': name, 'model_type': 'SLVideoRecurrentModel', 'scale': 4, 'num_gpu': 'auto',
        'manual_seed': budget['seed'],
        # the sampling defaults first, so that a row's own dataset options (TRAIN_SET_CHANGES, in ``train_set``)
        # replace them; the budget's clip shape and batch last
        'datasets': {'train': dict(
            dict(interval_list=[1], random_reverse=False, use_hflip=True, use_rot=True, cache_frames=True), **train_set,
            num_frame=budget['num_frame'], gt_size=budget['gt_size'], num_worker_per_gpu=0,
            batch_size_per_gpu=budget['batch_size'], dataset_enlarge_ratio=1, prefetch_mode=None)},
        'network_g': network_opt,
        'path': {'pretrain_network_g': None, 'strict_load_g': True, 'resume_state': None},
        'train': train,
        'logger': {'print_freq': 10, 'save_checkpoint_freq': train['total_iter'], 'use_tb_logger': False,
                   'wandb': {'project': None, 'resume_id': None}},
        'dist_params': {'backend': 'gloo', 'port': 29500},
    }
    return with_min_input_size(options, network_opt)


def val_tile(network_opt):
    """``val.tile`` of a network: one window per output frame for a centre-frame network (EDVR).

    The window length and the multiple the sides are padded to come from the network's
    :func:`sl_arch.archs.spec.arch_spec`; clip ends are padded as BasicSR's EDVR test data are
    (``reflection_circle``). None for whole-clip networks and bicubic.
    """
    from sl_arch.archs.spec import arch_spec
    spec = arch_spec(network_opt) if network_opt else None
    if spec is None or not spec.is_sliding_window:
        return None
    return {'num_neighbours': spec.sliding_window_frames, 'padding': 'reflection_circle',
            'multiple': spec.size_multiple}


def test_options(name, network_opt, test_sets, checkpoint, param_key='params'):
    """Test options of one row: every held-out set, PSNR-Y / SSIM-Y, EDVR on sliding windows; the checkpoint's
    ``param_key`` weights (:func:`weights_key`)."""
    val = {'save_img': False, 'flip_seq': False, 'center_frame_only': False, 'metrics': METRICS}
    if val_tile(network_opt):
        val['tile'] = val_tile(network_opt)
    options = {
        'name': name, 'model_type': 'SLVideoRecurrentModel', 'scale': 4, 'num_gpu': 'auto', 'manual_seed': 0,
        'datasets': {f'test_{number}': dict(test) for number, test in enumerate(test_sets.values(), 1)},
        'network_g': network_opt,
        'path': {'pretrain_network_g': checkpoint, 'param_key_g': param_key, 'strict_load_g': True},
        'val': val,
    }
    return with_min_input_size(options, network_opt)


def write_yaml(path, options):
    """Write ``options`` as a YAML option file, atomically."""

    write_text(path, yaml.safe_dump(options, sort_keys=False))
