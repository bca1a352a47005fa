"""``python -m sl_arch.bench.precision``: what ``sl-infer --precision`` costs in quality, and saves in time.

Usage::

    python -m sl_arch.bench.precision --weights model_zoo/semanticlens_tiny_x4_bi.pth \\
        experiments/benchmark/cpu1200/experiments/bench_BasicVSR/models/net_g_latest.pth

Every checkpoint (one that carries its ``network_g``, as ``sl-train``'s do) upscales every held-out
clip (``--lq-root/<clip>``, a folder of LR frames) with the real ``sl-infer`` command in a child
process, once per precision, and each output is compared with the clip's ground truth
(``--gt-root/<clip>``): PSNR-Y as ``sl-test`` computes it (BasicSR's ``calculate_psnr``, Y channel,
no border crop), averaged over the frames of each clip and then over the clips, and the PSNR between
the output of each precision and the fp32 output. Speed: the CPU seconds of the whole command
(from ``os.wait4``) and the seconds ``sl-infer`` spent in its network calls (its last line), one
thread. Writes ``report.md`` and ``results.json`` to ``--out`` (default ``results/precision``).
"""
import argparse
import datetime
import os
import os.path as osp
import sys
import tempfile

from sl_arch.bench.common import markdown_table
from sl_arch.bench.options import TEST_SETS
from sl_arch.bench.report import check_report_folder
from sl_arch.bench.throughput import run_sl_infer
from sl_arch.utils.errors import SLError, cli_entry
from sl_arch.utils.files import write_json, write_text

REPORT_FILES = ('results.json', 'report.md')


def clip_names(lq_root, gt_root):
    """Clip folders present under both roots, sorted; refuses roots without any."""
    for root, option in ((lq_root, '--lq-root'), (gt_root, '--gt-root')):
        if not osp.isdir(root):
            raise SLError(f'{option} {root} is not a folder; give the folder holding one frame folder per clip.')
    names = sorted(name for name in os.listdir(lq_root) if osp.isdir(osp.join(lq_root, name))
                   and osp.isdir(osp.join(gt_root, name)))
    if not names:
        raise SLError(f'--lq-root {lq_root} and --gt-root {gt_root} share no clip folder; give matching roots.')
    return names


def clip_psnr(frames_a, frames_b, y_channel=True):
    """Mean PSNR (Y channel by default, BasicSR's ``calculate_psnr``) of two lists of BGR uint8 frames."""
    from basicsr.metrics import calculate_psnr
    values = [min(calculate_psnr(a, b, crop_border=0, test_y_channel=y_channel), 100.0)
              for a, b in zip(frames_a, frames_b)]
    return sum(values) / len(values)


def read_frames(folder):
    """BGR uint8 frames of a folder, in our frame order (:class:`sl_arch.io.FrameSource`: one clear error for a bad frame)."""
    from sl_arch.io import FrameSource
    return [frame for _, frame in FrameSource(folder, option='clip').frames()]


def measure_checkpoint(weights, clips, args, root):
    """Rows (one per precision) of one checkpoint over every clip."""
    from sl_arch.utils.checkpoint import load_network
    label = load_network(weights).net_opt['type']
    rows, outputs = [], {}
    for precision in args.precisions:
        row = {'weights': weights, 'model': label, 'precision': precision, 'cpu_s': 0.0, 'network_s': 0.0,
               'psnr_y': {}, 'psnr_to_fp32': {}}
        for clip in clips:
            out = osp.join(root, f'{precision}_{clip}')
            result = run_sl_infer(['-i', osp.join(args.lq_root, clip), '-o', out, '--weights', weights,
                                   '--device', 'cpu', '--precision', precision], args.threads)
            row['cpu_s'] += result['cpu_s']
            row['network_s'] += result['network_s'] or 0.0
            frames = read_frames(out)
            row['psnr_y'][clip] = clip_psnr(frames, read_frames(osp.join(args.gt_root, clip)))
            outputs[precision, clip] = frames
            if 'fp32' in args.precisions and precision != 'fp32':
                row['psnr_to_fp32'][clip] = clip_psnr(frames, outputs['fp32', clip], y_channel=False)
        row['mean_psnr_y'] = sum(row['psnr_y'].values()) / len(clips)
        rows.append(row)
        print(f'[precision] {label} {precision}: PSNR-Y {row["mean_psnr_y"]:.3f} dB, {row["cpu_s"]:.1f} CPU s, '
              f'network {row["network_s"]:.1f} s', flush=True)
    return rows


def report_text(rows, clips, info):
    """The markdown report: one row per checkpoint and precision."""
    table = []
    for row in rows:
        fp32 = next((other for other in rows if other['weights'] == row['weights'] and other['precision'] == 'fp32'),
                    None)
        to_fp32 = (f'{sum(row["psnr_to_fp32"].values()) / len(clips):.1f}' if row['psnr_to_fp32'] else '—')
        change = f'{row["mean_psnr_y"] - fp32["mean_psnr_y"]:+.3f}' if fp32 and row is not fp32 else '—'
        speed = f'{fp32["network_s"] / row["network_s"]:.2f}x' if fp32 and row is not fp32 and row['network_s'] else '—'
        table.append([row['model'], osp.basename(row['weights']), row['precision'],
                      *[f'{row["psnr_y"][clip]:.3f}' for clip in clips], f'{row["mean_psnr_y"]:.3f}', change,
                      to_fp32, f'{row["cpu_s"]:.1f}', f'{row["network_s"]:.1f}', speed])
    headers = ['model', 'checkpoint', 'precision', *clips, 'mean PSNR-Y', 'change vs fp32', 'PSNR to fp32 output',
               'CPU s', 'network s', 'speed-up of the network']
    return (f'# sl-infer precision: quality and time\n\n`{info["command"]}` on {info["date"]}, {info["threads"]} '
            f'thread(s) per run, x4, held-out clips {", ".join(clips)} ({info["lq_root"]}).\n\n'
            'PSNR-Y against the ground truth as sl-test computes it (Y channel, no border crop; mean over the '
            'frames of a clip, then over the clips). `PSNR to fp32 output`: RGB PSNR between this precision\'s '
            'output frames and the fp32 ones. `CPU s`: the whole sl-infer command (imports included); `network s`: '
            'its network calls (wall time), and the speed-up is fp32\'s network s / this one\'s.\n\n' + markdown_table(headers, table) + '\n')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog='python -m sl_arch.bench.precision', description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--weights', nargs='+', required=True, help='checkpoints that carry their network_g')
    real_root = osp.join('datasets', TEST_SETS['real_heldout']['folder'])
    parser.add_argument('--lq-root', default=osp.join(real_root, 'BI'))
    parser.add_argument('--gt-root', default=osp.join(real_root, 'GT'))
    parser.add_argument('--precisions', nargs='+', default=['fp32', 'bf16'], choices=['fp32', 'bf16', 'fp16'])
    parser.add_argument('--threads', type=int, default=1)
    parser.add_argument('--out', default=osp.join('results', 'precision'))
    return parser.parse_args(argv)


@cli_entry
def main(argv=None):
    args = parse_args(argv)
    for weights in args.weights:
        if not osp.isfile(weights):
            raise SLError(f'--weights {weights} does not exist; give an sl-train checkpoint (.pth).')
    clips = clip_names(args.lq_root, args.gt_root)
    check_report_folder(args.out, REPORT_FILES)
    info = {'command': 'python -m sl_arch.bench.precision ' + ' '.join(sys.argv[1:] if argv is None else argv),
            'date': datetime.date.today().isoformat(), 'threads': args.threads, 'lq_root': args.lq_root,
            'clips': clips}
    rows = []
    with tempfile.TemporaryDirectory(prefix='sl_precision_') as root:
        for index, weights in enumerate(args.weights):
            rows += measure_checkpoint(weights, clips, args, osp.join(root, str(index)))
    text = report_text(rows, clips, info)
    os.makedirs(args.out, exist_ok=True)
    write_json(osp.join(args.out, 'results.json'), {'info': info, 'rows': rows})
    write_text(osp.join(args.out, 'report.md'), text)
    print(text)


if __name__ == '__main__':
    main()
