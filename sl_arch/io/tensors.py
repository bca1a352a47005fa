"""The one colour boundary: arrays are OpenCV's BGR, tensors are RGB.

Every frame array in :mod:`sl_arch.io` (decoded video frames, image files, frames to write) is
``(h, w, 3)`` uint8 BGR; every tensor a network sees or returns is RGB float in ``[0, 1]``. The
two functions here are the only conversions between them.
"""
import numpy as np
import torch
from basicsr.utils import img2tensor


def frames_to_tensor(imgs):
    """Stack BGR uint8 (or float in [0, 1]) frames into one RGB float tensor.

    Args:
        imgs (list[ndarray]): t frames of shape (h, w, 3).

    Returns:
        Tensor: (t, 3, h, w) float32 in [0, 1].
    """
    imgs = [img.astype(np.float32) / 255. if img.dtype == np.uint8 else img for img in imgs]
    return torch.stack(img2tensor(imgs, bgr2rgb=True, float32=True), dim=0)


def tensor_to_frame(tensor):
    """One RGB float frame to a BGR uint8 array, rounded as BasicSR rounds (``tensor2img``).

    Args:
        tensor (Tensor): (3, h, w) float (any float dtype), values in [0, 1] (clamped).

    Returns:
        ndarray: (h, w, 3) uint8 BGR, C-contiguous.
    """
    rgb = (tensor.float().clamp(0, 1) * 255).round().byte()
    return np.ascontiguousarray(rgb.flip(0).permute(1, 2, 0).numpy())


def flows_to_tensor(backward, forward):
    """(2, t - 1, 2, h, w) float32 tensor of two lists of t - 1 flows (h, w, 2): ``[backward; forward]``."""
    return torch.from_numpy(np.stack(backward + forward)).permute(0, 3, 1, 2).reshape(2, len(backward), 2,
                                                                                      *backward[0].shape[:2])
