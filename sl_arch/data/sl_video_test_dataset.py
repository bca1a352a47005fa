import torch
from basicsr.utils.registry import DATASET_REGISTRY
from torch.utils import data as data

from sl_arch.data.clips import (build_clip_index, check_dataset_options, check_pair, dataset_option_keys,
                                read_clip_frames, read_clip_masks, read_window_flows)
from sl_arch.io.tensors import flows_to_tensor, frames_to_tensor


@DATASET_REGISTRY.register()
class SLVideoTestDataset(data.Dataset):
    """Whole test sequences (or bounded temporal chunks of them), with or without GT.

    One item per sequence, or, with ``chunk_size`` > 0, one item per run of ``chunk_size``
    consecutive frames (the last one may be shorter), so that memory stays bounded on long videos.
    Frames are read when an item is requested; nothing is cached. Any clip names and frame names
    work; there is no branching on data-set names.

    ``data_info['folder']`` has one entry per frame (BasicSR's ``VideoRecurrentModel`` counts
    frames per sequence from it), ``data_info['lq_path']`` the matching LR frame locations.

    Args:
        opt (dict): Config for the dataset. It contains:
            dataroot_lq (str): LR root: folder of clip folders, or an lmdb (``*.lmdb``).
            dataroot_gt (str, optional): GT root, same layout; absent for LR-only inference.
            meta_info_file (str, optional): BasicSR meta_info file listing the sequences.
                Default: every clip found.
            io_backend (dict): ``{'type': 'disk'}`` or ``{'type': 'lmdb'}``. Default: disk.
            scale (int): LR-to-GT scale. Default: 4.
            chunk_size (int): Frames per item; 0 means whole sequences. Default: 0.
            semantics_root (str, optional): Folder of precomputed instance-id masks per LR frame
                (see :class:`SLVideoRecurrentDataset`).
            flow_root (str, optional): Folder of the exact flows between neighbouring LR frames
                (see :class:`SLVideoRecurrentDataset`), fed to the network instead of its own estimate.
            check_frames (bool): Check the header of every frame at start-up (present, not
                truncated, one size per clip, GT = scale x LR); false skips it for a huge set.
                Default: True.
        Any other key is an error (besides BasicSR's data-loader keys, see
        :data:`~sl_arch.data.clips.LOADER_KEYS`).

    Items:
        lq (Tensor): (t, 3, h, w) RGB in [0, 1].
        gt (Tensor): (t, 3, scale * h, scale * w), only with ``dataroot_gt``.
        masks (Tensor): (t, h, w) int64 instance ids, only with ``semantics_root``.
        flows (Tensor): (2, t - 1, 2, h, w) float32 backward and forward flows, only with ``flow_root``
            (see :class:`SLVideoRecurrentDataset`).
        folder (str): Sequence name.
        lq_path (list[str]): Location of every LR frame of the item.
        frame_offset (int): Index of the item's first frame in its sequence (chunked only).
        num_frames_total (int): Length of the whole sequence (chunked only).
    """

    #: Kinds of this dataset's own option keys (see :data:`sl_arch.utils.options.KINDS`).
    OPTION_KINDS = {'chunk_size': 'int>=0'}
    REQUIRED_OPTIONS = ('dataroot_lq',)
    OPTION_KEYS = dataset_option_keys(OPTION_KINDS)

    def __init__(self, opt):
        super().__init__()
        self.opt = opt
        self.check_options(opt, f'datasets.{opt.get("phase", "test")}')
        self.scale = opt.get('scale', 4)
        self.chunk_size = opt.get('chunk_size', 0) or 0
        self.semantics_root = opt.get('semantics_root')
        self.flow_root = opt.get('flow_root')
        backend = (opt.get('io_backend') or {}).get('type', 'disk')
        self.lq_source, self.gt_source, self.clips = build_clip_index(
            opt['dataroot_lq'], opt.get('dataroot_gt'), backend, opt.get('meta_info_file'), self.scale,
            opt.get('check_frames', True))
        self.items = []
        self.data_info = {'folder': [], 'lq_path': []}
        for clip in self.clips:
            num = len(clip.lq_frames)
            step = self.chunk_size or num
            self.items.extend((clip, start, min(start + step, num)) for start in range(0, num, step))
            self.data_info['folder'].extend([clip.name] * num)
            self.data_info['lq_path'].extend(self.lq_source.location(clip.name, frame) for frame in clip.lq_frames)

    @classmethod
    def check_options(cls, opt, section, check_paths=True):
        """Refuse unknown, missing or mistyped keys and missing roots (see :func:`check_dataset_options`)."""
        check_dataset_options(cls, opt, section, check_paths)

    def __getitem__(self, index):
        clip, start, stop = self.items[index]
        lq_frames = clip.lq_frames[start:stop]
        lq_imgs = read_clip_frames(self.lq_source, clip.name, lq_frames)
        item = {
            'lq': frames_to_tensor(lq_imgs),
            'folder': clip.name,
            'lq_path': [self.lq_source.location(clip.name, frame) for frame in lq_frames],
        }
        if self.gt_source is not None:
            gt_frames = clip.gt_frames[start:stop]
            gt_imgs = read_clip_frames(self.gt_source, clip.name, gt_frames)
            check_pair(self.gt_source, self.lq_source, clip.name, frames=(gt_frames[0], lq_frames[0]),
                       imgs=(gt_imgs[0], lq_imgs[0]), scale=self.scale)
            item['gt'] = frames_to_tensor(gt_imgs)
        if self.semantics_root:
            masks = read_clip_masks(self.semantics_root, clip.name, lq_frames, lq_imgs[0].shape[:2])
            item['masks'] = torch.from_numpy(masks).long()
        if self.flow_root and stop - start > 1:
            item['flows'] = flows_to_tensor(*read_window_flows(self.flow_root, clip.name, lq_frames,
                                                               list(range(start, stop))))
        if self.chunk_size:
            item['frame_offset'] = start
            item['num_frames_total'] = len(clip.lq_frames)
        return item

    def __len__(self):
        return len(self.items)
