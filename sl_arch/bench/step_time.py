"""Time of one training iteration of ``sl-bench`` rows, per arithmetic: ``python -m sl_arch.bench.step_time``.

    OMP_NUM_THREADS=1 python -m sl_arch.bench.step_time --models SingleFrame,SL_dis_gate --repeats 9
    python -m sl_arch.bench.step_time --device cuda --models SingleFrame_lean,BasicVSR --batch 8 --lr-side 64

Each row's network (as ``sl-bench --quick`` builds it) takes one training iteration (forward under
``torch.autocast`` where asked, float32 loss, backward, Adam step) on the same random batch of ``sl-bench``'s shape,
in float32 or bf16 autocast, with default or channels-last weights (``train.autocast``, ``train.channels_last``);
bf16 only where the device has its arithmetic, unless ``--precision`` asks for it. Each variant runs in a process of
its own and the processes take their iterations in turn, so a change of the machine's load hits them alike; the
table gives each variant's median CPU seconds (``time.process_time``, one thread) and its ratio to the same network
in float32, default order. With ``--device cuda`` the networks and the batch are on the GPU, autocast is CUDA's and
each iteration is timed by the wall clock between two ``torch.cuda.synchronize()`` (GPU seconds, the CPU's launching
included, as ``train.gpu_seconds`` counts them). No data loading: ``sl-bench``'s own iterations also read and crop
clips.
"""
import argparse
import itertools
import multiprocessing
import statistics

import torch

from sl_arch.utils.errors import SLError, check_at_least, cli_entry

#: The arithmetic variants: (label, autocast dtype or None, channels-last weights).
VARIANTS = (('fp32', None, False), ('fp32, channels-last', None, True),
            ('bf16', torch.bfloat16, False), ('bf16, channels-last', torch.bfloat16, True))
DEFAULT_MODELS = ('SingleFrame', 'SL_dis_gate', 'SL_dis_neighbours_no_semantics_gate',
                  'SL_dis_neighbours_no_semantics_no_mfsab_gate')


def training_step(key, autocast, channels_last, batch, frames, lr_side, preset='tiny', device='cpu'):
    """A callable running one training iteration of ``sl-bench`` row ``key``; and the row's parameter count."""
    from basicsr.archs import build_network

    from sl_arch.bench.options import min_input_size, network_options
    from sl_arch.models.sl_video_recurrent_model import pad_to_min_size
    torch.manual_seed(0)
    network_opt = network_options(key, preset, pretrained_flow=True, num_frame=frames)
    net = build_network(network_opt).to(device)
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=1e-4)
    # as sl-bench trains it: a clip below the network's smallest input is padded, the output cropped back
    clip = pad_to_min_size(torch.rand(batch, frames, 3, lr_side, lr_side), min_input_size(network_opt) or 0).to(device)
    target = torch.rand(batch, frames, 3, 4 * lr_side, 4 * lr_side).to(device)

    def step():
        optimizer.zero_grad()
        with torch.autocast(torch.device(device).type, dtype=autocast or torch.bfloat16, enabled=autocast is not None):
            output = net(clip)[..., :4 * lr_side, :4 * lr_side]
        # a sliding-window network (EDVR) restores the centre frame only
        (output.float() - (target if output.dim() == 5 else target[:, frames // 2])).abs().mean().backward()
        optimizer.step()

    return step, sum(p.numel() for p in net.parameters())


def _variant_worker(connection, key, autocast, channels_last, batch, frames, lr_side, device):
    """One variant's process: build its training step, then run one iteration per ``True`` received and send back
    its seconds (its own CPU time on a CPU, synchronized wall time on a GPU); ``False`` ends it."""
    torch.set_num_threads(1)
    from sl_arch.models.sl_video_recurrent_model import clock_seconds
    clock = 'gpu' if device.type == 'cuda' else 'cpu'  # as train.gpu_seconds / cpu_seconds count
    step, params = training_step(key, autocast, channels_last, batch, frames, lr_side, device=device)
    for _ in range(2):  # warm-up: oneDNN and cuDNN pick their kernels on the first calls
        step()
    connection.send(params)
    while connection.recv():
        start = clock_seconds(clock)
        step()
        connection.send(clock_seconds(clock) - start)


def step_times(keys, batch=2, frames=7, lr_side=24, repeats=9, device='cpu', variants=VARIANTS):
    """Median seconds per training iteration: ``{(key, variant label): seconds}``, and parameter counts. On the CPU
    its time of one thread; on a GPU the wall time of each iteration, from a synchronized start to its end.
    ``variants``: which of :data:`VARIANTS` to time.

    Every variant runs in a process of its own (oneDNN's and the allocator's caches are each variant's alone: with
    every variant in one process, the default order's float32 time moved by a third between runs on an AVX2 CPU), and
    the processes take their iterations in turn, so a change of the machine's load hits them alike.
    """
    device = torch.device(device)
    context = multiprocessing.get_context('spawn')  # a fresh interpreter: no state, CUDA's included, shared
    workers = {}
    try:
        for key, (label, autocast, channels_last) in itertools.product(keys, variants):
            ours, theirs = context.Pipe()
            process = context.Process(target=_variant_worker, daemon=True,
                                      args=(theirs, key, autocast, channels_last, batch, frames, lr_side, device))
            process.start()
            theirs.close()  # the child's end lives in the child alone, so its death ends ``recv`` here (EOFError)
            workers[key, label] = (process, ours)
        params = {}
        for (key, label), (process, connection) in workers.items():
            params[key] = _receive(process, connection, key, label)
        times = {name: [] for name in workers}
        for _ in range(repeats):
            for name, (process, connection) in workers.items():
                connection.send(True)
                times[name].append(_receive(process, connection, *name))
        return {name: statistics.median(values) for name, values in times.items()}, params
    finally:
        for process, connection in workers.values():
            if process.is_alive():
                try:
                    connection.send(False)
                except OSError:
                    pass
            process.join(timeout=30)
            if process.is_alive():
                process.kill()


def _receive(process, connection, key, label):
    """The next value a variant's process sends; SLError naming the row and variant if the process died."""
    try:
        return connection.recv()
    except EOFError:
        process.join()
        raise SLError(f'step_time: the {label} training iteration of {key} failed (its process exited with '
                      f'{process.exitcode}; its error is printed above).') from None


def report(seconds, params, keys, args, variants=VARIANTS):
    """Markdown table: one row per network, CPU ms per iteration and ratio to float32 per variant."""
    from sl_arch.bench.common import markdown_table
    from sl_arch.bench.options import MODELS
    rows = []
    for key in keys:
        base = seconds[key, VARIANTS[0][0]]
        rows.append([MODELS[key][0], f'{params[key] / 1e6:.3f}M']
                    + [f'{seconds[key, label] * 1000:.0f} ({seconds[key, label] / base:.2f}x)'
                       for label, _, _ in variants])
    where = (f'GPU ms per training iteration on {torch.cuda.get_device_name(args.device)} (ratio to the same network '
             f'in float32)' if torch.device(args.device).type == 'cuda' else
             'CPU ms per training iteration (ratio to the same network in float32), one thread')
    header = (f'{where}, torch {torch.__version__}: batch {args.batch} x {args.frames} frames of {args.lr_side}x{args.lr_side} LR '
              f'px, forward (under autocast where bf16), float32 loss, backward, Adam; medians of {args.repeats} '
              'round-robin repeats, no data loading.')
    return header + '\n\n' + markdown_table(['model', 'params'] + [label for label, _, _ in variants], rows)


def selected_variants(precision, device):
    """The :data:`VARIANTS` of ``--precision`` (None: bf16 too where ``device`` has its arithmetic, else float32
    only), and a line saying what was left out and why (None if nothing)."""
    from sl_arch.bench.common import comma_list
    from sl_arch.utils.precision import check_cpu_autocast, cpu_has_native
    native = device.type == 'cuda' or cpu_has_native('bf16')
    skipped = None
    if precision is None:
        precision = 'fp32,bf16' if native else 'fp32'
        if not native:
            skipped = (f'bf16 left out: this CPU ({torch.backends.cpu.get_cpu_capability()}) has no bf16 arithmetic, '
                       'so it runs on PyTorch\'s slow path; SL_SLOW_CPU_AUTOCAST=1 and --precision fp32,bf16 time it '
                       'anyway.')
    names = comma_list(precision)
    unknown = sorted(set(names) - {'fp32', 'bf16'})
    if unknown:
        raise SLError(f'--precision {precision}: unknown {", ".join(unknown)}; give fp32, bf16 or fp32,bf16.')
    if 'fp32' not in names:
        raise SLError(f'--precision {precision}: the table gives ratios to float32, so fp32 must be one of them '
                      '(--precision fp32,bf16).')
    if 'bf16' in names and device.type != 'cuda':
        check_cpu_autocast('bf16', '--precision bf16', 'time --precision fp32 alone')
    # fp32 is always among them (checked above); bf16 where asked
    return tuple(variant for variant in VARIANTS if variant[1] is None or 'bf16' in names), skipped


@cli_entry
def main(argv=None):
    from sl_arch.bench.compare import selected_models
    from sl_arch.bench.options import UPSAMPLINGS, MODELS
    parser = argparse.ArgumentParser(prog='python -m sl_arch.bench.step_time', description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--models', default=','.join(DEFAULT_MODELS),
                        help=f'comma-separated sl-bench rows with a network (default {",".join(DEFAULT_MODELS)})')
    parser.add_argument('--batch', type=int, default=2)
    parser.add_argument('--frames', type=int, default=7)
    parser.add_argument('--lr-side', type=int, default=24, help='LR side of the training patches (default 24)')
    parser.add_argument('--repeats', type=int, default=9)
    parser.add_argument('--device', default='cpu', help='cpu (default), or cuda / cuda:N: time the iterations on a GPU')
    parser.add_argument('--precision', help='fp32 or fp32,bf16: the arithmetic to time, each in the default and '
                        'channels-last order (default: fp32,bf16 where the device has bf16 arithmetic, else fp32)')
    args = parser.parse_args(argv)
    keys = selected_models(args.models)
    untrained = [key for key in keys if MODELS[key][1] in UPSAMPLINGS]
    if untrained:
        raise SLError(f'--models {",".join(untrained)}: upsamplings have no training iteration; drop them.')
    check_at_least({'--batch': args.batch, '--frames': args.frames, '--lr-side': args.lr_side,
                    '--repeats': args.repeats})
    from sl_arch.archs.spec import arch_spec
    from sl_arch.bench.options import network_options
    for key in keys:
        needed = arch_spec(network_options(key, 'tiny', pretrained_flow=True, num_frame=args.frames)).min_frames
        if args.frames < needed:
            raise SLError(f'--frames {args.frames}: {key} needs clips of at least {needed} frames; raise --frames '
                          f'or drop the row.')
    from sl_arch.infer import torch_device
    device = torch_device(args.device)  # one clear line where this machine has no such GPU
    variants, skipped = selected_variants(args.precision, device)
    seconds, params = step_times(keys, args.batch, args.frames, args.lr_side, args.repeats, device, variants)
    print(report(seconds, params, keys, args, variants))
    if skipped:
        print('\n' + skipped)


if __name__ == '__main__':
    main()
