"""Checks on option files and option dicts, so that a mistake fails at start with one clear line.

* :func:`load_option_file` reads a BasicSR option file (``-opt``) exactly as BasicSR does, with one
  error line for a missing file, a folder, a YAML syntax error, an empty file or a non-mapping.
* :func:`apply_force_yml` applies ``--force_yml key:sub=value`` entries as BasicSR will, refusing
  unknown sections, keys nothing reads and values whose type differs from the file's.
* :func:`check_options` refuses unknown or missing keys in the sections BasicSR and sl_arch read.
* :func:`reject_unknown_keys` is the one did-you-mean error for unknown keys of any section
  (:func:`reject_unknown_options` applies it to constructor keyword arguments).
"""
import copy
import difflib
import functools
import inspect
import math
import os.path as osp
from collections import OrderedDict

import yaml

from sl_arch.utils.errors import SLError

#: Extensions of option files.
OPTION_FILE_EXTENSIONS = ('.yml', '.yaml')

#: Our model; its sections (train, val, val.tile, path) are checked key by key.
SL_MODEL_TYPE = 'SLVideoRecurrentModel'

#: Top-level keys read by BasicSR's pipelines and models (or set by ``parse_options``); any
#: ``network_*`` key is accepted as well.
TOP_LEVEL_KEYS = ('name', 'model_type', 'scale', 'num_gpu', 'manual_seed', 'datasets', 'network_g', 'path', 'train',
                  'val', 'logger', 'dist_params', 'find_unused_parameters', 'is_train', 'dist', 'rank', 'world_size',
                  'auto_resume', 'root_path', 'min_input_size')

#: ``train`` keys read by SLVideoRecurrentModel and BasicSR's VideoRecurrentModel, SRModel,
#: BaseModel and ``train_pipeline``. A key the model starts to read belongs here too (a test
#: compares the ``train`` and ``val`` lists with the model's source).
TRAIN_KEYS = ('ema_decay', 'optim_g', 'scheduler', 'total_iter', 'warmup_iter', 'pixel_opt', 'perceptual_opt',
              'fix_flow', 'flow_lr_mul', 'lr_mul', 'loss_border_frames', 'loss_border_pixels', 'mask_opt',
              'mask_consistency_opt', 'flow_photometric_opt', 'cpu_seconds', 'gpu_seconds', 'autocast', 'channels_last')

#: ``train.autocast`` values SLVideoRecurrentModel accepts (false: float32 training).
AUTOCAST_VALUES = ('bf16', 'fp16')

#: ``val`` keys read by SLVideoRecurrentModel, BasicSR's models and pipelines.
VAL_KEYS = ('val_freq', 'save_img', 'metrics', 'suffix', 'flip_seq', 'flip_width', 'center_frame_only', 'tile',
            'pbar')

#: ``path`` keys read by BasicSR for a model with one network ``network_g``, or set by ``parse_options``.
#: BasicSR creates a folder for every other key, so a misspelt key would become a folder.
PATH_KEYS = ('pretrain_network_g', 'strict_load_g', 'param_key_g', 'resume_state', 'ignore_resume_networks',
             'experiments_root', 'results_root', 'models', 'training_states', 'log', 'visualization')

#: ``logger`` keys read by BasicSR's ``train_pipeline``.
LOGGER_KEYS = ('print_freq', 'save_checkpoint_freq', 'use_tb_logger', 'wandb')

#: Keys BasicSR's ``train_pipeline`` / ``test_pipeline`` read without a default, by section.
REQUIRED_TRAIN_KEYS = {'train': ('total_iter', 'optim_g', 'scheduler'),
                       'logger': ('print_freq', 'save_checkpoint_freq'), 'val': ('val_freq',)}
REQUIRED_TEST_KEYS = {'val': ('save_img',)}


class OptionError(SLError, TypeError):
    """An option key or value that a constructor cannot take."""


def reject_unknown_keys(unknown, valid, section, owner):
    """Raise one clear error for unknown option keys, each with the nearest valid key.

    Args:
        unknown (Iterable[str]): The keys that nothing reads; nothing happens when empty.
        valid (Iterable[str]): The keys that are read.
        section (str): Where the keys are, for the message, e.g. ``'network_g'`` or ``'datasets.train'``.
        owner (str): What reads the section, e.g. ``'SemanticLens'`` or ``'train.yml'``.

    Raises:
        OptionError: naming every unknown key, its nearest valid key, and the valid keys.
    """
    unknown, valid = [str(key) for key in unknown], list(valid)
    if not unknown:
        return
    hints = []
    for key in unknown:
        close = difflib.get_close_matches(key, valid, n=1)
        hints.append(f"'{key}'" + (f" (did you mean '{close[0]}'?)" if close else ''))
    raise OptionError(f'{owner} got unknown option key(s) {", ".join(hints)} under {section}; '
                      f'valid keys are: {", ".join(valid)}.')


def reject_unknown_options(cls, unknown):
    """Raise one clear error for keys a constructor does not know, with the nearest valid key.

    Args:
        cls (type): The class being built (its ``__init__`` signature lists the valid keys).
        unknown (dict): The keyword arguments that were not consumed.
    """
    reject_unknown_keys(unknown, constructor_keys(cls), 'network_g', cls.__name__)


def constructor_keys(cls):
    """Keyword arguments of ``cls.__init__``; None when it takes any (``**kwargs``, except ours).

    ``**unknown_options`` is sl_arch's way to collect keys for :func:`reject_unknown_options`,
    so a class with it still has a closed list of keys.
    """
    parameters = inspect.signature(cls.__init__).parameters.values()
    if any(param.kind == param.VAR_KEYWORD and param.name != 'unknown_options' for param in parameters):
        return None
    return [param.name for param in parameters
            if param.name != 'self' and param.kind in (param.POSITIONAL_OR_KEYWORD, param.KEYWORD_ONLY)]


def check_option_types(opt, kinds, section):
    """Raise one error naming every key of ``opt`` whose value is not of its kind.

    Args:
        opt (dict): The section.
        kinds (dict[str, str]): Key -> kind, one of :data:`KINDS` (absent keys and None pass).
        section (str): Where the section is, for the message.

    Raises:
        OptionError: naming each key, its value and the kind it must be.
    """
    wrong = [f'{key}: {opt[key]!r} is not {KINDS[kind][0]}' for key, kind in kinds.items()
             if opt.get(key) is not None and not KINDS[kind][1](opt[key])]
    if wrong:
        raise OptionError(f'{section}: {"; ".join(wrong)}; fix the value(s) in the option file.')


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


#: Kinds of option values: name -> (description, test).
KINDS = {
    'int>0': ('a positive integer', lambda value: _is_int(value) and value > 0),
    'int>=0': ('an integer >= 0', lambda value: _is_int(value) and value >= 0),
    'int': ('an integer', _is_int),
    'number': ('a number', _is_number),
    'number>0': ('a positive number', lambda value: _is_number(value) and value > 0),
    'number>=0': ('a number >= 0', lambda value: _is_number(value) and value >= 0),
    '[0,1)': ('a number from 0 up to but not including 1', lambda value: _is_number(value) and 0 <= value < 1),
    'bool': ('true or false', lambda value: isinstance(value, bool)),
    'str': ('a string', lambda value: isinstance(value, str)),
    'dict': ('a mapping (key: value lines)', lambda value: isinstance(value, dict)),
    'list[int>0]': ('a list of positive integers',
                    lambda value: isinstance(value, list) and bool(value) and all(_is_int(v) and v > 0 for v in value)),
}


# ---------------------------------------------------------------------------------- option files
def load_option_file(path):
    """Read an option file the way BasicSR's ``parse_options`` does (ordered mappings).

    Args:
        path (str): The ``-opt`` (or ``--opt``) file.

    Returns:
        dict: The options.

    Raises:
        SLError: the file is missing, a folder, not ``.yml``, unreadable, not valid YAML (or a key
            given twice in one mapping), empty, or not a mapping of option keys; in one line naming
            the file (and line) and the fix.
    """
    if osp.isdir(path):
        raise SLError(f'option file {path} is a folder; pass -opt with a YAML file in it (see options/).')
    if not osp.isfile(path):
        raise SLError(f'option file {path} does not exist; pass -opt with a YAML file from options/.')
    if not path.lower().endswith(OPTION_FILE_EXTENSIONS):
        raise SLError(f'option file {path} is not a .yml file; pass -opt with a YAML option file from options/.')
    try:
        with open(path, encoding='utf-8') as handle:
            opt = yaml.load(handle, Loader=_option_loader())
    except OSError as error:
        raise SLError(f'option file {path} cannot be read ({error.strerror}); check its permissions.') from None
    except UnicodeDecodeError:
        raise SLError(f'option file {path} is not text (not UTF-8); pass -opt with a YAML option file.') from None
    except yaml.YAMLError as error:
        raise SLError(f'option file {path} is not valid YAML: {_yaml_problem(error)}; fix that line.') from None
    if opt is None:
        raise SLError(f'option file {path} is empty; copy one from options/ and edit it.')
    if not isinstance(opt, dict):
        raise SLError(f'option file {path} holds a YAML {type(opt).__name__}, not a mapping of option keys '
                      '(name: ..., model_type: ..., datasets: ...); copy one from options/ and edit it.')
    return opt


@functools.lru_cache(maxsize=None)
def _option_loader():
    """BasicSR's YAML loader (ordered mappings) that refuses a key given twice in one mapping.

    BasicSR keeps the last value of a repeated key, so a second ``val:`` section would silently
    replace the first.
    """
    from basicsr.utils.options import ordered_yaml

    def construct_mapping(loader, node):
        seen = set()
        for key_node, _ in node.value:
            key = loader.construct_object(key_node)
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, f'the key {key!r} is given twice in one mapping',
                                                        key_node.start_mark)
            seen.add(key)
        return OrderedDict(loader.construct_pairs(node))

    loader = type('OptionLoader', (ordered_yaml()[0],), {})
    loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, construct_mapping)
    return loader


def _yaml_problem(error):
    """One line from a PyYAML error: ``line L, column C: problem (context)``."""
    mark = getattr(error, 'problem_mark', None)
    problem = getattr(error, 'problem', None)
    if mark is None or problem is None:
        return ' '.join(str(error).split())
    context = getattr(error, 'context', None)
    return f'line {mark.line + 1}, column {mark.column + 1}: {problem}' + (f' ({context})' if context else '')


# ---------------------------------------------------------------------------------- option keys
def section_keys(opt, section):
    """The keys that are read in one section of ``opt``, or None when the section is not checked.

    Args:
        opt (dict): The whole options.
        section (tuple[str]): Path of the section, e.g. ``()`` (top level), ``('train',)``,
            ``('val', 'tile')``, ``('datasets', 'train')``, ``('network_g',)``.

    Returns:
        list[str] | None
    """
    from basicsr.utils.registry import ARCH_REGISTRY, DATASET_REGISTRY
    from sl_arch.utils.tiling import forward_video

    ours = opt.get('model_type') == SL_MODEL_TYPE
    if section == ():
        return list(dict.fromkeys([*TOP_LEVEL_KEYS, *(key for key in opt if str(key).startswith('network_'))]))
    if section == ('logger',):
        return list(LOGGER_KEYS)
    if section == ('network_g',):
        cls = _registered(ARCH_REGISTRY, (opt.get('network_g') or {}).get('type'))
        keys = constructor_keys(cls) if cls is not None else None
        return None if keys is None else ['type'] + keys
    if len(section) == 2 and section[0] == 'datasets':
        dataset = (opt.get('datasets') or {}).get(section[1]) or {}
        return getattr(_registered(DATASET_REGISTRY, dataset.get('type')), 'OPTION_KEYS', None)
    if not ours:
        return None
    if section == ('val', 'tile'):
        return [name for name in inspect.signature(forward_video).parameters if name not in ('net_fn', 'lqs')]
    return {('train',): TRAIN_KEYS, ('val',): VAL_KEYS, ('path',): PATH_KEYS}.get(section)


def _registered(registry, name):
    """The class registered as ``name``, or None."""
    try:
        return registry.get(name) if isinstance(name, str) else None
    except KeyError:
        return None


def _sections(opt, prefix=()):
    """Every (section path, mapping) pair of ``opt``, depth first, the top level first."""
    yield prefix, opt
    for key, value in opt.items():
        if isinstance(value, dict):
            yield from _sections(value, prefix + (key,))


def section_name(section):
    """``'val.tile'`` for ``('val', 'tile')``, ``'the top level'`` for ``()``."""
    return '.'.join(str(key) for key in section) if section else 'the top level'


def check_options(opt, path, is_train, check_paths=True):
    """Refuse options that BasicSR's pipelines would fail on later, or silently ignore.

    Checks: the required sections and their kinds, ``model_type``, dataset types and
    ``network_g.type`` are registered, dataset phase names, the option keys of every checked section
    (:func:`section_keys`; datasets check their own keys and values with their ``check_options``),
    and with ``check_paths`` that the data, ``path.pretrain_network_g`` and ``path.resume_state``
    exist (not with ``auto_resume`` set, as BasicSR then takes both from the latest state).

    Args:
        opt (dict): Loaded options (after ``--force_yml``).
        path (str): The option file, for messages.
        is_train (bool): For ``sl-train`` (True) or ``sl-test`` (False).
        check_paths (bool): Also check that the data the datasets name exists.

    Raises:
        SLError: one line naming the file, the key and the fix.
    """
    from basicsr.utils.registry import ARCH_REGISTRY, MODEL_REGISTRY

    required = ['name', 'model_type', 'num_gpu', 'datasets', 'network_g', 'path'] + (['train', 'logger'] if is_train
                                                                                      else ['val'])
    missing = [key for key in required if opt.get(key) is None]
    if missing:
        raise SLError(f'option file {path} has no {", ".join(missing)} (needed by BasicSR\'s '
                      f'{"train" if is_train else "test"}_pipeline); add them, e.g. as in options/.')
    check_option_types(opt, {'name': 'str', 'model_type': 'str', 'scale': 'int>0', 'manual_seed': 'int',
                             'datasets': 'dict', 'network_g': 'dict', 'path': 'dict', 'train': 'dict', 'val': 'dict',
                             'logger': 'dict'}, f'option file {path}')
    if opt['num_gpu'] != 'auto' and not KINDS['int>=0'][1](opt['num_gpu']):
        raise OptionError(f'option file {path}: num_gpu: {opt["num_gpu"]!r} is not auto or an integer >= 0; fix it.')
    _require_registered(MODEL_REGISTRY, opt['model_type'], 'model_type', path)
    _require_registered(ARCH_REGISTRY, opt['network_g'].get('type'), 'network_g.type', path)
    phases = [str(phase).split('_')[0] for phase in opt['datasets']]
    if not phases or (is_train and 'train' not in phases):
        raise SLError(f'option file {path} has no {"train " if is_train else ""}dataset under datasets; '
                      'add one, e.g. as in options/.')
    for phase, dataset in opt['datasets'].items():
        _check_dataset_phase(phase, dataset, path, is_train, check_paths)
    if opt['model_type'] == SL_MODEL_TYPE:
        _check_sl_model_values(opt, path, is_train)
    for section, keys in (REQUIRED_TRAIN_KEYS if is_train else REQUIRED_TEST_KEYS).items():
        mapping = opt.get(section) or {}
        missing = [key for key in keys if mapping.get(key) is None]
        if section in opt and missing:
            raise SLError(f'option file {path}: {section} has no {", ".join(missing)} (BasicSR reads it); add it, '
                          'e.g. as in options/.')
    for section, mapping in _sections(opt):
        if is_train and section in TRAIN_VALUE_KINDS:  # values BasicSR's loop divides by, or trains wrongly with
            check_option_types(mapping, TRAIN_VALUE_KINDS[section], f'option file {path}: {section_name(section)}')
        valid = section_keys(opt, section)
        if valid is not None:
            reject_unknown_keys([key for key in mapping if key not in valid], valid, section_name(section),
                                f'option file {path}')
    if check_paths and not opt.get('auto_resume'):  # BasicSR ignores both when --auto_resume finds a state
        for key in ('pretrain_network_g', 'resume_state'):
            file = opt['path'].get(key)
            if file is not None and not osp.isfile(osp.expanduser(str(file))):
                raise SLError(f'option file {path}: path.{key} {file} does not exist; fix the path'
                              + (' (e.g. experiments/<name>/models/net_g_latest.pth) or set it to ~.'
                                 if key == 'pretrain_network_g' else ' or set it to ~.'))
        if opt['path'].get('resume_state') is not None:
            _check_training_state(osp.expanduser(str(opt['path']['resume_state'])), path)


def _check_training_state(file, path):
    """``path.resume_state``: a training state BasicSR can resume (its ``iter`` and optimizers), not network weights."""
    from sl_arch.utils.checkpoint import read_checkpoint
    state = read_checkpoint(file)
    if not (isinstance(state, dict) and {'iter', 'optimizers', 'schedulers'} <= set(state)):
        raise SLError(f'option file {path}: path.resume_state {file} is not a training state (no iter, optimizers, '
                      'schedulers); give a .state file from experiments/<name>/training_states, or load network '
                      'weights with path.pretrain_network_g.')


#: Kinds of the training values every model's BasicSR loop reads (by section path): counts it divides by, the
#: number of iterations (0 trained nothing and saved the untrained network), the rate, the EMA's decay.
TRAIN_VALUE_KINDS = {('train',): {'total_iter': 'number>0', 'ema_decay': '[0,1)'},
                     ('train', 'optim_g'): {'lr': 'number>=0'},
                     ('logger',): {'print_freq': 'number>0', 'save_checkpoint_freq': 'number>0'},
                     ('val',): {'val_freq': 'number>0'}}

#: Kinds of SLVideoRecurrentModel's own ``train`` counts, checked before BasicSR writes anything
#: (:func:`_check_sl_model_values`) and again by the model (:func:`check_sl_train_values`).
SL_TRAIN_KINDS = {'loss_border_frames': 'int>=0', 'loss_border_pixels': 'int>=0'}


def check_lr_mul(lr_mul, where='train', parameter_names=None):
    """``train.lr_mul`` (under ``where``): None or a mapping of module names to positive numbers, and with
    ``parameter_names`` (the network's) each name one that holds a parameter (``upsample`` holds
    ``upsample.0.weight``); else OptionError."""
    check_option_types({'lr_mul': lr_mul}, {'lr_mul': 'dict'}, where)
    check_option_types(lr_mul or {}, dict.fromkeys(lr_mul or {}, 'number>0'), f'{where}.lr_mul')
    if parameter_names is None:
        return
    parameter_names = list(parameter_names)
    for name in lr_mul or {}:
        if not any(param_name == name or param_name.startswith(f'{name}.') for param_name in parameter_names):
            modules = sorted({param_name.split('.')[0] for param_name in parameter_names})
            raise OptionError(f'{where}.lr_mul: {name!r} names no module of network_g with parameters; its modules '
                              f'are {", ".join(modules)} (a sub-module as "trunk.backward"); fix the name.')


def check_sl_train_values(train, network_cls, on_cpu, where='train'):
    """The values of :data:`SL_TRAIN_KINDS` and ``lr_mul`` (:func:`check_lr_mul`) in ``train``,
    ``loss_border_frames`` only for a network whose forward takes ``output_frames`` (``network_cls``: SemanticLens),
    and ``autocast``: one of :data:`AUTOCAST_VALUES` or false, and when training runs ``on_cpu`` one the CPU has the
    arithmetic for (:func:`~sl_arch.utils.precision.check_cpu_autocast`).

    Raises:
        OptionError: naming the key (under ``where``), its value and the fix; SLError for a precision the CPU lacks.
    """
    check_option_types(train, SL_TRAIN_KINDS, where)
    check_lr_mul(train.get('lr_mul'), where)
    if train.get('loss_border_frames') and 'output_frames' not in inspect.signature(network_cls.forward).parameters:
        raise OptionError(f'{where}.loss_border_frames needs a network that reconstructs chosen frames (SemanticLens); '
                          f'{network_cls.__name__} does not: remove it from the option file.')
    if train.get('autocast') not in (None, False, *AUTOCAST_VALUES):
        raise OptionError(f'{where}.autocast: {train["autocast"]!r} is not one of {", ".join(AUTOCAST_VALUES)}, '
                          'false; fix it.')
    if train.get('autocast') and on_cpu:
        from sl_arch.utils.precision import check_cpu_autocast
        check_cpu_autocast(train['autocast'], f'{where}.autocast: {train["autocast"]}',
                           'remove it from the option file to train in float32, or train on a GPU')


def _check_sl_model_values(opt, path, is_train):
    """Values of SLVideoRecurrentModel's own keys: time budgets, autocast, channels_last, min_input_size,
    BudgetCosineLR."""
    check_option_types(opt, {'min_input_size': 'int>0'}, f'option file {path}')
    train = opt.get('train') or {}
    if not is_train or not isinstance(train, dict):
        return
    where = f'option file {path}: train'
    budgets = [key for key in ('cpu_seconds', 'gpu_seconds') if train.get(key) is not None]
    wrong = [f'{key}: {train[key]!r} is not a positive number of seconds' for key in budgets
             if not KINDS['number'][1](train[key]) or train[key] <= 0]
    if wrong:
        raise OptionError(f'{where}: {"; ".join(wrong)}; fix the value(s).')
    if len(budgets) == 2:
        raise OptionError(f'{where} has both cpu_seconds and gpu_seconds; keep one budget.')
    if budgets == ['gpu_seconds'] and not _cuda_available():
        raise OptionError(f'{where}.gpu_seconds needs CUDA, which this machine does not have; use cpu_seconds.')
    check_option_types(train, {'channels_last': 'bool'}, where)
    from basicsr.utils.registry import ARCH_REGISTRY
    on_cpu = opt.get('num_gpu') == 0 or not _cuda_available()  # where BasicSR will train
    check_sl_train_values(train, ARCH_REGISTRY.get(opt['network_g']['type']), on_cpu, where)
    if isinstance(train.get('lr_mul'), dict) and train['lr_mul']:  # module names need the network itself
        from basicsr.archs import build_network
        check_lr_mul(train['lr_mul'], where, [name for name, _ in
                                              build_network(copy.deepcopy(opt['network_g'])).named_parameters()])
    scheduler = train.get('scheduler')
    if isinstance(scheduler, dict) and scheduler.get('type') == 'BudgetCosineLR' and not budgets:
        raise OptionError(f'{where}.scheduler BudgetCosineLR anneals over a time budget: set train.cpu_seconds '
                          '(or gpu_seconds on CUDA), or use CosineAnnealingRestartLR.')


def _cuda_available():
    import torch
    return torch.cuda.is_available()


def _require_registered(registry, name, key, path):
    if _registered(registry, name) is None:
        names = sorted(name_ for name_, _ in registry)
        close = difflib.get_close_matches(str(name), names, n=1)
        raise SLError(f'option file {path}: {key} {name!r} is not registered'
                      + (f" (did you mean '{close[0]}'?)" if close else '') + f'; use one of: {", ".join(names)}.')


def _check_dataset_phase(phase, dataset, path, is_train, check_paths):
    """A dataset section: a mapping with a registered type, a phase BasicSR knows, its own keys checked."""
    from basicsr.utils.registry import DATASET_REGISTRY

    section = f'datasets.{phase}'
    if not isinstance(dataset, dict):
        raise OptionError(f'option file {path}: {section} is {dataset!r}, not a mapping of dataset options; '
                          'fix it, e.g. as in options/.')
    kind = str(phase).split('_')[0]
    phases = ('train', 'val') if is_train else ('val', 'test')
    if kind not in phases:
        raise SLError(f'option file {path}: dataset phase {phase!r} is not one of {", ".join(phases)} '
                      f'(optionally with a suffix, e.g. {phases[-1]}_1); rename {section}.')
    if kind == 'train':
        missing = [key for key in ('batch_size_per_gpu', 'num_worker_per_gpu') if dataset.get(key) is None]
        if missing:
            raise SLError(f'option file {path}: {section} has no {", ".join(missing)} (BasicSR\'s data loader needs '
                          'them); add them.')
    _require_registered(DATASET_REGISTRY, dataset.get('type'), f'{section}.type', path)
    check = getattr(DATASET_REGISTRY.get(dataset['type']), 'check_options', None)
    if check is not None:
        try:
            check(dataset, section, check_paths)
        except SLError as error:
            raise type(error)(f'option file {path}: {error}') from None


# ---------------------------------------------------------------------------------- --force_yml
def apply_force_yml(opt, entries, path):
    """Apply ``--force_yml`` entries to ``opt`` as BasicSR's ``parse_options`` will, after checking them.

    BasicSR splits each ``key:sub=value`` entry at ``=``, converts the value with its
    ``_postprocess_yml_value`` and assigns it, creating a missing last key. Refused here: an entry
    without exactly one ``=``, a section the file does not have, a new key that nothing reads (with
    the full key path it was probably meant for), and a value of another type than the file's
    (a number stays a number: ``1e8`` is a string to BasicSR).

    Args:
        opt (dict): Options loaded by :func:`load_option_file`; changed in place.
        entries (list[str] | None): The ``--force_yml`` values.
        path (str): The option file, for messages.

    Raises:
        OptionError: one line naming the entry, the problem and the fix.
    """
    from basicsr.utils.options import _postprocess_yml_value

    for entry in entries or []:
        if entry.count('=') != 1:
            raise OptionError(f'--force_yml {entry}: expected one section:key=value, e.g. train:ema_decay=0.999 '
                              f'({"no" if "=" not in entry else "more than one"} "=" found).')
        keys, text = (part.strip() for part in entry.split('='))
        keys = keys.split(':')
        try:
            value = _postprocess_yml_value(text)
        except Exception as error:  # BasicSR evals [lists]
            raise OptionError(f'--force_yml {entry}: BasicSR cannot read the value {text!r} ({error}); '
                              'write a number, true/false, ~ or a [list].') from None
        node = opt
        for depth, key in enumerate(keys[:-1]):
            if not isinstance(node.get(key), dict):
                section = ':'.join(keys[:depth + 1])
                if key in node:
                    hint = f' ({section} is a value there)'
                elif key in (section_keys(opt, tuple(keys[:depth])) or ()):
                    hint = f'; add {section} to the file'
                else:
                    hint = _did_you_mean(opt, keys, text)
                raise OptionError(f'--force_yml {entry}: {path} has no section {section}{hint}; --force_yml changes '
                                  'only sections the file has.')
            node = node[key]
        key = keys[-1]
        if key in node:
            _check_forced_type(entry, keys, node[key], value, text, path)
        else:
            valid = section_keys(opt, tuple(keys[:-1]))
            if valid is not None and key not in valid:
                raise OptionError(f'--force_yml {entry}: nothing reads {":".join(keys)}'
                                  f'{_did_you_mean(opt, keys, text)}; give the full key path, section:key=value.')
        node[key] = value


#: How to write a value of each kind on the command line, for messages.
KIND_VALUES = {'bool': 'true or false', 'string': 'a string (not digits only)', 'list': 'a [list]'}


def _kind(value):
    if value is None:
        return 'none'
    if isinstance(value, bool):
        return 'bool'
    if isinstance(value, (int, float)):
        return 'number'
    return {str: 'string', list: 'list', dict: 'section'}.get(type(value), type(value).__name__)


def _check_forced_type(entry, keys, old, new, text, path):
    """A forced value keeps the kind of the file's value (None may replace a string or a list)."""
    from basicsr.utils.options import _postprocess_yml_value

    old_kind, new_kind = _kind(old), _kind(new)
    if old_kind == new_kind or old_kind == 'none' or (new_kind == 'none' and old_kind in ('string', 'list')):
        return
    fix = f'write {KIND_VALUES.get(old_kind, "a " + old_kind)}'
    if old_kind == 'number':
        try:
            number = float(text)
        except ValueError:
            number = None
        if number is not None:
            plain = str(int(number) if number.is_integer() else number)
            fix = f"write it as {plain if _kind(_postprocess_yml_value(plain)) == 'number' else '!!float' + text}"
        fix += ' (BasicSR reads only plain digits, decimals and !!float<number> as numbers)'
    raise OptionError(f'--force_yml {entry}: BasicSR reads {text!r} as the {new_kind} {new!r} but '
                      f'{":".join(keys)} is the {old_kind} {old!r} in {path}; {fix}.')


def _did_you_mean(opt, keys, text):
    """`` (did you mean --force_yml a:b:c=text?)`` for the key path nearest to ``keys`` in ``opt``.

    Key paths that end in the same key come first (``lr`` -> ``train:optim_g:lr``), then the
    closest spelling; the readable keys of checked sections count as well as the file's keys.
    """
    candidates = []
    for section, mapping in _sections(opt):
        names = set(mapping) | set(section_keys(opt, section) or ())
        candidates += [':'.join(map(str, section + (name,))) for name in names]
    wanted = ':'.join(keys)
    same_leaf = sorted(name for name in candidates if name.split(':')[-1] == keys[-1] and name != wanted)
    best = same_leaf or difflib.get_close_matches(wanted, candidates, n=1)
    return f' (did you mean --force_yml {best[0]}={text}?)' if best else ''


def load_checked_options(path, force_yml=None, is_train=True, auto_resume=False):
    """:func:`load_option_file`, :func:`apply_force_yml` and :func:`check_options` in one call.

    Args:
        path (str): The option file.
        force_yml (list[str] | None): ``--force_yml`` entries.
        is_train (bool): For ``sl-train`` (True) or ``sl-test`` (False).
        auto_resume (bool): ``--auto_resume`` was given.

    Returns:
        dict: The options as BasicSR will see them.
    """
    opt = load_option_file(path)
    apply_force_yml(opt, force_yml, path)
    opt['auto_resume'] = auto_resume  # as BasicSR's parse_options sets it
    check_options(opt, path, is_train)
    return opt
