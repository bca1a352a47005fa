"""Training and testing wrapper for recurrent video SR networks, SemanticLens first.

``SLVideoRecurrentModel`` keeps BasicSR's ``VideoRecurrentModel`` (losses, EMA, schedulers,
``train_pipeline``/``test_pipeline``) and changes only where BasicSR falls short:

* validation and test run on the CPU as well as on CUDA (no ``cuda`` metric buffers), in one or
  many processes, on whole clips or on chunks of a clip (``frame_offset``);
* the EMA network is used for validation when there is one;
* test-time temporal windows and spatial tiles (``val.tile``) bound the memory of long or large clips;
* ``train.fix_flow`` freezes the pre-alignment (flow) parameters for the first iterations, decided
  from the current iteration so that a resumed run freezes exactly what it should;
* precomputed instance masks from the dataset (``masks``) reach the network's forward, and so do
  exact flows (``flows``, the datasets' ``flow_root``) that replace the network's own estimate;
* checkpoints are written atomically, carry the ``network_g`` options, and load strictly with an
  error that names the mismatched keys; DistributedDataParallel also runs on the CPU (gloo);
* training time is measured (CPU seconds, or synchronized GPU seconds on CUDA) and can be the
  budget: ``train.cpu_seconds`` / ``train.gpu_seconds`` end training after the iteration that
  passes it (``sl-train`` stops BasicSR's loop there), and ``BudgetCosineLR`` anneals the
  learning rate over that time instead of over iterations;
* ``train.autocast`` trains in bfloat16 or float16 mixed precision;
* ``train.mask_opt``, ``train.mask_consistency_opt`` and ``train.flow_photometric_opt`` add losses on the
  network's instance masks and flows (SemanticLens' ``return_aux``);
* validation metrics (per dataset, per sequence, mean) and the training time are written as JSON
  beside BasicSR's log: ``metrics_<dataset>.json`` and ``train_time.json``.
"""
import inspect
import math
import os.path as osp
import time
from collections import OrderedDict

import torch
from torch import distributed as dist
from torch.nn import functional as F
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
from sl_arch.utils.ensemble import with_ensembles
from sl_arch.utils.files import write_json
from sl_arch.utils.metrics import average_over_sequences
from sl_arch.utils.options import OptionError, check_lr_mul, check_sl_train_values
from sl_arch.utils.resume import restore_rng_state, rng_state
from sl_arch.utils.tiling import forward_video

#: Parameter-name fragments of pre-alignment modules: SemanticLens' ``flow_warper``, the SPyNet of
#: BasicSR's BasicVSR/IconVSR/BasicVSR++, and IconVSR's EDVR feature extractor.
FLOW_MODULE_KEYS = ('flow_warper', 'spynet', 'edvr')


def is_flow_parameter(name):
    """Whether parameter ``name`` belongs to a pre-alignment (flow) module."""
    return any(key in name for key in FLOW_MODULE_KEYS)


def learning_rate_groups(named_parameters, flow_lr_mul=1, lr_mul=None):
    """The parameters grouped by learning-rate multiplier: ``[(factor, [params]), ...]``, factor 1 first, then
    ``flow_lr_mul`` (when not 1; the two groups kept even when empty, as before ``lr_mul`` existed).

    A parameter takes the factor of the longest module name in ``lr_mul`` (``{name: factor}``, ``train.lr_mul``)
    that it lies in (``upsample`` holds ``upsample.0.weight``, ``trunk.backward`` every parameter of that trunk);
    otherwise ``flow_lr_mul`` if it belongs to a flow module (:func:`is_flow_parameter`), otherwise 1. A name that
    holds no parameter or a factor that is not a positive number is refused (:class:`OptionError`).
    """
    named = list(named_parameters)
    check_lr_mul(lr_mul, parameter_names=[param_name for param_name, _ in named])
    lr_mul = dict(lr_mul or {})
    # the flow group stays when empty (rows with OpenCV's flow): checkpoints' optimizer states have its layout
    groups = {1: [], **({flow_lr_mul: []} if flow_lr_mul != 1 else {})}
    for param_name, param in named:
        owners = [name for name in lr_mul if param_name == name or param_name.startswith(f'{name}.')]
        if owners:
            factor = lr_mul[max(owners, key=len)]
        else:
            factor = flow_lr_mul if is_flow_parameter(param_name) else 1
        groups.setdefault(factor, []).append(param)
    return [(factor, members) for factor, members in groups.items() if members or factor in (1, flow_lr_mul)]


def plain_options(value):
    """Option dicts (OrderedDict from BasicSR's YAML loader) as plain dicts, for portable checkpoints."""
    if isinstance(value, dict):
        return {key: plain_options(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain_options(item) for item in value]
    return value


#: ``train.autocast`` values: the lower-precision dtype of mixed-precision training.
AUTOCAST_DTYPES = {'bf16': torch.bfloat16, 'fp16': torch.float16}
#: ``train`` keys of the losses that read the network's ``return_aux`` outputs (instance masks, flows).
AUX_LOSS_KEYS = ('mask_opt', 'mask_consistency_opt', 'flow_photometric_opt')

#: File beside BasicSR's training log with the time and iterations training took.
TRAIN_TIME_FILE = 'train_time.json'


def metrics_file_name(dataset_name):
    """Name of the JSON file with the validation metrics of dataset ``dataset_name``."""
    return f'metrics_{dataset_name}.json'


def clock_seconds(kind):
    """A reading of a training clock in seconds: ``'cpu'``, this process's CPU time (``time.process_time``);
    ``'gpu'``, the wall clock once CUDA's queued work is done (``torch.cuda.synchronize()``)."""
    if kind == 'gpu':
        torch.cuda.synchronize()
        return time.perf_counter()
    return time.process_time()


class TrainingClock:
    """Seconds spent training and iterations done: the measure of a time budget.

    ``'cpu'`` counts the CPU seconds of this process (``time.process_time``: all its threads,
    data loading in the process included), which stays a fair measure on a shared machine;
    ``'gpu'`` counts wall seconds with CUDA synchronized before each reading. The clock starts at
    the first training iteration; a resumed run continues from the saved seconds and iterations.

    Args:
        kind (str): ``'cpu'`` or ``'gpu'``.
        budget (float | None): Seconds training may take, or None for no limit.
    """

    def __init__(self, kind, budget=None):
        self.kind, self.budget = kind, budget
        self.iterations, self.offset, self.wall_offset = 0, 0.0, 0.0
        self._start = self._wall_start = None

    def start(self):
        """Start counting (a second call does nothing)."""
        if self._start is None:
            self._start, self._wall_start = clock_seconds(self.kind), time.perf_counter()

    def seconds(self):
        """Seconds counted so far (0 before :meth:`start`)."""
        return self.offset + (0.0 if self._start is None else clock_seconds(self.kind) - self._start)

    def wall_seconds(self):
        """Wall seconds since :meth:`start`, resumed runs included."""
        return self.wall_offset + (0.0 if self._wall_start is None else time.perf_counter() - self._wall_start)

    def fraction(self):
        """Part of the budget spent, 0 to 1 (0 without a budget)."""
        return min(1.0, self.seconds() / self.budget) if self.budget else 0.0

    def spent(self):
        """Whether the budget is spent (never without one)."""
        return self.budget is not None and self.seconds() >= self.budget

    def state_dict(self):
        """``kind``, ``seconds``, ``wall_seconds`` and ``iterations`` so far, for a training state."""
        return {'kind': self.kind, 'seconds': self.seconds(), 'wall_seconds': self.wall_seconds(),
                'iterations': self.iterations}

    def load_state_dict(self, state):
        """Continue from a saved state (seconds of another kind of clock are not carried over)."""
        if state.get('kind') == self.kind:
            self.offset = state['seconds']
        self.wall_offset, self.iterations = state['wall_seconds'], state['iterations']
        self._start = self._wall_start = None


def training_clock(opt):
    """The :class:`TrainingClock` that ``train.cpu_seconds`` / ``train.gpu_seconds`` ask for.

    Without either, a GPU clock on CUDA and a CPU clock otherwise, without a budget.

    Raises:
        OptionError: both keys, a budget that is not a positive number, or ``gpu_seconds`` without CUDA.
    """
    train_opt = opt.get('train') or {}
    cpu_seconds, gpu_seconds = train_opt.get('cpu_seconds'), train_opt.get('gpu_seconds')
    on_cuda = opt.get('num_gpu', 0) != 0 and torch.cuda.is_available()
    if cpu_seconds is not None and gpu_seconds is not None:
        raise OptionError('train.cpu_seconds and train.gpu_seconds are both set; keep one budget.')
    budget = cpu_seconds if cpu_seconds is not None else gpu_seconds
    if budget is not None and (isinstance(budget, bool) or not isinstance(budget, (int, float)) or budget <= 0):
        raise OptionError(f'train.{"cpu" if cpu_seconds is not None else "gpu"}_seconds: {budget!r} is not a '
                          'positive number of seconds; fix it in the option file.')
    if gpu_seconds is not None and not on_cuda:
        raise OptionError('train.gpu_seconds needs CUDA (num_gpu > 0 on a machine with a GPU); use '
                          'train.cpu_seconds on the CPU.')
    kind = 'cpu' if cpu_seconds is not None else 'gpu' if gpu_seconds is not None or on_cuda else 'cpu'
    return TrainingClock(kind, None if budget is None else float(budget))


def pad_to_min_size(tensor, min_size):
    """Replicate-pad the last two dims of ``tensor`` (b, t, [c,] h, w) at the bottom and right to at least ``min_size``.

    Returns:
        Tensor: The padded tensor (``tensor`` itself when it is large enough), same dtype.
    """
    height, width = tensor.shape[-2:]
    pad_h, pad_w = max(0, min_size - height), max(0, min_size - width)
    if not pad_h and not pad_w:
        return tensor
    flat = tensor.reshape(-1, *tensor.shape[-3:]) if tensor.dim() == 5 else tensor
    padded = F.pad(flat.float(), (0, pad_w, 0, pad_h), mode='replicate').to(tensor.dtype)
    return padded.reshape(*tensor.shape[:-2], height + pad_h, width + pad_w)


@MODEL_REGISTRY.register()
class SLVideoRecurrentModel(VideoRecurrentModel):
    """Recurrent video SR model for SemanticLens and BasicSR's recurrent networks.

    Option keys beyond BasicSR's ``VideoRecurrentModel``:

    * ``train.fix_flow`` (int): parameters whose names contain one of :data:`FLOW_MODULE_KEYS`
      are frozen for iterations ``1 .. fix_flow - 1``.
    * ``train.flow_lr_mul`` (float): learning-rate multiplier of those parameters.
    * ``train.loss_border_frames`` (int): the first and last that many frames of each training clip get no loss
      and are not reconstructed (networks whose forward takes ``output_frames``: SemanticLens); their
      features still carry the recurrent state to the others. Default 0.
    * ``train.loss_border_pixels`` (int): no loss on that many LR pixels' worth of each GT patch's border (times
      ``scale`` GT pixels), where a patch's flow and warped neighbours lack what lies outside it. Default 0.
    * ``train.lr_mul`` (dict): learning-rate multipliers by module name, e.g. ``{upsample: 0.5,
      conv_last: 0.5}`` (:func:`learning_rate_groups`); they apply over ``flow_lr_mul``.
    * ``train.cpu_seconds`` / ``train.gpu_seconds`` (number): the training budget, in CPU seconds
      of the training process or synchronized GPU seconds (see :class:`TrainingClock`); ``sl-train``
      ends training after the iteration that passes it, saves the final checkpoint and validates.
      ``total_iter`` stays an upper bound.
    * ``train.scheduler.type: BudgetCosineLR`` (with ``eta_min``): cosine annealing over the time
      budget instead of over iterations; needs ``cpu_seconds`` or ``gpu_seconds``.
    * ``train.autocast`` (``bf16`` | ``fp16`` | false): mixed-precision training; the forward runs
      under ``torch.autocast``, the loss in float32 on its output; fp16 scales the loss
      (``torch.amp.GradScaler``). Validation runs in float32. Default: false.
    * ``train.channels_last`` (bool): keep the network's weights, and so its 2-D activations, in
      channels-last memory order, which oneDNN's CPU convolutions run faster (``python -m
      sl_arch.bench.step_time``, one thread, AMD EPYC: 0.66-0.84x the float32 time per training
      iteration of ``sl-bench``'s single-frame network, 0.90-0.95x of SemanticLens tiny variants).
      Checkpoints load either way. Default: false.
    * ``min_input_size`` (int, top level): LR clips smaller than this are replicate-padded at the
      bottom and right before the network, in training and testing, and its output cropped back:
      for networks with a smallest input (``sl_arch.archs.spec``: BasicSR's SPyNet needs more than
      32 px per side, BasicVSR++ asserts 64). Not with the mask losses on patches it would pad.
    * ``val.tile`` (dict, optional): keyword arguments of :func:`sl_arch.utils.tiling.forward_video`
      (``chunk``/``overlap`` frames, ``tile``/``tile_overlap`` pixels, ``num_neighbours`` for a
      centre-frame network such as EDVR).
    * ``find_unused_parameters`` (bool): for DDP; defaults to True when ``fix_flow`` is set.

    Args:
        opt (dict): BasicSR option dict.
    """

    def __init__(self, opt):
        self.flow_frozen = None
        self.clock = training_clock(opt)
        self.grad_scaler = self.autocast = None
        self.min_input_size = opt.get('min_input_size') or 0
        super().__init__(opt)

    # ------------------------------------------------------------------ device and checkpoints
    def model_to_device(self, net):
        """Move ``net`` to the device; wrap it in DDP (CPU or CUDA) or DataParallel as the options ask.

        Args:
            net (nn.Module): The network.

        Returns:
            nn.Module: The network, wrapped where distributed.
        """
        train_opt = self.opt.get('train') or {}
        net = net.to(self.device)
        if train_opt.get('channels_last'):
            net = net.to(memory_format=torch.channels_last)
        if self.opt['dist']:
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
        random-number generators of every process (``rng``, one entry per rank) and the training
        clock (``clock``: seconds and iterations so far). Called on every rank; rank 0 writes.

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
            'clock': self.clock.state_dict(),
        }
        atomic_torch_save(state, osp.join(self.opt['path']['training_states'], f'{current_iter}.state'))

    def save(self, epoch, current_iter):
        """BasicSR's save (networks, training state), then :meth:`save_training_time`."""
        super().save(epoch, current_iter)
        self.save_training_time(final=current_iter == -1)

    @master_only
    def save_training_time(self, final=False):
        """Write ``train_time.json`` beside the training log: what training has taken so far.

        Keys: ``iterations``, ``seconds`` (of the ``clock``: ``'cpu'`` or ``'gpu'``),
        ``seconds_per_iteration``, ``wall_seconds``, ``budget_seconds`` (None without a budget),
        ``budget_spent``, ``autocast``, ``final`` (written by the save at the end of training).

        Args:
            final (bool): This is the last save of the run.
        """
        seconds, iterations = self.clock.seconds(), self.clock.iterations
        record = {'name': self.opt['name'], 'clock': self.clock.kind, 'iterations': iterations, 'seconds': seconds,
                  'seconds_per_iteration': seconds / iterations if iterations else None,
                  'wall_seconds': self.clock.wall_seconds(), 'budget_seconds': self.clock.budget,
                  'budget_spent': self.clock.spent(), 'autocast': self.autocast or False, 'final': final}
        write_json(osp.join(self.record_folder(), TRAIN_TIME_FILE), record)

    def record_folder(self):
        """Where the JSON records go: BasicSR's log folder (``experiments/<name>`` or ``results/<name>``)."""
        paths = self.opt['path']
        return paths.get('log') or paths.get('experiments_root') or paths['results_root']

    def budget_spent(self):
        """Whether training has used its ``train.cpu_seconds`` / ``gpu_seconds`` (False without one).

        In distributed training every process stops as soon as one has spent its budget (the
        decision is all-reduced), so that no process waits for a step the others never take.
        """
        spent = self.clock.spent()
        if self.opt.get('dist') and self.clock.budget is not None:
            flag = torch.tensor([float(spent)], device=self.device)
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
            spent = bool(flag.item())
        return spent

    def resume_training(self, resume_state):
        """Reload optimizers and schedulers (BasicSR), this rank's random-number generators and the clock.

        States saved before the generators were (no ``rng`` key) or by another number of processes
        resume as BasicSR does, with a warning that the run will not repeat an uninterrupted one.
        The training clock continues from the saved seconds and iterations.
        """
        super().resume_training(resume_state)
        if 'clock' in resume_state:
            self.clock.load_state_dict(resume_state['clock'])
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
        """Adam over all parameters, each at ``lr`` times its multiplier (:func:`learning_rate_groups`)."""
        train_opt = self.opt['train']
        optim_opt = dict(train_opt['optim_g'])
        optim_type = optim_opt.pop('type')
        flow_lr_mul = train_opt.get('flow_lr_mul', 1)
        groups = learning_rate_groups(self.net_g.named_parameters(), flow_lr_mul, train_opt.get('lr_mul'))
        if len(groups) == 1:  # factor 1 only
            params = groups[0][1]
        else:
            params = [{'params': members, 'lr': optim_opt['lr'] * factor} for factor, members in groups]
        get_root_logger().info(f'Learning-rate multiplier of the flow parameters: {flow_lr_mul}'
                               + (f'; of named modules (train.lr_mul): {dict(train_opt["lr_mul"])}.'
                                  if train_opt.get('lr_mul') else '.'))
        self.optimizer_g = self.get_optimizer(optim_type, params, **optim_opt)
        self.optimizers.append(self.optimizer_g)

    def setup_schedulers(self):
        """BasicSR's schedulers, plus ``BudgetCosineLR``: cosine annealing over the time budget.

        ``BudgetCosineLR`` sets every parameter group's learning rate to
        ``eta_min + (lr - eta_min) * (1 + cos(pi * f)) / 2``, ``f`` the part of the budget spent
        when the iteration starts (:meth:`TrainingClock.fraction`), so every model of a
        fixed-time comparison ends its run annealed whatever its speed.
        """
        scheduler_opt = dict(self.opt['train']['scheduler'])
        if scheduler_opt.get('type') != 'BudgetCosineLR':
            super().setup_schedulers()
            return
        if self.clock.budget is None:
            raise OptionError('train.scheduler BudgetCosineLR anneals over a time budget: set train.cpu_seconds '
                              '(or gpu_seconds on CUDA), or use CosineAnnealingRestartLR.')
        eta_min = scheduler_opt.get('eta_min', 0)
        for optimizer in self.optimizers:
            factors = [self._budget_cosine(group['lr'], eta_min) for group in optimizer.param_groups]
            self.schedulers.append(torch.optim.lr_scheduler.LambdaLR(optimizer, factors))

    def _budget_cosine(self, base_lr, eta_min):
        """The learning-rate factor of ``BudgetCosineLR`` for a group starting at ``base_lr``."""
        floor = min(eta_min / base_lr, 1.0) if base_lr else 0.0
        return lambda _: floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * self.clock.fraction()))

    def update_learning_rate(self, current_iter, warmup_iter=-1):
        """BasicSR's learning-rate step; the first call of a run starts the training clock."""
        self.clock.start()
        super().update_learning_rate(current_iter, warmup_iter)

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
        not inputs; ``train.mask_consistency_opt`` (``{type: SLMaskConsistencyLoss}``) needs no labels;
        ``train.flow_photometric_opt`` (``{type: SLPhotometricFlowLoss}``) trains the flow warper on
        the LR frames themselves. These read the network's ``return_aux`` outputs (SemanticLens).
        """
        train_opt = self.opt['train']
        # sl-train checked these before writing anything; again for a model built otherwise (BasicSR's build_model)
        check_sl_train_values(train_opt, type(self.get_bare_model(self.net_g)), self.device.type == 'cpu')
        super().init_training_settings()

        def optional_loss(key):
            return build_loss(train_opt[key]).to(self.device) if train_opt.get(key) else None

        self.cri_mask = optional_loss('mask_opt')
        self.cri_mask_consistency = optional_loss('mask_consistency_opt')
        self.cri_flow_photometric = optional_loss('flow_photometric_opt')
        self.aux_losses = [key for key in AUX_LOSS_KEYS if train_opt.get(key)]
        if self.aux_losses and 'return_aux' not in inspect.signature(self.get_bare_model(self.net_g).forward).parameters:
            raise OptionError(f'train.{self.aux_losses[0]} reads the instance masks and flows of SemanticLens; '
                              f'{self.opt["network_g"]["type"]} has none: remove it from the option file.')
        self.loss_border_frames = train_opt.get('loss_border_frames') or 0
        self.loss_border_pixels = train_opt.get('loss_border_pixels') or 0
        self.autocast = train_opt.get('autocast') or None  # a value check_sl_train_values accepted
        if self.autocast == 'fp16':
            self.grad_scaler = torch.amp.GradScaler(self.device.type)

    def feed_data(self, data):
        """Take a batch: ``lq`` (b, t, c, h, w), optional ``gt`` (b, t, c, sh, sw), optional ``masks`` (b, t, h, w).

        With ``train.mask_opt`` the masks are the targets of the mask loss (``self.mask_targets``),
        never inputs: the network predicts its own, in training and in validation.
        """
        super().feed_data(data)
        self.masks = data['masks'].to(self.device) if 'masks' in data else None
        self.flows = data['flows'].to(self.device) if 'flows' in data else None
        if self.flows is not None and 'flows' not in inspect.signature(self.get_bare_model(self.net_g).forward).parameters:
            raise OptionError(f'the dataset\'s flow_root feeds flows to the network, and {self.opt["network_g"]["type"]} '
                              'takes none: remove flow_root from the datasets.')
        self.mask_targets = None
        if getattr(self, 'cri_mask', None) is not None:
            self.mask_targets, self.masks = self.masks, None

    def _forward(self, net, lq, masks, flows=None, **net_kwargs):
        """Run ``net`` on ``lq`` (b, t, c, h, w), passing instance ``masks`` (b, t, h, w) and the dataset's
        ``flows`` (b, 2, t - 1, 2, h, w) when given, and ``net_kwargs`` (``output_frames`` in training).

        Clips smaller than ``min_input_size`` are padded first (:func:`pad_to_min_size`) and the
        output (b, t, c, s*h, s*w) cropped back to ``scale`` times the clip.
        """
        height, width = lq.shape[-2:]
        if self.min_input_size:
            lq = pad_to_min_size(lq, self.min_input_size)
            masks = None if masks is None else pad_to_min_size(masks, self.min_input_size)
            if flows is not None and lq.shape[-2:] != (height, width):
                raise OptionError(f'clips of {width}x{height} LR px are padded to min_input_size '
                                  f'{self.min_input_size}, which the flows of flow_root do not follow; use larger '
                                  'clips (gt_size) or remove flow_root.')
        extra = dict(net_kwargs, **({} if masks is None else {'masks': masks}))
        if flows is not None:
            extra['flows'] = (flows[:, 0], flows[:, 1])
        output = net(lq, **extra)
        if lq.shape[-2:] != (height, width):
            scale = self.opt['scale']
            output = output[..., :height * scale, :width * scale]
        return output

    def optimize_parameters(self, current_iter):
        """One optimisation step: flow freeze, forward (with masks, under autocast), losses, step, EMA update."""
        self.apply_flow_freeze(current_iter)
        self.optimizer_g.zero_grad()
        dtype = AUTOCAST_DTYPES.get(self.autocast)
        with torch.autocast(self.device.type, dtype=dtype, enabled=dtype is not None):
            aux = self._training_forward()
        self.output = self.output.float()
        l_total, loss_dict = self._losses(aux)
        if self.grad_scaler is not None:
            self.grad_scaler.scale(l_total).backward()
            self.grad_scaler.step(self.optimizer_g)
            self.grad_scaler.update()
        else:
            l_total.backward()
            self.optimizer_g.step()
        self.log_dict = self.reduce_loss_dict(loss_dict)
        if self.ema_decay > 0:
            self.model_ema(decay=self.ema_decay)
        self.clock.iterations += 1

    def _training_forward(self):
        """Forward of the training batch into ``self.output``; returns the network's aux dict for the aux losses."""
        extra = {}
        if self.loss_border_frames:
            frames, border = self.lq.size(1), self.loss_border_frames
            if frames <= 2 * border:
                raise OptionError(f'train.loss_border_frames {border} leaves no frame of the {frames}-frame training '
                                  f'clips to learn from; use more frames (datasets.train.num_frame) or fewer border '
                                  'frames.')
            extra['output_frames'] = slice(border, frames - border)
        if not self.aux_losses:
            self.output = self._forward(self.net_g, self.lq, self.masks, self.flows, **extra)
            return None
        if self.min_input_size > min(self.lq.shape[-2:]):
            raise OptionError(f'training patches of {self.lq.shape[-1]}x{self.lq.shape[-2]} LR px would be padded to '
                              f'min_input_size {self.min_input_size}, which the mask and flow losses do not follow; '
                              'use a larger gt_size or remove train.mask_opt / mask_consistency_opt / '
                              'flow_photometric_opt.')
        self.output, aux = self.net_g(self.lq, return_aux=True, **extra,
                                      **({} if self.flows is None else {'flows': (self.flows[:, 0], self.flows[:, 1])}))
        if aux['masks'] is None and (self.cri_mask is not None or self.cri_mask_consistency is not None):
            raise SLError('train.mask_opt / mask_consistency_opt need a network with its semantic branch '
                          '(use_semantics: true); remove them or switch the branch on.')
        if aux['flows_backward'] is None and self.cri_flow_photometric is not None:
            raise SLError('train.flow_photometric_opt needs a network with its flow warper (use_flow: true); remove '
                          'it or switch the flow on.')
        return aux

    def _losses(self, aux):
        """The total loss and the named losses of ``self.output`` against ``self.gt`` (and the mask losses).

        A centre-frame network (EDVR; output (b, c, h, w)) is trained on the centre frame of the clip's GT.
        """
        gt = self.gt[:, self.gt.size(1) // 2] if self.output.dim() == 4 and self.gt.dim() == 5 else self.gt
        if self.loss_border_frames:  # the frames the network reconstructed
            gt = gt[:, self.loss_border_frames:gt.size(1) - self.loss_border_frames]
        output = self.output
        if self.loss_border_pixels:
            border = self.loss_border_pixels * self.opt['scale']
            if min(gt.shape[-2:]) <= 2 * border:
                raise OptionError(f'train.loss_border_pixels {self.loss_border_pixels} leaves no pixel of the '
                                  f'{gt.shape[-1]}x{gt.shape[-2]} GT patches to learn from; use larger patches '
                                  '(datasets.train.gt_size) or a smaller border.')
            output, gt = (image[..., border:-border, border:-border] for image in (output, gt))
        l_total = 0
        loss_dict = OrderedDict()
        if self.cri_pix:
            loss_dict['l_pix'] = self.cri_pix(output, gt)
        if self.cri_perceptual:
            l_percep, l_style = self.cri_perceptual(output.reshape(-1, *gt.shape[-3:]),
                                                    gt.reshape(-1, *gt.shape[-3:]))
            loss_dict.update((name, loss) for name, loss in (('l_percep', l_percep), ('l_style', l_style))
                             if loss is not None)
        if self.cri_mask is not None:
            if self.mask_targets is None:
                raise SLError('train.mask_opt needs ground-truth instance ids: set semantics_root in datasets.train '
                              '(e.g. the masks/ folder of sl-prepare --synthetic), or remove mask_opt.')
            loss_dict['l_mask'] = self.cri_mask(aux['masks'].float(), self.mask_targets)
        if self.cri_mask_consistency is not None:
            flows = aux['flows_backward']
            loss_dict['l_mask_consistency'] = self.cri_mask_consistency(aux['masks'].float(),
                                                                        None if flows is None else flows.float())
        if self.cri_flow_photometric is not None:
            loss_dict['l_flow_photometric'] = self.cri_flow_photometric(self.lq, aux['flows_backward'].float(),
                                                                        aux['flows_forward'].float())
        for loss in loss_dict.values():
            l_total += loss
        return l_total, loss_dict

    # ------------------------------------------------------------------ testing
    def test(self):
        """Super-resolve ``self.lq`` into ``self.output`` with the EMA network when there is one.

        Uses ``val.flip_seq`` and ``val.flip_width`` (two-pass ensembles: :mod:`sl_arch.utils.ensemble`),
        ``val.center_frame_only`` (Vimeo-90K-T) and ``val.tile`` (bounded-memory windows and tiles).
        """
        net = getattr(self, 'net_g_ema', self.net_g)
        val_opt = self.opt.get('val') or {}
        flip_seq, flip_width = val_opt.get('flip_seq', False), val_opt.get('flip_width', False)
        self.center_frame_only = val_opt.get('center_frame_only', False)
        num_frames = self.lq.size(1)
        if self.flows is not None and (flip_seq or flip_width or val_opt.get('tile')):
            raise OptionError('val.flip_seq, val.flip_width and val.tile do not carry the flows of flow_root; remove '
                              'them or flow_root.')
        forward = with_ensembles(lambda lq, masks: self._forward_once(net, lq, masks, val_opt), flip_seq, flip_width)
        was_training = net.training
        net.eval()
        with torch.no_grad():
            output = forward(self.lq, self.masks)
        net.train(was_training)
        self.output = output[:, num_frames // 2] if self.center_frame_only else output

    def _forward_once(self, net, lq, masks, val_opt):
        """One test forward of ``lq``, in windows and tiles with ``val.tile``."""
        if val_opt.get('tile'):
            return self._forward_tiled(net, lq, masks, val_opt['tile'])
        return self._forward(net, lq, masks, self.flows)

    def _forward_tiled(self, net, lq, masks, tile_opt):
        """Bounded-memory forward with :func:`sl_arch.utils.tiling.forward_video`.

        Instance-id masks travel as an extra input channel so that every window and tile gets
        the matching crop of them.
        """
        if masks is None:
            return forward_video(lambda clip: self._forward(net, clip, None), lq, **tile_opt)
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
        rank 0, which logs the per-clip and average values as BasicSR does (and TensorBoard) and
        writes them to ``metrics_<dataset>.json`` (:meth:`_log_validation_metric_values`).

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
            batch = {key: item[key].unsqueeze(0) for key in ('lq', 'gt', 'masks', 'flows') if key in item}
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

    def _log_validation_metric_values(self, current_iter, dataset_name, tb_logger):
        """Average ``self.metric_results``, keep the best values, log them as BasicSR does and write the JSON.

        The average is the mean of the per-sequence means (:func:`~sl_arch.utils.metrics.average_over_sequences`).
        ``metrics_<dataset>.json`` beside the log (``experiments/<name>/`` in training,
        ``results/<name>/`` in testing) holds ``dataset``, ``iteration`` (the run name in
        testing), ``frames`` per sequence and ``metrics``: ``{metric: {'mean': float,
        'sequences': {folder: float}}}``; a later validation of the same dataset replaces it.
        """
        names = list(self.opt['val']['metrics'])
        summary = {name: average_over_sequences({folder: table[:, index].tolist()
                                                 for folder, table in self.metric_results.items()})
                   for index, name in enumerate(names)}
        for name, result in summary.items():
            self._update_best_metric_result(dataset_name, name, result['mean'], current_iter)
        get_root_logger().info(self._validation_log_text(dataset_name, summary))
        if tb_logger:
            for name, result in summary.items():
                tb_logger.add_scalar(f'metrics/{name}', result['mean'], current_iter)
                for folder, value in result['sequences'].items():
                    tb_logger.add_scalar(f'metrics/{name}/{folder}', value, current_iter)
        record = {'name': self.opt['name'], 'dataset': dataset_name, 'iteration': current_iter,
                  'frames': {folder: len(table) for folder, table in self.metric_results.items()},
                  'metrics': summary}
        write_json(osp.join(self.record_folder(), metrics_file_name(dataset_name)), record)

    def _validation_log_text(self, dataset_name, summary):
        """BasicSR's validation record: per metric the mean, each folder's mean, and the best so far."""
        text = f'Validation {dataset_name}\n'
        for name, result in summary.items():
            text += f'\t # {name}: {result["mean"]:.4f}'
            text += ''.join(f'\t # {folder}: {value:.4f}' for folder, value in result['sequences'].items())
            best = self.best_metric_results[dataset_name][name]
            text += f'\n\t    Best: {best["val"]:.4f} @ {best["iter"]} iter\n'
        return text

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
