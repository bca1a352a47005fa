"""Where a row's lead over a reference lies, by how far the footage moves there:
``python -m sl_arch.bench.motion_margin``.

    python -m sl_arch.bench.motion_margin experiments/benchmark/intel_c_s0_300_s28 \\
        experiments/benchmark/intel_c_s1_300_s28 --models SingleFrame_lean,SL_..._diff_reverse_interval12_lr2e-3

The final weights of two finished ``sl-bench`` rows of each work dir, the first the reference, restore every clip of
their real held-out sets and their validation set again (one thread, as sl-bench tests them). Each GT pixel is put
in a bin by the motion at its LR pixel: the larger of that pixel's motion to the previous and to the next frame, by
the benchmark's reference flow (DIS on the GT frames averaged down to LR pixels, as sl-bench's motion statistics).
A video network can add detail only where a frame's neighbours sample the scene elsewhere than the frame does; the
bins say whether its lead is where the pixels move by fractions of an LR pixel (the multi-frame super-resolution
case), by whole pixels, or by more than the training clips move.

One table: per sequence and bin, the share of the sequence's pixels and the row's margin over the reference,
``10 log10(SSE_reference / SSE_row)`` on BasicSR's Y channel, the squared errors pooled over the frames and the work
dirs (a margin of pooled errors, not sl-bench's mean of per-frame PSNR: the two differ by a few hundredths); and per
sequence the margin over all its pixels. Nothing is written.
"""
import argparse
import os.path as osp

from sl_arch.utils.errors import SLError, cli_entry

#: Bin edges (LR pixels between consecutive frames): still, sub-pixel (quarter, half, one), whole pixels, large.
EDGES = (0.0, 0.05, 0.15, 0.25, 0.5, 1.0, 2.0, 4.0)


def motion_map(gts, scale=4):
    """Motion at every GT pixel of a clip, in LR pixels: (t, H, W) float32 from ``gts`` (t, 3, H, W) in [0, 1], RGB.
    Each LR pixel's larger motion to its previous and next frame (:func:`sl_arch.bench.flow.reference_flow`),
    repeated over its ``scale x scale`` GT pixels; 0 throughout for a clip of one frame."""
    import numpy as np

    from sl_arch.bench.flow import clip_reference_flows
    frames = gts.permute(0, 2, 3, 1).numpy()
    t, height, width = frames.shape[:3]
    h, w = height // scale, width // scale
    backward, forward = (np.hypot(flow[..., 0], flow[..., 1]) for flow in clip_reference_flows(frames, scale))
    lr = np.zeros((t, h, w), np.float32)
    lr[:-1] = backward  # frame i to frame i + 1
    lr[1:] = np.maximum(lr[1:], forward)  # frame i + 1 to frame i
    hr = np.zeros((t, height, width), np.float32)
    hr[:, :h * scale, :w * scale] = lr.repeat(scale, axis=1).repeat(scale, axis=2)
    if height > h * scale or width > w * scale:  # a GT edge past the last whole LR pixel: that pixel's motion
        hr[:, h * scale:] = hr[:, h * scale - 1:h * scale]
        hr[:, :, w * scale:] = hr[:, :, w * scale - 1:w * scale]
    return hr


def luma(frames):
    """BasicSR's Y channel on the 8-bit scale (t, H, W) float64 of frames (a list of (H, W, 3) uint8 BGR, as
    ``tensor2img`` gives), as ``calculate_psnr(..., test_y_channel=True)`` reads them."""
    import numpy as np

    from basicsr.metrics.metric_util import to_y_channel
    return np.stack([to_y_channel(frame)[..., 0].astype(np.float64) for frame in frames])


def gt_luma(gts):
    """:func:`luma` of GT frames ``gts`` (t, 3, H, W) in [0, 1], RGB, as sl-test writes them to 8 bits."""
    from basicsr.utils import tensor2img
    return luma([tensor2img([gt]) for gt in gts])


def squared_errors(restored, truth):
    """Per-pixel squared error on Y (t, H, W) float64 of ``restored`` frames ((H, W, 3) uint8 BGR) against the GT's
    :func:`gt_luma` ``truth``."""
    return (luma(restored) - truth) ** 2


def binned(errors, motion, edges=EDGES):
    """``[(pixels, SSE)]`` per bin of ``edges`` (each bin from its edge to the next, the last open) of the squared
    ``errors`` at pixels of ``motion`` (arrays of one shape)."""
    import numpy as np
    index = np.digitize(motion, edges[1:]).ravel()  # 0 .. len(edges) - 1
    pixels = np.bincount(index, minlength=len(edges))
    sse = np.bincount(index, weights=errors.ravel(), minlength=len(edges))
    return [(int(count), float(total)) for count, total in zip(pixels, sse)]


def margin_db(reference_sse, row_sse):
    """The row's margin (dB) over the reference for pooled squared errors; None where either is 0."""
    import math
    return 10 * math.log10(reference_sse / row_sse) if reference_sse > 0 and row_sse > 0 else None


def restore_clip(net, item, test_options, scale=4):
    """A finished row's restored frames of one test item (its ``lq`` (t, c, h, w)), (H, W, 3) uint8 BGR each, as
    sl-bench tests the row (``test_options``, its test option file): padded to its ``min_input_size`` and run in
    windows where it has a ``val.tile`` (a centre-frame network such as EDVR), the output cropped back."""
    import torch

    from basicsr.utils import tensor2img

    from sl_arch.bench.measure import network_input, run_network
    payload = {'min_input_size': test_options.get('min_input_size'), 'tile': test_options.get('val', {}).get('tile')}
    lq = item['lq'][None]
    height, width = lq.shape[-2:]
    with torch.no_grad():
        output = run_network(net, network_input(lq, payload, torch.device('cpu')), payload)
    return [tensor2img([sr]) for sr in output[0, :, :, :height * scale, :width * scale]]


def work_dir_margins(work_dir, rows, motions, totals, edges=EDGES):
    """Add one work dir's pooled errors to ``totals`` (``{(set, sequence): [[pixels, reference SSE, row SSE] per
    bin]}``); ``motions`` caches the motion maps of the clips by (set, sequence, first frame), shared by work dirs."""
    from sl_arch.bench.measure import test_dataset
    from sl_arch.bench.options import VALIDATION_SET, real_test_sets
    from sl_arch.bench.runs import final_checkpoint
    from sl_arch.bench.validate import named_finished_rows, trained_network
    finished = named_finished_rows(work_dir, rows)
    nets = [(trained_network(finished[row], final_checkpoint(work_dir, f'bench_{row}')),
             finished[row]['options']['test']) for row in rows]  # (network, its test options)
    test_sets = {options['name']: options for options in finished[rows[1]]['options']['test']['datasets'].values()}
    for name in [name for name in real_test_sets() + [VALIDATION_SET] if name in test_sets]:
        dataset = test_dataset(test_sets[name])
        for index in range(len(dataset)):
            item = dataset[index]
            key = (name, item['folder'], index)
            if key not in motions:
                motions[key] = motion_map(item['gt'])
            truth = gt_luma(item['gt'])  # once for both rows
            errors = [binned(squared_errors(restore_clip(net, item, test), truth), motions[key], edges)
                      for net, test in nets]
            bins = totals.setdefault((name, item['folder']), [[0, 0.0, 0.0] for _ in edges])
            for k, ((pixels, reference_sse), (_, row_sse)) in enumerate(zip(*errors)):
                bins[k][0] += pixels
                bins[k][1] += reference_sse
                bins[k][2] += row_sse
        print(f'[motion_margin] {osp.relpath(work_dir)}: {name} done', flush=True)
    return totals


def table(totals, edges=EDGES):
    """Markdown table of :func:`work_dir_margins`' totals: per sequence its bins (share of pixels, margin), then all."""
    from sl_arch.bench.common import markdown_table
    from sl_arch.bench.options import held_out_label
    lines = []
    for (name, folder), bins in totals.items():
        pixels = sum(count for count, *_ in bins)
        for k, (count, reference_sse, row_sse) in enumerate(bins):
            if count:
                upper = f'{edges[k + 1]:g}' if k + 1 < len(edges) else ''
                margin = margin_db(reference_sse, row_sse)
                lines.append([held_out_label(name), folder, f'{edges[k]:g}-{upper}' if upper else f'>= {edges[k]:g}',
                              f'{count / pixels:.2f}', '—' if margin is None else f'{margin:+.2f}'])
        margin = margin_db(sum(b[1] for b in bins), sum(b[2] for b in bins))
        lines.append([held_out_label(name), folder, '**all**', '1.00',
                      '—' if margin is None else f'**{margin:+.2f}**'])
    return markdown_table(['held-out set', 'sequence', 'motion (LR px)', 'share of pixels', 'margin (dB)'], lines)


@cli_entry
def main(argv=None):
    import torch

    from sl_arch.bench.common import comma_list
    parser = argparse.ArgumentParser(prog='python -m sl_arch.bench.motion_margin', description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('work_dirs', nargs='+', metavar='WORK_DIR',
                        help='sl-bench --work-dir folders where both rows finished')
    parser.add_argument('--models', required=True, help='REFERENCE,ROW: two finished rows, the reference first')
    args = parser.parse_args(argv)
    rows = comma_list(args.models)
    if len(rows) != 2:
        raise SLError(f'--models {args.models}: give two finished rows, the reference first (e.g. '
                      'SingleFrame_lean,SemanticLens).')
    torch.set_num_threads(1)
    motions, totals = {}, {}
    for work_dir in args.work_dirs:
        work_dir_margins(osp.abspath(work_dir), rows, motions, totals)
    print(table(totals))


if __name__ == '__main__':
    main()
