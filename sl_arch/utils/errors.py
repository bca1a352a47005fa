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


def check_at_least(options, minimum=1):
    """Refuse the first of ``options`` ({'--jobs': 0, ...}: command-line option -> value) below ``minimum``: an
    :class:`SLError` that names that option and its value, rather than every option of the group."""
    for option, value in options.items():
        if value < minimum:
            raise SLError(f'{option} {value}: give at least {minimum}.')


def cli_entry(main):
    """Decorate a console-script ``main`` so that an :class:`SLError` prints one line and exits 2.

    Set ``SL_DEBUG=1`` in the environment to see the full traceback instead. A reader of the output that stops early
    (``sl-bench --list-models | head``) ends the command quietly with exit status 1, as Python's documentation
    advises for a closed pipe, not with a ``BrokenPipeError`` traceback.
    """

    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        import os
        try:
            result = main(*args, **kwargs)
            sys.stdout.flush()  # a closed pipe raises here, not in the interpreter's flush at exit
            return result
        except BrokenPipeError:
            # nothing more can be written to stdout; point it at the null device so the flush at exit is silent
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            sys.exit(1)
        except SLError as error:
            if os.environ.get('SL_DEBUG'):
                raise
            message = str(error).strip()
            if message.startswith('Caught '):  # re-raised by PyTorch from a DataLoader worker
                message = re.sub(r'^[\w.]*Error: ', '', message.splitlines()[-1])
            print(f'error: {message}', file=sys.stderr)
            sys.exit(2)

    return wrapper
