"""``python -m sl_arch.bench.instance_motion``: do instance masks carry motion the pixel flow misses?

On the held-out synthetic clips (:mod:`sl_arch.data.synthetic`: exact flow and ground-truth
instances), the end-point error (LR pixels) of the flow SemanticLens aligns with, per motion regime
and on the object pixels alone:

* no motion (zero flow), and the pretrained tiny flow warper (``model_zoo/``) on its own;
* two estimates without learning: OpenCV's DIS (:class:`sl_arch.archs.prealign_arch.SLDISFlow`) and
  whole-pixel block matching (:func:`sl_arch.bench.flow.block_matching_flow`, 5 x 5 windows, 4 px);
* its instance-wise affine fit (:func:`sl_arch.archs.prealign_arch.instance_affine_flow`);
* instance-centric motion (:func:`sl_arch.archs.prealign_arch.instance_motion_flow`,
  SemanticLens ``instance_motion``), with the true masks, with the true masks shifted 6 px
  sideways and with one instance everywhere (what it does without masks).

No training: it measures the mechanism, not a network. Prints a markdown table and, with
``--out``, writes it there.
"""
import argparse
import os.path as osp

import numpy as np
import torch
from torch.nn import functional as F

from sl_arch.utils.errors import SLError, cli_entry
from sl_arch.utils.files import write_text

DEFAULT_FLOW = 'model_zoo/slflow_tiny_synthetic_dis.pth'


def clip_masks(root, pairs, num_slots):
    """One-hot true instance masks ``clip -> (t, num_slots, h, w)`` of every clip of ``pairs``."""
    from sl_arch.data.clips import read_clip_masks
    masks = {}
    for clip, frames in pairs.frames.items():
        names = [f'{t:08d}.png' for t in range(len(frames))]
        ids = read_clip_masks(osp.join(root, 'val', 'masks'), clip, names, frames.shape[1:3]).astype(np.int64)
        masks[clip] = F.one_hot(torch.from_numpy(ids) % num_slots, num_slots).permute(0, 3, 1, 2).float()
    return masks


def regime_errors(warper, pairs, masks, regime):
    """End-point errors (all pixels, object pixels) of each flow on the pairs of one regime."""
    from sl_arch.archs.prealign_arch import SLDISFlow, instance_affine_flow, instance_motion_flow
    from sl_arch.bench.flow import block_matching_flow
    chosen = [pair for pair in pairs.pairs if pair[4] == regime]
    if not chosen:
        return None

    def stack(items):
        return torch.from_numpy(np.stack(items)).permute(0, 3, 1, 2).contiguous().float()

    ref = stack([pairs.frames[clip][r] for clip, r, _, _, _ in chosen])
    supp = stack([pairs.frames[clip][s] for clip, _, s, _, _ in chosen])
    target = stack([flow for _, _, _, flow, _ in chosen])
    ref_masks = torch.stack([masks[clip][r] for clip, r, _, _, _ in chosen])
    supp_masks = torch.stack([masks[clip][s] for clip, _, s, _, _ in chosen])
    objects = ref_masks[:, 0] < 0.5  # id 0 is the background

    def shifted(m):
        return torch.roll(m, 6, dims=-1)

    with torch.no_grad():
        pixel = warper(ref, supp).float()
        one = torch.ones_like(ref_masks[:, :1])
        flows = {
            'zero flow': torch.zeros_like(target),
            'pretrained flow warper': pixel,
            'OpenCV DIS': SLDISFlow()(ref, supp),
            'block matching': block_matching_flow(ref, supp),
            'its affine fit per true instance': instance_affine_flow(pixel, ref_masks),
            'instance motion, true masks': instance_motion_flow(pixel, ref, supp, ref_masks, supp_masks),
            'instance motion, masks shifted 6 px': instance_motion_flow(pixel, ref, supp, shifted(ref_masks),
                                                                        shifted(supp_masks)),
            'instance motion, one instance': instance_motion_flow(pixel, ref, supp, one, one),
        }
    rows = {}
    for name, flow in flows.items():
        error = torch.linalg.vector_norm(flow - target, dim=1)
        rows[name] = (error.mean().item(), error[objects].mean().item() if objects.any() else float('nan'))
    return rows


def markdown(results, info):
    regimes = list(results)
    lines = [f'End-point error (LR px) on the held-out synthetic clips ({info}); lower is better.', '',
             '| flow | ' + ' | '.join(f'{regime}: all pixels | {regime}: objects' for regime in regimes) + ' |',
             '|---|' + '---|---|' * len(regimes)]
    for name in next(iter(results.values())):
        cells = []
        for regime in regimes:
            cells += [f'{value:.3f}' if value == value else '—' for value in results[regime][name]]
        lines.append(f'| {name} | ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines) + '\n'


@cli_entry
def main(argv=None):
    from sl_arch.bench.flow import build_warper, load_synthetic
    parser = argparse.ArgumentParser(prog='python -m sl_arch.bench.instance_motion', description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--root', default='datasets/synthetic', help='sl-prepare --synthetic output')
    parser.add_argument('--flow', default=DEFAULT_FLOW, help='SLFlowWarper weights, tiny layout')
    parser.add_argument('--slots', type=int, default=8, help='mask slots (SemanticLens num_video_instances)')
    parser.add_argument('--out', help='also write the table to this markdown file')
    args = parser.parse_args(argv)
    if not osp.isfile(osp.join(args.root, 'val', 'clips.json')):
        raise SLError(f'{args.root} holds no synthetic clips; make them with sl-prepare --synthetic -o {args.root}.')
    if not osp.isfile(args.flow):
        raise SLError(f'--flow {args.flow} does not exist; give SLFlowWarper weights of the tiny layout.')
    torch.set_num_threads(1)
    pairs = load_synthetic(args.root, 'val')
    masks = clip_masks(args.root, pairs, args.slots)
    warper = build_warper('tiny', load_path=args.flow).eval()
    results = {regime: rows for regime in ('pan', 'crossing')
               if (rows := regime_errors(warper, pairs, masks, regime)) is not None}
    text = markdown(results, f'{len(pairs.pairs)} frame pairs of {len(pairs.frames)} clips, both directions; '
                             f'flow warper {args.flow}')
    print(text, end='')
    if args.out:
        write_text(args.out, text)


if __name__ == '__main__':
    main()
