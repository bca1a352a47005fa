"""Can the Semantic Extractor find the instances at all? ``python -m sl_arch.bench.extractor``.

Trains ``SLSemanticExtractor`` alone, on ``SLInstanceMaskLoss`` against the ground-truth instances
of the synthetic training clips (no SR loss: the best its masks can do), then prints the
Hungarian-matched mean IoU on the held-out crossing clips (one matching per clip, as
:func:`sl_arch.bench.semantics.matched_iou`). ``--motion`` adds the difference to the next frame
as three more input channels, since in these clips objects differ from the background mostly by
how they move; ``--flow exact|learned|dis|blocks`` adds each frame's optical flow to the next and to the
previous frame as four more (the synthetic clips' exact flow, that of the pretrained flow warper of the
model zoo, frozen, OpenCV's DIS flow, or whole-pixel block matching: what SemanticLens could hand its
extractor); ``--camera SOURCE`` adds the differences to both neighbours after the camera's motion, fitted
to that flow, is compensated (where objects move against the background they stay); ``--costs R`` adds
the raw matching costs of every displacement within R pixels; ``--fine-masks`` computes the masks at
the full LR resolution (``fine_masks``). Besides the matched mIoU it prints the same matched frame by
frame (the gap: identity switches) and the foreground IoU (are the objects found at all).
"""
import argparse
import os.path as osp
import time

import numpy as np
import torch

from sl_arch.bench.common import check_seed
from sl_arch.utils.errors import SLError, cli_entry


def with_motion(clip):
    """(..., t, c, h, w) -> (..., t, c + 3, h, w): each frame (an image in its first 3 channels) and the
    image's difference to the next frame (0 for the last)."""
    image = clip[..., :3, :, :]
    following = torch.cat([image[..., 1:, :, :, :], image[..., -1:, :, :, :]], dim=-4)
    return torch.cat([clip, following - image], dim=-3)


#: Where ``--flow`` and ``--camera`` take the flow from; ``learned``: this pretrained flow warper (SemanticLens
#: tiny's); ``dis``: :class:`sl_arch.archs.prealign_arch.SLDISFlow`; ``blocks``:
#: :func:`sl_arch.bench.flow.block_matching_flow`; ``exact``: the synthetic clips' own.
FLOW_SOURCES = ('none', 'exact', 'learned', 'dis', 'blocks')
LEARNED_FLOW = 'model_zoo/slflow_tiny_synthetic_dis.pth'


def exact_flows(root, split, clip, num_frames):
    """(t, 4, h, w) the synthetic clip's exact flow of each frame to the next and to the previous frame
    (LR pixels, (dx, dy); zero where the frame has no such neighbour)."""
    from sl_arch.data.clips import read_window_flows
    from sl_arch.data.synthetic import FLOW_NAME
    to_next, to_previous = (torch.from_numpy(np.stack(flows)).permute(0, 3, 1, 2) for flows in read_window_flows(
        osp.join(root, split), clip, [FLOW_NAME.format(t) for t in range(num_frames)], list(range(num_frames))))
    zero = torch.zeros_like(to_next[:1])
    return torch.cat([torch.cat([to_next, zero]), torch.cat([zero, to_previous])], dim=1)


def estimated_flows(warper, frames):
    """(t, 4, h, w) as :func:`exact_flows`, estimated by ``warper`` from the LR frames (t, 3, h, w)."""
    with torch.no_grad():
        to_next = warper(frames[:-1], frames[1:])  # flow at frame t pointing to frame t + 1
        to_previous = warper(frames[1:], frames[:-1])
    zero = torch.zeros_like(to_next[:1])
    return torch.cat([torch.cat([to_next, zero]), torch.cat([zero, to_previous])], dim=1)


def camera_flows(flows, iterations=5):
    """(t, 4, h, w) flows to the next and previous frame -> the same, each replaced by its robust
    global affine fit (:func:`sl_arch.archs.prealign_arch.instance_affine_flow` under one mask for
    the whole frame): the camera's motion, which a background that pans and zooms follows exactly,
    with the moving objects as outliers."""
    from sl_arch.archs.prealign_arch import instance_affine_flow
    t, _, h, w = flows.shape
    whole = torch.ones(t, 1, h, w, dtype=flows.dtype)
    return torch.cat([instance_affine_flow(flows[:, i:i + 2], whole, iterations=iterations) for i in (0, 2)], dim=1)


def compensated_differences(frames, flows):
    """(t, 6, h, w): each frame's difference to the next and to the previous frame, warped onto it by
    ``flows`` (t, 4, h, w) as :func:`exact_flows` (zero where the frame has no such neighbour)."""
    from basicsr.archs.arch_util import flow_warp
    zero = torch.zeros_like(frames[:1])

    def warped(supp, flow):
        return flow_warp(supp, flow.permute(0, 2, 3, 1), padding_mode='border')

    to_next = warped(frames[1:], flows[:-1, :2]) - frames[:-1]
    to_previous = warped(frames[:-1], flows[1:, 2:]) - frames[1:]
    return torch.cat([torch.cat([to_next, zero]), torch.cat([zero, to_previous])], dim=1)


def cost_volume(frames, radius=4):
    """(t, 2 (2 radius + 1)^2, h, w): :func:`sl_arch.bench.flow.matching_costs` (3 x 3 windows) of each frame
    (t, c, h, w) against the next (first half) and the previous frame (second half), laid out as
    :func:`estimated_flows`; zero where the frame has no such neighbour."""
    from sl_arch.bench.flow import matching_costs
    return estimated_flows(lambda ref, supp: matching_costs(ref, supp, radius), frames)


def flow_estimator(source):
    """``(ref, supp) -> flow`` (n, 2, h, w) of a :data:`FLOW_SOURCES` name other than none and exact."""
    if source == 'learned':
        from sl_arch.bench.flow import build_warper
        return build_warper('tiny', load_path=LEARNED_FLOW).eval()
    if source == 'dis':
        from sl_arch.archs.prealign_arch import SLDISFlow
        return SLDISFlow()
    from sl_arch.bench.flow import block_matching_flow
    return block_matching_flow


def load_split(root, split, meta='meta_info.txt', flow='none', camera='none', costs=0):
    """``[(LR clip (t, 3, h, w) or with ``flow`` (t, 7, h, w), ids (t, h, w))]`` of a synthetic split;
    ``camera`` appends :func:`compensated_differences` under the :func:`camera_flows` of that flow source,
    ``costs`` the :func:`cost_volume` of that radius."""

    from sl_arch.bench.semantics import read_clip
    from sl_arch.data.dataset_files import read_meta_info
    from sl_arch.io.tensors import frames_to_tensor
    estimators = {source: flow_estimator(source) for source in {flow, camera} - {'none', 'exact'}}
    clips = []
    for clip, num_frames, _ in read_meta_info(osp.join(root, split, meta)):
        frames, ids = read_clip(root, clip, num_frames, split=split)
        frames = frames_to_tensor(frames)
        image = frames
        flows = {source: exact_flows(root, split, clip, num_frames) if source == 'exact' else
                 estimated_flows(estimators[source], image) for source in {flow, camera} - {'none'}}
        if flow != 'none':
            frames = torch.cat([frames, flows[flow]], dim=1)
        if camera != 'none':
            frames = torch.cat([frames, compensated_differences(image, camera_flows(flows[camera]))], dim=1)
        if costs:
            frames = torch.cat([frames, cost_volume(image, costs)], dim=1)
        clips.append((frames, torch.from_numpy(ids)))
    return clips


def train_and_score(root, iters, motion, fine_masks=False, num_frame=7, batch=2, seed=0, dim=32, flow='none',
                    camera='none', costs=0):
    """Train the extractor on the mask loss; returns the mean :func:`sl_arch.bench.semantics.clip_mask_scores`
    over the held-out crossing clips (a dict)."""
    from sl_arch.archs.semantic_extractor_arch import SLSemanticExtractor
    from sl_arch.bench.semantics import clip_mask_scores
    from sl_arch.losses.instance_mask_loss import SLInstanceMaskLoss
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    train = load_split(root, 'train', flow=flow, camera=camera, costs=costs)
    channels = train[0][0].shape[1]
    net = SLSemanticExtractor(num_in_ch=channels + (3 if motion else 0), dim=dim, fine_masks=fine_masks)
    loss_fn = SLInstanceMaskLoss(loss_weight=1.0)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    from tqdm import tqdm
    for _ in tqdm(range(iters), desc='extractor on the mask loss', unit='iter'):
        chosen = [train[i] for i in rng.integers(0, len(train), batch)]
        starts = [int(rng.integers(0, len(ids) - num_frame + 1)) for _, ids in chosen]
        lq = torch.stack([frames[s:s + num_frame] for (frames, _), s in zip(chosen, starts)])
        ids = torch.stack([masks[s:s + num_frame] for (_, masks), s in zip(chosen, starts)])
        loss = loss_fn(net(with_motion(lq) if motion else lq)['masks'], ids)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    scores = []
    net.eval()
    for frames, ids in load_split(root, 'val', 'meta_info_crossing.txt', flow=flow, camera=camera, costs=costs):
        with torch.no_grad():
            masks = net((with_motion(frames) if motion else frames)[None])['masks'][0]
        scores.append(clip_mask_scores(masks.argmax(1).numpy(), ids.numpy(), masks.shape[1]))
    return {name: float(np.mean([score[name] for score in scores])) for name in scores[0]}


@cli_entry
def main(argv=None):
    parser = argparse.ArgumentParser(prog='python -m sl_arch.bench.extractor', description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--root', default='datasets/synthetic', help='sl-prepare --synthetic output')
    parser.add_argument('--iters', type=int, default=1500)
    parser.add_argument('--motion', action='store_true', help='frame differences as extra input channels')
    parser.add_argument('--flow', choices=FLOW_SOURCES, default='none',
                        help='optical flow to both neighbours as extra input channels: the clips\' exact flow, '
                             f'that of the pretrained flow warper {LEARNED_FLOW}, OpenCV DIS flow or block matching')
    parser.add_argument('--camera', choices=FLOW_SOURCES, default='none',
                        help='differences to both neighbours after the camera\'s motion (a robust global affine fit '
                             'of that flow) is compensated, as six more input channels')
    parser.add_argument('--costs', type=int, default=0, metavar='RADIUS',
                        help='matching costs to both neighbours for every displacement within RADIUS LR pixels '
                             '(a local cost volume) as 2 (2 RADIUS + 1)^2 more input channels')
    parser.add_argument('--fine-masks', action='store_true', help='masks at full LR resolution (SLSemanticExtractor fine_masks)')
    parser.add_argument('--dim', type=int, default=32, help='token / embedding width (SemanticLens sem_dim; tiny: 32)')
    parser.add_argument('--seed', type=int, default=0, help='seed of the initialisation and of the batches')
    args = parser.parse_args(argv)
    if args.iters < 0:
        raise SLError(f'--iters {args.iters}: give a number of training iterations, 0 or more (0: the untrained '
                      'extractor).')
    if args.dim < 2 or args.dim % 2:
        raise SLError(f'--dim {args.dim}: the width must be an even number, 2 or more (its attention has 2 heads; '
                      'tiny: 32).')
    check_seed(args.seed)
    if args.costs < 0:
        raise SLError(f'--costs {args.costs}: give a radius in LR pixels, 1 or more (0: no cost volume).')
    if not osp.isfile(osp.join(args.root, 'val', 'meta_info_crossing.txt')):
        raise SLError(f'{args.root} holds no synthetic clips; make them with sl-prepare --synthetic -o {args.root}.')
    torch.set_num_threads(1)
    started = time.process_time()
    scores = train_and_score(args.root, args.iters, args.motion, args.fine_masks, dim=args.dim, flow=args.flow,
                             camera=args.camera, costs=args.costs, seed=args.seed)
    with_input = (' with motion input' if args.motion else '') + (f', {args.flow} flow input' if args.flow != 'none'
                                                                   else '')
    with_input += f', camera-compensated differences ({args.camera} flow)' if args.camera != 'none' else ''
    with_input += f', cost volume of radius {args.costs}' if args.costs else ''
    with_input += (', full-resolution masks' if args.fine_masks else '') + f', width {args.dim}'
    with_input += f', seed {args.seed}' if args.seed else ''
    print(f'extractor trained {args.iters} iterations on the mask loss alone{with_input}'
          f' ({time.process_time() - started:.0f} CPU-s): held-out crossing clips mIoU {scores["clip_all"]:.3f} '
          f'(objects only {scores["clip_objects"]:.3f}; matched per frame {scores["frame_all"]:.3f} / '
          f'{scores["frame_objects"]:.3f}; objects found, foreground IoU {scores["foreground"]:.3f})')


if __name__ == '__main__':
    main()
