"""Specifications of sl_arch.utils.tiling: temporal windows and spatial tiles, blended once."""
import sl_arch  # noqa: F401  (must precede basicsr)

import pytest
import torch
import torch.nn.functional as F

from sl_arch.utils.tiling import (TemporalBlender, first_window_for, forward_tiled, forward_video, plan_windows,
                                  sliding_frame_indices, tile_starts)


def pointwise_sr(lqs):
    """A per-pixel x2 'network': any tiling of it must give exactly the untiled result."""
    return F.interpolate((lqs * 0.5 + 0.25).flatten(0, -4), scale_factor=2, mode='nearest').reshape(
        *lqs.shape[:-2], lqs.shape[-2] * 2, lqs.shape[-1] * 2)


def recurrent_sr(lqs):
    """A recurrent x2 'network' (b, t, c, h, w): each frame mixes in a running state of earlier frames."""
    state, outputs = torch.zeros_like(lqs[:, 0]), []
    for index in range(lqs.shape[1]):
        state = 0.5 * state + 0.5 * F.avg_pool2d(lqs[:, index], 3, 1, 1)
        outputs.append(pointwise_sr(state.unsqueeze(1))[:, 0])
    return torch.stack(outputs, dim=1)


def test_tiles_cover_the_axis_with_full_size_tiles_and_last_tile_at_the_end():
    starts = tile_starts(37, 10, 3)
    assert starts[0] == 0 and starts[-1] == 27
    covered = set()
    for start in starts:
        covered.update(range(start, start + 10))
    assert covered == set(range(37))
    assert all(later - earlier <= 7 for earlier, later in zip(starts, starts[1:]))


def test_tile_larger_than_axis_or_zero_means_one_tile():
    assert tile_starts(20, 0, 4) == [0]
    assert tile_starts(20, 32, 4) == [0]


def test_overlap_not_smaller_than_tile_is_rejected():
    with pytest.raises(ValueError, match='overlap'):
        tile_starts(20, 8, 8)


def test_untiled_forward_is_exactly_one_network_call():
    lqs = torch.rand(1, 3, 3, 12, 14)
    assert torch.equal(forward_tiled(recurrent_sr, lqs, tile=0), recurrent_sr(lqs))


def test_tiling_a_pointwise_network_reproduces_the_untiled_output():
    lqs = torch.rand(1, 2, 3, 23, 31)
    tiled = forward_tiled(pointwise_sr, lqs, tile=8, tile_overlap=3)
    assert tiled.shape == (1, 2, 3, 46, 62)
    torch.testing.assert_close(tiled, pointwise_sr(lqs), rtol=0, atol=1e-6)


def test_tiling_blends_tuple_outputs_of_different_scales():
    lqs = torch.rand(1, 2, 3, 20, 20)

    def with_masks(clip):
        return pointwise_sr(clip), clip[:, :, :2] * 2

    output, masks = forward_tiled(with_masks, lqs, tile=8, tile_overlap=2)
    assert output.shape == (1, 2, 3, 40, 40) and masks.shape == (1, 2, 2, 20, 20)
    torch.testing.assert_close(masks, lqs[:, :, :2] * 2, rtol=0, atol=1e-6)


def test_tiles_are_padded_to_the_required_multiple_and_cropped_back():
    seen = []

    def needs_multiple_of_4(clip):
        seen.append(tuple(clip.shape[-2:]))
        return pointwise_sr(clip)

    lqs = torch.rand(1, 1, 3, 10, 13)
    output = forward_tiled(needs_multiple_of_4, lqs, tile=0, multiple=4)
    assert seen == [(12, 16)] and output.shape == (1, 1, 3, 20, 26)
    torch.testing.assert_close(output, pointwise_sr(lqs), rtol=0, atol=1e-6)


def test_windows_cover_every_frame_and_neighbours_share_at_least_the_overlap():
    windows = plan_windows(23, chunk=8, overlap=3)
    assert all(later.start > earlier.start and earlier.stop - later.start >= 3
               for earlier, later in zip(windows, windows[1:]))
    assert windows[0].start == 0 and windows[-1].stop == 23
    assert all(window.stop - window.start == 8 for window in windows)
    assert set().union(*(range(w.start, w.stop) for w in windows)) == set(range(23))
    assert plan_windows(5, chunk=8, overlap=3) == plan_windows(5, chunk=0)


def test_resume_restarts_at_the_first_window_touching_the_missing_frame():
    windows = plan_windows(30, chunk=10, overlap=4)
    for frame in range(30):
        index = first_window_for(windows, frame)
        assert windows[index].stop > frame
        assert all(w.stop <= frame for w in windows[:index])


def test_blender_emits_each_frame_once_in_order_as_soon_as_it_is_final():
    windows = plan_windows(12, chunk=5, overlap=2)
    blender = TemporalBlender(windows, 2, 12)
    emitted = []
    for index, window in enumerate(windows):
        frames = torch.arange(window.start, window.stop, dtype=torch.float32).view(1, -1, 1)
        finished = blender.add(index, frames)
        emitted += [frame for frame, _ in finished]
        assert all(frame < (windows[index + 1].start if index + 1 < len(windows) else 12) for frame, _ in finished)
        for frame, value in finished:
            assert value.item() == pytest.approx(frame)
    assert emitted == list(range(12))


def test_whole_clip_window_without_tiles_equals_a_single_forward_pass():
    lqs = torch.rand(1, 7, 3, 9, 11)
    assert torch.equal(forward_video(recurrent_sr, lqs, chunk=7, overlap=2), recurrent_sr(lqs))
    assert torch.equal(forward_video(recurrent_sr, lqs, chunk=0), recurrent_sr(lqs))


def test_chunked_recurrent_inference_stays_close_and_differs_only_by_lost_context():
    lqs = torch.rand(1, 16, 3, 9, 11)
    whole = recurrent_sr(lqs)
    chunked = forward_video(recurrent_sr, lqs, chunk=6, overlap=2)
    assert chunked.shape == whole.shape
    assert not torch.equal(chunked, whole)
    assert (chunked - whole).abs().max() < 0.25


def test_sliding_window_inference_equals_the_whole_clip_result_for_any_chunking():
    kernel = torch.tensor([0.1, 0.2, 0.4, 0.2, 0.1]).view(1, 5, 1, 1, 1)

    def centre_frame_sr(neighbours):  # (B, 5, c, h, w) -> (B, c, 2h, 2w)
        return pointwise_sr((neighbours * kernel).sum(1, keepdim=True))[:, 0]

    lqs = torch.rand(1, 11, 3, 8, 10)
    indices = sliding_frame_indices(11, 5, 'reflection_circle')
    expected = torch.stack([centre_frame_sr(lqs[:, indices(frame)]) for frame in range(11)], dim=1)
    for chunk in (0, 1, 4, 7):
        output = forward_video(centre_frame_sr, lqs, chunk=chunk, num_neighbours=5, padding='reflection_circle')
        torch.testing.assert_close(output, expected, rtol=0, atol=0)
    windows = plan_windows(11, 4, 0, indices)
    assert windows[1] == (4, 8, 2, 10)  # interior window: r = 2 frames of context on each side
    assert windows[-1] == (7, 11, 5, 11)  # reflection_circle at the clip end reads back inside the clip
