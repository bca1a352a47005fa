"""Import every module of a sub-package whose name ends with a suffix, so that its classes register."""
import importlib
from pathlib import Path


def import_modules(package_name, package_file, suffix):
    """Import ``<package>.<stem>`` for every ``*<suffix>`` file beside ``package_file``.

    Args:
        package_name (str): Dotted name of the sub-package, e.g. ``'sl_arch.archs'``.
        package_file (str): The sub-package's ``__file__``.
        suffix (str): File-name ending, e.g. ``'_arch.py'``.
    """
    for file in sorted(Path(package_file).resolve().parent.glob('*' + suffix)):
        importlib.import_module(f'{package_name}.{file.stem}')
