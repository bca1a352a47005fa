"""Checkpoints: atomic saving, readable loading, and clear errors for another architecture.

sl_arch checkpoints are BasicSR checkpoints (``{'params': state_dict, ...}``) with one extra key,
``network_g``: the option dict (``type`` plus constructor keys) the network was built from, so
that tools can rebuild the network without an option file.

:func:`load_network` is the one way from a checkpoint to a network (sl-infer, sl-export, the
demo, the benchmarks): it reads the checkpoint, resolves the network options by one precedence
rule, builds the network through BasicSR's registry and loads the weights strictly.
"""
import os
import re
import sys
from typing import NamedTuple

import torch
import yaml

from sl_arch.utils.errors import CheckpointError, SLError
from sl_arch.utils.files import atomic_write

NETWORK_OPT_KEY = 'network_g'
#: How :func:`load_network` names its inputs in messages: the command-line options by default.
CLI_NAMES = {'weights': '--weights', 'opt': '--opt', 'param_key': '--param-key'}


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
    if os.path.isdir(path):
        raise CheckpointError(f'checkpoint {path} is a folder; give a checkpoint file (.pth) in it.')
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


class LoadedNetwork(NamedTuple):
    """What :func:`load_network` returns (a tuple: ``net, net_opt, spec, source, param_key = ...``).

    Attributes:
        net (nn.Module): The network in eval mode on the requested device, weights loaded strictly.
        net_opt (dict): The resolved ``network_g`` (``type`` plus constructor keys), as given.
        spec (ArchSpec): What the network needs from its input (:func:`sl_arch.archs.spec.arch_spec`).
        source (str): Where ``net_opt`` came from: ``'net_opt'``, the option file or the checkpoint.
        param_key (str | None): The checkpoint key the weights were read from (None: a bare state dict).
    """
    net: torch.nn.Module
    net_opt: dict
    spec: object
    source: str
    param_key: object


def read_weights_file(weights, param_key=None, names=None):
    """Read a checkpoint given by a user, refusing a folder and a ``param_key`` it lacks.

    Args:
        weights (str): Checkpoint path.
        param_key (str | None): Requested weights key; ``params_ema`` may fall back to ``params``.
        names (dict | None): How messages name the inputs (see :data:`CLI_NAMES`).

    Raises:
        CheckpointError: naming the file or option and the fix.
    """
    names = dict(CLI_NAMES, **(names or {}))
    if os.path.isdir(weights):
        found = sorted((name for name in os.listdir(weights) if name.endswith('.pth')), key=_natural_key)
        example = os.path.join(weights, 'net_g_latest.pth' if 'net_g_latest.pth' in found or not found else found[-1])
        raise CheckpointError(f'{names["weights"]} {weights} is a folder; give the checkpoint file in it '
                              f'(e.g. {example}).')
    checkpoint = read_checkpoint(weights)
    if param_key and param_key != 'params_ema' and isinstance(checkpoint, dict) and param_key not in checkpoint:
        raise CheckpointError(f'{names["param_key"]} {param_key}: checkpoint {weights} has no such key (it has '
                              f'{", ".join(sorted(map(str, checkpoint))[:6])}); use params or params_ema, '
                              f'or leave {names["param_key"]} out.')
    return checkpoint


def _natural_key(name):
    return [int(part) if part.isdigit() else part for part in re.split(r'(\d+)', name)]


def read_network_options(opt_path, names=None):
    """The ``network_g`` section of an option file (or a file that is only that section).

    Raises:
        SLError: the file is missing, a folder, not YAML, or has no ``network_g`` with a type.
    """
    names = dict(CLI_NAMES, **(names or {}))
    if os.path.isdir(opt_path):
        raise SLError(f'option file {opt_path} is a folder; give the .yml file ({names["opt"]}).')
    if not os.path.isfile(opt_path):
        raise SLError(f'option file {opt_path} does not exist; check {names["opt"]}.')
    try:
        with open(opt_path, encoding='utf-8') as handle:
            opt = yaml.safe_load(handle)
    except yaml.YAMLError as error:
        raise SLError(f'option file {opt_path} is not valid YAML ({error}); fix it.') from None
    net_opt = opt.get(NETWORK_OPT_KEY, opt) if isinstance(opt, dict) else None
    if not isinstance(net_opt, dict) or 'type' not in net_opt:
        raise SLError(f'option file {opt_path} has no network_g section with a type; '
                      'give the option file the checkpoint was trained with.')
    return dict(net_opt)


def _without_paths(net_opt):
    """``net_opt`` less its ``*_path`` keys (files of pretrained parts: the checkpoint holds those weights)."""
    return {key: value for key, value in net_opt.items() if not key.endswith('_path')}


def resolve_network_options(weights, checkpoint, net_opt=None, opt_path=None, names=None):
    """The network options of a checkpoint, by one precedence rule: the most explicit source wins.

    1. ``net_opt`` given by the caller (code: benchmarks, tests);
    2. else the ``network_g`` section of the option file ``opt_path`` (``--opt``, the test option
       file of the demo): the user named it for this run;
    3. else the ``network_g`` metadata sl-train saves in every checkpoint.

    Returns:
        tuple[dict, str]: The options (a copy) and their source, for messages.

    Raises:
        SLError: no explicit options and no metadata, or an unusable option file.
    """
    names = dict(CLI_NAMES, **(names or {}))
    metadata = checkpoint.get(NETWORK_OPT_KEY) if isinstance(checkpoint, dict) else None
    metadata = dict(metadata) if isinstance(metadata, dict) and 'type' in metadata else None
    if net_opt is not None:
        resolved, source = dict(net_opt), 'net_opt'
    elif opt_path:
        resolved, source = read_network_options(opt_path, names), opt_path
    elif metadata is not None:
        return metadata, weights
    else:
        raise CheckpointError(f'checkpoint {weights} carries no network_g metadata (it was not saved by sl-train); '
                              f'pass the option file it was trained with: {names["opt"]} FILE.yml.')
    return resolved, source


def differing_options(first, second):
    """The keys whose values differ between two ``network_g`` of the same type, constructor defaults
    filled in and ``*_path`` keys left out (those name files of pretrained parts, not the network)."""
    from sl_arch.archs.spec import options_with_defaults
    first, second = (_without_paths(options_with_defaults(options)) for options in (first, second))
    return sorted(key for key in set(first) | set(second) if first.get(key) != second.get(key))


def build_from_options(net_opt, source='network_g'):
    """Build ``net_opt``'s network through BasicSR's registry; ``*_path`` keys are not passed.

    Pretrained-part files (``spynet_path``, ``edvr_path``, ``flow_load_path``) are dropped: the
    checkpoint about to be loaded holds every weight, so those files are not needed.

    Raises:
        SLError: an unregistered type, or options the constructor does not take.
    """
    from basicsr.archs import build_network
    from basicsr.utils.registry import ARCH_REGISTRY
    if not isinstance(net_opt, dict) or net_opt.get('type') not in ARCH_REGISTRY:
        net_type = net_opt.get('type') if isinstance(net_opt, dict) else None
        raise SLError(f'architecture {net_type!r} from {source} is not registered; check network_g.type '
                      '(e.g. SemanticLens, BasicVSR, IconVSR, EDVR).')
    try:
        return build_network(_without_paths(net_opt))
    except (TypeError, ValueError, AssertionError) as error:
        raise SLError(f'network_g from {source} does not fit {net_opt["type"]}: {error}; '
                      'fix the option file.') from None


def load_network(weights, net_opt=None, opt_path=None, param_key=None, device='cpu', names=None):
    """The one way from a checkpoint to a network.

    Reads ``weights``, resolves the options (:func:`resolve_network_options`: ``net_opt`` >
    ``opt_path`` > the checkpoint's ``network_g``), builds the network through BasicSR's
    ``ARCH_REGISTRY`` (importing sl_arch has registered its architectures), loads the weights
    strictly (a ``module.`` prefix is stripped) and moves it to ``device`` in eval mode.

    Explicit options of the checkpoint's type that load but differ from its saved ``network_g``
    (keys without weights, e.g. ``window_size``, change what the network computes) print one
    ``warning:`` line on stderr naming the keys.

    Args:
        weights (str): Checkpoint file (sl-train or BasicSR), or a bare state dict saved by torch.
        net_opt (dict | None): ``network_g`` options; win over ``opt_path`` and the metadata.
        opt_path (str | None): Option file whose ``network_g`` section describes the network.
        param_key (str | None): Weights key: None picks ``params_ema`` when present, else
            ``params``; ``params_ema`` falls back to ``params`` (as BasicSR does); any other key
            must exist.
        device (str | torch.device): Where the network goes. Default: ``'cpu'``.
        names (dict | None): How messages name the inputs (default :data:`CLI_NAMES`).

    Returns:
        LoadedNetwork: ``(net, net_opt, spec, source, param_key)``.

    Raises:
        CheckpointError / SLError: one line naming the file or option and the fix: a folder as
            weights, an unknown param key, no metadata and no option file, an unregistered type,
            options that do not fit, weights of another architecture (missing / unexpected /
            mismatched keys named).
    """
    from sl_arch.archs.spec import arch_spec
    checkpoint = read_weights_file(weights, param_key, names)
    resolved, source = resolve_network_options(weights, checkpoint, net_opt, opt_path, names)
    net = build_from_options(resolved, source)
    state_dict = network_state_dict(checkpoint, param_key, weights)
    used_key = next((key for key in ([param_key] if param_key else []) + ['params_ema', 'params']
                     if isinstance(checkpoint.get(key), dict)), None)
    metadata = checkpoint.get(NETWORK_OPT_KEY)
    del checkpoint
    load_state_strict(net, state_dict, weights)
    if source != weights and isinstance(metadata, dict) and metadata.get('type') == resolved['type']:
        differing = differing_options(resolved, metadata)
        if differing:
            print(f'warning: network_g from {source} differs from the one saved in {weights} in '
                  f'{", ".join(differing)}; using the one from {source}.', file=sys.stderr)
    return LoadedNetwork(net.to(device).eval(), resolved, arch_spec(resolved), source, used_key)
