"""sl_arch.utils.precision: mixed precision refused on a CPU that would run it on PyTorch's slow path."""
import pytest
import torch

from sl_arch.utils import precision
from sl_arch.utils.errors import SLError


def test_the_cpu_check_is_onednns_for_each_precision_and_its_dtype():
    assert precision.cpu_has_native('bf16') == precision.cpu_has_native(torch.bfloat16) == bool(
        torch.ops.mkldnn._is_mkldnn_bf16_supported())
    assert precision.cpu_has_native('fp16') == precision.cpu_has_native(torch.float16) == bool(
        torch.ops.mkldnn._is_mkldnn_fp16_supported())


def test_float32_is_never_refused_and_bf16_only_without_the_cpus_arithmetic_or_the_override(monkeypatch):
    monkeypatch.delenv('SL_SLOW_CPU_AUTOCAST', raising=False)
    for name in (None, 'fp32', False, torch.float32):
        precision.check_cpu_autocast(name, 'x', 'y')
    monkeypatch.setattr(precision, 'cpu_has_native', lambda name: True)
    precision.check_cpu_autocast('bf16', 'x', 'y')
    monkeypatch.setattr(precision, 'cpu_has_native', lambda name: False)
    capability = torch.backends.cpu.get_cpu_capability()
    with pytest.raises(SLError) as error:
        precision.check_cpu_autocast(torch.bfloat16, 'train.autocast: bf16', 'remove it')
    assert str(error.value) == (f'train.autocast: bf16 on this CPU ({capability}, without AVX-512 BF16 or AMX) would '
                                "run every convolution on PyTorch's slow path, about 9-18x slower than float32; "
                                'remove it.')
    with pytest.raises(SLError, match=r'^--precision fp16 on this CPU \(\w+, without AVX-512 FP16 or AMX-FP16\)'):
        precision.check_cpu_autocast('fp16', '--precision fp16', 'use fp32')
    monkeypatch.setenv('SL_SLOW_CPU_AUTOCAST', '1')
    precision.check_cpu_autocast('bf16', 'x', 'y')

