"""Writing files safely: never a half-written file, never a file we did not write removed.

Every temporary file or folder sl_arch creates is named ``TEMP_PREFIX + <final name> + ...``
(``.sl-tmp-`` is a prefix no user file has), so :func:`remove_stale_temporaries` can clean up
after a killed process by that prefix alone, without touching anything else.
"""
import errno
import json
import os
import secrets
import shutil

from sl_arch.utils.errors import SLError

TEMP_PREFIX = '.sl-tmp-'


class OutputError(SLError, OSError):
    """An output cannot be written (permissions, disk full, a file where a folder should be).

    Also an :class:`OSError`, so that code handling the operating system's error keeps working.
    """


_WRITE_FIXES = {
    errno.ENOSPC: 'the disk is full: free some space or choose another output path',
    errno.EDQUOT: 'the disk quota is exceeded: free some space or choose another output path',
    errno.EROFS: 'the file system is read-only: choose another output path',
    errno.EACCES: 'permission denied: choose another output path or make the folder writable',
    errno.EPERM: 'permission denied: choose another output path or make the folder writable',
    errno.ENOTDIR: 'a part of the path is a file, not a folder: choose another output path',
    errno.ENAMETOOLONG: 'the name is too long: choose a shorter output path',
}


def output_error(path, error):
    """The one-line :class:`OutputError` for an :class:`OSError` raised while writing ``path``.

    An :class:`OutputError` (already one line) is returned unchanged.
    """
    if isinstance(error, OutputError):
        return error
    fix = _WRITE_FIXES.get(error.errno, f'{error.strerror or error}: choose another output path')
    return OutputError(f'cannot write {path}: {fix}.')


def path_relation(first, second):
    """How path ``first`` relates to ``second`` once symbolic links are resolved, for messages.

    Returns:
        str | None: ``'is the same path as'``, ``'is inside'``, ``'contains'``, or None when they
        are apart.
    """
    first, second = os.path.realpath(first), os.path.realpath(second)
    if first == second:
        return 'is the same path as'
    common = os.path.commonpath([first, second])
    return 'is inside' if common == second else 'contains' if common == first else None


def check_work_folder(path, option, entries):
    """Refuse a work folder that holds something its command did not put there, before any work is done.

    A command that reuses its work folder (reads back finished runs, resumes) writes files under fixed names in it;
    in a folder of someone else's those names could be theirs. So an existing folder may hold only ``entries``, and
    the temporaries an sl_arch process killed mid-write leaves (:func:`is_temporary`: ours by their name).

    Args:
        path (str): The work folder, existing or not (checked with :func:`check_writable` too).
        option (str): The command-line option that gave it, for the message.
        entries (Iterable[str]): The names the command (and the BasicSR runs it starts) may create in it.

    Raises:
        OutputError: naming the folder, what is in the way and the fix.
    """
    check_writable(path, option)
    if not os.path.isdir(path):
        return
    foreign = sorted(name for name in os.listdir(path) if name not in entries and not is_temporary(name))
    if foreign:
        shown = ', '.join(foreign[:3]) + (f' and {len(foreign) - 3} more' if len(foreign) > 3 else '')
        raise OutputError(f'{option} {path} holds {shown}, which this command did not write; give a new or empty '
                          f'folder, or the {option} of an earlier run.')


def check_writable(path, option, is_folder=True):
    """Refuse an output path that cannot be created or written, before any work is done.

    The folder written into (``path``, or its parent for a file) must exist as a writable folder,
    or its nearest existing ancestor must be one (the missing folders are created).

    Args:
        path (str): Output folder or file, existing or not.
        option (str): The command-line option that gave it (for the message), e.g. ``'-o'``.
        is_folder (bool): ``path`` is a folder to write into, not a file.

    Raises:
        OutputError: naming ``path``, the obstacle and the fix.
    """
    existing = os.path.abspath(path)
    if not is_folder:
        existing = os.path.dirname(existing)
    while not os.path.lexists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise OutputError(f'cannot write {path}: {existing} is not a folder; choose another {option} path.')
    if not os.access(existing, os.W_OK | os.X_OK):
        raise OutputError(f'cannot write {path}: folder {existing} is not writable; choose another {option} path '
                          'or make the folder writable.')


def temporary_path(path, suffix='.tmp', is_folder=False):
    """Create an empty temporary file (or folder) beside ``path``, named ours, and return its path.

    The name is ``.sl-tmp-<name>.<random><suffix>``. It gets the permission bits a plain ``open()``
    (or ``os.makedirs``) would give, ``0o666`` (``0o777``) less the umask, so the renamed result
    does too.

    Raises:
        OutputError: the folder cannot be created or written.
    """
    folder, name = os.path.split(os.path.abspath(path))
    try:
        os.makedirs(folder, exist_ok=True)
        while True:
            tmp_path = os.path.join(folder, f'{TEMP_PREFIX}{name}.{secrets.token_hex(4)}{suffix}')
            try:
                if is_folder:
                    os.mkdir(tmp_path, 0o777)
                else:
                    os.close(os.open(tmp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
                return tmp_path
            except FileExistsError:
                continue
    except OSError as error:
        raise output_error(path, error) from None


def atomic_write(path, write, suffix='.tmp', mode=None):
    """Call ``write(tmp_path)`` on a temporary file beside ``path``, then rename it over ``path``.

    The temporary file (see :func:`temporary_path`) is removed if ``write`` fails, so ``path``
    holds either its previous content or the complete new one.

    Args:
        path (str): Destination.
        write (callable): Writes the whole content to the path it is given; what it returns is returned.
        suffix (str): Ending of the temporary name, for writers that pick a format by extension
            (e.g. ``'.png'`` for ``cv2.imwrite``). Default: ``'.tmp'``.
        mode (int | None): Permission bits for the result. Default: those of a plain ``open()``.

    Returns:
        What ``write`` returned (e.g. the written file read back while it had its temporary name).

    Raises:
        OutputError: an :class:`OSError` while writing (disk full, permissions, ...), in one line.
    """
    tmp_path = temporary_path(path, suffix)
    try:
        result = write(tmp_path)
        if mode is not None:
            os.chmod(tmp_path, mode)
        os.replace(tmp_path, path)
        return result
    except OSError as error:
        raise output_error(path, error) from None
    finally:
        if os.path.exists(tmp_path):
            os.remove(tmp_path)


def write_text(path, text, mode=None):
    """Write the string ``text`` to ``path`` atomically (UTF-8; see :func:`atomic_write` for ``mode``)."""

    def write(tmp_path):
        with open(tmp_path, 'w', encoding='utf-8') as handle:
            handle.write(text)

    atomic_write(path, write, mode=mode)


def write_json(path, data, indent=2, sort_keys=False):
    """Write ``data`` as indented JSON (and a final newline) to ``path`` atomically."""
    write_text(path, json.dumps(data, indent=indent, sort_keys=sort_keys) + '\n')


def is_temporary(name):
    """True for the name of a temporary file or folder sl_arch made (see :func:`temporary_path`)."""
    return name.startswith(TEMP_PREFIX)


def remove_stale_temporaries(folder, recursive=False, name=None):
    """Remove the temporary files and folders a killed sl_arch process left in ``folder``.

    Only names with our prefix (:data:`TEMP_PREFIX`) are removed; nothing else is touched.

    Args:
        folder (str): Where to look; a missing folder holds nothing.
        recursive (bool): Also look in every subfolder (symbolic links are not followed).
        name (str | None): Only the temporaries of the file ``name`` (e.g. one video another
            process may be writing beside); default: all of them.

    Returns:
        int: Number of files and folders removed.
    """
    prefix = TEMP_PREFIX + (f'{name}.' if name else '')
    count = 0
    for parent, folders, files in os.walk(folder):
        for entry in files + folders:
            if not entry.startswith(prefix):
                continue
            path = os.path.join(parent, entry)
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
            else:
                os.remove(path)
            count += 1
        if not recursive:
            break
        folders[:] = [entry for entry in folders if not entry.startswith(prefix)]
    return count
