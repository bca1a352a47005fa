"""What each part of SemanticLens costs: ``python -m sl_arch.bench.components``.

Each component is measured by what switching it off saves (its ``use_*`` option): the training
iteration (forward, backward and Adam step on a batch of clips) and the inference per frame (no
grad), against the whole network, on the same random input, one thread. All variants are timed in
round robin in one process, so that a change of the machine's load hits them alike; the table
gives medians. The parts that cannot be switched off (feature extraction, the recurrent trunks,
reconstruction) are what remains of the whole network's time.
"""
import argparse
import statistics
import time

import torch

#: Components by the option that switches each off (with the semantic branch, GPS and ISEE go too).
COMPONENTS = {
    'Semantic Extractor (+ GPS, ISEE)': {'use_semantics': False},
    'flow pre-alignment': {'use_flow': False},
    'IMAGE': {'use_image': False},
    'GPS': {'use_gps': False},
    'ISEE': {'use_isee': False},
    'MFSAB': {'use_mfsab': False},
}


def build(preset, overrides):
    """SemanticLens of ``preset`` with ``overrides``, seeded, on the CPU."""
    from basicsr.archs import build_network

    from sl_arch.archs.semantic_lens_arch import PRESETS
    torch.manual_seed(0)
    return build_network(dict(PRESETS[preset], type='SemanticLens', **overrides))


def timers(net, train_clip, test_clip):
    """Two callables: one training iteration, and one no-grad forward of ``test_clip``."""
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-4)
    target = torch.rand(*train_clip.shape[:3], train_clip.shape[3] * 4, train_clip.shape[4] * 4)

    def train_step():
        net.train()
        optimizer.zero_grad()
        loss = (net(train_clip) - target).abs().mean()
        loss.backward()
        optimizer.step()

    def infer():
        net.eval()
        with torch.no_grad():
            net(test_clip)

    return train_step, infer


def component_costs(preset='tiny', batch=2, train_frames=7, train_side=24, test_frames=16, test_size=(24, 40),
                    repeats=5):
    """Median training-iteration seconds and inference seconds per frame of the whole network and of
    each variant without one component. Returns ``{label: {'params', 'train_s', 'infer_s_per_frame'}}``."""
    torch.set_num_threads(1)
    train_clip = torch.rand(batch, train_frames, 3, train_side, train_side)
    test_clip = torch.rand(1, test_frames, 3, *test_size)
    variants = {'whole network': {}, **COMPONENTS}
    nets = {label: build(preset, overrides) for label, overrides in variants.items()}
    steps = {label: timers(net, train_clip, test_clip) for label, net in nets.items()}
    times = {label: ([], []) for label in variants}
    for label, (train_step, infer) in steps.items():  # warm-up
        train_step()
        infer()
    for _ in range(repeats):
        for label, (train_step, infer) in steps.items():
            for index, fn in enumerate((train_step, infer)):
                start = time.perf_counter()
                fn()
                times[label][index].append(time.perf_counter() - start)
    return {label: {'params': sum(p.numel() for p in nets[label].parameters()),
                    'train_s': statistics.median(times[label][0]),
                    'infer_s_per_frame': statistics.median(times[label][1]) / test_frames} for label in variants}


def report(results, args):
    """Markdown table: each component's parameters, and the share of the whole network's time it costs."""
    from sl_arch.bench.common import markdown_table
    whole = results['whole network']
    rows = [['whole network', f'{whole["params"] / 1e6:.3f}M', f'{whole["train_s"] * 1000:.0f}', '100%',
             f'{whole["infer_s_per_frame"] * 1000:.1f}', '100%']]
    for label in COMPONENTS:
        item = results[label]
        train_ms = (whole['train_s'] - item['train_s']) * 1000
        infer_ms = (whole['infer_s_per_frame'] - item['infer_s_per_frame']) * 1000
        rows.append([label, f'{(whole["params"] - item["params"]) / 1e6:.3f}M', f'{train_ms:.0f}',
                     f'{train_ms / whole["train_s"] / 10:.0f}%', f'{infer_ms:.1f}',
                     f'{infer_ms / whole["infer_s_per_frame"] / 10:.0f}%'])
    header = (f'SemanticLens {args.preset}, one thread, torch {torch.__version__}. Training iteration: batch '
              f'{args.batch} x {args.train_frames} frames of {args.train_side}x{args.train_side} (forward, backward, '
              f'Adam). Inference: {args.test_frames} frames of {args.test_size[1]}x{args.test_size[0]}, no grad. '
              f'Medians of {args.repeats} round-robin repeats. A component\'s cost is what switching it off saves.')
    return header + '\n\n' + markdown_table(
        ['component', 'params', 'train ms / iter', 'share', 'inference ms / frame', 'share'], rows)


def main(argv=None):
    parser = argparse.ArgumentParser(prog='python -m sl_arch.bench.components', description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--preset', default='tiny', help='SemanticLens preset (default tiny)')
    parser.add_argument('--batch', type=int, default=2)
    parser.add_argument('--train-frames', type=int, default=7)
    parser.add_argument('--train-side', type=int, default=24, help='LR side of the training patches (default 24)')
    parser.add_argument('--test-frames', type=int, default=16)
    parser.add_argument('--test-size', type=int, nargs=2, default=[24, 40], metavar=('H', 'W'))
    parser.add_argument('--repeats', type=int, default=5)
    args = parser.parse_args(argv)
    results = component_costs(args.preset, args.batch, args.train_frames, args.train_side, args.test_frames,
                      tuple(args.test_size), args.repeats)
    print(report(results, args))


if __name__ == '__main__':
    main()
