"""Compatibility shims installed before BasicSR is imported.

BasicSR 1.4.2 imports ``torchvision.transforms.functional_tensor``, a private module that
torchvision removed in 0.17. Its only use there is ``rgb_to_grayscale``, which the public
``torchvision.transforms.functional`` still provides. Where the private module still exists,
nothing is touched.

``torchvision.ops.deform_conv2d`` (BasicSR's DCN in EDVR, IconVSR and BasicVSR++ on the CPU) has a CPU
kernel for float32 and float64 only, and an autocast rule only for CUDA (inputs cast to float32, the
result back), so bf16 mixed precision on a CPU (``train.autocast: bf16``) stopped at its first
deformable convolution. :func:`install_deform_conv2d_cpu_autocast` registers the same rule for CPU autocast.
"""
import importlib
import importlib.util
import sys
import types
import warnings

_LEGACY = 'torchvision.transforms.functional_tensor'


def install_torchvision_functional_tensor():
    """Register an alias module for ``torchvision.transforms.functional_tensor`` if it is missing.

    Returns:
        bool: True if the alias was installed, False if torchvision still ships the module
        (or the alias is already in place).
    """
    if _LEGACY in sys.modules:
        return False
    try:
        if importlib.util.find_spec(_LEGACY) is not None:
            return False
    except ModuleNotFoundError:
        pass
    functional = importlib.import_module('torchvision.transforms.functional')
    alias = types.ModuleType(_LEGACY)
    alias.__doc__ = 'sl_arch alias of torchvision.transforms.functional for BasicSR 1.4.2.'
    alias.rgb_to_grayscale = functional.rgb_to_grayscale
    alias.__getattr__ = lambda name: getattr(functional, name)
    sys.modules[_LEGACY] = alias
    return True


_AUTOCAST_LIBRARIES = []  # the registrations live as long as their library objects


def _deform_conv2d_in_float32(input, weight, offset, mask, bias, *args):
    """``torchvision::deform_conv2d`` under CPU autocast: in float32, the result in the input's dtype."""
    import torch
    with torch.autocast('cpu', enabled=False):
        output = torch.ops.torchvision.deform_conv2d(input.float(), weight.float(), offset.float(), mask.float(),
                                                     bias.float(), *args)
    return output.to(input.dtype)


def install_deform_conv2d_cpu_autocast():
    """Give ``torchvision::deform_conv2d`` an AutocastCPU kernel, as torchvision gives it one for CUDA.

    Returns:
        bool: True if registered now; False if torchvision has no such operator, or it is already registered.
    """
    import torch
    if _AUTOCAST_LIBRARIES:
        return False
    try:
        import torchvision  # noqa: F401  (defines the torchvision:: operators)
        torch.ops.torchvision.deform_conv2d
    except (ImportError, AttributeError, RuntimeError):
        return False
    library = torch.library.Library('torchvision', 'IMPL')
    library.impl('deform_conv2d', _deform_conv2d_in_float32, 'AutocastCPU')
    _AUTOCAST_LIBRARIES.append(library)
    return True


def install():
    """Install every shim sl_arch needs before ``import basicsr``."""
    install_torchvision_functional_tensor()
    install_deform_conv2d_cpu_autocast()
    # basicsr.archs.arch_util.flow_warp calls torch.meshgrid without `indexing` (its behaviour is
    # the documented 'ij' default); the warning says nothing a user can act on.
    warnings.filterwarnings('ignore', message='torch.meshgrid: in an upcoming release', category=UserWarning)
