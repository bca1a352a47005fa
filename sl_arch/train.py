"""``sl-train``: BasicSR's own ``train_pipeline`` with sl_arch's classes registered.

Usage::

    sl-train -opt options/train/SemanticLens/train_SemanticLens_demo_cpu.yml [--auto_resume]
    sl-train -opt FILE.yml --force_yml train:total_iter=1000 val:val_freq=500
    torchrun --nproc_per_node 2 -m sl_arch.train -opt FILE.yml --launcher pytorch

``experiments/``, ``tb_logger/`` are created in the current directory. Differences from
``python basicsr/train.py``: ``--auto_resume`` also works without CUDA, ``--launcher pytorch``
uses gloo on the CPU and NCCL on CUDA and accepts ``--local-rank``, ``--local_rank`` or
``LOCAL_RANK``; the option file, ``--force_yml`` and the output folders are checked before
anything is written, and bad input ends with one ``error:`` line and exit code 2. A mistake
found only once BasicSR has started (a checkpoint of another network, data that cannot be read)
leaves nothing behind: the earlier ``experiments/<name>`` (``results/<name>``) that BasicSR moved
aside to ``<name>_archived_<time>`` takes its name back.

Time budgets: with ``train.cpu_seconds: N`` (or ``gpu_seconds`` on CUDA) in the option file,
training ends after the iteration in which the training process has used N CPU seconds (GPU
seconds), as it would at ``total_iter``: the final checkpoint is saved and the validation sets
are tested. ``experiments/<name>/train_time.json`` records the seconds and iterations.
"""
import argparse
import contextlib
import glob
import os
import shutil
import sys

import basicsr.train as basicsr_train
import basicsr.utils.misc as basicsr_misc
import basicsr.utils.options as basicsr_options
from basicsr.utils import set_random_seed
from sl_arch.utils import resume
from sl_arch.utils.dist import destroy_distributed, install_basicsr_launcher, normalize_local_rank_args
from sl_arch.utils.errors import SLError, cli_entry
from sl_arch.utils.files import OutputError, check_writable
from sl_arch.utils.options import load_checked_options

#: ``path`` keys BasicSR's ``make_exp_dirs`` does not create folders for (substrings, as BasicSR tests them).
NOT_FOLDER_PATH_KEYS = ('strict_load', 'pretrain_network', 'resume', 'param_key')

#: ``path`` keys BasicSR's ``parse_options`` sets itself from the current folder and ``name``.
DERIVED_PATH_KEYS = {True: ('experiments_root', 'models', 'training_states', 'log', 'visualization'),
                     False: ('results_root', 'log', 'visualization')}


class BudgetedLoader:
    """A training data loader that yields nothing more once the model's time budget is spent.

    BasicSR's loop fetches the next batch after every iteration (after its logging, checkpoint
    and validation); when the budget is spent the epoch ends there and every later epoch is
    empty, so the loop falls through to its final save and validation.

    Args:
        loader (DataLoader): BasicSR's training loader.
        spent (callable): Returns True once the budget is spent.
    """

    def __init__(self, loader, spent):
        self.loader, self.spent = loader, spent

    def __iter__(self):
        if self.spent():
            return
        for batch in self.loader:
            yield batch
            if self.spent():
                return

    def __len__(self):
        return len(self.loader)


def install_time_budget(basicsr_train):
    """Make BasicSR's ``train_pipeline`` end training when the model says its budget is spent.

    Wraps ``build_model`` (to keep the model of the run) and ``create_train_val_dataloader``
    (to wrap the training loader in :class:`BudgetedLoader`) in ``basicsr.train``. Models without
    ``budget_spent`` (BasicSR's own) train to ``total_iter`` as before. Installing twice does nothing.
    """
    if getattr(basicsr_train, '_sl_time_budget', False):
        return
    run = {}
    build_model, create_loaders = basicsr_train.build_model, basicsr_train.create_train_val_dataloader

    def build_and_keep(opt):
        run['model'] = build_model(opt)
        return run['model']

    def spent():
        budget_spent = getattr(run.get('model'), 'budget_spent', None)
        return budget_spent is not None and budget_spent()

    def create_budgeted_loaders(opt, logger):
        run.clear()
        train_loader, *others = create_loaders(opt, logger)
        return (BudgetedLoader(train_loader, spent), *others)

    basicsr_train.build_model = build_and_keep
    basicsr_train.create_train_val_dataloader = create_budgeted_loaders
    basicsr_train._sl_time_budget = True


class _ArgumentParser(argparse.ArgumentParser):
    """An argument parser whose errors are one :class:`SLError` line instead of usage + exit."""

    def error(self, message):
        raise SLError(f'{message}; run {self.prog} -h for the options.')


def argument_parser(prog, doc):
    """The command line of BasicSR's ``parse_options`` (same arguments), with help texts.

    Args:
        prog (str): ``'sl-train'`` or ``'sl-test'``.
        doc (str): The command's module docstring, shown by ``-h``.
    """
    parser = _ArgumentParser(prog=prog, description=doc.replace('``', '').replace('::', ':'),
                             formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('-opt', metavar='FILE.yml', help='option file (required), e.g. from options/')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm'], default='none',
                        help='job launcher: none (one process) or pytorch (under torchrun); default: none')
    parser.add_argument('--auto_resume', action='store_true',
                        help='resume from the latest state in experiments/<name>/training_states')
    parser.add_argument('--debug', action='store_true',
                        help='debug run: name prefixed with debug_, validation every 8 iterations, no tb_logger')
    parser.add_argument('--local_rank', type=int, default=0,
                        help='process rank on this machine (torchrun sets LOCAL_RANK instead); default: 0')
    parser.add_argument('--force_yml', nargs='+', metavar='SECTION:KEY=VALUE',
                        help='override option-file values, e.g. train:total_iter=1000 train:optim_g:lr=0.0002')
    return parser


def check_output_folders(opt, root_path):
    """Refuse output folders that BasicSR could not create, before it creates any.

    These are ``experiments/<name>`` (training) or ``results/<name>`` (testing) in ``root_path``,
    ``tb_logger/<name>`` when used, and every other ``path`` entry BasicSR's ``make_exp_dirs``
    creates.

    Args:
        opt (dict): Options parsed by BasicSR's ``parse_options``.
        root_path (str): The folder the pipeline runs in.

    Raises:
        OutputError: naming the folder, what is in the way, and the fix.
    """
    is_train = opt['is_train']
    folders = [(key, path) for key, path in opt['path'].items()
               if isinstance(path, str) and not any(word in key for word in NOT_FOLDER_PATH_KEYS)]
    logger = opt.get('logger') or {}
    if is_train and logger.get('use_tb_logger') and 'debug' not in opt['name']:
        folders.append(('tb_logger', os.path.join(root_path, 'tb_logger', opt['name'])))
    command = 'sl-train' if is_train else 'sl-test'
    for key, path in folders:
        try:
            check_writable(path, key)
        except OutputError as error:
            obstacle = str(error).split('; choose another')[0]
            if key in DERIVED_PATH_KEYS[is_train] or key == 'tb_logger':
                fix = (f'run {command} from another folder, or move away the file in the way, or make the folder '
                       'writable')
            else:
                fix = f'fix path.{key} in the option file'
            raise OutputError(f'{obstacle}; {fix}.') from None


def folders_moved_aside(opt, root_path):
    """The folders BasicSR's pipeline will move to ``<folder>_archived_<time>`` before it loads any weights.

    Testing moves ``results/<name>``. Training moves ``experiments/<name>`` (and ``tb_logger/<name>`` when used) unless
    it resumes: from ``path.resume_state``, or with ``--auto_resume`` from a state it finds there (BasicSR's
    ``load_resume_state``, which ignores ``path.resume_state`` then).
    """
    if not opt['is_train']:
        return [opt['path']['results_root']]
    if opt.get('auto_resume'):
        states = os.path.join('experiments', opt['name'], 'training_states')
        if glob.glob(os.path.join(glob.escape(states), '*.state')):
            return []
    elif opt['path'].get('resume_state'):
        return []
    folders = [opt['path']['experiments_root']]
    if (opt.get('logger') or {}).get('use_tb_logger') and 'debug' not in opt['name']:
        folders.append(os.path.join(root_path, 'tb_logger', opt['name']))
    return folders


def check_weights_outside_moved_folders(opt, root_path):
    """Refuse ``path.pretrain_network_*`` files inside a folder BasicSR moves aside before loading them.

    Weights in ``experiments/<name>/models`` of the run's own name were moved to ``experiments/<name>_archived_<time>``
    first, and the run then failed with "does not exist".

    Raises:
        SLError: naming the key, the folder and the fix.
    """
    moved = [os.path.realpath(folder) for folder in folders_moved_aside(opt, root_path)]
    for key, file in opt['path'].items():
        if 'pretrain_network' not in key or not isinstance(file, str):
            continue
        real = os.path.realpath(os.path.expanduser(file))
        for folder in moved:
            if os.path.commonpath([real, folder]) == folder:
                command = 'sl-train' if opt['is_train'] else 'sl-test'
                raise SLError(f'path.{key} {file} lies in {folder}, which {command} moves aside to '
                              f'{os.path.basename(folder)}_archived_<time> before it loads weights; copy the file out '
                              'of that folder and point to the copy, or give the run another name.')


def parse_options_checked(root_path, is_train=True):
    """BasicSR's ``parse_options``, then :func:`check_output_folders` and :func:`check_weights_outside_moved_folders`
    on its result.

    BasicSR seeds the generators before it applies ``--force_yml``, so ``--force_yml
    manual_seed=1`` was logged but trained with the file's seed; they are seeded again here with
    the final ``manual_seed`` (the same state as BasicSR's when the seed did not change).
    """
    opt, args = basicsr_options.parse_options(root_path, is_train)
    set_random_seed(opt['manual_seed'] + opt['rank'])
    check_output_folders(opt, root_path)
    check_weights_outside_moved_folders(opt, root_path)
    return opt, args


def _holds_only_start_up_files(folder):
    """Whether ``folder`` holds no file but what a run writes before it has results: BasicSR's log, the option
    file's copy and TensorBoard's event files (empty folders such as ``models/`` aside)."""
    return all(name.endswith(('.log', '.yml')) or name.startswith('events.out.tfevents.')
               for _, _, files in os.walk(folder) for name in files)


@contextlib.contextmanager
def output_folders_restored_on_failure(*modules):
    """Undo BasicSR's ``mkdir_and_rename`` when the run fails before it has written anything but its start-up files.

    BasicSR's pipelines move an earlier ``experiments/<name>`` (``results/<name>``, ``tb_logger/<name>``) aside to
    ``<folder>_archived_<time>`` and make a new one before they build the data loaders and the model, so a mistake
    found only then (a checkpoint of another network, an empty data folder) buried the last good run under an archive
    and left a folder holding a log. Here, when the block raises and every folder this run made holds only start-up
    files (:func:`_holds_only_start_up_files`), those folders are removed and the archived ones take their names back;
    a run that saved a checkpoint, a metric or an image keeps everything.

    Args:
        modules: Modules besides ``basicsr.utils.misc`` that bound ``mkdir_and_rename`` by name (``basicsr.train``).
    """
    original = basicsr_misc.mkdir_and_rename
    made = []  # (folder, its archived predecessor or None), in the order made

    def mkdir_and_rename(path):
        before = set(glob.glob(f'{glob.escape(path)}_archived_*'))
        existed = os.path.exists(path)
        original(path)
        archived = sorted(set(glob.glob(f'{glob.escape(path)}_archived_*')) - before) if existed else []
        made.append((path, archived[-1] if archived else None))

    patched = [module for module in (basicsr_misc, *modules) if getattr(module, 'mkdir_and_rename', None) is original]
    for module in patched:
        module.mkdir_and_rename = mkdir_and_rename
    try:
        yield
    except BaseException:
        if made and all(os.path.isdir(path) and _holds_only_start_up_files(path) for path, _ in made):
            for path, archived in reversed(made):
                shutil.rmtree(path)
                if archived is not None:
                    os.rename(archived, path)
        raise
    finally:
        for module in patched:
            module.mkdir_and_rename = original


def run_pipeline(pipeline, argv, is_train, prog, doc):
    """Run a BasicSR pipeline in the current directory with our checks, launcher and entry-point fixes.

    ``-h`` prints the usage and returns. The arguments, option file and ``--force_yml`` entries
    are checked (:func:`sl_arch.utils.options.load_checked_options`) before BasicSR reads them,
    and the output folders before BasicSR creates them; a run that fails before it has results
    leaves them as they were (:func:`output_folders_restored_on_failure`).

    Args:
        pipeline (callable): ``basicsr.train.train_pipeline`` or ``basicsr.test.test_pipeline``.
        argv (list[str]): Command-line arguments without the program name.
        is_train (bool): Training (True) or testing.
        prog (str): The command name, for messages and ``-h``.
        doc (str): The command's usage text for ``-h``.
    """
    argv = normalize_local_rank_args(list(argv))
    args = argument_parser(prog, doc).parse_args(argv)
    if args.opt is None:
        raise SLError(f'no option file given; run with -opt FILE.yml (see options/, or {prog} -h).')
    load_checked_options(args.opt, args.force_yml, is_train, args.auto_resume)
    sys.argv = [sys.argv[0]] + argv
    install_basicsr_launcher()
    sys.modules[pipeline.__module__].parse_options = parse_options_checked
    try:
        with output_folders_restored_on_failure(sys.modules[pipeline.__module__]):
            pipeline(os.getcwd())
    finally:
        destroy_distributed()


@cli_entry
def main(argv=None):
    """Train with BasicSR's ``train_pipeline``; see the module docstring for the options."""
    resume.install(basicsr_train)
    install_time_budget(basicsr_train)
    run_pipeline(basicsr_train.train_pipeline, sys.argv[1:] if argv is None else argv, True, 'sl-train', __doc__)


if __name__ == '__main__':
    main()
