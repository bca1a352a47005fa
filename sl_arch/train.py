"""``sl-train``: BasicSR's own ``train_pipeline`` with sl_arch's classes registered.

Usage::

    sl-train -opt options/train/SemanticLens/train_SemanticLens_demo_cpu.yml [--auto_resume]
    torchrun --nproc_per_node 2 -m sl_arch.train -opt FILE.yml --launcher pytorch

``experiments/``, ``tb_logger/`` are created in the current directory. Differences from
``python basicsr/train.py``: ``--auto_resume`` also works without CUDA, ``--launcher pytorch``
uses gloo on the CPU and NCCL on CUDA and accepts ``--local-rank``, ``--local_rank`` or
``LOCAL_RANK``; bad input ends with one ``error:`` line and exit code 2.
"""
import os
import os.path as osp
import sys

import sl_arch  # noqa: F401  (registers archs, datasets, models; must precede basicsr)
import basicsr.train as basicsr_train
from basicsr.utils import check_resume, scandir
from sl_arch.utils.checkpoint import read_checkpoint
from sl_arch.utils.dist import destroy_distributed, install_basicsr_launcher, normalize_local_rank_args
from sl_arch.utils.errors import SLError, cli_entry


def option_file_from_args(argv):
    """Return the ``-opt`` value of ``argv`` after checking that the file exists.

    Raises:
        SLError: ``-opt`` is missing or names no file.
    """
    for position, arg in enumerate(argv):
        if arg == '-opt' and position + 1 < len(argv):
            path = argv[position + 1]
            if not osp.isfile(path):
                raise SLError(f'option file {path} does not exist; pass -opt with a YAML file from options/.')
            return path
    raise SLError('no option file given; run with -opt FILE.yml (see options/).')


def load_resume_state(opt):
    """BasicSR's ``load_resume_state`` without ``torch.cuda``: the state is read onto the CPU.

    The optimizers move their state to the parameters' device when it is loaded.

    Args:
        opt (dict): Parsed options (``auto_resume``, ``name``, ``path.resume_state``).

    Returns:
        dict | None: The training state, or None for a fresh start.
    """
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
    return resume_state


def run_pipeline(pipeline, argv):
    """Run a BasicSR pipeline in the current directory with our launcher and entry-point fixes."""
    argv = normalize_local_rank_args(list(argv))
    option_file_from_args(argv)
    sys.argv = [sys.argv[0]] + argv
    install_basicsr_launcher()
    try:
        pipeline(os.getcwd())
    finally:
        destroy_distributed()


@cli_entry
def main(argv=None):
    """Train with BasicSR's ``train_pipeline``; see the module docstring for the options."""
    basicsr_train.load_resume_state = load_resume_state
    run_pipeline(basicsr_train.train_pipeline, sys.argv[1:] if argv is None else argv)


if __name__ == '__main__':
    main()
