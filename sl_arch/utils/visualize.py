"""Figures of a results folder: side-by-side crops, per-frame PSNR plot, coloured instance masks."""
import cv2
import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def busiest_crop(gt, size):
    """Top-left corner of the ``size`` x ``size`` window of ``gt`` with the most detail (gradient energy).

    Args:
        gt (ndarray): (h, w, 3) uint8 image.
        size (int): Window side, clipped to the image.

    Returns:
        tuple[int, int]: ``(top, left)``.
    """
    gray = cv2.cvtColor(gt, cv2.COLOR_BGR2GRAY).astype(np.float32)
    energy = np.abs(cv2.Sobel(gray, cv2.CV_32F, 1, 0)) + np.abs(cv2.Sobel(gray, cv2.CV_32F, 0, 1))
    height, width = gray.shape
    size_h, size_w = min(size, height), min(size, width)
    window = cv2.boxFilter(energy, -1, (size_w, size_h), normalize=False, anchor=(0, 0),
                           borderType=cv2.BORDER_CONSTANT)[:height - size_h + 1, :width - size_w + 1]
    top, left = np.unravel_index(int(np.argmax(window)), window.shape)
    return int(top), int(left)


def save_crop_comparison(rows, column_titles, path, crop_size=96, zoom=2):
    """Save a grid of crops: one row per example, one column per method, same window everywhere.

    Args:
        rows (list[tuple[str, list[ndarray]]]): ``(row title, images)``; the images are (h, w, 3)
            uint8 BGR of equal size; the crop window is chosen on the last one (the GT).
        column_titles (list[str]): One title per column.
        path (str): Output PNG.
        crop_size (int): Crop side in pixels of the images.
        zoom (int): Nearest-neighbour magnification of the crops in the figure.
    """
    figure, axes = plt.subplots(len(rows), len(column_titles), squeeze=False,
                                figsize=(2.2 * zoom * len(column_titles) * crop_size / 96,
                                         2.3 * zoom * len(rows) * crop_size / 96))
    for row_axes, (row_title, images) in zip(axes, rows):
        top, left = busiest_crop(images[-1], crop_size)
        for axis, title, image in zip(row_axes, column_titles, images):
            crop = image[top:top + crop_size, left:left + crop_size]
            axis.imshow(cv2.cvtColor(crop, cv2.COLOR_BGR2RGB), interpolation='nearest')
            axis.set_title(title, fontsize=9)
            axis.set_xticks([])
            axis.set_yticks([])
        row_axes[0].set_ylabel(row_title, fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def save_per_frame_plot(series, path, title='Per-frame PSNR-Y', ylabel='PSNR-Y (dB)'):
    """Save a line plot of per-frame values of several methods, sequences separated by vertical lines.

    Args:
        series (dict[str, list[tuple[str, int, float]]]): method -> ``(sequence, frame, value)`` rows
            (as :meth:`sl_arch.utils.metrics.MetricTable.per_frame` returns), same order for all.
        path (str): Output PNG.
        title (str): Plot title.
        ylabel (str): Y-axis label.
    """
    figure, axis = plt.subplots(figsize=(8, 3.6))
    for method, rows in series.items():
        axis.plot(range(len(rows)), [value for _, _, value in rows], marker='.', label=method)
    first_rows = next(iter(series.values()))
    boundaries = [index for index in range(1, len(first_rows)) if first_rows[index][0] != first_rows[index - 1][0]]
    for boundary in boundaries:
        axis.axvline(boundary - 0.5, color='gray', linestyle=':', linewidth=1)
    starts = [0] + boundaries
    for start in starts:
        axis.annotate(first_rows[start][0], (start, 0), xycoords=('data', 'axes fraction'), xytext=(2, 4),
                      textcoords='offset points', fontsize=7, color='gray')
    axis.set_xlabel('frame (held-out sequences, in order)')
    axis.set_ylabel(ylabel)
    axis.set_title(title)
    axis.grid(alpha=0.3)
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def instance_palette(num_instances):
    """``(num_instances, 3)`` uint8 RGB colours, well separated (tab20 colour map)."""
    colours = plt.get_cmap('tab20')(np.arange(num_instances) % 20)[:, :3]
    return (colours * 255).astype(np.uint8)


def save_instance_masks(frames, masks, path, frame_names):
    """Save LR frames (top row) over their instance maps (bottom row), one colour per instance id.

    Args:
        frames (list[ndarray]): (h, w, 3) uint8 BGR LR frames.
        masks (ndarray): (t, n, h, w) per-pixel distribution over n instances for those frames.
        path (str): Output PNG.
        frame_names (list[str]): Column titles.
    """
    ids = masks.argmax(axis=1)
    palette = instance_palette(masks.shape[1])
    figure, axes = plt.subplots(2, len(frames), squeeze=False, figsize=(2.6 * len(frames), 3.4))
    for column, (frame, frame_ids, name) in enumerate(zip(frames, ids, frame_names)):
        rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
        axes[0, column].imshow(rgb)
        axes[0, column].set_title(name, fontsize=8)
        overlay = (0.35 * rgb + 0.65 * palette[frame_ids]).astype(np.uint8)
        axes[1, column].imshow(overlay, interpolation='nearest')
        for axis in axes[:, column]:
            axis.set_xticks([])
            axis.set_yticks([])
    axes[0, 0].set_ylabel('LR frame', fontsize=8)
    axes[1, 0].set_ylabel('instance id', fontsize=8)
    used = sorted(set(np.unique(ids).tolist()))
    figure.suptitle(f'Learned video instance masks (argmax over {masks.shape[1]} slots; ids in use: {used})',
                    fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
