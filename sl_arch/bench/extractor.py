"""Can the Semantic Extractor find the instances at all? ``python -m sl_arch.bench.extractor``.

Trains ``SLSemanticExtractor`` alone, on ``SLInstanceMaskLoss`` against the ground-truth instances
of the synthetic training clips (no SR loss: the best its masks can do), then prints the
Hungarian-matched mean IoU on the held-out crossing clips (one matching per clip, as
:func:`sl_arch.bench.semantics.matched_iou`). ``--motion`` adds the difference to the next frame
as three more input channels, since in these clips objects differ from the background mostly by
how they move; ``--flow exact|learned|dis`` adds each frame's optical flow to the next and to the previous
frame as four more (the synthetic clips' exact flow, that of the pretrained flow warper of the model
zoo, frozen, or OpenCV's DIS flow: what SemanticLens could hand its extractor); ``--fine-masks`` computes the masks at
the full LR resolution (``fine_masks``).
"""
import argparse
import os.path as osp
import time

import numpy as np
import torch

from sl_arch.utils.errors import SLError, cli_entry


def with_motion(clip):
    """(..., t, c, h, w) -> (..., t, c + 3, h, w): each frame (an image in its first 3 channels) and the
    image's difference to the next frame (0 for the last)."""
    image = clip[..., :3, :, :]
    following = torch.cat([image[..., 1:, :, :, :], image[..., -1:, :, :, :]], dim=-4)
    return torch.cat([clip, following - image], dim=-3)


#: Where ``--flow`` takes the flow from; ``learned``: this pretrained flow warper (SemanticLens tiny's);
#: ``dis``: :class:`sl_arch.archs.prealign_arch.SLDISFlow`.
FLOW_SOURCES = ('none', 'exact', 'learned', 'dis')
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


def load_split(root, split, meta='meta_info.txt', flow='none'):
    """``[(LR clip (t, 3, h, w) or with ``flow`` (t, 7, h, w), ids (t, h, w))]`` of a synthetic split."""

    from sl_arch.bench.semantics import read_clip
    from sl_arch.data.dataset_files import read_meta_info
    from sl_arch.io.tensors import frames_to_tensor
    warper = None
    if flow == 'learned':
        from sl_arch.bench.flow import build_warper
        warper = build_warper('tiny', load_path=LEARNED_FLOW).eval()
    elif flow == 'dis':
        from sl_arch.archs.prealign_arch import SLDISFlow
        warper = SLDISFlow()
    clips = []
    for clip, num_frames, _ in read_meta_info(osp.join(root, split, meta)):
        frames, ids = read_clip(root, clip, num_frames, split=split)
        frames = frames_to_tensor(frames)
        if flow == 'exact':
            frames = torch.cat([frames, exact_flows(root, split, clip, num_frames)], dim=1)
        elif warper is not None:
            frames = torch.cat([frames, estimated_flows(warper, frames)], dim=1)
        clips.append((frames, torch.from_numpy(ids)))
    return clips


def train_and_score(root, iters, motion, fine_masks=False, num_frame=7, batch=2, seed=0, dim=32, flow='none'):
    """Train the extractor on the mask loss; returns (mIoU all, mIoU objects) on held-out crossing clips."""
    from sl_arch.archs.semantic_extractor_arch import SLSemanticExtractor
    from sl_arch.bench.semantics import matched_iou
    from sl_arch.losses.instance_mask_loss import SLInstanceMaskLoss
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    train = load_split(root, 'train', flow=flow)
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
    for frames, ids in load_split(root, 'val', 'meta_info_crossing.txt', flow=flow):
        with torch.no_grad():
            masks = net((with_motion(frames) if motion else frames)[None])['masks'][0]
        result = matched_iou(masks.argmax(1).numpy(), ids.numpy(), masks.shape[1])
        scores.append((result['all'], result['objects']))
    return tuple(float(value) for value in np.mean(scores, axis=0))


@cli_entry
def main(argv=None):
    parser = argparse.ArgumentParser(prog='python -m sl_arch.bench.extractor', description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--root', default='datasets/synthetic', help='sl-prepare --synthetic output')
    parser.add_argument('--iters', type=int, default=1500)
    parser.add_argument('--motion', action='store_true', help='frame differences as extra input channels')
    parser.add_argument('--flow', choices=FLOW_SOURCES, default='none',
                        help='optical flow to both neighbours as extra input channels: the clips\' exact flow, '
                             f'that of the pretrained flow warper {LEARNED_FLOW}, or OpenCV DIS flow')
    parser.add_argument('--fine-masks', action='store_true', help='masks at full LR resolution (SLSemanticExtractor fine_masks)')
    parser.add_argument('--dim', type=int, default=32, help='token / embedding width (SemanticLens sem_dim; tiny: 32)')
    args = parser.parse_args(argv)
    if not osp.isfile(osp.join(args.root, 'val', 'meta_info_crossing.txt')):
        raise SLError(f'{args.root} holds no synthetic clips; make them with sl-prepare --synthetic -o {args.root}.')
    torch.set_num_threads(1)
    started = time.process_time()
    iou_all, iou_objects = train_and_score(args.root, args.iters, args.motion, args.fine_masks, dim=args.dim,
                                           flow=args.flow)
    with_input = (' with motion input' if args.motion else '') + (f', {args.flow} flow input' if args.flow != 'none'
                                                                   else '')
    with_input += (', full-resolution masks' if args.fine_masks else '') + f', width {args.dim}'
    print(f'extractor trained {args.iters} iterations on the mask loss alone{with_input}'
          f' ({time.process_time() - started:.0f} CPU-s): held-out crossing clips mIoU {iou_all:.3f} '
          f'(objects only {iou_objects:.3f})')


if __name__ == '__main__':
    main()
