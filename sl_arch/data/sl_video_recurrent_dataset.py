import os
import random

import numpy as np
import torch
from basicsr.data.transforms import augment, paired_random_crop
from basicsr.utils import get_root_logger
from basicsr.utils.registry import DATASET_REGISTRY
from torch.utils import data as data

from sl_arch.data.clips import (build_clip_index, check_dataset_options, check_pair, dataset_option_keys,
                                raise_problems, read_clip_frames, read_clip_masks, read_window_flows)
from sl_arch.data.degradations import BORDER_MODES, degrade_window
from sl_arch.io.tensors import flows_to_tensor, frames_to_tensor
from sl_arch.utils.errors import SLError


def available_memory():
    """Bytes of memory available to this process now, or None where the system does not say (not Linux)."""
    try:
        with open('/proc/meminfo') as meminfo:
            for line in meminfo:
                if line.startswith('MemAvailable:'):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


@DATASET_REGISTRY.register()
class SLVideoRecurrentDataset(data.Dataset):
    """Training clips of any video: random windows of ``num_frame`` frames, randomly cropped.

    Clips may have any length and any frame names (sorted naturally, so ``im2`` comes before
    ``im10``); REDS (``<root>/000/00000000.png``), Vimeo-90K (``<root>/00001/0001/im1.png``) and the
    ``sl-prepare`` layout all work. A clip shorter than a window is skipped with a warning at
    start-up. Mismatched LR/GT clips, bad frames and clips smaller than the crop raise one
    :class:`~sl_arch.utils.errors.SLError` at start-up that lists them all.

    The dataset has one entry per frame of every usable clip (so longer clips are drawn more
    often); each entry draws a random window of its clip. ``dataset_enlarge_ratio`` is applied
    by BasicSR's sampler.

    Args:
        opt (dict): Config for the dataset. It contains:
            dataroot_gt (str): GT root: folder of clip folders, or an lmdb (``*.lmdb``).
            dataroot_lq (str): LR root, same layout as ``dataroot_gt``.
            meta_info_file (str, optional): BasicSR meta_info file (``<clip> <num_frames> (h,w,c)``
                per line) that lists the clips to use. Default: every clip found.
            io_backend (dict): ``{'type': 'disk'}`` or ``{'type': 'lmdb'}``. Default: disk.
            num_frame (int): Frames per window.
            gt_size (int): Size of the square GT crop; a multiple of ``scale``.
            scale (int): LR-to-GT scale. Default: 4.
            interval_list (list[int]): Temporal strides to draw from. Default: [1].
            random_reverse (bool): Reverse the window with probability 0.5. Default: False.
            use_hflip (bool): Random horizontal flip. Default: False.
            use_rot (bool): Random vertical flip and transpose. Default: False.
            semantics_root (str, optional): Folder of precomputed instance-id masks, one per LR
                frame: ``<semantics_root>/<clip>/<frame stem>.npy`` (h, w) or a single-channel
                PNG, at LR size.
            flow_root (str, optional): Folder of the exact flow of every LR frame to its neighbours
                (``sl-prepare --synthetic``'s ``flow_fwd/`` and ``flow_bwd/``, see
                :func:`~sl_arch.data.clips.read_window_flows`); the network is fed them instead of its
                own estimate (an oracle). Needs ``interval_list: [1]``.
            check_frames (bool): Check the header of every frame at start-up (present, not
                truncated, one size per clip, GT = scale x LR, at least the crop); false skips it
                for a huge set. Default: True.
            cache_frames (bool): Keep every decoded frame in memory, so that each PNG is decoded
                once instead of at every draw (decoding is most of the data loading), once per
                data-loader worker. With ``check_frames`` the decoded size is computed at start-up:
                a set above half the available memory is read from its files (with a warning).
                Default: False.
            dis_flows (bool): Estimate the flows between neighbouring LR frames with OpenCV's DIS
                (:class:`~sl_arch.archs.prealign_arch.SLDISFlow`, its defaults: what SemanticLens'
                ``flow_estimator: dis`` runs at test time) on the whole frames, once per frame pair (kept in
                memory with ``cache_frames``: 16 bytes per LR pixel), then crop and flip them with the
                frames; the network is fed them as it is ``flow_root``'s. Its training then sees the flow
                of whole frames, as at test time, instead of the flow of each crop, estimated once
                instead of at every draw (in ``sl-bench``'s 300-s trainings neither changed the result
                measurably: docs/benchmark-rounds.md, sixteenth round). Not with ``flow_root``. Default: False.
            camera_shake (int): Move every frame of a window by its own random whole number of GT pixels, up to
                this many in each direction, and make its LR frame again from the moved GT frame
                (:func:`~sl_arch.data.degradations.degrade_window`): the clip as a camera that shakes by up to
                ``camera_shake / scale`` LR pixels would film it, so that even still footage gives each frame
                neighbours with other sub-pixel samples. The LR frames must be the BI or BD degradation of their
                GT frames (checked at start-up on the first frame). Not with ``semantics_root``, ``flow_root`` or
                ``dis_flows``, whose maps would not follow the moves. At 2, the 300-s video row of ``sl-bench``
                trained with it lost 1.1 dB on real held-out footage and 3.8 dB on the validation shots
                (docs/benchmark-rounds.md, twenty-fourth round), where the single-frame network did not change: see it as a tool for
                experiments, not a default. Default: 0 (off).
            motion_crops (int): Draw this many random crops of the window and keep the one whose LR frames differ
                most from one frame to the next (mean absolute difference): patches where something textured moves,
                from which a video network learns to use its neighbours, instead of still or flat ones, which teach
                it nothing a single frame would not. 1 is BasicSR's one random crop, drawn as before. Default: 1.
        Any other key is an error (besides BasicSR's data-loader keys, see
        :data:`~sl_arch.data.clips.LOADER_KEYS`).

    Items:
        lq (Tensor): (t, 3, gt_size / scale, gt_size / scale) RGB in [0, 1].
        gt (Tensor): (t, 3, gt_size, gt_size) RGB in [0, 1].
        masks (Tensor): (t, gt_size / scale, gt_size / scale) int64 instance ids, only with
            ``semantics_root``.
        flows (Tensor): (2, t - 1, 2, gt_size / scale, gt_size / scale) float32 LR-pixel flows, only with
            ``flow_root`` or ``dis_flows``: ``flows[0]`` backward (``flows[0][i]`` aligns frame i + 1 to frame i),
            ``flows[1]`` forward (``flows[1][i]`` aligns frame i to frame i + 1), flipped and rotated with the frames.
        key (str): ``<clip>/<first frame name without extension>``.
    """

    #: sl-train's sampler may pass ``(index, draw)`` pairs (see :mod:`sl_arch.utils.resume`).
    takes_draw_numbers = True

    #: Kinds of this dataset's own option keys (see :data:`sl_arch.utils.options.KINDS`).
    OPTION_KINDS = {'num_frame': 'int>0', 'gt_size': 'int>0', 'interval_list': 'list[int>0]', 'random_reverse': 'bool',
                    'use_hflip': 'bool', 'use_rot': 'bool', 'cache_frames': 'bool', 'dis_flows': 'bool',
                    'camera_shake': 'int>=0', 'motion_crops': 'int>0'}
    REQUIRED_OPTIONS = ('dataroot_gt', 'dataroot_lq', 'num_frame', 'gt_size')
    OPTION_KEYS = dataset_option_keys(OPTION_KINDS)

    def __init__(self, opt):
        super().__init__()
        self.opt = opt
        self.check_options(opt, f'datasets.{opt.get("phase", "train")}')
        self.scale = opt.get('scale', 4)
        self.num_frame = opt['num_frame']
        self.gt_size = opt['gt_size']
        self.interval_list = sorted(opt.get('interval_list') or [1])
        self.random_reverse = opt.get('random_reverse', False)
        self.use_hflip = opt.get('use_hflip', False)
        self.use_rot = opt.get('use_rot', False)
        self.semantics_root = opt.get('semantics_root')
        self.flow_root = opt.get('flow_root')
        if self.flow_root and self.interval_list != [1]:
            raise SLError(f'datasets.{opt.get("phase", "train")}.flow_root holds flows between neighbouring frames only; '
                          f'set interval_list to [1] (it is {self.interval_list}).')
        self.flow_estimator = None  # SLDISFlow, with dis_flows
        if opt.get('dis_flows', False):
            if self.flow_root:
                raise SLError(f'datasets.{opt.get("phase", "train")}: flow_root and dis_flows both give the network '
                              'its flows; keep one.')
            from sl_arch.archs.prealign_arch import SLDISFlow
            self.flow_estimator = SLDISFlow()
        self._kept_flows = None  # (clip index, frame, neighbour) -> (h, w, 2) flow, with dis_flows and cache_frames
        # seed of the per-draw generators (see __getitem__): BasicSR's manual_seed (+ rank) in sl-train
        self.draw_seed = torch.initial_seed() % 2**32
        if self.gt_size % self.scale:
            raise SLError(f'gt_size {self.gt_size} is not a multiple of scale {self.scale}; change gt_size.')
        self.camera_shake = opt.get('camera_shake', 0)
        self.motion_crops = opt.get('motion_crops', 1)
        if self.camera_shake and self.motion_crops > 1:
            raise SLError(f'datasets.{opt.get("phase", "train")}: camera_shake crops each frame at its own place, so '
                          'motion_crops cannot pick among crops of the window; remove one of them.')
        maps = [key for key in ('semantics_root', 'flow_root', 'dis_flows') if opt.get(key)]
        if self.camera_shake and maps:
            raise SLError(f'datasets.{opt.get("phase", "train")}.camera_shake moves the frames, and the maps of '
                          f'{" and ".join(maps)} would not follow them; remove camera_shake or {" and ".join(maps)}.')

        backend = (opt.get('io_backend') or {}).get('type', 'disk')
        self.lq_source, self.gt_source, clips = build_clip_index(opt['dataroot_lq'], opt['dataroot_gt'], backend,
                                                                 opt.get('meta_info_file'), self.scale,
                                                                 opt.get('check_frames', True))
        self.clips = self._usable_clips(clips)
        self.keys = [(clip_idx, frame_idx) for clip_idx, clip in enumerate(self.clips)
                     for frame_idx in range(len(clip.lq_frames))]
        self._check_sizes()
        self.degradation = self._find_degradation() if self.camera_shake else None
        if opt.get('cache_frames', False) and self._cache_fits():
            for source in (self.lq_source, self.gt_source):
                source.keep_decoded()
            if self.flow_estimator is not None:
                self._kept_flows = {}

    @classmethod
    def check_options(cls, opt, section, check_paths=True):
        """Refuse unknown, missing or mistyped keys and missing roots (see :func:`check_dataset_options`)."""
        check_dataset_options(cls, opt, section, check_paths)

    def _span(self, interval):
        return (self.num_frame - 1) * interval + 1

    def _usable_clips(self, clips):
        logger = get_root_logger()
        min_span = self._span(self.interval_list[0])
        usable = []
        for clip in clips:
            if len(clip.lq_frames) < min_span:
                logger.warning(f'Skipping clip {clip.name!r} of {self.gt_source.location(clip.name, "")}: '
                               f'{len(clip.lq_frames)} frames, shorter than num_frame={self.num_frame} at '
                               f'interval {self.interval_list[0]} ({min_span} frames). Lower num_frame or '
                               'prepare longer clips to use it.')
            else:
                usable.append(clip)
        if not usable:
            raise SLError(f'no clip of {self.gt_source.root} has the {min_span} frames that num_frame='
                          f'{self.num_frame} needs; lower num_frame or prepare longer clips.')
        return usable

    def _check_sizes(self):
        """Fail at start-up, not at iteration 10,000: every clip must hold the LR crop ``gt_size / scale``.

        Uses the frame sizes measured by the start-up frame check; without it (``check_frames:
        false``), the meta_info shapes and the first frame pair.
        """
        lq_crop = self.gt_size // self.scale
        if all(clip.lq_size for clip in self.clips):
            raise_problems([f'clip {clip.name!r} LR frames are {clip.lq_size[0]}x{clip.lq_size[1]}, smaller than the '
                            f'LR crop {lq_crop} (gt_size {self.gt_size} / scale {self.scale}); lower gt_size or remove '
                            'the clip' for clip in self.clips if min(clip.lq_size) < lq_crop],
                           f'the clips of {self.gt_source.root} for gt_size {self.gt_size}')
            return
        for clip in self.clips:
            if clip.gt_shape and min(clip.gt_shape[:2]) < self.gt_size:
                raise SLError(f'clip {clip.name!r} GT is {clip.gt_shape[1]}x{clip.gt_shape[0]}, smaller than '
                              f'gt_size {self.gt_size}; lower gt_size or remove the clip from meta_info_file.')
        clip = self.clips[0]
        gt_img = self.gt_source.read(clip.name, clip.gt_frames[0])
        lq_img = self.lq_source.read(clip.name, clip.lq_frames[0])
        check_pair(self.gt_source, self.lq_source, clip.name, frames=(clip.gt_frames[0], clip.lq_frames[0]),
                   imgs=(gt_img, lq_img), scale=self.scale)

    def _find_degradation(self):
        """Which degradation (``'BI'`` or ``'BD'``) made the first clip's first LR frame from its GT frame, for
        ``camera_shake`` to make the moved frames' LR the same way; raises if neither did."""
        clip = self.clips[0]
        gt_img = self.gt_source.read(clip.name, clip.gt_frames[0])
        lq_img = self.lq_source.read(clip.name, clip.lq_frames[0])
        h, w = lq_img.shape[:2]
        for degradation in BORDER_MODES:
            # the whole frame as one window (frames are checked to be scale times their LR frames)
            _, made = degrade_window(gt_img, 0, 0, (h * self.scale, w * self.scale), self.scale, degradation)
            if np.abs(made.astype(np.int16) - lq_img).max() <= 1:  # 1: rounding
                return degradation
        raise SLError(f'datasets.{self.opt.get("phase", "train")}.camera_shake makes LR frames again from moved GT '
                      f'frames, but {self.lq_source.location(clip.name, clip.lq_frames[0])} is neither the BI nor the '
                      f'BD degradation (x{self.scale}) of its GT frame; remove camera_shake.')

    def _cache_fits(self):
        """Whether the decoded frames take at most half the available memory; if not, a warning says so.

        Needs the frame sizes of the start-up check (``check_frames``); without them the frames are kept.
        """
        if not all(clip.lq_size for clip in self.clips):
            return True
        lq_bytes = sum(len(clip.lq_frames) * clip.lq_size[0] * clip.lq_size[1] * 3 for clip in self.clips)
        needed = lq_bytes * (1 + self.scale ** 2)  # LR and GT frames
        if self.flow_estimator is not None:
            needed += lq_bytes // 3 * 16  # two float32 (x, y) flows per LR pixel
        available = available_memory()
        if available is None or needed <= available / 2:
            return True
        get_root_logger().warning(f'datasets.{self.opt.get("phase", "train")}.cache_frames: the decoded frames of '
                                  f'{self.gt_source.root} need {needed / 2**30:.1f} GiB, more than half of the '
                                  f'{available / 2**30:.1f} GiB of memory available; reading them from their files '
                                  'instead (set cache_frames to false to silence this).')
        return False

    def _window(self, clip):
        intervals = [interval for interval in self.interval_list if self._span(interval) <= len(clip.lq_frames)]
        interval = random.choice(intervals)
        start = random.randint(0, len(clip.lq_frames) - self._span(interval))
        indices = list(range(start, start + self._span(interval), interval))
        if self.random_reverse and random.random() < 0.5:
            indices.reverse()
        return indices

    def _shaken_crop(self, gt_imgs):
        """``camera_shake``'s crop: one random LR window position for the clip, each frame moved from it by its own
        random GT pixels (up to ``camera_shake`` each way) and its LR window made again: (GT windows, LR windows)."""
        lq_size, shake = self.gt_size // self.scale, self.camera_shake
        h, w = (side // self.scale for side in gt_imgs[0].shape[:2])
        top, left = random.randint(0, h - lq_size) * self.scale, random.randint(0, w - lq_size) * self.scale
        windows = [degrade_window(img, top + random.randint(-shake, shake), left + random.randint(-shake, shake),
                                  self.gt_size, self.scale, self.degradation) for img in gt_imgs]
        return [gt for gt, _ in windows], [lq for _, lq in windows]

    def _random_crop(self, clip, gt_imgs, lq_imgs, masks, flows=None):
        lq_h, lq_w = lq_imgs[0].shape[:2]
        lq_size = self.gt_size // self.scale
        if lq_h < lq_size or lq_w < lq_size:
            raise SLError(f'clip {clip.name!r} LR frames are {lq_w}x{lq_h}, smaller than the LR crop {lq_size} '
                          f'(gt_size {self.gt_size} / scale {self.scale}); lower gt_size.')
        num, num_masks = len(lq_imgs), len(masks or [])
        lq_maps = lq_imgs + (masks or []) + (flows or [])
        if self.motion_crops > 1:
            top, left = self._moving_crop(lq_imgs, lq_size)
            gt_top, gt_left = top * self.scale, left * self.scale
            gt_imgs = [img[gt_top:gt_top + self.gt_size, gt_left:gt_left + self.gt_size] for img in gt_imgs]
            lq_maps = [img[top:top + lq_size, left:left + lq_size] for img in lq_maps]
        else:
            # BasicSR's crop, the masks and flows cropped as LR maps with the frames; its lists of one come back bare
            gt_imgs, lq_maps = (maps if isinstance(maps, list) else [maps] for maps in paired_random_crop(
                gt_imgs, lq_maps, self.gt_size, self.scale))
        # copies: augment flips in place, and kept frames (cache_frames) are read-only
        gt_imgs, lq_imgs = [img.copy() for img in gt_imgs], [img.copy() for img in lq_maps[:num]]
        if masks is not None:
            masks = [mask[..., None] for mask in lq_maps[num:num + num_masks]]
        if flows is not None:
            flows = [flow.copy() for flow in lq_maps[num + num_masks:]]
        return gt_imgs, lq_imgs, masks, flows

    def _moving_crop(self, lq_imgs, lq_size):
        """``motion_crops``' choice: the LR (top, left) of ``lq_size`` among that many random ones where the frames
        ``lq_imgs`` differ most from one to the next."""
        lq_h, lq_w = lq_imgs[0].shape[:2]
        best = None
        for _ in range(self.motion_crops):
            top, left = random.randint(0, lq_h - lq_size), random.randint(0, lq_w - lq_size)
            window = np.stack([img[top:top + lq_size, left:left + lq_size] for img in lq_imgs])
            change = float(np.abs(np.diff(window, axis=0)).mean()) if len(lq_imgs) > 1 else 0.
            if best is None or change > best[0]:
                best = (change, top, left)
        return best[1], best[2]

    def __getitem__(self, index):
        """One training item; ``index`` is an int, or an ``(index, draw)`` pair from sl-train's sampler.

        With a draw number the random window, crop and flips are drawn from Python's generator
        seeded by the draw (its state is put back afterwards), so an item is the same whichever
        process loads it and whatever was drawn before: what makes ``--auto_resume`` exact.
        """
        if isinstance(index, (tuple, list)):
            index, draw = index
            saved = random.getstate()
            random.seed(self.draw_seed * 2**32 + draw)
            try:
                return self._item(index)
            finally:
                random.setstate(saved)
        return self._item(index)

    def _item(self, index):
        clip = self.clips[self.keys[index][0]]
        indices = self._window(clip)
        lq_frames = [clip.lq_frames[i] for i in indices]
        gt_frames = [clip.gt_frames[i] for i in indices]
        if self.camera_shake:
            # the LR frames are made again from the moved GT frames: no masks or flows (refused at start-up)
            gt_imgs, lq_imgs = self._shaken_crop(read_clip_frames(self.gt_source, clip.name, gt_frames))
            return self._augmented_item(clip, lq_frames, gt_imgs, lq_imgs, None, None)
        lq_imgs = read_clip_frames(self.lq_source, clip.name, lq_frames)
        gt_imgs = read_clip_frames(self.gt_source, clip.name, gt_frames)
        check_pair(self.gt_source, self.lq_source, clip.name, frames=(gt_frames[0], lq_frames[0]),
                   imgs=(gt_imgs[0], lq_imgs[0]), scale=self.scale)
        masks = None
        if self.semantics_root:
            masks = list(read_clip_masks(self.semantics_root, clip.name, lq_frames, lq_imgs[0].shape[:2]))

        flows = None
        if self.flow_root:
            backward, forward = read_window_flows(self.flow_root, clip.name, lq_frames, indices)
            flows = backward + forward
        elif self.flow_estimator is not None:
            flows = self._window_dis_flows(self.keys[index][0], indices, lq_imgs)

        gt_imgs, lq_imgs, masks, flows = self._random_crop(clip, gt_imgs, lq_imgs, masks, flows)
        return self._augmented_item(clip, lq_frames, gt_imgs, lq_imgs, masks, flows)

    def _augmented_item(self, clip, lq_frames, gt_imgs, lq_imgs, masks, flows):
        """The item of a window's crops, randomly flipped and rotated."""
        num = len(lq_frames)
        # one call so that LR, GT, masks and flows get the same flips (the flows' vectors turned with them)
        imgs = augment(lq_imgs + gt_imgs + (masks or []), self.use_hflip, self.use_rot, flows=flows)
        if flows is not None:
            imgs, flows = imgs
        item = {
            'lq': frames_to_tensor(imgs[:num]),
            'gt': frames_to_tensor(imgs[num:2 * num]),
            'key': f'{clip.name}/{os.path.splitext(lq_frames[0])[0]}',
        }
        if masks is not None:
            item['masks'] = torch.from_numpy(np.stack([mask[..., 0] for mask in imgs[2 * num:]])).long()
        if flows is not None:
            item['flows'] = flows_to_tensor(flows[:num - 1], flows[num - 1:])
        return item

    def _window_dis_flows(self, clip_index, indices, lq_imgs):
        """DIS flows of a window's whole LR frames (``dis_flows``), in :func:`read_window_flows`' order: t - 1
        backward flows (frame i's flow to frame i + 1), then t - 1 forward ones (frame i + 1's to frame i), each
        (h, w, 2) float32. The pairs not kept yet (all, without ``cache_frames``) are estimated in one call."""
        steps = range(len(indices) - 1)
        pairs = [(i, i + 1) for i in steps] + [(i + 1, i) for i in steps]
        keys = [(clip_index, indices[ref], indices[supp]) for ref, supp in pairs]
        kept = self._kept_flows if self._kept_flows is not None else {}
        missing = [index for index, key in enumerate(keys) if key not in kept]
        if missing:
            frames = frames_to_tensor(lq_imgs)
            refs, supps = (torch.tensor([pairs[index][side] for index in missing]) for side in (0, 1))
            with torch.no_grad():
                estimated = self.flow_estimator(frames[refs], frames[supps]).permute(0, 2, 3, 1).numpy()
            estimated.setflags(write=False)  # kept flows are shared by every draw: crops are copies
            kept.update((keys[index], flow) for index, flow in zip(missing, estimated))
        return [kept[key] for key in keys]

    def __len__(self):
        return len(self.keys)
