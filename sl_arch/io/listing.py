"""Listing frames and videos on disk: one rule for what counts as a frame, one sort order.

A frame is a file with an image extension whose name does not start with a dot (macOS ``._*``
files and our own temporaries are hidden files, never frames); frames sort naturally, so
``im2.png`` comes before ``im10.png``. Videos inside a folder follow the same hidden-file rule.
"""
import os
import re

IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp')
VIDEO_EXTENSIONS = ('.mp4', '.avi', '.mov', '.mkv', '.webm', '.m4v', '.mpg', '.mpeg', '.wmv', '.flv', '.y4m',
                    '.ogv', '.3gp', '.ts')


def natural_key(name):
    """Sort key that orders ``im2`` before ``im10`` (digit runs compare as numbers)."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r'(\d+)', name)]


def is_image_file(name):
    """True for the name of an image frame (hidden files, e.g. macOS ``._*`` or our temporaries, are not)."""
    return name.lower().endswith(IMAGE_EXTENSIONS) and not name.startswith('.')


def is_video_file(name):
    """True for the name of a video file by its extension (hidden files are not)."""
    return name.lower().endswith(VIDEO_EXTENSIONS) and not name.startswith('.')


def frame_names(names):
    """The frame names among ``names`` (see :func:`is_image_file`), in natural order."""
    return sorted((name for name in names if is_image_file(name)), key=natural_key)


def list_frames(folder):
    """File names of the image frames directly inside ``folder``, in natural order.

    Args:
        folder (str): A clip folder.

    Returns:
        list[str]: File names (not paths), e.g. ``['im1.png', 'im2.png', ..., 'im10.png']``.

    Raises:
        OSError: the folder cannot be read.
    """
    with os.scandir(folder) as entries:
        return frame_names(entry.name for entry in entries if entry.is_file())


def list_videos(folder):
    """File names of the video files directly inside ``folder``, in natural order."""
    with os.scandir(folder) as entries:
        return sorted((entry.name for entry in entries if entry.is_file() and is_video_file(entry.name)),
                      key=natural_key)


def find_clip_folders(root):
    """Every folder under ``root`` that holds image frames, as paths relative to ``root``.

    Handles the REDS layout (``root/000/*.png``) as well as the nested Vimeo-90K layout
    (``root/00001/0001/im1.png``); ``root`` itself counts as a clip named ``'.'`` if it holds frames.
    Clip folders may be symbolic links (each real folder is read once, so a link loop ends).

    Returns:
        dict[str, list[str]]: Clip name (relative path with ``/``) -> frame file names.
    """
    clips = {}
    seen = set()  # real paths walked: clip folders may be symbolic links (to combine data sets), never twice
    for folder, subfolders, files in os.walk(root, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen:
            subfolders[:] = []
            continue
        seen.add(real)
        subfolders.sort()
        names = frame_names(files)
        if names:
            clips[os.path.relpath(folder, root).replace(os.sep, '/')] = names
    return dict(sorted(clips.items(), key=lambda item: natural_key(item[0])))


def missing_frame_numbers(names):
    """Numbers missing from a numbered frame sequence, e.g. ``[3]`` for ``0001.png, 0002.png, 0004.png``.

    Names count as one sequence when they differ only in one run of digits (the last one), such as
    ``im1.png ... im7.png`` or ``frame_0001.jpg ...``; other names give no gaps.

    Returns:
        list[int]: The numbers between the first and the last frame that no name has.
    """
    parts = [re.fullmatch(r'(.*?)(\d+)(\D*)', name) for name in names]
    if not parts or not all(parts) or len({(m.group(1).lower(), m.group(3).lower()) for m in parts}) != 1:
        return []
    numbers = {int(match.group(2)) for match in parts}
    return sorted(set(range(min(numbers), max(numbers) + 1)) - numbers)
