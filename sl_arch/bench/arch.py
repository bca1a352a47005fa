"""Architecture benchmark: parameters, GFLOPs per output frame, CPU ms per frame and peak memory
of SemanticLens (tiny and paper sizes) and BasicSR's BasicVSR and EDVR on the same input.

Run: ``python -m sl_arch.bench.arch [--frames 10] [--size 64] [--threads 2]``. Each model runs in
its own process so that peak memory is its own; timings come from one run on one machine, so the
ratios between rows are meaningful, absolute numbers depend on the machine.
"""
import argparse
import platform

import torch

MODELS = {
    'SemanticLens tiny': ('SemanticLens', 'tiny'),
    'SemanticLens paper': ('SemanticLens', 'paper'),
    'BasicVSR (BasicSR default, 64 ch / 30 blocks)': ('BasicVSR', {'num_feat': 64, 'num_block': 30}),
    'BasicVSR small (16 ch / 3 blocks)': ('BasicVSR', {'num_feat': 16, 'num_block': 3}),
    'EDVR-M (BasicSR default, 5 frames)': ('EDVR', {}),
}


def row_network_options(arch_type, size):
    """Option dict for ``build_network`` of a benchmark row of :data:`MODELS`."""
    if arch_type == 'SemanticLens':
        from sl_arch.archs.semantic_lens_arch import PRESETS
        return dict(PRESETS[size], type='SemanticLens')
    return dict(size, type=arch_type)


def measure_architecture(payload):
    """Measure one model in this process; returns a dict of figures."""
    from basicsr.archs import build_network

    from sl_arch.bench.common import count_flops, count_parameters, max_rss_mib, median_seconds

    torch.set_num_threads(payload['threads'])
    torch.manual_seed(0)
    net = build_network(row_network_options(payload['type'], payload['size'])).eval()
    frames, side = payload['frames'], payload['side']
    if payload['type'] == 'EDVR':
        # sliding window: one forward per output frame, on the 5 frames around it
        lqs = torch.rand(1, net.center_frame_idx * 2 + 1, 3, side, side)
        outputs_per_call = 1
    else:
        lqs = torch.rand(1, frames, 3, side, side)
        outputs_per_call = frames
    rss_before = max_rss_mib()
    seconds = median_seconds(lambda: net(lqs), repeats=payload['repeats'])
    peak = max_rss_mib() - rss_before
    flops = count_flops(net, lambda: net(lqs))
    return {
        'params_m': count_parameters(net) / 1e6,
        'gflops_per_frame': flops / outputs_per_call / 1e9,
        'ms_per_frame': seconds / outputs_per_call * 1000,
        'peak_mib': peak,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--frames', type=int, default=10, help='clip length for recurrent models')
    parser.add_argument('--size', type=int, default=64, help='LR frame side (BasicVSR needs >= 64)')
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--repeats', type=int, default=3)
    args = parser.parse_args()

    from sl_arch.bench.common import markdown_table, run_in_child
    rows = []
    for label, (arch_type, size) in MODELS.items():
        result = run_in_child('sl_arch.bench.arch:measure_architecture', {
            'type': arch_type, 'size': size, 'frames': args.frames, 'side': args.size, 'threads': args.threads,
            'repeats': args.repeats}, threads=args.threads)
        if 'error' in result:
            rows.append([label, result['error'], '', '', ''])
            continue
        rows.append([label, f"{result['params_m']:.3f}", f"{result['gflops_per_frame']:.2f}",
                     f"{result['ms_per_frame']:.1f}", f"{result['peak_mib']:.0f}"])
        print(f'measured {label}', flush=True)
    print(f'\nInput: {args.frames} LR frames of {args.size}x{args.size}, x4, batch 1, no grad; '
          f'{args.threads} CPU threads; torch {torch.__version__}; {platform.processor() or platform.machine()}.')
    print(markdown_table(['model', 'params (M)', 'GFLOPs / frame', 'CPU ms / frame', 'peak memory (MiB)'], rows))


if __name__ == '__main__':
    main()
