"""sl_arch.utils.files: atomic writes with ordinary permissions, temporaries that are ours alone, clear write errors."""
import errno
import os
import stat

import pytest

from sl_arch.utils import files
from sl_arch.utils.errors import SLError
from sl_arch.utils.files import (TEMP_PREFIX, atomic_write, check_writable, path_relation, remove_stale_temporaries,
                                 temporary_path)


def write_text(text):

    def write(tmp_path):
        with open(tmp_path, 'w', encoding='utf-8') as handle:
            handle.write(text)

    return write


@pytest.mark.parametrize('umask', [0o022, 0o002])
def test_atomic_write_gives_the_permissions_of_a_plain_open(tmp_path, umask):
    old = os.umask(umask)
    try:
        atomic_write(str(tmp_path / 'atomic.txt'), write_text('x'))
        (tmp_path / 'plain.txt').write_text('x')
        os.mkdir(tmp_path / 'plain')
        folder = temporary_path(str(tmp_path / 'atomic'), suffix='', is_folder=True)
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / 'atomic.txt').st_mode) == 0o666 & ~umask
    assert stat.S_IMODE(os.stat(tmp_path / 'plain.txt').st_mode) == 0o666 & ~umask
    assert stat.S_IMODE(os.stat(folder).st_mode) == stat.S_IMODE(os.stat(tmp_path / 'plain').st_mode)


def test_a_failed_write_keeps_the_old_content_and_leaves_no_temporary(tmp_path):
    target = tmp_path / 'state.txt'
    target.write_text('old')

    def crash(tmp_path_):
        write_text('half')(tmp_path_)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(str(target), crash)
    assert target.read_text() == 'old' and os.listdir(tmp_path) == ['state.txt']


def test_temporaries_carry_our_prefix_and_the_extension_a_writer_needs(tmp_path):
    seen = []
    atomic_write(str(tmp_path / 'frame.png'), lambda tmp: seen.append(os.path.basename(tmp)), suffix='.png')
    atomic_write(str(tmp_path / 'net.pth'), lambda tmp: seen.append(os.path.basename(tmp)))
    assert seen[0].startswith(TEMP_PREFIX + 'frame.png.') and seen[0].endswith('.png')
    assert seen[1].startswith(TEMP_PREFIX + 'net.pth.') and not seen[1].endswith('.pth')


def test_atomic_write_returns_what_the_writer_returned(tmp_path):
    def write(tmp):  # e.g. the file read back under its temporary name (sl-export's onnxruntime session)
        with open(tmp, 'w') as file:
            file.write('x')
        return os.path.getsize(tmp)

    assert atomic_write(str(tmp_path / 'out.txt'), write) == 1 and (tmp_path / 'out.txt').read_text() == 'x'


def test_cleanup_removes_only_our_temporaries(tmp_path):
    user = ['.notes.tmp', '.00000001.png.abc.tmp', 'draft.tmp', '.sl-tmp', 'sl-tmp-x']
    for name in user:
        (tmp_path / name).write_text('mine')
        (tmp_path / 'sub').mkdir(exist_ok=True)
        (tmp_path / 'sub' / name).write_text('mine')
    ours = [temporary_path(str(tmp_path / 'net.pth')), temporary_path(str(tmp_path / 'sub' / 'a.png'), '.png'),
            temporary_path(str(tmp_path / 'sub' / 'GT.lmdb'), '', is_folder=True)]
    (tmp_path / 'sub' / os.path.basename(ours[2]) / 'data.mdb').write_bytes(b'half')

    assert remove_stale_temporaries(str(tmp_path)) == 1  # not recursive: only the folder itself
    assert os.path.exists(ours[1]) and os.path.exists(ours[2])
    assert remove_stale_temporaries(str(tmp_path), recursive=True) == 2
    assert sorted(os.listdir(tmp_path)) == sorted(user + ['sub'])
    assert sorted(os.listdir(tmp_path / 'sub')) == sorted(user)
    assert remove_stale_temporaries(str(tmp_path / 'missing')) == 0


def test_cleanup_can_be_limited_to_the_temporaries_of_one_file(tmp_path):
    mine, other = temporary_path(str(tmp_path / 'a.mp4'), '.mp4'), temporary_path(str(tmp_path / 'b.mp4'), '.mp4')
    assert remove_stale_temporaries(str(tmp_path), name='a.mp4') == 1
    assert not os.path.exists(mine) and os.path.exists(other)


@pytest.mark.parametrize('code, words', [(errno.ENOSPC, 'the disk is full'), (errno.EACCES, 'permission denied'),
                                         (errno.EROFS, 'the file system is read-only')])
def test_an_os_error_while_writing_is_one_line_naming_the_file(tmp_path, code, words):
    target = tmp_path / 'out.png'

    def fail(tmp_path_):
        raise OSError(code, os.strerror(code))

    with pytest.raises(SLError) as error:
        atomic_write(str(target), fail)
    assert isinstance(error.value, OSError)  # callers that handle OSError keep working
    message = str(error.value)
    assert message.startswith(f'cannot write {target}: {words}') and '\n' not in message
    assert os.listdir(tmp_path) == []


def test_a_file_used_as_a_folder_is_refused_up_front(tmp_path):
    (tmp_path / 'notes.txt').write_text('mine')
    with pytest.raises(SLError, match='notes.txt is not a folder; choose another -o path'):
        check_writable(str(tmp_path / 'notes.txt' / 'out' / 'deeper'), '-o')
    with pytest.raises(SLError, match='cannot write .*notes.txt/out.png'):
        atomic_write(str(tmp_path / 'notes.txt' / 'out.png'), write_text('x'))
    assert (tmp_path / 'notes.txt').read_text() == 'mine'


def test_a_folder_without_write_permission_is_refused_up_front(tmp_path, monkeypatch):
    check_writable(str(tmp_path / 'new' / 'folder'), '-o')
    check_writable(str(tmp_path / 'video.mp4'), '-o', is_folder=False)
    monkeypatch.setattr(files.os, 'access', lambda path, mode: path != str(tmp_path))
    with pytest.raises(SLError, match=f'folder {tmp_path} is not writable; choose another --save-masks path'):
        check_writable(str(tmp_path / 'new' / 'folder'), '--save-masks')
    with pytest.raises(SLError, match=f'folder {tmp_path} is not writable'):
        check_writable(str(tmp_path / 'video.mp4'), '-o', is_folder=False)


def test_path_relation_resolves_symbolic_links(tmp_path):
    (tmp_path / 'frames').mkdir()
    os.symlink(tmp_path / 'frames', tmp_path / 'link')
    assert path_relation(str(tmp_path / 'link'), str(tmp_path / 'frames')) == 'is the same path as'
    assert path_relation(str(tmp_path / 'link' / 'out'), str(tmp_path / 'frames')) == 'is inside'
    assert path_relation(str(tmp_path), str(tmp_path / 'link')) == 'contains'
    assert path_relation(str(tmp_path / 'frames_x4'), str(tmp_path / 'frames')) is None
