"""Pack a trained checkpoint as a model-zoo file: ``python -m sl_arch.bench.pack``.

    python -m sl_arch.bench.pack experiments/<run>/models/net_g_latest.pth -o model_zoo/<name>.pth \\
        --data 'scripts/zoo_data.sh: synthetic clips + demo training frames' --command 'sl-bench ...'

The file keeps one set of weights (``--param-key``, default ``params``), stored in float16 under
``params`` (loading copies them into the network's float32 parameters), the network options
(``network_g``) that sl-infer and sl-export rebuild the network from, and ``trained``: how it was
made (``--data``, ``--command``, and the run's iterations and CPU or GPU seconds from the
``train_time.json`` beside its ``models/`` folder). It refuses an output that exists, and a
checkpoint without ``network_g``. Load the file with :func:`sl_arch.utils.checkpoint.load_network`
and compare both on held-out frames (``sl-test``) before committing it: float16 rounds every weight.
"""
import argparse
import json
import os.path as osp

from sl_arch.utils.checkpoint import NETWORK_OPT_KEY, atomic_torch_save, read_checkpoint
from sl_arch.utils.errors import SLError, cli_entry
from sl_arch.utils.files import check_writable

#: ``train_time.json`` fields copied into ``trained``.
TIME_FIELDS = ('iterations', 'clock', 'seconds', 'seconds_per_iteration', 'autocast')


def run_record(checkpoint_path):
    """The ``train_time.json`` of the run a checkpoint in ``<experiment>/models/`` comes from, or {}."""
    path = osp.join(osp.dirname(osp.dirname(osp.abspath(checkpoint_path))), 'train_time.json')
    if not osp.isfile(path):
        return {}
    with open(path, encoding='utf-8') as handle:
        record = json.load(handle)
    return {key: record[key] for key in TIME_FIELDS if key in record}


def pack(checkpoint_path, out, param_key='params', data=None, command=None):
    """Write the model-zoo file ``out`` from ``checkpoint_path``; returns its ``trained`` dict.

    Raises:
        SLError: ``out`` exists, or the checkpoint has no ``network_g`` or no weights under ``param_key``.
    """
    if osp.lexists(out):
        raise SLError(f'-o {out} exists; nothing was written: give a new file name (the model zoo keeps '
                      'every file it published).')
    check_writable(out, '-o', is_folder=False)
    checkpoint = read_checkpoint(checkpoint_path)
    network_opt = checkpoint.get(NETWORK_OPT_KEY) if isinstance(checkpoint, dict) else None
    if not isinstance(network_opt, dict):
        raise SLError(f'{checkpoint_path} carries no {NETWORK_OPT_KEY}; pack a checkpoint saved by sl-train.')
    if not isinstance(checkpoint.get(param_key), dict):
        raise SLError(f'{checkpoint_path} has no weights under --param-key {param_key} (it has '
                      f'{", ".join(key for key, value in checkpoint.items() if isinstance(value, dict))}).')
    weights = {name: value.half() if value.is_floating_point() else value
               for name, value in checkpoint[param_key].items()}
    trained = dict(run_record(checkpoint_path), weights=f'{param_key}, float16', source=osp.relpath(checkpoint_path))
    trained.update({key: value for key, value in (('data', data), ('command', command)) if value})
    atomic_torch_save({'params': weights, NETWORK_OPT_KEY: network_opt, 'trained': trained}, out)
    return trained


@cli_entry
def main(argv=None):
    parser = argparse.ArgumentParser(prog='python -m sl_arch.bench.pack', description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('checkpoint', help='an sl-train checkpoint (experiments/<run>/models/net_g_*.pth)')
    parser.add_argument('-o', '--out', required=True, help='the model-zoo file to write (must not exist)')
    parser.add_argument('--param-key', default='params', help='weights to keep: params (default) or params_ema')
    parser.add_argument('--data', help='what the network trained on, for the file\'s record')
    parser.add_argument('--command', help='the command that trained it, for the file\'s record')
    args = parser.parse_args(argv)
    trained = pack(args.checkpoint, args.out, args.param_key, args.data, args.command)
    print(f'wrote {args.out} ({osp.getsize(args.out) / 1024:.0f} KB): {json.dumps(trained)}')


if __name__ == '__main__':
    main()
