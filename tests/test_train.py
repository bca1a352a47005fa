"""sl-train / sl-test drive BasicSR's own pipelines: progress log, checkpoints, SIGKILL resume, errors."""
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import torch

from sl_arch.utils.files import temporary_path
from tests.conftest import TINY_NET, cpu_env, make_options, read_train_log, run_cli, write_options

def test_sl_train_logs_progress_and_saves_checkpoints_that_carry_the_network_options(tmp_path):
    option_file = write_options(tmp_path / 'train.yml', make_options(tmp_path / 'data', total_iter=4))

    result = run_cli('sl_arch.train', '-opt', option_file, cwd=tmp_path)

    assert result.returncode == 0, result.stderr[-3000:]
    experiment = tmp_path / 'experiments' / 'tiny'
    log = read_train_log(experiment)
    assert '[epoch:' in log and 'iter:       4' in log and '[eta:' in log and 'l_pix:' in log
    assert 'Validation synthetic_val' in log and '# psnr:' in log
    checkpoint = torch.load(experiment / 'models' / 'net_g_latest.pth', map_location='cpu', weights_only=False)
    assert checkpoint['network_g'] == TINY_NET
    assert sorted(path.name for path in (experiment / 'training_states').iterdir()) == ['2.state', '4.state']


def test_sl_train_resumes_after_sigkill_with_iteration_optimizer_scheduler_and_flow_freeze(tmp_path):
    total_iter, fix_flow = 12, 6
    options = make_options(tmp_path / 'data', total_iter=total_iter, save_freq=2, fix_flow=fix_flow, val=False)
    option_file = write_options(tmp_path / 'train.yml', options)
    states = tmp_path / 'experiments' / 'tiny' / 'training_states'
    process = subprocess.Popen([sys.executable, '-m', 'sl_arch.train', '-opt', option_file], cwd=tmp_path,
                               env=cpu_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 90
    while not (states / '4.state').exists() and process.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    saved = sorted(int(path.name.split('.')[0]) for path in states.glob('*.state'))
    assert saved and max(saved) < total_iter, f'the run was not killed mid-training: states {saved}'
    # what a kill during a save leaves (empty temporaries of ours), beside a user's own hidden file
    leftovers = [temporary_path(states / f'{max(saved) + 2}.state'),
                 temporary_path(states.parent / 'models' / f'net_g_{max(saved) + 2}.pth')]
    users_file = states / '.notes.tmp'
    users_file.write_text('mine')

    result = run_cli('sl_arch.train', '-opt', option_file, '--auto_resume', cwd=tmp_path)

    assert result.returncode == 0, result.stderr[-3000:]
    assert not any(os.path.exists(path) for path in leftovers) and users_file.read_text() == 'mine'
    log = read_train_log(tmp_path / 'experiments' / 'tiny')
    resumed_at = max(saved)
    assert f'Resuming training from epoch: ' in log and f'iter: {resumed_at}.' in log
    assert f'Fix the flow parameters' in log.split('Resuming training')[-1]
    assert f'Train all parameters from iter {fix_flow}.' in log.split('Resuming training')[-1]
    final = torch.load(states / f'{total_iter}.state', map_location='cpu', weights_only=False)
    assert final['iter'] == total_iter
    assert final['schedulers'][0]['last_epoch'] == total_iter - 1
    # Adam's step counts continue from the killed run: total_iter for every parameter that always
    # trained, total_iter - (fix_flow - 1) for the flow parameters frozen during iterations 1..fix_flow-1.
    normal_group, flow_group = final['optimizers'][0]['param_groups']
    steps = final['optimizers'][0]['state']
    assert {int(steps[index]['step']) for index in normal_group['params']} == {total_iter}
    assert {int(steps[index]['step']) for index in flow_group['params']} == {total_iter - fix_flow + 1}


def exact_resume_options(data_root, num_workers=0, total_iter=14):
    """Every random part of the data on (windows of two strides, reversal, flips, rotations), EMA, two
    clips of 6 frames at batch size 2: 6 batches an epoch, so the run crosses epoch boundaries."""
    options = make_options(data_root, total_iter=total_iter, save_freq=1, fix_flow=3, val=False, ema_decay=0.9)
    options['datasets']['train'].update(interval_list=[1, 2], random_reverse=True, batch_size_per_gpu=2,
                                        num_worker_per_gpu=num_workers)
    return options


def final_weights(experiment):
    return torch.load(Path(experiment, 'models', 'net_g_latest.pth'), map_location='cpu', weights_only=False)


def assert_same_weights(resumed, uninterrupted):
    for key in ('params', 'params_ema'):
        assert resumed[key].keys() == uninterrupted[key].keys()
        differing = [name for name in uninterrupted[key]
                     if not torch.equal(resumed[key][name], uninterrupted[key][name])]
        assert not differing, f'{key}: {len(differing)} tensors differ, e.g. {differing[:3]}'


def test_a_run_killed_at_a_random_iteration_and_resumed_ends_with_bit_identical_weights(tmp_path):
    total_iter = 14
    kill_after = random.Random().randint(2, total_iter - 2)  # a new iteration every run, printed on failure
    whole, killed = tmp_path / 'whole', tmp_path / 'killed'
    for folder in (whole, killed):
        folder.mkdir()
    # the same option file (same data paths) for both runs, in two working directories
    option_file = write_options(tmp_path / 'train.yml', exact_resume_options(tmp_path / 'data', total_iter=total_iter))
    assert run_cli('sl_arch.train', '-opt', option_file, cwd=whole).returncode == 0

    states = killed / 'experiments' / 'tiny' / 'training_states'
    process = subprocess.Popen([sys.executable, '-m', 'sl_arch.train', '-opt', option_file], cwd=killed,
                               env=cpu_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 90
    while not (states / f'{kill_after}.state').exists() and process.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    saved = max(int(path.name.split('.')[0]) for path in states.glob('*.state'))
    assert saved < total_iter, f'the run ended before it was killed (kill_after={kill_after})'
    result = run_cli('sl_arch.train', '-opt', option_file, '--auto_resume', cwd=killed)

    assert result.returncode == 0, result.stderr[-3000:]
    assert f'iter: {saved}.' in read_train_log(killed / 'experiments' / 'tiny'), f'kill_after={kill_after}'
    assert_same_weights(final_weights(killed / 'experiments' / 'tiny'), final_weights(whole / 'experiments' / 'tiny'))


def test_resume_with_data_loader_workers_from_mid_epoch_states_ends_with_bit_identical_weights(tmp_path):
    total_iter = 10
    whole, resumed = tmp_path / 'whole', tmp_path / 'resumed'
    for folder in (whole, resumed):
        folder.mkdir()
    option_file = write_options(tmp_path / 'train.yml',
                                exact_resume_options(tmp_path / 'data', num_workers=2, total_iter=total_iter))
    assert run_cli('sl_arch.train', '-opt', option_file, cwd=whole).returncode == 0
    experiment = resumed / 'experiments' / 'tiny'
    shutil.copytree(whole / 'experiments' / 'tiny', experiment)
    # as if killed after iteration 4 (epoch 0, batch 4 of 6), then after 8 (epoch 1, batch 2 of 6)
    for stop in (4, 8):
        for path in list((experiment / 'training_states').glob('*.state')) + list((experiment / 'models').glob('*')):
            if path.name != f'{stop}.state' and path.name != f'net_g_{stop}.pth':
                path.unlink()
        result = run_cli('sl_arch.train', '-opt', option_file, '--auto_resume', cwd=resumed)
        assert result.returncode == 0, result.stderr[-3000:]

        assert_same_weights(final_weights(experiment), final_weights(whole / 'experiments' / 'tiny'))


def test_sl_train_reports_a_missing_option_file_in_one_line(tmp_path):
    result = run_cli('sl_arch.train', '-opt', str(tmp_path / 'nope.yml'), cwd=tmp_path)

    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f'error: option file {tmp_path / "nope.yml"} does not exist; pass -opt with a YAML file from options/.']


def test_sl_test_rejects_a_checkpoint_of_another_configuration_naming_the_keys(tmp_path):
    train_options = make_options(tmp_path / 'data', total_iter=2, save_freq=2, val=False)
    assert run_cli('sl_arch.train', '-opt', write_options(tmp_path / 'train.yml', train_options),
                   cwd=tmp_path).returncode == 0
    checkpoint = tmp_path / 'experiments' / 'tiny' / 'models' / 'net_g_latest.pth'
    test_options = make_options(tmp_path / 'data', name='other', network=dict(TINY_NET, num_feat=12))
    test_options['datasets'] = {'test': test_options['datasets']['val']}
    test_options['path']['pretrain_network_g'] = str(checkpoint)
    del test_options['train']
    earlier = tmp_path / 'results' / 'other'  # an earlier test run's folder, which BasicSR moves aside first
    earlier.mkdir(parents=True)
    (earlier / 'notes.txt').write_text('mine')

    result = run_cli('sl_arch.test', '-opt', write_options(tmp_path / 'test.yml', test_options), cwd=tmp_path)

    assert result.returncode == 2
    # BasicSR's logger prints the run options on stderr first; the failure itself is one line
    errors = [line for line in result.stderr.splitlines() if line.startswith('error:')]
    assert 'Traceback' not in result.stderr and len(errors) == 1
    assert errors[0] == result.stderr.strip().splitlines()[-1]
    assert errors[0].startswith('error: checkpoint ') and 'net_g_latest.pth' in errors[0]
    assert 'shape mismatch' in errors[0] and 'feat_extract.0.weight' in errors[0]
    # the failed run left nothing: the earlier folder has its name back, no archive, no folder holding only a log
    assert [path.name for path in (tmp_path / 'results').iterdir()] == ['other']
    assert [path.name for path in earlier.iterdir()] == ['notes.txt']

    # the same mistake in training: the first run's experiment keeps its name and checkpoints
    train_options = dict(train_options, network_g=dict(TINY_NET, num_feat=12))
    train_options['path'] = dict(train_options['path'], pretrain_network_g=str(shutil.copy(checkpoint, tmp_path)))
    result = run_cli('sl_arch.train', '-opt', write_options(tmp_path / 'train.yml', train_options), cwd=tmp_path)
    assert result.returncode == 2 and 'shape mismatch' in result.stderr.strip().splitlines()[-1]
    assert [path.name for path in (tmp_path / 'experiments').iterdir()] == ['tiny'] and checkpoint.is_file()


def test_sl_test_then_demo_write_frames_metrics_table_and_figures_under_results(tmp_path):
    train_options = make_options(tmp_path / 'data', total_iter=2, save_freq=2, val=False)
    assert run_cli('sl_arch.train', '-opt', write_options(tmp_path / 'train.yml', train_options),
                   cwd=tmp_path).returncode == 0
    test_options = make_options(tmp_path / 'data', name='tiny_test')
    test_options['datasets'] = {'test': test_options['datasets']['val']}
    test_options['path']['pretrain_network_g'] = str(tmp_path / 'experiments' / 'tiny' / 'models' / 'net_g_latest.pth')
    test_options['val']['save_img'] = True
    del test_options['train']

    test_file = write_options(tmp_path / 'test.yml', test_options)
    early = run_cli('sl_arch.demo', '-opt', test_file, cwd=tmp_path)
    result = run_cli('sl_arch.test', '-opt', test_file, cwd=tmp_path)
    demo = run_cli('sl_arch.demo', '-opt', test_file, cwd=tmp_path)

    assert early.returncode == 2 and early.stderr.strip().splitlines()[-1].startswith('error: SR frame results/')
    assert 'run sl-test -opt' in early.stderr and 'Traceback' not in early.stderr
    assert result.returncode == 0, result.stderr[-3000:]
    frames = tmp_path / 'results' / 'tiny_test' / 'visualization' / 'synthetic_val'
    assert sorted(path.name for path in (frames / 'clip1').iterdir()) == [f'{i:08d}_tiny_test.png' for i in range(6)]
    assert cv2.imread(str(frames / 'clip1' / '00000005_tiny_test.png')).shape == (96, 128, 3)
    log = next((tmp_path / 'results' / 'tiny_test').glob('test_*.log')).read_text()
    assert 'Validation synthetic_val' in log and '# clip0:' in log and '# clip1:' in log
    assert demo.returncode == 0, demo.stderr[-3000:]
    results = tmp_path / 'results' / 'tiny_test'
    table = (results / 'metrics.md').read_text()
    assert '| clip0 | 6 |' in table and '| clip1 | 6 |' in table and '| **Average** | 12 |' in table
    assert 'Bicubic PSNR-Y (dB)' in table and 'SemanticLens PSNR-Y (dB)' in table
    assert len((results / 'per_frame_metrics.csv').read_text().splitlines()) == 1 + 12
    for figure in ('crops.png', 'psnr_per_frame.png', 'instance_masks.png'):
        assert cv2.imread(str(results / figure)) is not None, figure
    assert not list(results.glob('.tmp_*'))


def test_a_seed_given_with_force_yml_is_the_seed_training_uses(tmp_path):
    options = make_options(tmp_path / 'data', total_iter=2, save_freq=2, val=False)
    seeds = {}
    for name, seed, force in (('file0', 0, []), ('file1', 1, []), ('forced1', 0, ['--force_yml', 'manual_seed=1'])):
        option_file = write_options(tmp_path / f'{name}.yml', dict(options, name=name, manual_seed=seed))
        assert run_cli('sl_arch.train', '-opt', option_file, *force, cwd=tmp_path).returncode == 0
        seeds[name] = torch.load(tmp_path / 'experiments' / name / 'models' / 'net_g_latest.pth',
                                 weights_only=False)['params']

    assert all(torch.equal(value, seeds['file1'][key]) for key, value in seeds['forced1'].items())
    assert not all(torch.equal(value, seeds['file0'][key]) for key, value in seeds['forced1'].items())


def test_sl_train_with_a_cpu_budget_stops_after_the_iteration_that_spends_it_then_saves_and_validates(tmp_path):
    import json
    options = make_options(tmp_path / 'data', total_iter=100000, save_freq=100000)
    options['train'].update(cpu_seconds=2, scheduler={'type': 'BudgetCosineLR', 'eta_min': 1e-5})
    option_file = write_options(tmp_path / 'train.yml', options)

    result = run_cli('sl_arch.train', '-opt', option_file, cwd=tmp_path)

    assert result.returncode == 0, result.stderr[-3000:]
    experiment = tmp_path / 'experiments' / 'tiny'
    record = json.loads((experiment / 'train_time.json').read_text())
    assert record['clock'] == 'cpu' and record['budget_spent'] and record['final']
    assert 2 <= record['seconds'] < 2 + 2 * record['seconds_per_iteration'] + 1  # the iteration that passed it, no more
    assert 1 <= record['iterations'] < 100000
    assert (experiment / 'models' / 'net_g_latest.pth').is_file()
    metrics = json.loads((experiment / 'metrics_synthetic_val.json').read_text())
    assert metrics['iteration'] == record['iterations'] and metrics['metrics']['psnr']['mean'] > 5
    assert 'End of training' in read_train_log(experiment)


def test_sl_train_refuses_bf16_on_a_cpu_without_its_arithmetic_in_one_line_before_writing(tmp_path, monkeypatch,
                                                                                          capsys, cpu_without_bf16):
    import pytest

    from sl_arch.train import main
    monkeypatch.chdir(tmp_path)
    options = make_options(tmp_path / 'data')
    options['train']['autocast'] = 'bf16'
    path = write_options(tmp_path / 'train.yml', options)
    with pytest.raises(SystemExit) as exit_info:
        main(['-opt', path])
    error = capsys.readouterr().err.strip().splitlines()
    assert exit_info.value.code == 2 and len(error) == 1
    assert error[0].startswith(f'error: option file {path}: train.autocast: bf16 on this CPU (') and error[0].endswith(
        'slower than float32; remove it from the option file to train in float32, or train on a GPU.')
    assert not (tmp_path / 'experiments').exists()


def test_sl_train_refuses_two_budgets_an_unknown_autocast_and_bad_train_values_in_one_line_before_writing(
        tmp_path, monkeypatch, capsys):
    import pytest

    from sl_arch.train import main
    zoo_weights = Path(__file__).resolve().parents[1] / 'model_zoo' / 'semanticlens_tiny_x4_bi.pth'
    monkeypatch.chdir(tmp_path)
    for change, message in (({'cpu_seconds': 1, 'gpu_seconds': 1}, 'has both cpu_seconds and gpu_seconds'),
                            ({'autocast': 'fp8'}, "train.autocast: 'fp8' is not one of bf16, fp16, false"),
                            ({'cpu_seconds': -3}, 'cpu_seconds: -3 is not a positive number of seconds'),
                            ({'channels_last': 'yes'}, "train: channels_last: 'yes' is not true or false"),
                            ({'loss_border_frames': -1}, 'train: loss_border_frames: -1 is not an integer >= 0'),
                            ({'loss_border_pixels': 1.5}, 'train: loss_border_pixels: 1.5 is not an integer >= 0'),
                            ({'lr_mul': 0.5}, 'train: lr_mul: 0.5 is not a mapping'),
                            ({'lr_mul': {'upsample': 0}}, 'train.lr_mul: upsample: 0 is not a positive number'),
                            ({'lr_mul': {'upsampler': 0.5}}, "train.lr_mul: 'upsampler' names no module of network_g"),
                            ({'cpu_seconds': float('nan')}, 'cpu_seconds: nan is not a positive number of seconds'),
                            ({'total_iter': 0}, 'train: total_iter: 0 is not a positive number'),
                            ({'ema_decay': 2}, 'train: ema_decay: 2 is not a number from 0 up to but not including 1'),
                            ({'optim_g': {'type': 'Adam', 'lr': -1.0}}, 'train.optim_g: lr: -1.0 is not a number >= 0'),
                            ({'logger': {'print_freq': 0}}, 'logger: print_freq: 0 is not a positive number'),
                            ({'val': {'val_freq': 0}}, 'val: val_freq: 0 is not a positive number'),
                            ({'path': {'resume_state': str(zoo_weights)}},  # network weights given as a state
                             f'path.resume_state {zoo_weights} is not a training state (no iter, optimizers')):
        options = make_options(tmp_path / 'data')
        for section in ('logger', 'val', 'path'):
            options[section] = {**options[section], **change.pop(section, {})}
        options['train'].update(change)
        with pytest.raises(SystemExit) as exit_info:
            main(['-opt', write_options(tmp_path / 'train.yml', options)])
        error = capsys.readouterr().err.strip().splitlines()
        assert exit_info.value.code == 2 and len(error) == 1 and message in error[0]
        assert not (tmp_path / 'experiments').exists()
