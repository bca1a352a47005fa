"""Compatibility shims installed before BasicSR is imported.

BasicSR 1.4.2 imports ``torchvision.transforms.functional_tensor``, a private module that
torchvision removed in 0.17. Its only use there is ``rgb_to_grayscale``, which the public
``torchvision.transforms.functional`` still provides. Where the private module still exists,
nothing is touched.
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


def install():
    """Install every shim sl_arch needs before ``import basicsr``."""
    install_torchvision_functional_tensor()
    # basicsr.archs.arch_util.flow_warp calls torch.meshgrid without `indexing` (its behaviour is
    # the documented 'ij' default); the warning says nothing a user can act on.
    warnings.filterwarnings('ignore', message='torch.meshgrid: in an upcoming release', category=UserWarning)
