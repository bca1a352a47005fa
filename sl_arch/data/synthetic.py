"""Synthetic video clips with ground-truth instances and exact optical flow, made of real photographs.

Each clip is a camera that pans and zooms over one photograph (the background), with 0-6 objects
cut out of other photographs in irregular shapes, each on its own trajectory: objects cross and
occlude each other, enter and leave the frame. Because every layer moves by a known affine map,
the instance id of every pixel and its optical flow to the next and previous frame are exact.

Photographs come from the wheels the project already installs: scikit-image's ``skimage/data``
and matplotlib's sample data. Training and held-out clips use disjoint photographs
(:data:`TRAIN_PHOTOS`, :data:`HELD_OUT_PHOTOS`). Held-out clips are tagged by motion regime:

* ``pan``: the camera moves over the background, no objects;
* ``crossing``: 3-6 objects whose paths cross the middle of the frame, some entering from outside
  and leaving, drawn in a fixed depth order so that they occlude each other.

Every clip is a pure function of ``(seed, split, clip index)``, so a resumed or partial run writes
the same bytes as a complete one. Layout under the root (the ``sl-prepare`` layout plus the
ground truth)::

    <split>/GT/<clip>/00000000.png        GT frames
    <split>/BI/<clip>/..., <split>/BD/... LR frames (sl_arch.data.degradations)
    <split>/masks/<clip>/00000000.png     instance ids at LR size (0 background, 1.. objects; a
                                          ``semantics_root`` for the datasets)
    <split>/flow_fwd/<clip>/00000000.npy  (h, w, 2) float32 LR-pixel flow (dx, dy) from frame t to t+1
                                          (frames 0 .. T-2; the last frame has none)
    <split>/flow_bwd/<clip>/00000001.npy  flow from frame t to t-1 (frames 1 .. T-1)
    <split>/meta_info.txt                 every clip; <split>/meta_info_<regime>.txt one regime
    <split>/clips.json                    per clip: regime, photographs, number of objects

Flow is that of the surface visible at each pixel of frame ``t`` (where that surface is hidden in
the other frame the flow still says where it went), sampled at the LR pixel centres.
"""
import json
import os
from dataclasses import dataclass

import cv2
import numpy as np

from sl_arch.data.degradations import DEGRADATIONS
from sl_arch.data.dataset_files import format_meta_info
from sl_arch.io.images import atomic_write_bytes, write_png
from sl_arch.utils.errors import SLError

#: Photographs of the training clips (file names in skimage/data or matplotlib's sample_data).
TRAIN_PHOTOS = ('astronaut.png', 'coffee.png', 'rocket.jpg', 'hubble_deep_field.jpg', 'ihc.png', 'brick.png',
                'gravel.png', 'grass.png')
#: Photographs of the held-out clips: none of them appears in a training clip.
HELD_OUT_PHOTOS = ('chelsea.png', 'motorcycle_left.png', 'retina.jpg', 'grace_hopper.jpg', 'camera.png',
                   'moon.png')
REGIMES = ('pan', 'crossing')
FRAME_NAME = '{:08d}.png'
FLOW_NAME = '{:08d}.npy'


def photo_path(name):
    """Path of a photograph shipped with scikit-image or matplotlib."""
    import matplotlib
    import skimage
    for folder in (os.path.join(os.path.dirname(skimage.__file__), 'data'),
                   os.path.join(matplotlib.get_data_path(), 'sample_data')):
        path = os.path.join(folder, name)
        if os.path.isfile(path):
            return path
    raise SLError(f'photograph {name} is not in the installed scikit-image or matplotlib; '
                  'reinstall them (pip install scikit-image matplotlib).')


def load_photo(name, _cache={}):  # noqa: B006  (decoded photographs are reused by every clip of a process)
    """A photograph as BGR uint8 (grey ones repeated over three channels)."""
    if name not in _cache:
        img = cv2.imread(photo_path(name), cv2.IMREAD_COLOR)
        if img is None:
            raise SLError(f'photograph {photo_path(name)} cannot be decoded; reinstall scikit-image / matplotlib.')
        _cache[name] = img
    return _cache[name]


def affine(scale, angle, src_centre, dst_centre):
    """3x3 matrix mapping ``src_centre`` to ``dst_centre`` with a zoom ``scale`` and rotation ``angle`` (rad)."""
    cos, sin = scale * np.cos(angle), scale * np.sin(angle)
    matrix = np.array([[cos, -sin, 0.], [sin, cos, 0.], [0., 0., 1.]])
    matrix[:2, 2] = np.asarray(dst_centre, dtype=np.float64) - matrix[:2, :2] @ np.asarray(src_centre, np.float64)
    return matrix


def blob_mask(rng, height, width):
    """An irregular filled shape (float 0/1) of about ``height`` x ``width``: a smoothed random polygon."""
    corners = rng.integers(7, 14)
    angles = np.sort(rng.uniform(0, 2 * np.pi, corners))
    radii = rng.uniform(0.55, 1.0, corners)
    points = np.stack([width / 2 + radii * np.cos(angles) * width / 2 * 0.95,
                       height / 2 + radii * np.sin(angles) * height / 2 * 0.95], axis=1)
    mask = np.zeros((height, width), np.float32)
    cv2.fillPoly(mask, [np.round(points * 4).astype(np.int32)], 1.0, lineType=cv2.LINE_AA, shift=2)
    mask = cv2.GaussianBlur(mask, (0, 0), max(1.0, min(height, width) / 12))
    return (mask > 0.5).astype(np.float32)


@dataclass
class Layer:
    """One moving picture: ``texture`` (BGR) with ``alpha`` (0/1), placed by ``matrices[t]`` (3x3, texture -> frame)."""
    texture: np.ndarray
    alpha: np.ndarray
    matrices: list


def background_layer(rng, photo, size, num_frames):
    """A camera panning (0.3-2 GT px per frame) and zooming (up to 1% per frame) over ``photo``."""
    width, height = size
    # zoom so that the frame sees 40-70% of the photo's shorter side, never past its border
    # (area-filtered first, so that the camera's own zoom stays near 1 and the warp does not alias)
    base = max(width, height) / (min(photo.shape[:2]) * rng.uniform(0.4, 0.7))
    photo = cv2.resize(photo, None, fx=base, fy=base, interpolation=cv2.INTER_AREA)
    zoom_rate = rng.uniform(-0.01, 0.01)
    speed = rng.uniform(0.3, 2.0)
    direction = rng.uniform(0, 2 * np.pi)
    velocity = speed * np.array([np.cos(direction), np.sin(direction)])
    zooms = (1 + zoom_rate) ** (np.arange(num_frames) - (num_frames - 1) / 2)
    reach = 0.5 * np.array([width, height]) / zooms.min() + np.abs(velocity) * num_frames / 2 + 2
    low, high = reach, np.array([photo.shape[1], photo.shape[0]]) - reach
    if np.any(low > high):
        raise SLError(f'a photograph of {photo.shape[1]}x{photo.shape[0]} is too small for {width}x{height} clips.')
    middle = rng.uniform(low, high)
    centres = [middle + velocity * (t - (num_frames - 1) / 2) for t in range(num_frames)]
    matrices = [affine(zoom, 0.0, centre, (width / 2, height / 2)) for zoom, centre in zip(zooms, centres)]
    return Layer(photo, np.ones(photo.shape[:2], np.float32), matrices)


def object_layer(rng, photo, size, num_frames, crossing):
    """A cut-out of ``photo`` moving across the frame; with ``crossing`` its path runs through the middle."""
    width, height = size
    side = rng.uniform(0.25, 0.5) * min(width, height)
    obj_w, obj_h = int(side * rng.uniform(0.7, 1.4)) + 4, int(side * rng.uniform(0.7, 1.4)) + 4
    texture_scale = rng.uniform(0.5, 1.0)
    crop_w = min(photo.shape[1], int(obj_w / texture_scale))
    crop_h = min(photo.shape[0], int(obj_h / texture_scale))
    crops = []  # of four random crops the most textured, so that no object is one flat colour
    for _ in range(4):
        top, left = rng.integers(0, photo.shape[0] - crop_h + 1), rng.integers(0, photo.shape[1] - crop_w + 1)
        crops.append(photo[top:top + crop_h, left:left + crop_w])
    crop = max(crops, key=lambda candidate: float(candidate.std()))
    texture = cv2.resize(crop, (obj_w, obj_h), interpolation=cv2.INTER_AREA)
    alpha = blob_mask(rng, obj_h, obj_w)
    centre = np.array([width / 2, height / 2])
    if crossing:  # from one side of the middle to the other, starting and/or ending outside the frame
        direction = rng.uniform(0, 2 * np.pi)
        unit = np.array([np.cos(direction), np.sin(direction)])
        reach = rng.uniform(0.35, 0.9) * np.array([width, height])
        start = centre - unit * reach + rng.uniform(-0.15, 0.15, 2) * np.array([width, height])
        end = centre + unit * reach * rng.uniform(0.6, 1.2) + rng.uniform(-0.15, 0.15, 2) * np.array([width, height])
    else:
        start = rng.uniform(0.1, 0.9, 2) * np.array([width, height])
        end = start + rng.uniform(-1.5, 1.5, 2) * num_frames
    angle0, spin = rng.uniform(-0.3, 0.3), rng.uniform(-0.02, 0.02)
    matrices = []
    for t in range(num_frames):
        s = t / max(num_frames - 1, 1)
        matrices.append(affine(1.0, angle0 + spin * t, (obj_w / 2, obj_h / 2), start + (end - start) * s))
    return Layer(texture, alpha, matrices)


def render(layers, t, size):
    """Frame ``t``: layers composited back to front. Returns (BGR uint8 frame, int32 instance ids)."""
    width, height = size
    frame = np.zeros((height, width, 3), np.float32)
    ids = np.zeros((height, width), np.int32)
    for layer_id, layer in enumerate(layers):
        matrix = layer.matrices[t][:2]
        texture = cv2.warpAffine(layer.texture, matrix, (width, height), flags=cv2.INTER_CUBIC,
                                 borderMode=cv2.BORDER_REFLECT).astype(np.float32)
        if layer_id == 0:
            frame = texture
            continue
        alpha = cv2.warpAffine(layer.alpha, matrix, (width, height), flags=cv2.INTER_LINEAR)[..., None]
        frame = frame * (1 - alpha) + texture * alpha
        ids[alpha[..., 0] >= 0.5] = layer_id
    return np.clip(np.round(frame), 0, 255).astype(np.uint8), ids


def lr_pixel_centres(lr_size, scale):
    """GT coordinates (x, y) of the centres of the LR pixels, as MATLAB-style bicubic downsampling aligns them."""
    width, height = lr_size
    xs = (np.arange(width) + 0.5) * scale - 0.5
    ys = (np.arange(height) + 0.5) * scale - 0.5
    return np.meshgrid(xs, ys)


def exact_flow(layers, ids_lr, t_from, t_to, points, scale):
    """LR-pixel flow from frame ``t_from`` to ``t_to`` of the layer visible at each LR pixel.

    Args:
        layers (list[Layer]): Background first.
        ids_lr (ndarray): (h, w) visible layer at the LR pixels of frame ``t_from``.
        points (tuple[ndarray]): GT x and y of the LR pixel centres (:func:`lr_pixel_centres`).
        scale (int): GT / LR.

    Returns:
        ndarray: (h, w, 2) float32 (dx, dy) in LR pixels.
    """
    xs, ys = points
    flow = np.zeros(xs.shape + (2,), np.float32)
    homogeneous = np.stack([xs, ys, np.ones_like(xs)], axis=-1)
    for layer_id, layer in enumerate(layers):
        where = ids_lr == layer_id
        if not where.any():
            continue
        motion = layer.matrices[t_to] @ np.linalg.inv(layer.matrices[t_from])
        moved = homogeneous[where] @ motion.T
        flow[where] = (moved[:, :2] - homogeneous[where][:, :2]) / scale
    return flow


@dataclass
class ClipPlan:
    """What one clip shows: its name, split, regime and photographs; ``index`` seeds its generator."""
    name: str
    split: str
    regime: str
    index: int
    background: str
    objects: tuple


def plan_clips(seed, num_train, num_val):
    """Names, regimes and photographs of every clip; a pure function of its arguments.

    Training clips mix the regimes (0-6 objects, crossing or wandering); held-out clips alternate
    ``pan`` and ``crossing``.
    """
    plans = []
    for split, count, photos in (('train', num_train, TRAIN_PHOTOS), ('val', num_val, HELD_OUT_PHOTOS)):
        for index in range(count):
            rng = np.random.default_rng([seed, 0 if split == 'train' else 1, index, 0])
            if split == 'val':
                regime = REGIMES[index % len(REGIMES)]
                num_objects = 0 if regime == 'pan' else int(rng.integers(3, 7))
            else:
                num_objects = int(rng.integers(0, 7))
                regime = 'pan' if num_objects == 0 else ('crossing' if rng.random() < 0.7 else 'wander')
            chosen = rng.choice(len(photos), size=1 + num_objects, replace=num_objects + 1 > len(photos))
            plans.append(ClipPlan(f'{regime}_{index:03d}', split, regime, index, photos[chosen[0]],
                                  tuple(photos[i] for i in chosen[1:])))
    return plans


def make_clip(plan, seed, size, num_frames):
    """The layers of one clip (background first), drawn from the clip's own generator."""
    rng = np.random.default_rng([seed, 0 if plan.split == 'train' else 1, plan.index, 1])
    layers = [background_layer(rng, load_photo(plan.background), size, num_frames)]
    for name in plan.objects:
        layers.append(object_layer(rng, load_photo(name), size, num_frames, crossing=plan.regime == 'crossing'))
    return layers


def _save_npy(path, array):
    import io
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return atomic_write_bytes(path, buffer.getvalue())


def clip_paths(root, plan, num_frames, kinds):
    """Every file a clip writes, by frame: list of dicts ``kind -> path``."""
    paths = []
    for t in range(num_frames):
        frame = {kind: os.path.join(root, plan.split, kind, plan.name, FRAME_NAME.format(t))
                 for kind in ('GT', *kinds, 'masks')}
        if t < num_frames - 1:
            frame['flow_fwd'] = os.path.join(root, plan.split, 'flow_fwd', plan.name, FLOW_NAME.format(t))
        if t > 0:
            frame['flow_bwd'] = os.path.join(root, plan.split, 'flow_bwd', plan.name, FLOW_NAME.format(t))
        paths.append(frame)
    return paths


def write_clip(root, plan, seed, size, num_frames, scale, kinds):
    """Render one clip and write all its files (each atomically); returns the bytes written."""
    width, height = size
    layers = make_clip(plan, seed, size, num_frames)
    points = lr_pixel_centres((width // scale, height // scale), scale)
    near = (np.clip(np.round(points[1]).astype(int), 0, height - 1), np.clip(np.round(points[0]).astype(int), 0,
                                                                               width - 1))
    written = 0
    for t, paths in enumerate(clip_paths(root, plan, num_frames, kinds)):
        gt, ids = render(layers, t, size)
        ids_lr = ids[near]
        written += write_png(paths['GT'], gt)
        for kind in kinds:
            written += write_png(paths[kind], DEGRADATIONS[kind](gt, scale))
        written += write_png(paths['masks'], ids_lr.astype(np.uint8))
        for key, step in (('flow_fwd', 1), ('flow_bwd', -1)):
            if key in paths:
                written += _save_npy(paths[key], exact_flow(layers, ids_lr, t, t + step, points, scale))
    return written


def write_index(root, plans, size, num_frames, kinds):
    """``meta_info.txt`` (all clips and one per regime) and ``clips.json`` of every split."""
    width, height = size
    for split in sorted({plan.split for plan in plans}):
        split_plans = [plan for plan in plans if plan.split == split]
        entries = [(plan.name, num_frames, (height, width, 3)) for plan in split_plans]
        atomic_write_bytes(os.path.join(root, split, 'meta_info.txt'), format_meta_info(entries).encode())
        for regime in sorted({plan.regime for plan in split_plans}):
            chosen = [entry for entry, plan in zip(entries, split_plans) if plan.regime == regime]
            atomic_write_bytes(os.path.join(root, split, f'meta_info_{regime}.txt'), format_meta_info(chosen).encode())
        info = {plan.name: {'regime': plan.regime, 'background': plan.background, 'objects': list(plan.objects),
                            'frames': num_frames, 'lr': list(kinds)} for plan in split_plans}
        atomic_write_bytes(os.path.join(root, split, 'clips.json'), (json.dumps(info, indent=1) + '\n').encode())


def check_size(size, scale, num_frames):
    """Refuse a GT size that is not a multiple of ``scale`` or clips of fewer than 2 frames."""
    width, height = size
    if width % scale or height % scale:
        raise SLError(f'--size {width}x{height} is not a multiple of --scale {scale}; choose another size.')
    if num_frames < 2:
        raise SLError('synthetic clips need at least 2 frames (--frames; flow is between frames).')


def write_synthetic(root, seed=0, num_train=24, num_val=8, size=(160, 96), num_frames=16, scale=4,
                    kinds=('BI', 'BD')):
    """Write the whole synthetic set under ``root``; clips already complete are skipped.

    Args:
        root (str): Output root (see the module docstring for the layout).
        seed (int): Seed of every clip. Default: 0.
        num_train (int): Training clips. Default: 24.
        num_val (int): Held-out clips, alternating ``pan`` and ``crossing``. Default: 8.
        size (tuple[int]): GT (width, height), multiples of ``scale``. Default: 160x96.
        num_frames (int): Frames per clip. Default: 16.
        scale (int): GT / LR. Default: 4.
        kinds (tuple[str]): LR degradations. Default: BI and BD.

    Returns:
        dict: ``clips_written``, ``clips_skipped``, ``bytes_written``.
    """
    from tqdm import tqdm
    check_size(size, scale, num_frames)
    plans = plan_clips(seed, num_train, num_val)
    summary = {'clips_written': 0, 'clips_skipped': 0, 'bytes_written': 0}
    for plan in tqdm(plans, unit='clip', desc='sl-prepare --synthetic'):
        paths = [path for frame in clip_paths(root, plan, num_frames, kinds) for path in frame.values()]
        if all(os.path.isfile(path) for path in paths):
            summary['clips_skipped'] += 1
            continue
        summary['bytes_written'] += write_clip(root, plan, seed, size, num_frames, scale, kinds)
        summary['clips_written'] += 1
    write_index(root, plans, size, num_frames, kinds)
    return summary
