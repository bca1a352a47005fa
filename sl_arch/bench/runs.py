"""Training and testing of benchmark rows: ``sl-train`` then ``sl-test`` in child processes.

Each child runs with a fixed number of threads (one by default) in the benchmark's work folder;
its figures are read back from the JSON records SLVideoRecurrentModel writes beside BasicSR's log:
``experiments/<name>/train_time.json`` (CPU or GPU seconds, iterations) and
``results/<name>/metrics_<dataset>.json`` (PSNR-Y / SSIM-Y per sequence and their mean).
"""
import contextlib
import datetime
import json
import os
import os.path as osp
import subprocess
import sys
import time

from sl_arch.bench.common import child_env
from sl_arch.bench.options import (TRAIN_CHANGES, TRAIN_SET_CHANGES, row_budget, test_options, train_options,
                                   weights_key, write_yaml)
from sl_arch.models.sl_video_recurrent_model import TRAIN_TIME_FILE, metrics_file_name
from sl_arch.utils.files import write_json
from sl_arch.utils.errors import SLError


#: What a benchmark's train-then-test runs put in its ``--work-dir`` (BasicSR's runs add ``experiments``, ``results``
#: and, where a logger asks for it, ``tb_logger``); :func:`sl_arch.utils.files.check_work_folder` refuses anything else.
WORK_DIR_ENTRIES = ('experiments', 'logs', 'options', 'results', 'tb_logger')


def run_command(args, cwd, log_path, threads):
    """Run ``python -m <args>`` in ``cwd`` with ``threads`` threads, its output going to ``log_path``.

    Raises:
        SLError: the command failed; names its last output line and the log.
    """
    os.makedirs(osp.dirname(log_path), exist_ok=True)
    with open(log_path, 'w', encoding='utf-8') as log:
        result = subprocess.run([sys.executable, '-m', *args], cwd=cwd, env=child_env(threads), stdout=log,
                                stderr=subprocess.STDOUT)
    if result.returncode != 0:
        with open(log_path, encoding='utf-8', errors='replace') as log:
            lines = [line.strip() for line in log if line.strip()]
        raise SLError(f'{args[0]} failed ({lines[-1] if lines else "no output"}); see {log_path}')


def final_checkpoint(work_dir, name):
    """Where ``sl-train`` leaves the last weights of run ``name`` started in ``work_dir``."""
    return osp.join(work_dir, 'experiments', name, 'models', 'net_g_latest.pth')


def read_record(path):
    """A JSON record a run wrote; SLError naming it when it is missing."""
    if not osp.isfile(path):
        raise SLError(f'{path} was not written; see the run\'s log beside it.')
    with open(path, encoding='utf-8') as handle:
        return json.load(handle)


def train_then_test(name, train_opt, test_opt, work_dir, threads, trained=None):
    """Write the option files of one run, train it with ``sl-train``, test it with ``sl-test``.

    Option files go to ``<work_dir>/options/``, console output to ``<work_dir>/logs/``; BasicSR
    archives an earlier run's ``experiments/<name>`` and ``results/<name>`` folders, it removes nothing.

    Args:
        name (str): Run name, also of both option files.
        train_opt (dict): Training options (``name`` equal to ``name``).
        test_opt (dict): Test options loading ``experiments/<name>/models/net_g_latest.pth``.
        work_dir (str): Absolute folder the children run in.
        threads (int): Threads of each child.
        trained (dict | None): ``train`` and ``train_wall_s`` of a finished training with exactly
            ``train_opt``: the training is not run again, only the test.

    Returns:
        dict: ``train`` (``train_time.json``), ``metrics`` (dataset name -> ``{metric: {'mean',
        'sequences'}}``), ``train_wall_s``, ``test_wall_s``.
    """
    train_yml = osp.join(work_dir, 'options', f'train_{name}.yml')
    write_yaml(train_yml, train_opt)
    logs = osp.join(work_dir, 'logs')
    if trained is None:
        started = time.perf_counter()
        run_command(['sl_arch.train', '-opt', train_yml], work_dir, osp.join(logs, f'{name}_train.out'), threads)
        trained = {'train_wall_s': time.perf_counter() - started,
                   'train': read_record(osp.join(work_dir, 'experiments', name, TRAIN_TIME_FILE))}
    started = time.perf_counter()
    metrics = run_test(work_dir, test_opt, threads)
    return {'train': trained['train'], 'metrics': metrics, 'train_wall_s': trained['train_wall_s'],
            'test_wall_s': time.perf_counter() - started}


def run_test(work_dir, test_opt, threads, reuse=False):
    """Test with ``sl-test`` in ``work_dir`` as run ``test_opt['name']`` (option file ``options/test_<name>.yml``,
    console output ``logs/<name>_test.out``): ``{dataset name: metrics}`` of its ``metrics_<set>.json`` files.

    With ``reuse``, a finished test is recorded in ``logs/<name>_test.done.json`` (its options and metrics, written
    once the test has ended) and a later call with the same options reads that record back instead of testing again.
    """
    name = test_opt['name']
    done = osp.join(work_dir, 'logs', f'{name}_test.done.json')
    as_recorded = json.loads(json.dumps(test_opt))  # the options as the record holds them (JSON types)
    if reuse and osp.isfile(done):
        record = read_record(done)
        if record['options'] == as_recorded:
            return record['metrics']
    test_yml = osp.join(work_dir, 'options', f'test_{name}.yml')
    write_yaml(test_yml, test_opt)
    run_command(['sl_arch.test', '-opt', test_yml], work_dir, osp.join(work_dir, 'logs', f'{name}_test.out'), threads)
    metrics = {dataset['name']: read_record(osp.join(work_dir, 'results', name,
                                                     metrics_file_name(dataset['name'])))['metrics']
               for dataset in test_opt['datasets'].values()}
    if reuse:
        write_json(done, {'options': test_opt, 'metrics': metrics})
    return metrics


def train_and_test_row(row, budget, train_set, test_sets, work_dir, threads, test_again=False):
    """Train and test one benchmark row from the shared templates of :mod:`sl_arch.bench.options`.

    A row whose option files are the same as those of a finished run in ``work_dir`` (recorded in
    ``logs/bench_<key>.done.json``) is read back instead of trained again, so a benchmark stopped
    half-way, or rerun with a row added, redoes only what changed; a row whose training options are
    the same but whose test options changed (a held-out set added) is only tested again.

    Args:
        row (dict): ``key`` and ``network_g`` of the row.
        budget (dict): The mode's budget (:data:`sl_arch.bench.options.MODES`, with the command's changes).
        train_set (dict), test_sets (dict): From :func:`sl_arch.bench.options.dataset_options`.
        work_dir (str): Absolute folder of option files, logs, experiments and results.
        threads (int): Threads of each child.
        test_again (bool): Test a finished run again even when its test options are the same (the code
            the model is tested with changed); its training is kept.

    Returns:
        dict: What :func:`train_then_test` returns plus ``checkpoint``, and ``read_back`` (when the
        finished run ended) for a row read back.
    """
    name = f'bench_{row["key"]}'
    checkpoint = final_checkpoint(work_dir, name)
    train_set = dict(train_set, **TRAIN_SET_CHANGES.get(row['key'], {}))
    options = {'train': train_options(name, row['network_g'], row_budget(budget, row['key']), train_set),
               'test': test_options(name, row['network_g'], test_sets, checkpoint, weights_key(row['key']))}
    options['train']['train'].update(TRAIN_CHANGES.get(row['key'], {}))
    done = osp.join(work_dir, 'logs', f'{name}.done.json')
    record = read_finished_run(done, checkpoint)
    as_recorded = json.loads(json.dumps(options))  # the options as the record holds them (JSON types)
    if record is not None and record['options'] == as_recorded and not test_again:
        return dict(record['result'], read_back=f'run finished {record["finished"]}')
    trained = None
    if record is not None and record['options']['train'] == as_recorded['train']:
        trained = {key: record['result'][key] for key in ('train', 'train_wall_s')}
    with row_lock(work_dir, name, row.get('label', row['key'])):
        result = dict(train_then_test(name, options['train'], options['test'], work_dir, threads, trained),
                      checkpoint=checkpoint)
    record = {'options': options, 'result': result,
              'finished': record['finished'] if trained else
              datetime.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')}
    write_json(done, record)
    if trained:
        result['read_back'] = f'training finished {record["finished"]}, tested again'
    return result


@contextlib.contextmanager
def row_lock(work_dir, name, label):
    """Hold ``<work_dir>/logs/<name>.lock`` (this process's id) while a row trains and tests.

    A second ``sl-bench`` on the same ``--work-dir`` would otherwise start the same unfinished row
    again and have BasicSR archive (rename) the folder the first one is still writing into. A lock
    left by a process that no longer runs is taken over.

    Raises:
        SLError: another running process holds the row.
    """
    path = osp.join(work_dir, 'logs', f'{name}.lock')
    os.makedirs(osp.dirname(path), exist_ok=True)
    while True:
        try:
            handle = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            holder = _lock_holder(path)
            try:
                being_written = holder is None and time.time() - os.path.getmtime(path) < 10
            except FileNotFoundError:  # its holder has just finished: try again
                continue
            if being_written or (holder is not None and holder != os.getpid() and _process_runs(holder)):
                raise SLError(f'{label}: another sl-bench (process {holder or "starting"}) is training this row in '
                              f'--work-dir {work_dir}; wait for it to finish (it is read back then) or use another '
                              '--work-dir.')
            with contextlib.suppress(FileNotFoundError):
                os.remove(path)  # left by a process that has ended
            continue
        with os.fdopen(handle, 'w') as lock_file:
            lock_file.write(str(os.getpid()))
        break
    try:
        yield
    finally:
        os.remove(path)


def _lock_holder(path):
    try:
        with open(path, encoding='utf-8') as handle:
            return int(handle.read().strip())
    except (OSError, ValueError):
        return None


def _process_runs(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # runs, under another user
        return True
    return True


def read_finished_run(done, checkpoint):
    """The record ``done`` of a finished run whose checkpoint is still at ``checkpoint``, or None."""
    if not osp.isfile(done):
        return None
    with open(done, encoding='utf-8') as handle:
        record = json.load(handle)
    if not osp.isfile(record['result'].get('checkpoint', '')) or record['result']['checkpoint'] != checkpoint:
        return None
    return record
