"""Exact ``--auto_resume``: a killed and resumed run ends with the weights of an uninterrupted one.

BasicSR's ``train_pipeline`` restores weights, optimizers and schedulers, but restarts the data
order at the beginning of the epoch it was in and keeps no random-number state, so a resumed run
trains on other crops, flips and windows than the uninterrupted run would have. Three pieces make
the two runs identical:

* the training state also holds the random-number generators of every process (Python, NumPy,
  torch CPU and CUDA; :func:`rng_state` / :func:`restore_rng_state`, saved and restored by
  ``SLVideoRecurrentModel``);
* :class:`ResumableSampler` (BasicSR's ``EnlargedSampler`` with the same order) starts the resumed
  epoch at the first sample the killed run had not trained on, and hands datasets that accept it
  a *draw number* with each index: a number unique to that sample of that epoch, from which
  ``SLVideoRecurrentDataset`` seeds its random window, crop and flips. The data of a batch thus
  depends on neither the worker that loads it nor anything drawn before it;
* the training loader draws its worker seeds from a generator of its own, so that loading data
  never moves the global torch generator the network's training may use.

:func:`install` puts these into BasicSR's ``basicsr.train`` module (``sl-train`` calls it).
Exactness needs ``manual_seed`` in the option file (BasicSR otherwise picks a new random seed in
each run) and, on CUDA, deterministic kernels (BasicSR turns ``cudnn.benchmark`` on).
"""
import os.path as osp
import random

import numpy as np
import torch
from basicsr.data.data_sampler import EnlargedSampler
from basicsr.utils import check_resume, get_root_logger, scandir
from sl_arch.utils.checkpoint import read_checkpoint
from sl_arch.utils.files import remove_stale_temporaries

#: (epoch, iteration) of the training state the current process resumes from, set by
#: :func:`load_resume_state` and read when the training loader is built.
_resume_point = None


def rng_state():
    """The state of every random-number generator of this process (CPU tensors and plain objects)."""
    state = {'python': random.getstate(), 'numpy': np.random.get_state(), 'torch': torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state):
    """Put back the generators saved by :func:`rng_state` (CUDA only where both runs have it)."""
    random.setstate(state['python'])
    np.random.set_state(state['numpy'])
    torch.set_rng_state(state['torch'])
    if 'cuda' in state and torch.cuda.is_available() and len(state['cuda']) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state['cuda'])


class ResumableSampler(EnlargedSampler):
    """BasicSR's ``EnlargedSampler`` (same order for the same epoch) that can start mid-epoch.

    For a dataset with ``takes_draw_numbers = True`` each item is an ``(index, draw)`` pair,
    ``draw = epoch * total_size + position``, unique over epochs and processes; other datasets
    get plain indices as from BasicSR.

    Args:
        dataset (Dataset): The training set.
        num_replicas (int): World size.
        rank (int): Rank of this process.
        ratio (int): ``dataset_enlarge_ratio``. Default: 1.
    """

    def __init__(self, dataset, num_replicas, rank, ratio=1):
        super().__init__(dataset, num_replicas, rank, ratio)
        self.start_epoch, self.start_sample = 0, 0

    def start_at(self, epoch, sample):
        """Let epoch ``epoch`` begin with its ``sample``-th sample (0-based) instead of its first."""
        self.start_epoch, self.start_sample = epoch, sample

    def __iter__(self):
        generator = torch.Generator()
        generator.manual_seed(self.epoch)
        positions = torch.randperm(self.total_size, generator=generator).tolist()
        positions = positions[self.rank:self.total_size:self.num_replicas]
        if self.epoch == self.start_epoch:
            positions = positions[self.start_sample:]
        size = len(self.dataset)
        if getattr(self.dataset, 'takes_draw_numbers', False):
            return iter([(position % size, self.epoch * self.total_size + position) for position in positions])
        return iter([position % size for position in positions])


def load_resume_state(opt):
    """BasicSR's ``load_resume_state`` without ``torch.cuda``: the state is read onto the CPU.

    The optimizers move their state to the parameters' device when it is loaded. Remembers the
    epoch and iteration for :func:`create_train_val_dataloader`, and removes the temporary files a
    run killed while saving a checkpoint left in the experiment's ``models`` / ``training_states``.

    Args:
        opt (dict): Parsed options (``auto_resume``, ``name``, ``path.resume_state``).

    Returns:
        dict | None: The training state, or None for a fresh start.
    """
    global _resume_point
    _resume_point = None
    if opt.get('rank', 0) == 0:  # a run killed while saving leaves a temporary checkpoint behind
        for folder in (opt['path']['models'], opt['path']['training_states']):
            remove_stale_temporaries(folder)
    resume_state_path = opt['path'].get('resume_state')
    if opt['auto_resume']:
        state_folder = osp.join(opt['root_path'], 'experiments', opt['name'], 'training_states')
        if osp.isdir(state_folder):
            iters = [int(name.split('.state')[0]) for name in scandir(state_folder, suffix='.state')]
            if iters:
                resume_state_path = osp.join(state_folder, f'{max(iters)}.state')
                opt['path']['resume_state'] = resume_state_path
    if not resume_state_path:
        return None
    resume_state = read_checkpoint(resume_state_path)
    check_resume(opt, resume_state['iter'])
    _resume_point = (resume_state['epoch'], resume_state['iter'])
    return resume_state


def position_in_epoch(epoch, iteration, batches_per_epoch):
    """Batches of ``epoch`` trained by iteration ``iteration``, or None where the two do not fit.

    BasicSR's loop trains ``batches_per_epoch`` full batches (the loader drops the last partial
    one) in every epoch from epoch 0, so epoch ``e`` starts after iteration ``e * batches_per_epoch``.
    """
    done = iteration - epoch * batches_per_epoch
    return done if 0 <= done <= batches_per_epoch else None


def make_create_train_val_dataloader(create):
    """Wrap BasicSR's ``create_train_val_dataloader``: own worker-seed generator, resumed position."""

    def create_train_val_dataloader(opt, logger):
        result = create(opt, logger)
        train_loader, train_sampler = result[:2]
        seed = opt.get('manual_seed') or 0
        train_loader.generator = torch.Generator().manual_seed(seed + opt.get('rank', 0))
        if _resume_point is not None and isinstance(train_sampler, ResumableSampler):
            epoch, iteration = _resume_point
            batch_size = train_loader.batch_size
            done = position_in_epoch(epoch, iteration, len(train_sampler) // batch_size)
            if done is None:
                get_root_logger().warning(
                    f'Iteration {iteration} does not lie in epoch {epoch} with {len(train_sampler) // batch_size} '
                    'batches per epoch (batch size or data changed since the state was saved): the resumed '
                    'epoch starts from its first batch.')
            else:
                train_sampler.start_at(epoch, done * batch_size)
                logger.info(f'Resuming the data order of epoch {epoch} after its first {done} batches.')
        return result

    return create_train_val_dataloader


def install(basicsr_train):
    """Replace the resume hooks of BasicSR's ``basicsr.train`` module with ours."""
    if getattr(basicsr_train, 'EnlargedSampler', None) is ResumableSampler:
        return
    basicsr_train.load_resume_state = load_resume_state
    basicsr_train.EnlargedSampler = ResumableSampler
    basicsr_train.create_train_val_dataloader = make_create_train_val_dataloader(
        basicsr_train.create_train_val_dataloader)
