"""Distributed launch for ``sl-train`` / ``sl-test`` without editing BasicSR.

BasicSR 1.4.2's launcher always asks for NCCL, calls ``torch.cuda.set_device`` and only knows the
``--local_rank`` spelling. ``torchrun`` passes ``LOCAL_RANK`` in the environment (and older
``torch.distributed.launch`` passes ``--local-rank=N`` or ``--local_rank=N``). Here the process
group is initialised from the torchrun environment with gloo on CPU and NCCL on CUDA, and
BasicSR's ``parse_options`` is pointed at this initialiser, so ``opt['dist']``, ``opt['rank']`` and
``opt['world_size']`` come out right.
"""
import os

import torch
import torch.distributed as dist

from sl_arch.utils.errors import SLError

_LOCAL_RANK_FLAGS = ('--local_rank', '--local-rank')
_TORCHRUN_VARS = ('RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT')


def normalize_local_rank_args(argv):
    """Rewrite every local-rank spelling to BasicSR's ``--local_rank N`` and export ``LOCAL_RANK``.

    Args:
        argv (list[str]): Command-line arguments without the program name.

    Returns:
        list[str]: The arguments with ``--local-rank=N``, ``--local-rank N`` and
        ``--local_rank=N`` replaced by ``--local_rank N``.
    """
    normalized, position = [], 0
    while position < len(argv):
        arg = argv[position]
        flag, has_value, value = arg.partition('=')
        if flag in _LOCAL_RANK_FLAGS:
            if not has_value:
                if position + 1 >= len(argv):
                    raise SLError(f'{flag} needs a value, e.g. {flag} 0 (or let torchrun set LOCAL_RANK).')
                position += 1
                value = argv[position]
            normalized += ['--local_rank', value]
            os.environ.setdefault('LOCAL_RANK', value)
        else:
            normalized.append(arg)
        position += 1
    return normalized


def default_backend():
    """Return ``'nccl'`` where CUDA is present, ``'gloo'`` on the CPU."""
    return 'nccl' if torch.cuda.is_available() else 'gloo'


def init_distributed(launcher='pytorch', backend=None, **kwargs):
    """Initialise the default process group from torchrun's environment variables.

    Args:
        launcher (str): Only ``'pytorch'`` (torchrun / torch.distributed.launch) is supported.
        backend (str | None): ``'gloo'`` or ``'nccl'``; None picks NCCL on CUDA and gloo on CPU.
        **kwargs: Passed to ``torch.distributed.init_process_group``.

    Raises:
        SLError: the launcher is unknown or the torchrun environment variables are missing.
    """
    if launcher != 'pytorch':
        raise SLError(f'--launcher {launcher} is not supported by sl-train; use --launcher pytorch under torchrun.')
    if dist.is_initialized():
        return
    missing = [name for name in _TORCHRUN_VARS if name not in os.environ]
    if missing:
        raise SLError(f'--launcher pytorch needs the torchrun environment ({", ".join(missing)} not set); '
                      'start with: torchrun --nproc_per_node N -m sl_arch.train -opt FILE.yml --launcher pytorch')
    backend = backend or default_backend()
    if backend == 'nccl':
        local_rank = int(os.environ.get('LOCAL_RANK', os.environ['RANK']))
        torch.cuda.set_device(local_rank % torch.cuda.device_count())
    dist.init_process_group(backend=backend, **kwargs)


def install_basicsr_launcher():
    """Make BasicSR's ``parse_options`` initialise distributed training through :func:`init_distributed`."""
    import basicsr.utils.options as basicsr_options

    basicsr_options.init_dist = init_distributed


def destroy_distributed():
    """Tear the process group down at the end of a run (no-op when none was started)."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
