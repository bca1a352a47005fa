"""Exact ``--auto_resume``: a killed and resumed run ends with the weights of an uninterrupted one."""
import os.path as osp

from basicsr.utils import check_resume, scandir
from sl_arch.utils.checkpoint import read_checkpoint


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


def install(basicsr_train):
    """Replace the resume hooks of BasicSR's ``basicsr.train`` module with ours."""
    basicsr_train.load_resume_state = load_resume_state
