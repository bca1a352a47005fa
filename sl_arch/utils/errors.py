"""User-facing errors: one clear line that names the file and the fix, no deep traceback."""
import functools
import re
import sys


class SLError(Exception):
    """Base class of every error sl_arch reports to a user (bad input, bad option, bad checkpoint)."""


class CheckpointError(SLError):
    """A checkpoint is missing, unreadable, or made for another architecture/configuration."""


class InputShapeError(SLError, ValueError):
    """A network got a tensor of the wrong rank, channel count or size."""


def cli_entry(main):
    """Decorate a console-script ``main`` so that an :class:`SLError` prints one line and exits 2.

    Set ``SL_DEBUG=1`` in the environment to see the full traceback instead.
    """

    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        import os
        try:
            return main(*args, **kwargs)
        except SLError as error:
            if os.environ.get('SL_DEBUG'):
                raise
            message = str(error).strip()
            if message.startswith('Caught '):  # re-raised by PyTorch from a DataLoader worker
                message = re.sub(r'^[\w.]*Error: ', '', message.splitlines()[-1])
            print(f'error: {message}', file=sys.stderr)
            sys.exit(2)

    return wrapper
