"""Whether mixed precision pays on this CPU: bf16 / fp16 autocast without the CPU's own arithmetic for them.

PyTorch's CPU convolutions in bfloat16 or float16 run through oneDNN only where the CPU has the instructions for
them (bf16: AVX-512 BF16 or AMX; fp16: AVX-512 FP16 or AMX-FP16). Elsewhere, an AVX2 CPU for one, every convolution
under ``torch.autocast('cpu', dtype=torch.bfloat16)`` falls back to PyTorch's slow reference path: on this project's
AMD EPYC with AVX2 only, one ``sl-bench`` training iteration took 12.5x float32's time for the single-frame network
and 8.8x for SemanticLens (``python -m sl_arch.bench.step_time``, bf16 channels-last), where an Intel Xeon with
AVX-512 BF16 and AMX ran them 1.5-3.8x faster than float32. So ``train.autocast``, ``sl-bench --autocast`` and
``sl-infer --precision`` refuse such a precision on such a CPU, with one line that names the fix (float32), rather
than run for hours. ``SL_SLOW_CPU_AUTOCAST=1`` in the environment runs it anyway (the tests do, to check those code
paths on any CPU).
"""
import os

import torch

from sl_arch.utils.errors import SLError

#: oneDNN's test of each reduced precision on this CPU.
_NATIVE_CHECKS = {'bf16': '_is_mkldnn_bf16_supported', 'fp16': '_is_mkldnn_fp16_supported'}
#: What gives a CPU each precision's arithmetic.
_INSTRUCTIONS = {'bf16': 'AVX-512 BF16 or AMX', 'fp16': 'AVX-512 FP16 or AMX-FP16'}
#: Names accepted for each precision (the option values and the torch dtypes).
_ALIASES = {'bf16': 'bf16', torch.bfloat16: 'bf16', 'fp16': 'fp16', torch.float16: 'fp16'}


def cpu_has_native(precision):
    """Whether this CPU runs convolutions natively in ``precision`` ('bf16', 'fp16' or the torch dtype). True where
    this PyTorch has no test for it (nothing to refuse on)."""
    check = getattr(torch.ops.mkldnn, _NATIVE_CHECKS[_ALIASES[precision]], None)
    try:
        return bool(check()) if check is not None else True
    except RuntimeError:
        return True


def check_cpu_autocast(precision, what, fix):
    """Raise :class:`SLError` when ``precision`` (an autocast dtype or its name; None or 'fp32': nothing to check) would
    run on this CPU's slow path: ``what`` names the option (``'train.autocast: bf16'``), ``fix`` ends the line."""
    name = _ALIASES.get(precision)
    if name is None or cpu_has_native(name) or os.environ.get('SL_SLOW_CPU_AUTOCAST') == '1':
        return
    capability = torch.backends.cpu.get_cpu_capability()
    raise SLError(f'{what} on this CPU ({capability}, without {_INSTRUCTIONS[name]}) would run every convolution on '
                  f'PyTorch\'s slow path, about 9-18x slower than float32; {fix}.')
