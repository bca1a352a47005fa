"""PSNR / SSIM on the Y channel with a crop border, as video SR papers report them.

Thin wrappers over BasicSR's ``calculate_psnr`` / ``calculate_ssim`` (``test_y_channel=True``,
ITU-R BT.601 luma of 8-bit images) plus the per-frame / per-sequence bookkeeping of a results table.
:func:`average_over_sequences` is the one place where per-frame values become the VSR papers'
average (the mean of the sequence means): the demo's table, the model's validation and the
benchmark's bicubic row all use it.
"""
from collections import OrderedDict

from basicsr.metrics import calculate_psnr, calculate_ssim


def psnr_ssim_y(img, img2, crop_border=0):
    """PSNR-Y (dB) and SSIM-Y of two 8-bit BGR images.

    Args:
        img (ndarray): (h, w, 3) uint8 BGR, e.g. a super-resolved frame.
        img2 (ndarray): (h, w, 3) uint8 BGR reference (GT) of the same size.
        crop_border (int): Pixels cut from every edge before measuring.

    Returns:
        tuple[float, float]: PSNR-Y and SSIM-Y.
    """
    if img.shape != img2.shape:
        raise ValueError(f'image sizes differ: {img.shape} vs {img2.shape}.')
    return (calculate_psnr(img, img2, crop_border, test_y_channel=True),
            calculate_ssim(img, img2, crop_border, test_y_channel=True))


def average_over_sequences(frame_values):
    """Per-sequence means of per-frame values and the mean of those means.

    Every sequence weighs the same whatever its length, as in the VSR papers' tables (and
    BasicSR's validation log).

    Args:
        frame_values (dict[str, Sequence[float]]): Sequence name -> the values of its frames
            (at least one per sequence, at least one sequence).

    Returns:
        dict: ``{'mean': float, 'sequences': {name: float}}``, sequences in the given order.
    """
    if not frame_values or not all(len(values) for values in frame_values.values()):
        raise ValueError('average_over_sequences needs at least one sequence and one frame per sequence.')
    sequences = {name: float(sum(values) / len(values)) for name, values in frame_values.items()}
    return {'mean': sum(sequences.values()) / len(sequences), 'sequences': sequences}


class MetricTable:
    """Per-frame PSNR-Y / SSIM-Y of several methods over several sequences.

    Args:
        methods (list[str]): Method names, in table order (e.g. ``['Bicubic', 'SemanticLens']``).
    """

    def __init__(self, methods):
        self.methods = list(methods)
        self.frames = OrderedDict()  # sequence -> list of {method: (psnr, ssim)}

    def add(self, sequence, values):
        """Record one frame of ``sequence``; ``values`` maps every method to ``(psnr, ssim)``."""
        self.frames.setdefault(sequence, []).append({method: values[method] for method in self.methods})

    def _summary(self, method, metric):
        """:func:`average_over_sequences` of one method's PSNR (``metric`` 0) or SSIM (1)."""
        return average_over_sequences({sequence: [row[method][metric] for row in rows]
                                       for sequence, rows in self.frames.items()})

    def sequence_means(self, sequence):
        """``{method: (mean psnr, mean ssim)}`` over the frames of ``sequence``."""
        return {method: tuple(self._summary(method, k)['sequences'][sequence] for k in (0, 1))
                for method in self.methods}

    def average(self):
        """``{method: (psnr, ssim)}``: the mean of the sequence means (the VSR papers' average)."""
        return {method: tuple(self._summary(method, k)['mean'] for k in (0, 1)) for method in self.methods}

    def per_frame(self, method, metric=0):
        """List of ``(sequence, frame number, value)`` for ``method``; ``metric`` 0 = PSNR, 1 = SSIM."""
        return [(sequence, index, row[method][metric]) for sequence, rows in self.frames.items()
                for index, row in enumerate(rows)]

    def markdown(self, crop_border=0):
        """The table as GitHub markdown: one row per sequence and the average, PSNR-Y/SSIM-Y per method."""
        header = '| Sequence | Frames | ' + ' | '.join(f'{method} PSNR-Y (dB) | {method} SSIM-Y'
                                                     for method in self.methods) + ' |'
        lines = [header, '|' + '---|' * (2 + 2 * len(self.methods))]

        def cells(means):
            return ' | '.join(f'{means[method][0]:.2f} | {means[method][1]:.4f}' for method in self.methods)

        for sequence, rows in self.frames.items():
            lines.append(f'| {sequence} | {len(rows)} | {cells(self.sequence_means(sequence))} |')
        total = sum(len(rows) for rows in self.frames.values())
        lines.append(f'| **Average** | {total} | {cells(self.average())} |')
        lines.append('')
        lines.append(f'Y channel (ITU-R BT.601) of 8-bit frames, crop border {crop_border} px; '
                     'the average is the mean of the sequence means.')
        return '\n'.join(lines) + '\n'

    def csv(self):
        """Per-frame values as CSV: ``sequence,frame,<method>_psnr_y,<method>_ssim_y,...``."""
        lines = ['sequence,frame,' + ','.join(f'{method}_psnr_y,{method}_ssim_y' for method in self.methods)]
        for sequence, rows in self.frames.items():
            for index, row in enumerate(rows):
                lines.append(f'{sequence},{index},' + ','.join(f'{row[m][0]:.4f},{row[m][1]:.6f}' for m in self.methods))
        return '\n'.join(lines) + '\n'
