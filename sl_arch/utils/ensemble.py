"""Two-pass test-time ensembles of a video network, one implementation for ``sl-test`` (``val.flip_seq``,
``val.flip_width``) and ``sl-infer`` (``--ensemble``).

* ``flip_seq``: the clip followed by the clip played backwards, run as one sequence of twice the frames (as BasicSR's
  ``flip_seq`` runs it), each frame's two outputs averaged. A network that restores each frame alone gives the same
  output twice, so it gains nothing.
* ``flip_width``: the clip and its mirror image (left to right), the mirrored output turned back and averaged: the
  self-ensemble any network can use, a single-frame one too.

Both take twice the test time of one pass.
"""
import torch

#: The ensembles, by their option names.
ENSEMBLES = ('flip_seq', 'flip_width')


def with_ensembles(forward, flip_seq=False, flip_width=False):
    """``forward(lqs, masks) -> (b, t, c, H, W)`` wrapped to average over the ensembles asked for (both: four passes).

    ``lqs`` is (b, t, c, h, w); ``masks`` (b, t, h, w) or (b, t, n, h, w) instance masks, or None, follow the clip.
    """
    def mirrored(lqs, masks):
        back = forward(lqs.flip(-1), None if masks is None else masks.flip(-1)).flip(-1)
        return 0.5 * (forward(lqs, masks) + back)

    inner = mirrored if flip_width else forward
    if not flip_seq:
        return inner

    def reversed_too(lqs, masks):
        frames = lqs.size(1)
        both = inner(torch.cat([lqs, lqs.flip(1)], dim=1),
                     None if masks is None else torch.cat([masks, masks.flip(1)], dim=1))
        return 0.5 * (both[:, :frames] + both[:, frames:].flip(1))

    return reversed_too
