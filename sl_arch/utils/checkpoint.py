"""Checkpoints: atomic saving, readable loading, and clear errors for another architecture.

sl_arch checkpoints are BasicSR checkpoints (``{'params': state_dict, ...}``) with one extra key,
``network_g``: the option dict (``type`` plus constructor keys) the network was built from, so
that tools can rebuild the network without an option file.
"""
import os

import torch

from sl_arch.utils.errors import CheckpointError
from sl_arch.utils.files import atomic_write

NETWORK_OPT_KEY = 'network_g'


def atomic_torch_save(obj, path):
    """``torch.save`` to a temporary file in the same folder, then rename over ``path``.

    A process killed during the save leaves the previous file (or nothing) at ``path``, never a
    truncated one.
    """

    def write(tmp_path):
        with open(tmp_path, 'wb') as handle:
            torch.save(obj, handle)
            handle.flush()
            os.fsync(handle.fileno())

    atomic_write(path, write)


def read_checkpoint(path):
    """Load a checkpoint file onto the CPU.

    Raises:
        CheckpointError: the file is missing or is not a readable torch checkpoint.
    """
    if not os.path.isfile(path):
        raise CheckpointError(f'checkpoint {path} does not exist; check the path (--weights / path.pretrain_network_g).')
    try:
        return torch.load(path, map_location='cpu', weights_only=False)
    except Exception as error:  # torch raises many types for a corrupt file
        raise CheckpointError(f'checkpoint {path} cannot be read ({type(error).__name__}: {error}); '
                              'it is corrupt or truncated, use another checkpoint.') from None


def network_state_dict(checkpoint, param_key='params', path='checkpoint'):
    """Pick the network weights out of a checkpoint dict.

    Args:
        checkpoint (dict): A loaded checkpoint, BasicSR style or a bare state dict.
        param_key (str | None): Preferred key (``'params_ema'`` falls back to ``'params'``).
            None means ``params_ema`` if present, else ``params``, else the dict itself.
        path (str): For messages.
    """
    if not isinstance(checkpoint, dict):
        raise CheckpointError(f'{path} does not hold a state dict; it is not a network checkpoint.')
    keys = [param_key] if param_key else []
    keys += ['params_ema', 'params']
    for key in keys:
        if key in checkpoint and isinstance(checkpoint[key], dict):
            return checkpoint[key]
    if all(isinstance(value, torch.Tensor) for value in checkpoint.values()):
        return checkpoint
    raise CheckpointError(f'{path} has no network weights under {keys}; its keys are {sorted(checkpoint)[:8]}.')


def strip_module_prefix(state_dict):
    """Drop the ``'module.'`` prefix (DataParallel / DistributedDataParallel) from the keys of a state dict."""
    return {(key[7:] if key.startswith('module.') else key): value for key, value in state_dict.items()}


def load_state_strict(net, state_dict, path='checkpoint', limit=6):
    """Load ``state_dict`` into ``net``; on any difference raise one error that names the keys.

    Raises:
        CheckpointError: missing, unexpected, or shape-mismatched keys, with the first few of each.
    """
    state_dict = strip_module_prefix(state_dict)
    own = net.state_dict()
    missing = [key for key in own if key not in state_dict]
    unexpected = [key for key in state_dict if key not in own]
    mismatched = [f'{key} {tuple(state_dict[key].shape)} vs {tuple(own[key].shape)}' for key in own
                  if key in state_dict and tuple(state_dict[key].shape) != tuple(own[key].shape)]
    if missing or unexpected or mismatched:
        parts = []
        for title, items in (('missing', missing), ('unexpected', unexpected), ('shape mismatch (checkpoint vs network)', mismatched)):
            if items:
                more = f' (+{len(items) - limit} more)' if len(items) > limit else ''
                parts.append(f'{title}: {", ".join(items[:limit])}{more}')
        raise CheckpointError(f'checkpoint {path} was made for another architecture or configuration than '
                              f'{type(net).__name__}: ' + '; '.join(parts) +
                              '. Use the option file the checkpoint was trained with.')
    net.load_state_dict(state_dict, strict=True)
    return net
