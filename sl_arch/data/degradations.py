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
"""
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
