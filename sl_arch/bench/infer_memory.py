"""Benchmark (not a test): peak memory of ``sl-infer`` does not grow with the video length.

Each case runs the real ``sl-infer`` command in its own child process (so its peak RSS, from
``os.wait4``, is its own; :func:`sl_arch.bench.throughput.run_sl_infer`) on real frames of Big
Buck Bunny, downscaled to the frame size and repeated to the length, through a randomly
initialised SemanticLens ``tiny`` network, and prints one table row::

    python -m sl_arch.bench.infer_memory                     # 30 / 300 frames x 2 sizes
    python -m sl_arch.bench.infer_memory --frames 30 300 --sizes 32x24 64x48 --chunk 16

The baseline row is the same command on one frame of the smallest size (imports, checkpoint,
one window); ``working`` is the peak RSS above it. The clip is Big Buck Bunny's first 132 frames
repeated, so shot detection is switched off (``--no-shot-detect``, where sl-infer has it): the
jumps where it repeats would split the windows planned here.
"""
import argparse
import os
import tempfile

from sl_arch.bench.throughput import (make_checkpoint, parse_size, real_frames, row_spec, run_sl_infer,
                                      sl_infer_options, write_frames)
from sl_arch.utils.errors import cli_entry


@cli_entry
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
    sizes = [parse_size(size) for size in args.sizes]
    with tempfile.TemporaryDirectory(prefix='sl_infer_memory_') as root:
        weights = os.path.join(root, 'tiny.pth')
        make_checkpoint(weights, row_spec('tiny')[1])
        common = ['--weights', weights, '--overwrite', '--device', 'cpu']
        if '--no-shot-detect' in sl_infer_options():
            common.append('--no-shot-detect')
        cases = [(frames, size, args.chunk) for size in sizes for frames in args.frames]
        if args.whole_clip:
            cases.append((max(args.frames), sizes[0], 0))
        one_frame = write_frames(os.path.join(root, 'one'), real_frames(1, *sizes[0]))
        baseline = run_sl_infer(['-i', one_frame, '-o', os.path.join(root, 'out_one'), *common], args.threads)
        print(f'SemanticLens tiny, x4, CPU, {args.threads} thread(s); peak RSS per case (fresh process)')
        print(f'{"frames":>6} {"LR size":>8} {"HR size":>8} {"chunk":>5} {"peak RSS MiB":>12} {"working MiB":>11} '
              f'{"s":>6}')
        print(f'{1:6d} {"x".join(map(str, sizes[0])):>8} {"-":>8} {"-":>5} {baseline["peak_rss_mib"]:12.0f} {0:11.0f} '
              f'{baseline["wall_s"]:6.1f}  (start-up: imports, network, one frame)')
        for frames, (width, height), chunk in cases:
            clip = os.path.join(root, f'in_{frames}_{width}x{height}')
            if not os.path.exists(clip):
                write_frames(clip, real_frames(frames, width, height))
            overlap = min(args.overlap, chunk // 2)
            result = run_sl_infer(['-i', clip, '-o', os.path.join(root, 'out'), '--chunk', chunk, '--overlap', overlap,
                                   *common], args.threads)
            print(f'{frames:6d} {f"{width}x{height}":>8} {f"{4 * width}x{4 * height}":>8} {chunk:5d} '
                  f'{result["peak_rss_mib"]:12.0f} {result["peak_rss_mib"] - baseline["peak_rss_mib"]:11.0f} '
                  f'{result["wall_s"]:6.1f}', flush=True)


if __name__ == '__main__':
    main()
