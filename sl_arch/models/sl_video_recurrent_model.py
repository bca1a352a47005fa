"""Training and testing wrapper for recurrent video SR networks, SemanticLens first.

``SLVideoRecurrentModel`` keeps BasicSR's ``VideoRecurrentModel`` (losses, EMA, schedulers,
``train_pipeline``/``test_pipeline``) and changes only where BasicSR falls short:

* validation and test run on the CPU as well as on CUDA (no ``cuda`` metric buffers), in one or
  many processes, on whole clips or on chunks of a clip (``frame_offset``);
* the EMA network is used for validation when there is one;
* test-time temporal windows and spatial tiles (``val.tile``) bound the memory of long or large clips;
* ``train.fix_flow`` freezes the pre-alignment (flow) parameters for the first iterations, decided
  from the current iteration so that a resumed run freezes exactly what it should;
* precomputed instance masks from the dataset (``masks``) reach the network's forward;
* checkpoints are written atomically, carry the ``network_g`` options, and load strictly with an
  error that names the mismatched keys; DistributedDataParallel also runs on the CPU (gloo).
"""
import os.path as osp
from collections import OrderedDict

import torch
from torch import distributed as dist
from torch.nn.parallel import DataParallel, DistributedDataParallel
from tqdm import tqdm

from basicsr.losses import build_loss
from basicsr.metrics import calculate_metric
from basicsr.models.video_recurrent_model import VideoRecurrentModel
from basicsr.utils import get_root_logger, imwrite, tensor2img
from basicsr.utils.dist_util import get_dist_info, master_only
from basicsr.utils.registry import MODEL_REGISTRY
from sl_arch.utils.checkpoint import (NETWORK_OPT_KEY, atomic_torch_save, load_state_strict, network_state_dict,
                                      read_checkpoint, strip_module_prefix)
from sl_arch.utils.errors import SLError
from sl_arch.utils.resume import restore_rng_state, rng_state
from sl_arch.utils.tiling import forward_video

#: Parameter-name fragments of pre-alignment modules: SemanticLens' ``flow_warper``, the SPyNet of
#: BasicSR's BasicVSR/IconVSR/BasicVSR++, and IconVSR's EDVR feature extractor.
FLOW_MODULE_KEYS = ('flow_warper', 'spynet', 'edvr')


def is_flow_parameter(name):
    """Whether parameter ``name`` belongs to a pre-alignment (flow) module."""
    return any(key in name for key in FLOW_MODULE_KEYS)


def plain_options(value):
    """Option dicts (OrderedDict from BasicSR's YAML loader) as plain dicts, for portable checkpoints."""
    if isinstance(value, dict):
        return {key: plain_options(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain_options(item) for item in value]
    return value


@MODEL_REGISTRY.register()
class SLVideoRecurrentModel(VideoRecurrentModel):
    """Recurrent video SR model for SemanticLens and BasicSR's recurrent networks.

    Option keys beyond BasicSR's ``VideoRecurrentModel``:

    * ``train.fix_flow`` (int): parameters whose names contain one of :data:`FLOW_MODULE_KEYS`
      are frozen for iterations ``1 .. fix_flow - 1``.
    * ``train.flow_lr_mul`` (float): learning-rate multiplier of those parameters.
    * ``val.tile`` (dict, optional): keyword arguments of :func:`sl_arch.utils.tiling.forward_video`
      (``chunk``/``overlap`` frames, ``tile``/``tile_overlap`` pixels, ``num_neighbours`` for a
      centre-frame network such as EDVR).
    * ``find_unused_parameters`` (bool): for DDP; defaults to True when ``fix_flow`` is set.

    Args:
        opt (dict): BasicSR option dict.
    """

    def __init__(self, opt):
        self.flow_frozen = None
        super().__init__(opt)

    # ------------------------------------------------------------------ device and checkpoints
    def model_to_device(self, net):
        """Move ``net`` to the device; wrap it in DDP (CPU or CUDA) or DataParallel as the options ask.

        Args:
            net (nn.Module): The network.

        Returns:
            nn.Module: The network, wrapped where distributed.
        """
        net = net.to(self.device)
        if self.opt['dist']:
            train_opt = self.opt.get('train') or {}
            find_unused = self.opt.get('find_unused_parameters', bool(train_opt.get('fix_flow')))
            device_ids = [torch.cuda.current_device()] if self.device.type == 'cuda' else None
            net = DistributedDataParallel(net, device_ids=device_ids, find_unused_parameters=find_unused)
        elif self.opt['num_gpu'] > 1:
            net = DataParallel(net)
        return net

    def load_network(self, net, load_path, strict=True, param_key='params'):
        """Load weights from a checkpoint file.

        Args:
            net (nn.Module): The network to load into.
            load_path (str): Checkpoint path.
            strict (bool): Require exactly the same keys and shapes; a difference raises one
                :class:`~sl_arch.utils.errors.CheckpointError` naming the keys. Default: True.
            param_key (str): ``'params'`` or ``'params_ema'`` (falls back to ``'params'``).
        """
        net = self.get_bare_model(net)
        state_dict = network_state_dict(read_checkpoint(load_path), param_key, load_path)
        get_root_logger().info(f'Loading {type(net).__name__} from {load_path} [{param_key}], strict={strict}.')
        if strict:
            load_state_strict(net, state_dict, load_path)
            return
        own = net.state_dict()
        state_dict = strip_module_prefix(state_dict)
        skipped = [key for key, value in state_dict.items() if key in own and value.shape != own[key].shape]
        if skipped:
            get_root_logger().warning(f'Not loaded (shape differs): {", ".join(skipped)}')
        net.load_state_dict({key: value for key, value in state_dict.items() if key not in skipped}, strict=False)

    @master_only
    def save_network(self, net, net_label, current_iter, param_key='params'):
        """Atomically save network weights plus the network options (``network_g``).

        Args:
            net (nn.Module | list[nn.Module]): Network(s) to save.
            net_label (str): ``'net_g'``; the file is ``models/<net_label>_<iter|latest>.pth``.
            current_iter (int): Iteration, -1 for ``latest``.
            param_key (str | list[str]): Key(s) of the weights, e.g. ``['params', 'params_ema']``.
        """
        nets = net if isinstance(net, list) else [net]
        param_keys = param_key if isinstance(param_key, list) else [param_key]
        checkpoint = {}
        for net_, key in zip(nets, param_keys):
            state_dict = self.get_bare_model(net_).state_dict()
            checkpoint[key] = OrderedDict((name, value.detach().cpu())
                                          for name, value in strip_module_prefix(state_dict).items())
        network_opt = self.opt.get(net_label.replace('net_', 'network_'))
        if network_opt is not None:
            checkpoint[NETWORK_OPT_KEY] = plain_options(network_opt)
        label = 'latest' if current_iter == -1 else current_iter
        atomic_torch_save(checkpoint, osp.join(self.opt['path']['models'], f'{net_label}_{label}.pth'))

    def save_training_state(self, epoch, current_iter):
        """Atomically save what ``--auto_resume`` needs to continue exactly where this run is.

        Epoch, iteration, optimizer and scheduler states as BasicSR saves them, plus the
        random-number generators of every process (``rng``, one entry per rank). Called on every
        rank; rank 0 writes.

        Args:
            epoch (int): Current epoch.
            current_iter (int): Current iteration; -1 (the final save) writes nothing.
        """
        if current_iter == -1:
            return
        rank, world_size = get_dist_info()
        states = [rng_state()]
        if world_size > 1:
            states = [None] * world_size
            dist.all_gather_object(states, rng_state())
        if rank != 0:
            return
        state = {
            'epoch': epoch,
            'iter': current_iter,
            'optimizers': [optimizer.state_dict() for optimizer in self.optimizers],
            'schedulers': [scheduler.state_dict() for scheduler in self.schedulers],
            'rng': states,
        }
        atomic_torch_save(state, osp.join(self.opt['path']['training_states'], f'{current_iter}.state'))

    def resume_training(self, resume_state):
        """Reload optimizers and schedulers (BasicSR) and this rank's random-number generators.

        States saved before the generators were (no ``rng`` key) or by another number of processes
        resume as BasicSR does, with a warning that the run will not repeat an uninterrupted one.
        """
        super().resume_training(resume_state)
        rank, world_size = get_dist_info()
        states = resume_state.get('rng')
        if states is not None and len(states) == world_size:
            restore_rng_state(states[rank])
        else:
            get_root_logger().warning(
                f'The training state holds no random-number state for {world_size} process(es); the resumed '
                'run continues with fresh random numbers and will not repeat an uninterrupted run exactly.')

    # ------------------------------------------------------------------ training
    def setup_optimizers(self):
        """Adam over all parameters, the flow parameters with ``lr * flow_lr_mul``."""
        train_opt = self.opt['train']
        optim_opt = dict(train_opt['optim_g'])
        optim_type = optim_opt.pop('type')
        flow_lr_mul = train_opt.get('flow_lr_mul', 1)
        named = list(self.net_g.named_parameters())
        if flow_lr_mul == 1:
            params = [param for _, param in named]
        else:
            params = [
                {'params': [param for name, param in named if not is_flow_parameter(name)], 'lr': optim_opt['lr']},
                {'params': [param for name, param in named if is_flow_parameter(name)],
                 'lr': optim_opt['lr'] * flow_lr_mul},
            ]
        get_root_logger().info(f'Learning-rate multiplier of the flow parameters: {flow_lr_mul}.')
        self.optimizer_g = self.get_optimizer(optim_type, params, **optim_opt)
        self.optimizers.append(self.optimizer_g)

    def apply_flow_freeze(self, current_iter):
        """Freeze the flow parameters while ``current_iter < fix_flow``, train them afterwards.

        Decided from the iteration alone, so a run resumed at any iteration is in the right state.

        Args:
            current_iter (int): The iteration about to be trained (1-based).
        """
        frozen = bool(self.fix_flow_iter) and current_iter < self.fix_flow_iter
        if frozen == self.flow_frozen:
            return
        names = []
        for name, param in self.get_bare_model(self.net_g).named_parameters():
            if is_flow_parameter(name):
                param.requires_grad_(not frozen)
                names.append(name)
        if frozen:
            get_root_logger().info(f'Fix the flow parameters ({len(names)} tensors) until iter {self.fix_flow_iter}.')
        elif self.fix_flow_iter:
            get_root_logger().info(f'Train all parameters from iter {current_iter}.')
        self.flow_frozen = frozen

    def init_training_settings(self):
        """BasicSR's losses, optimizers and EMA, plus the optional instance-mask losses.

        ``train.mask_opt`` (e.g. ``{type: SLInstanceMaskLoss, loss_weight: 0.1}``) supervises the
        learned masks with the dataset's instance ids (``semantics_root``), which then are targets,
        not inputs; ``train.mask_consistency_opt`` (``{type: SLMaskConsistencyLoss}``) needs no labels.
        """
        super().init_training_settings()
        train_opt = self.opt['train']
        self.cri_mask = build_loss(train_opt['mask_opt']).to(self.device) if train_opt.get('mask_opt') else None
        self.cri_mask_consistency = (build_loss(train_opt['mask_consistency_opt']).to(self.device)
                                     if train_opt.get('mask_consistency_opt') else None)

    def feed_data(self, data):
        """Take a batch: ``lq`` (b, t, c, h, w), optional ``gt`` (b, t, c, sh, sw), optional ``masks`` (b, t, h, w).

        With ``train.mask_opt`` the masks are the targets of the mask loss (``self.mask_targets``),
        never inputs: the network predicts its own, in training and in validation.
        """
        super().feed_data(data)
        self.masks = data['masks'].to(self.device) if 'masks' in data else None
        self.mask_targets = None
        if getattr(self, 'cri_mask', None) is not None:
            self.mask_targets, self.masks = self.masks, None

    @staticmethod
    def _forward(net, lq, masks):
        """Run ``net`` on ``lq`` (b, t, c, h, w), passing instance ``masks`` (b, t, h, w) when given."""
        return net(lq) if masks is None else net(lq, masks=masks)

    def optimize_parameters(self, current_iter):
        """One optimisation step: flow freeze, forward (with masks), losses, step, EMA update."""
        self.apply_flow_freeze(current_iter)
        self.optimizer_g.zero_grad()
        aux = None
        if self.cri_mask is not None or self.cri_mask_consistency is not None:
            self.output, aux = self.net_g(self.lq, return_aux=True)
            if aux['masks'] is None:
                raise SLError('train.mask_opt / mask_consistency_opt need a network with its semantic branch '
                              '(use_semantics: true); remove them or switch the branch on.')
        else:
            self.output = self._forward(self.net_g, self.lq, self.masks)

        # a centre-frame network (EDVR) is trained on the centre frame of the clip's GT
        gt = self.gt[:, self.gt.size(1) // 2] if self.output.dim() == 4 and self.gt.dim() == 5 else self.gt
        l_total = 0
        loss_dict = OrderedDict()
        if self.cri_pix:
            l_pix = self.cri_pix(self.output, gt)
            l_total += l_pix
            loss_dict['l_pix'] = l_pix
        if self.cri_perceptual:
            l_percep, l_style = self.cri_perceptual(self.output.reshape(-1, *gt.shape[-3:]), gt.reshape(-1, *gt.shape[-3:]))
            for name, loss in (('l_percep', l_percep), ('l_style', l_style)):
                if loss is not None:
                    l_total += loss
                    loss_dict[name] = loss
        if self.cri_mask is not None:
            if self.mask_targets is None:
                raise SLError('train.mask_opt needs ground-truth instance ids: set semantics_root in datasets.train '
                              '(e.g. the masks/ folder of sl-prepare --synthetic), or remove mask_opt.')
            loss_dict['l_mask'] = self.cri_mask(aux['masks'], self.mask_targets)
            l_total += loss_dict['l_mask']
        if self.cri_mask_consistency is not None:
            loss_dict['l_mask_consistency'] = self.cri_mask_consistency(aux['masks'], aux['flows_backward'])
            l_total += loss_dict['l_mask_consistency']
        l_total.backward()
        self.optimizer_g.step()
        self.log_dict = self.reduce_loss_dict(loss_dict)
        if self.ema_decay > 0:
            self.model_ema(decay=self.ema_decay)

    # ------------------------------------------------------------------ testing
    def test(self):
        """Super-resolve ``self.lq`` into ``self.output`` with the EMA network when there is one.

        Uses ``val.flip_seq`` (average with the time-reversed clip), ``val.center_frame_only``
        (Vimeo-90K-T) and ``val.tile`` (bounded-memory windows and tiles).
        """
        net = getattr(self, 'net_g_ema', self.net_g)
        val_opt = self.opt.get('val') or {}
        flip_seq = val_opt.get('flip_seq', False)
        self.center_frame_only = val_opt.get('center_frame_only', False)
        num_frames = self.lq.size(1)
        lq, masks = self.lq, self.masks
        if flip_seq:
            lq = torch.cat([lq, lq.flip(1)], dim=1)
            masks = None if masks is None else torch.cat([masks, masks.flip(1)], dim=1)
        was_training = net.training
        net.eval()
        with torch.no_grad():
            if val_opt.get('tile'):
                output = self._forward_tiled(net, lq, masks, val_opt['tile'])
            else:
                output = self._forward(net, lq, masks)
        net.train(was_training)
        if flip_seq:
            output = 0.5 * (output[:, :num_frames] + output[:, num_frames:].flip(1))
        self.output = output[:, num_frames // 2] if self.center_frame_only else output

    def _forward_tiled(self, net, lq, masks, tile_opt):
        """Bounded-memory forward with :func:`sl_arch.utils.tiling.forward_video`.

        Instance-id masks travel as an extra input channel so that every window and tile gets
        the matching crop of them.
        """
        if masks is None:
            return forward_video(net, lq, **tile_opt)
        if masks.dim() != 4:
            raise SLError('val.tile supports instance-id masks (b, t, h, w) only; drop val.tile for soft masks.')
        packed = torch.cat([lq, masks.unsqueeze(2).to(lq.dtype)], dim=2)
        return forward_video(lambda clip: self._forward(net, clip[:, :, :-1], clip[:, :, -1].round().long()), packed,
                             **tile_opt)

    def nondist_validation(self, dataloader, current_iter, tb_logger, save_img):
        """Validation in a single process (same code path as :meth:`dist_validation`)."""
        self.dist_validation(dataloader, current_iter, tb_logger, save_img)

    def dist_validation(self, dataloader, current_iter, tb_logger, save_img):
        """Super-resolve every clip (or chunk) of the dataset, compute metrics, log them, save images.

        Each process takes every ``world_size``-th item; per-frame metric rows are gathered on
        rank 0, which logs the per-clip and average values as BasicSR does (and TensorBoard).

        Args:
            dataloader (DataLoader): Its ``dataset`` yields ``lq`` (t, c, h, w), ``gt``, ``folder``,
                optionally ``masks`` (t, h, w) and ``frame_offset`` (first frame of a chunk).
            current_iter (int | str): Iteration (training) or the run name (test).
            tb_logger: TensorBoard logger or None.
            save_img (bool): Save SR frames to ``visualization/<dataset>/<folder>/<frame>_<tag>.png``.
        """
        dataset = dataloader.dataset
        dataset_name = dataset.opt['name']
        metrics_opt = self.opt['val'].get('metrics')
        rank, world_size = get_dist_info()
        rows = []  # (folder, frame index, [metric values])
        progress = tqdm(total=len(dataset), unit='clip', desc=f'Validate {dataset_name}') if rank == 0 else None
        for index in range(rank, len(dataset), world_size):
            item = dataset[index]
            folder = item['folder']
            batch = {key: item[key].unsqueeze(0) for key in ('lq', 'gt', 'masks') if key in item}
            self.feed_data(batch)
            self.test()
            output = self.output.cpu()
            gt = self.gt.cpu() if 'gt' in batch else None
            del self.lq, self.output
            if gt is not None:
                del self.gt
            if self.center_frame_only:
                output = output.unsqueeze(1)
                if gt is not None:  # Vimeo-90K-T: GT of the centre frame, or of the whole clip
                    gt = (gt[:, gt.size(1) // 2] if gt.dim() == 5 else gt).unsqueeze(1)
                first = int(str(item.get('idx', index)).split('/')[0])
            else:
                first = int(item.get('frame_offset', 0))
            for step in range(output.size(1)):
                frame = first + step
                result_img = tensor2img([output[0, step]])
                if save_img:
                    tag = current_iter if self.opt['is_train'] else (self.opt['val'].get('suffix') or self.opt['name'])
                    imwrite(result_img,
                            osp.join(self.opt['path']['visualization'], dataset_name, folder, f'{frame:08d}_{tag}.png'))
                if metrics_opt and gt is not None:
                    metric_data = {'img': result_img, 'img2': tensor2img([gt[0, step]])}
                    rows.append((folder, frame, [calculate_metric(metric_data, opt_) for opt_ in metrics_opt.values()]))
            if progress is not None:
                progress.update(min(world_size, len(dataset) - index))
                progress.set_description(f'Validate {dataset_name} {folder}')
        if progress is not None:
            progress.close()

        if not metrics_opt:
            return
        if self.opt['dist']:
            gathered = [None] * world_size
            dist.all_gather_object(gathered, rows)
            rows = [row for part in gathered for row in part]
        if rank == 0:
            self._initialize_best_metric_results(dataset_name)
            self.metric_results = self._metric_tables(rows, len(metrics_opt))
            if self.metric_results:
                self._log_validation_metric_values(current_iter, dataset_name, tb_logger)

    @staticmethod
    def _metric_tables(rows, num_metrics):
        """Per-folder tensors ``(num_frames, num_metrics)`` from ``(folder, frame, values)`` rows, frames sorted."""
        per_folder = {}
        for folder, frame, values in rows:
            per_folder.setdefault(folder, {})[frame] = values
        return {
            folder: torch.tensor([frames[frame] for frame in sorted(frames)], dtype=torch.float64).reshape(-1, num_metrics)
            for folder, frames in sorted(per_folder.items())
        }
