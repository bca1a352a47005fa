"""Write a readable results folder for a tested model: metrics table, crops, per-frame plot, masks.

Run after ``sl-test -opt FILE.yml`` (with ``val.save_img: true``) on the same option file::

    python -m sl_arch.demo -opt options/test/SemanticLens/test_SemanticLens_demo_cpu.yml

It reads the SR frames ``sl-test`` saved, the LR and GT frames of the first test dataset and the
tested checkpoint, and writes into ``results/<name>/``:

* ``metrics.md`` — PSNR-Y / SSIM-Y per sequence and on average, for bicubic upsampling and the model;
* ``per_frame_metrics.csv`` — the same per frame;
* ``crops.png`` — side-by-side crops (LR bicubic / model / GT) of a few frames;
* ``psnr_per_frame.png`` — per-frame PSNR-Y of both;
* ``instance_masks.png`` — the learned video instance masks on a few LR frames (networks that
  return them, i.e. SemanticLens).
"""
import argparse
import os
import os.path as osp

import cv2
import numpy as np
import torch
import yaml

from basicsr.data import build_dataset
from basicsr.utils import tensor2img
from basicsr.utils.matlab_functions import imresize
from basicsr.utils.options import ordered_yaml
from sl_arch.utils.checkpoint import load_network
from sl_arch.utils.errors import SLError, cli_entry
from sl_arch.utils.files import atomic_write, write_text
from sl_arch.utils.metrics import MetricTable, psnr_ssim_y
from sl_arch.utils.visualize import save_crop_comparison, save_instance_masks, save_per_frame_plot

BICUBIC = 'Bicubic'
#: Frames of the first sequence run through the network for the instance-mask figure.
MASK_CLIP_FRAMES = 16


def load_test_options(path):
    """Read a BasicSR test option file and check what the demo needs.

    Raises:
        SLError: the file is missing, is not YAML, or lacks a test dataset with GT or a checkpoint.
    """
    if not osp.isfile(path):
        raise SLError(f'option file {path} does not exist; pass -opt with the file given to sl-test.')
    try:
        with open(path, encoding='utf-8') as handle:
            opt = yaml.load(handle, Loader=ordered_yaml()[0])
    except yaml.YAMLError as error:
        raise SLError(f'option file {path} is not valid YAML ({error}); fix it.') from None
    datasets = [dataset for _, dataset in sorted((opt.get('datasets') or {}).items())]
    if not datasets or not datasets[0].get('dataroot_gt'):
        raise SLError(f'{path} has no test dataset with dataroot_gt; the demo compares against GT.')
    if not (opt.get('path') or {}).get('pretrain_network_g'):
        raise SLError(f'{path} has no path.pretrain_network_g; give the checkpoint that sl-test used.')
    return opt


def write_atomic(path, writer):
    """Call ``writer(tmp_path)`` and rename the result to ``path``; nothing half-written stays behind.
    The temporary name keeps ``path``'s extension (matplotlib picks the format by it)."""
    atomic_write(path, writer, suffix='.tmp' + osp.splitext(path)[1], mode=0o644)  # results are meant to be shared


def load_tested_network(opt, option_file):
    """Build the network sl-test tested: ``option_file``'s ``network_g`` (the options sl-test built it
    from; they win over the checkpoint's metadata, :func:`sl_arch.utils.checkpoint.load_network`), the
    weights of ``path.pretrain_network_g`` under ``path.param_key_g`` (default ``params``, as sl-test).

    Returns:
        LoadedNetwork: ``(net, net_opt, spec, source, param_key)``, the network in eval mode on the CPU.
    """
    return load_network(opt['path']['pretrain_network_g'], opt_path=option_file,
                        param_key=opt['path'].get('param_key_g', 'params'),
                        names={'weights': 'path.pretrain_network_g', 'opt': '-opt', 'param_key': 'path.param_key_g'})


def sr_frame_path(opt, dataset_name, folder, index):
    """Where ``SLVideoRecurrentModel`` (sl-test with ``val.save_img``) saved SR frame ``index``."""
    tag = (opt.get('val') or {}).get('suffix') or opt['name']
    return osp.join('results', opt['name'], 'visualization', dataset_name, folder, f'{index:08d}_{tag}.png')


def read_sr_frame(path, option_file):
    image = cv2.imread(path, cv2.IMREAD_COLOR)
    if image is None:
        raise SLError(f'SR frame {path} is missing; run sl-test -opt {option_file} (with val.save_img: true) first.')
    return image


def bicubic_upsample(lq_img, scale):
    """MATLAB-style bicubic upsampling of an 8-bit BGR frame (the 'Bicubic' row of VSR papers)."""
    upsampled = imresize(lq_img.astype(np.float32) / 255.0, scale)
    return (np.clip(upsampled, 0, 1) * 255.0).round().astype(np.uint8)


def crop_border_of(opt):
    metrics = (opt.get('val') or {}).get('metrics') or {}
    return int(next(iter(metrics.values()), {}).get('crop_border', 0))


def write_results(option_file, num_crop_rows=3, num_mask_frames=4, crop_size=96):
    """Compute the tables and figures for the test run of ``option_file`` (see the module docstring).

    """
    opt = load_test_options(option_file)
    scale = int(opt.get('scale', 4))
    crop_border = crop_border_of(opt)
    dataset_opt = dict(sorted(opt['datasets'].items())[0][1], phase='test', scale=scale)
    dataset_opt.pop('chunk_size', None)
    dataset = build_dataset(dataset_opt)
    loaded = load_tested_network(opt, option_file)
    net, method = loaded.net, loaded.net_opt['type']
    results_folder = osp.join('results', opt['name'])
    os.makedirs(results_folder, exist_ok=True)

    table = MetricTable([BICUBIC, method])
    crop_rows, mask_figure = [], None
    for sequence_index in range(len(dataset)):
        item = dataset[sequence_index]
        folder = item['folder']
        print(f'[demo] measuring {folder} ({item["lq"].size(0)} frames)', flush=True)
        lq_imgs = [tensor2img([frame]) for frame in item['lq']]
        gt_imgs = [tensor2img([frame]) for frame in item['gt']]
        for index, (lq_img, gt_img) in enumerate(zip(lq_imgs, gt_imgs)):
            sr_img = read_sr_frame(sr_frame_path(opt, dataset_opt['name'], folder, index), option_file)
            if sr_img.shape != gt_img.shape:
                raise SLError(f'SR frame {sr_frame_path(opt, dataset_opt["name"], folder, index)} is '
                              f'{sr_img.shape[1]}x{sr_img.shape[0]} but GT is {gt_img.shape[1]}x{gt_img.shape[0]}; '
                              f'rerun sl-test -opt {option_file}.')
            bicubic_img = bicubic_upsample(lq_img, scale)
            table.add(folder, {BICUBIC: psnr_ssim_y(bicubic_img, gt_img, crop_border),
                               method: psnr_ssim_y(sr_img, gt_img, crop_border)})
            if len(crop_rows) < num_crop_rows and index == len(lq_imgs) // 2:
                crop_rows.append((f'{folder} #{index}', [bicubic_img, sr_img, gt_img]))
        if mask_figure is None and loaded.spec.makes_masks:
            print(f'[demo] computing instance masks of {folder}', flush=True)
            clip = item['lq'][:MASK_CLIP_FRAMES]  # bounded memory on long sequences
            with torch.no_grad():
                _, masks = net(clip.unsqueeze(0), return_masks=True)
            if masks is not None:
                picks = np.linspace(0, clip.size(0) - 1, num_mask_frames).round().astype(int)
                mask_figure = ([lq_imgs[i] for i in picks], masks[0, picks].numpy(), [f'{folder} #{i}' for i in picks])

    average = table.average()
    margin = average[method][0] - average[BICUBIC][0]
    summary = (f'# {opt["name"]}: {method} vs bicubic upsampling\n\n'
               f'Held-out sequences of `{dataset_opt["dataroot_gt"]}` (x{scale}). '
               f'{method} - bicubic: **{margin:+.2f} dB PSNR-Y**, '
               f'{average[method][1] - average[BICUBIC][1]:+.4f} SSIM-Y.\n\n')
    write_text(osp.join(results_folder, 'metrics.md'), summary + table.markdown(crop_border), mode=0o644)
    write_text(osp.join(results_folder, 'per_frame_metrics.csv'), table.csv(), mode=0o644)
    write_atomic(osp.join(results_folder, 'crops.png'),
                 lambda tmp: save_crop_comparison(crop_rows, [f'LR bicubic x{scale}', method, 'GT'], tmp, crop_size))
    write_atomic(osp.join(results_folder, 'psnr_per_frame.png'),
                 lambda tmp: save_per_frame_plot({name: table.per_frame(name) for name in (BICUBIC, method)}, tmp))
    if mask_figure is not None:
        frames, masks, names = mask_figure
        write_atomic(osp.join(results_folder, 'instance_masks.png'),
                     lambda tmp: save_instance_masks(frames, masks, tmp, names))
    print(summary + table.markdown(crop_border), flush=True)
    print(f'[demo] wrote {results_folder}/: metrics.md per_frame_metrics.csv crops.png psnr_per_frame.png'
          + (' instance_masks.png' if mask_figure is not None else ''), flush=True)


@cli_entry
def main(argv=None):
    """``python -m sl_arch.demo -opt FILE.yml``: write the results folder of a finished sl-test run."""
    parser = argparse.ArgumentParser(description='Write metrics table, crops, per-frame PSNR plot and instance '
                                     'masks into results/<name>/ for a model tested with sl-test.')
    parser.add_argument('-opt', required=True, help='the test option file given to sl-test')
    parser.add_argument('--crop-size', type=int, default=96, help='side of the compared crops in GT pixels')
    args = parser.parse_args(argv)
    torch.set_grad_enabled(False)
    write_results(args.opt, crop_size=args.crop_size)


if __name__ == '__main__':
    main()
