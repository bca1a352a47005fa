"""Multi-process training: torchrun + --launcher pytorch gives DDP on the CPU (gloo) with synced weights."""
import os
import shutil
import socket
import subprocess
import sys
import textwrap

import pytest
import torch

from sl_arch.utils.dist import default_backend, init_distributed, normalize_local_rank_args
from sl_arch.utils.errors import SLError
from tests.conftest import cpu_env, make_options, write_options

#: Runs sl-train in each torchrun process and saves that rank's final weights, for comparison.
RANK_WEIGHTS_SCRIPT = textwrap.dedent('''
    import os, sys
    import torch
    import sl_arch.train
    import basicsr.train

    built = []
    build_model = basicsr.train.build_model

    def capture(opt):
        built.append(build_model(opt))
        return built[-1]

    basicsr.train.build_model = capture
    sl_arch.train.main()
    model = built[0]
    net = model.get_bare_model(model.net_g)
    torch.save({'state': net.state_dict(), 'world_size': model.opt['world_size'], 'dist': model.opt['dist']},
               os.path.join(os.environ['OUT_DIR'], f"rank{model.opt['rank']}.pth"))
''')


def free_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize('spelling', [['--local-rank=1'], ['--local-rank', '1'], ['--local_rank=1'],
                                      ['--local_rank', '1']])
def test_every_local_rank_spelling_becomes_basicsr_local_rank(spelling, monkeypatch):
    monkeypatch.delenv('LOCAL_RANK', raising=False)

    assert normalize_local_rank_args(['-opt', 'x.yml', *spelling]) == ['-opt', 'x.yml', '--local_rank', '1']
    assert os.environ['LOCAL_RANK'] == '1'


def test_an_existing_local_rank_variable_is_kept(monkeypatch):
    monkeypatch.setenv('LOCAL_RANK', '0')

    assert normalize_local_rank_args(['-opt', 'x.yml']) == ['-opt', 'x.yml']
    assert os.environ['LOCAL_RANK'] == '0'


def test_the_backend_is_gloo_without_cuda_and_nccl_with_it(monkeypatch):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    assert default_backend() == 'gloo'
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    assert default_backend() == 'nccl'


def test_launcher_pytorch_outside_torchrun_names_the_missing_variables(monkeypatch):
    for name in ('RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT'):
        monkeypatch.delenv(name, raising=False)

    with pytest.raises(SLError, match='RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT not set.*torchrun'):
        init_distributed('pytorch')


def test_two_process_ddp_training_on_cpu_ends_with_identical_weights_on_both_ranks(tmp_path):
    options = make_options(tmp_path / 'data', name='ddp', total_iter=3, save_freq=3, fix_flow=2)
    options['datasets']['train']['use_hflip'] = False
    option_file = write_options(tmp_path / 'train.yml', options)
    script = tmp_path / 'rank_weights.py'
    script.write_text(RANK_WEIGHTS_SCRIPT)
    env = dict(cpu_env(), OUT_DIR=str(tmp_path))

    result = subprocess.run([sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node', '2',
                             '--master_port', str(free_port()), str(script), '-opt', option_file,
                             '--launcher', 'pytorch'], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=240)

    assert result.returncode == 0, result.stderr[-4000:]
    ranks = [torch.load(tmp_path / f'rank{rank}.pth', weights_only=False) for rank in (0, 1)]
    assert all(rank['dist'] and rank['world_size'] == 2 for rank in ranks)
    saved = torch.load(tmp_path / 'experiments' / 'ddp' / 'models' / 'net_g_3.pth', weights_only=False)['params']
    for name, value in ranks[0]['state'].items():
        assert torch.equal(value, ranks[1]['state'][name]), name
        assert torch.equal(value, saved[name]), name
    log = next((tmp_path / 'experiments' / 'ddp').glob('train_*.log')).read_text()
    assert 'World size (gpu number): 2' in log and 'Validation synthetic_val' in log


def torchrun_train(option_file, cwd, *args):
    return subprocess.run([sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node', '2',
                           '--master_port', str(free_port()), '-m', 'sl_arch.train', '-opt', option_file,
                           '--launcher', 'pytorch', *args], cwd=cwd, env=cpu_env(), capture_output=True, text=True,
                          timeout=240)


def test_two_process_ddp_training_resumed_mid_epoch_ends_with_the_weights_of_an_uninterrupted_run(tmp_path):
    options = make_options(tmp_path / 'data', name='ddp', total_iter=6, save_freq=3, val=False, ema_decay=0.9)
    options['datasets']['train'].update(interval_list=[1, 2], random_reverse=True)
    option_file = write_options(tmp_path / 'train.yml', options)
    whole, resumed = tmp_path / 'whole', tmp_path / 'resumed'
    whole.mkdir()
    result = torchrun_train(option_file, whole)
    assert result.returncode == 0, result.stderr[-4000:]
    # as if killed after iteration 3: epoch 0 (6 batches per rank) half done
    shutil.copytree(whole / 'experiments', resumed / 'experiments')
    experiment = resumed / 'experiments' / 'ddp'
    for path in [*experiment.glob('training_states/*'), *experiment.glob('models/*')]:
        if path.name not in ('3.state', 'net_g_3.pth'):
            path.unlink()

    result = torchrun_train(option_file, resumed, '--auto_resume')

    assert result.returncode == 0, result.stderr[-4000:]
    state = torch.load(experiment / 'training_states' / '3.state', weights_only=False)
    assert len(state['rng']) == 2 and not torch.equal(state['rng'][0]['torch'], state['rng'][1]['torch'])
    final = [torch.load(root / 'models' / 'net_g_latest.pth', weights_only=False)
             for root in (experiment, whole / 'experiments' / 'ddp')]
    for key in ('params', 'params_ema'):
        differing = [name for name, value in final[1][key].items() if not torch.equal(value, final[0][key][name])]
        assert not differing, f'{key}: {len(differing)} tensors differ, e.g. {differing[:3]}'
