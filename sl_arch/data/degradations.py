"""The two standard video super-resolution degradations, as importable functions.

- **BI**: MATLAB-style bicubic downsampling (``basicsr.utils.matlab_functions.imresize``, with
  anti-aliasing), the degradation of REDS and Vimeo-90K BIx4.
- **BD**: Gaussian blur (sigma 1.6, 13x13 kernel, replicate border) then keeping every
  ``scale``-th pixel, as in the BasicVSR paper. The kept pixel is the one nearest to the centre of
  each ``scale x scale`` block (offset ``scale // 2``), as MATLAB's ``imresize(.., 'nearest')``
  picks it, so that BD and BI frames are spatially aligned.

Both take and return ``(h, w, c)`` (or ``(h, w)``) numpy images; ``uint8`` in gives ``uint8`` out
(rounded), float in ``[0, 1]`` gives float out. ``h`` and ``w`` must be multiples of ``scale``
(crop with BasicSR's ``mod_crop``, importable from here).

:func:`degrade_window` gives the same LR pixels for a window of a frame at any GT-pixel position (what a training
set's ``camera_shake`` draws), from the degradation written as one separable filter.
"""
import functools

import cv2
import numpy as np
from basicsr.data.transforms import mod_crop  # noqa: F401  (BasicSR's bottom/right crop to a multiple of scale)
from basicsr.utils.matlab_functions import imresize

from sl_arch.utils.errors import SLError

BD_SIGMA = 1.6
BD_KERNEL_SIZE = 13


def _check(img, scale):
    h, w = img.shape[:2]
    if h % scale or w % scale:
        raise SLError(f'image of size {w}x{h} is not divisible by scale {scale}; crop it with mod_crop first.')


def _as_float(img):
    return img.astype(np.float32) / 255. if img.dtype == np.uint8 else img.astype(np.float32)


def _like_input(result, img):
    if img.dtype == np.uint8:
        return np.clip(np.round(result * 255.), 0, 255).astype(np.uint8)
    return result.astype(img.dtype)


def bi_degrade(img, scale):
    """BI degradation: MATLAB bicubic downsampling by ``scale``.

    Args:
        img (ndarray): GT image (h, w[, c]), uint8 or float in [0, 1]; h, w multiples of scale.
        scale (int): Downsampling factor.

    Returns:
        ndarray: LR image (h / scale, w / scale[, c]), same dtype as ``img``.
    """
    _check(img, scale)
    lr = imresize(_as_float(img), 1 / scale)
    return _like_input(np.asarray(lr), img)


def bd_degrade(img, scale, sigma=BD_SIGMA):
    """BD degradation: Gaussian blur (``sigma``, 13x13 kernel) then subsampling by ``scale``.

    Args:
        img (ndarray): GT image (h, w[, c]), uint8 or float in [0, 1]; h, w multiples of scale.
        scale (int): Subsampling factor.
        sigma (float): Standard deviation of the Gaussian blur. Default: 1.6.

    Returns:
        ndarray: LR image (h / scale, w / scale[, c]), same dtype as ``img``.
    """
    _check(img, scale)
    blurred = cv2.GaussianBlur(_as_float(img), (BD_KERNEL_SIZE, BD_KERNEL_SIZE), sigma, borderType=cv2.BORDER_REPLICATE)
    offset = scale // 2
    return _like_input(blurred[offset::scale, offset::scale, ...], img)


DEGRADATIONS = {'BI': bi_degrade, 'BD': bd_degrade}

#: How each degradation reads past a frame's edge (``numpy.pad`` modes): MATLAB's imresize mirrors the frame, BD's blur
#: repeats its edge pixels.
BORDER_MODES = {'BI': 'symmetric', 'BD': 'edge'}


def _cubic(x):
    """MATLAB's bicubic kernel (a = -0.5), as BasicSR's ``matlab_functions.cubic``."""
    x = np.abs(x)
    return np.where(x <= 1, 1.5 * x**3 - 2.5 * x**2 + 1, np.where(x < 2, -0.5 * x**3 + 2.5 * x**2 - 4 * x + 2, 0.))


@functools.lru_cache(maxsize=None)
def _float32_filter(degradation, scale):
    """:func:`separable_filter` in float32 (the arithmetic of bi_degrade's and bd_degrade's), made once."""
    weights, first = separable_filter(degradation, scale)
    weights = weights.astype(np.float32)
    weights.setflags(write=False)
    return weights, first


def separable_filter(degradation, scale):
    """``degradation`` ('BI' or 'BD') at ``scale`` as one 1-D filter applied along each axis: ``(weights, first)``, so
    that along an axis LR pixel ``x`` is ``sum(weights[k] * GT[scale * x + first + k])`` (GT read past the frame's
    edge as :data:`BORDER_MODES` says). BI: MATLAB's antialiased cubic, centred on the middle of the GT pixels' block;
    BD: the Gaussian, centred on the kept pixel ``scale // 2``."""
    if degradation == 'BI':
        centre = (scale - 1) / 2
        taps = np.arange(int(np.floor(centre - 2 * scale)) + 1, int(np.ceil(centre + 2 * scale)))
        weights = _cubic((taps - centre) / scale)
        return weights / weights.sum(), int(taps[0])
    if degradation == 'BD':
        return cv2.getGaussianKernel(BD_KERNEL_SIZE, BD_SIGMA, cv2.CV_64F)[:, 0], scale // 2 - BD_KERNEL_SIZE // 2
    raise SLError(f'unknown degradation {degradation!r}; use one of {sorted(DEGRADATIONS)}.')


#: OpenCV's border of each of :data:`BORDER_MODES`.
_CV_BORDERS = {'symmetric': cv2.BORDER_REFLECT, 'edge': cv2.BORDER_REPLICATE}


def _read_window(frame, top, left, height, width, mode):
    """``frame[top:top + height, left:left + width]`` for any ``top`` and ``left``, what lies past the frame's edges
    made as ``numpy.pad``'s ``mode`` ('symmetric' or 'edge') makes it (a copy)."""
    h, w = frame.shape[:2]
    rows = slice(min(max(top, 0), h - 1), max(min(top + height, h), 1))
    cols = slice(min(max(left, 0), w - 1), max(min(left + width, w), 1))
    inside = frame[rows, cols]
    pads = (max(-top, 0), max(top + height - h, 0), max(-left, 0), max(left + width - w, 0))
    window = cv2.copyMakeBorder(inside, *pads, _CV_BORDERS[mode]) if any(pads) else inside.copy()
    return window.reshape(window.shape[:2] + frame.shape[2:])  # OpenCV drops a channel axis of one


def degrade_window(frame, top, left, size, scale, degradation):
    """The GT window of ``frame`` of ``size`` whose top-left pixel is ``(top, left)``, and its LR window.

    ``top`` and ``left`` are any integers (GT pixels): the window may reach past the frame's edge, which is
    extended as the degradation extends it (:data:`BORDER_MODES`). Where ``top`` and ``left`` are multiples of
    ``scale``, the LR window is the matching window of ``DEGRADATIONS[degradation](frame, scale)``; elsewhere it is
    what that degradation gives for the frame moved by a fraction of an LR pixel.

    Args:
        frame (ndarray): (h, w[, c]) GT frame, uint8 or float in [0, 1].
        top, left (int): Position of the window in GT pixels.
        size (int | tuple[int, int]): GT window side, or its (height, width); multiples of ``scale``.
        scale (int): Downsampling factor.
        degradation (str): 'BI' or 'BD'.

    Returns:
        tuple[ndarray, ndarray]: the GT window and its LR window (``scale`` times smaller), both of ``frame``'s
        dtype (uint8 rounded).
    """
    weights, first = _float32_filter(degradation, scale)
    height, width = (size, size) if isinstance(size, int) else size
    span = (scale * (height // scale - 1) + len(weights), scale * (width // scale - 1) + len(weights))
    # one region holding the GT window and every GT pixel its LR window reads
    start = min(first, 0)
    region = _read_window(frame, top + start, left + start, max(height, first - start + span[0]) - start,
                          max(width, first - start + span[1]) - start, BORDER_MODES[degradation])
    # OpenCV's separable correlation, centred on tap len // 2: kept where every tap lies inside the region
    centre, taps = len(weights) // 2, first - start
    lr = cv2.sepFilter2D(_as_float(region[taps:taps + span[0], taps:taps + span[1]]), cv2.CV_32F, weights, weights,
                         borderType=cv2.BORDER_CONSTANT)
    lr = lr[centre::scale, centre::scale][:height // scale, :width // scale]
    lr = lr.reshape(lr.shape[:2] + frame.shape[2:])
    gt = region[-start:height - start, -start:width - start]
    # C order, as OpenCV's in-place flips (BasicSR's augment) need
    return np.ascontiguousarray(gt), np.ascontiguousarray(_like_input(lr, frame))
