"""Writing files so that a killed process never leaves a half-written one behind."""
import os
import tempfile


def atomic_write(path, write, suffix='.tmp', mode=None):
    """Call ``write(tmp_path)`` on a temporary file beside ``path``, then rename it over ``path``.

    The temporary file is hidden (``.<name>.<random><suffix>``) and removed if ``write`` fails, so
    ``path`` holds either its previous content or the complete new one.

    Args:
        path (str): Destination.
        write (callable): Writes the whole content to the path it is given.
        suffix (str): Ending of the temporary name (writers that pick a format by extension need it,
            and cleanup code can recognise leftovers by it). Default: ``'.tmp'``.
        mode (int | None): Permission bits for the result (the temporary file is created 0600).
    """
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    handle, tmp_path = tempfile.mkstemp(prefix='.' + os.path.basename(path) + '.', suffix=suffix, dir=folder)
    os.close(handle)
    try:
        write(tmp_path)
        if mode is not None:
            os.chmod(tmp_path, mode)
        os.replace(tmp_path, path)
    finally:
        if os.path.exists(tmp_path):
            os.remove(tmp_path)
