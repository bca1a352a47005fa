"""sl_arch: Semantic Lens video super-resolution as a BasicSR plugin.

Importing this package registers its architectures, datasets and models into BasicSR's
registries. A compatibility shim is installed first so that the official basicsr 1.4.2
release imports on current torchvision.
"""
from sl_arch import _compat

_compat.install()

from sl_arch import archs  # noqa: E402,F401  (registers architectures)
from sl_arch import data  # noqa: E402,F401  (registers datasets)
from sl_arch import losses  # noqa: E402,F401  (registers losses)
from sl_arch import models  # noqa: E402,F401  (registers models)

__version__ = '0.1.0'
