"""sl-train / sl-test: bad option files, --force_yml, -h, unwritable outputs and unknown keys give one
``error:`` line and exit code 2 before anything is written (most cases in-process, a few end to end)."""
import copy
from pathlib import Path

import pytest
import torch

from sl_arch import test as sl_test
from sl_arch import train as sl_train
from sl_arch.utils.errors import SLError
from sl_arch.utils.options import (apply_force_yml, check_options, load_checked_options, load_option_file,
                                   reject_unknown_keys)
from tests.conftest import make_options, run_cli, write_options

OPTIONS_DIR = Path(__file__).resolve().parents[1] / 'options'


@pytest.fixture(scope='module')
def train_file(tmp_path_factory):
    """A valid training option file on synthetic clips (nothing is trained from it in-process)."""
    root = tmp_path_factory.mktemp('cli')
    return write_options(root / 'train.yml', make_options(root / 'data'))


def sl_test_options(data_root, **changes):
    options = make_options(data_root, name='tiny_test')
    options['datasets'] = {'test': options['datasets']['val']}
    del options['train']
    options.update(changes)
    return options


def error_line(capsys, main, *argv):
    """Run a command's ``main`` in-process; return its one stderr line after checking exit code 2."""
    with pytest.raises(SystemExit) as exit_info:
        main(list(argv))
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('error: '), lines
    return lines[0]


def check_error(opt, path='train.yml', is_train=True, force_yml=None):
    """The message of the SLError that --force_yml + check_options raise for ``opt`` (no file system checks)."""
    with pytest.raises(SLError) as error:
        apply_force_yml(opt, force_yml, path)
        check_options(opt, path, is_train, check_paths=False)
    assert '\n' not in str(error.value)
    return str(error.value)


# ---------------------------------------------------------------------------------- 1. option files
@pytest.mark.parametrize('main', [sl_train.main, sl_test.main], ids=['sl-train', 'sl-test'])
def test_yaml_syntax_error_is_one_line_naming_the_file_and_line(tmp_path, capsys, main):
    bad = tmp_path / 'bad.yml'
    bad.write_text('name: x\ntrain:\n  total_iter: [1, 2\n  ema_decay: 0\n')
    line = error_line(capsys, main, '-opt', str(bad))
    assert line.startswith(f'error: option file {bad} is not valid YAML: line ') and 'fix that line' in line


@pytest.mark.parametrize('content, message', [
    ('', 'is empty; copy one from options/'),
    ('# only a comment\n', 'is empty; copy one from options/'),
    ('- name: x\n- scale: 4\n', 'holds a YAML list, not a mapping of option keys'),
    ('just some text\n', 'holds a YAML str, not a mapping of option keys'),
])
def test_empty_or_non_mapping_option_file_is_one_line(tmp_path, capsys, content, message):
    path = tmp_path / 'opt.yml'
    path.write_text(content)
    assert error_line(capsys, sl_train.main, '-opt', str(path)) == f'error: option file {path} {message}' + (
        ' and edit it.' if 'empty' in message else ' (name: ..., model_type: ..., datasets: ...); copy one from '
        'options/ and edit it.')


def test_option_file_that_is_a_folder_or_not_yml_is_one_line(tmp_path, capsys):
    assert error_line(capsys, sl_test.main, '-opt', str(tmp_path)) == (
        f'error: option file {tmp_path} is a folder; pass -opt with a YAML file in it (see options/).')
    weights = tmp_path / 'net_g_latest.pth'
    weights.write_bytes(b'PK\x03\x04\x00\x00binary')
    assert error_line(capsys, sl_test.main, '-opt', str(weights)) == (
        f'error: option file {weights} is not a .yml file; pass -opt with a YAML option file from options/.')


def test_yaml_error_end_to_end_prints_one_line_and_no_traceback(tmp_path):
    bad = tmp_path / 'bad.yml'
    bad.write_text('name: x\n  scale: 4\n')
    result = run_cli('sl_arch.train', '-opt', str(bad), cwd=tmp_path)
    assert result.returncode == 2 and 'Traceback' not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        f'error: option file {bad} is not valid YAML: line 2, column 8: mapping values are not allowed ')
    assert not (tmp_path / 'experiments').exists()


# ---------------------------------------------------------------------------------- 2. --force_yml
@pytest.mark.parametrize('entry, message', [
    ('train:ema_decay', 'expected one section:key=value, e.g. train:ema_decay=0.999 (no "=" found).'),
    ('train:ema_decay=0.9=1', 'expected one section:key=value, e.g. train:ema_decay=0.999 (more than one "=" found).'),
    ('trian:ema_decay=0.9', 'has no section trian (did you mean --force_yml train:ema_decay=0.9?)'),
    ('val:val_freq=1e8', "BasicSR reads '1e8' as the string '1e8' but val:val_freq is the number 1000000 in "),
    ('val:val_freq=1e8', 'write it as 100000000 (BasicSR reads only plain digits'),
    ('train:warmup_iter=-5', 'write it as !!float-5'),
    ('lr=2e-3', 'nothing reads lr (did you mean --force_yml train:optim_g:lr=2e-3?)'),
    ('datasets:train:use_hflipp=false', 'nothing reads datasets:train:use_hflipp (did you mean --force_yml '
                                        'datasets:train:use_hflip=false?)'),
    ('val:tile:chunk=8', 'has no section val:tile; add val:tile to the file'),
    ('train:total_iter:x=1', 'has no section train:total_iter (train:total_iter is a value there)'),
    ('val:save_img=1', "BasicSR reads '1' as the number 1 but val:save_img is the bool False"),
    ('train:scheduler:periods=[4,', "BasicSR cannot read the value '[4,'"),
])
def test_force_yml_mistakes_are_refused_before_basicsr_sees_them(train_file, capsys, entry, message):
    line = error_line(capsys, sl_train.main, '-opt', train_file, '--force_yml', 'train:total_iter=8', entry)
    assert line.startswith(f'error: --force_yml {entry}: ') and message in line


def test_force_yml_that_basicsr_reads_right_is_applied_like_basicsr(train_file):
    opt = load_checked_options(train_file, ['train:optim_g:lr=0.002', 'val:val_freq=100000000', 'train:fix_flow=2',
                                            'path:pretrain_network_g=~', 'datasets:train:interval_list=[1,2]'])
    assert opt['train']['optim_g']['lr'] == 0.002 and opt['val']['val_freq'] == 100000000
    assert opt['train']['fix_flow'] == 2 and opt['path']['pretrain_network_g'] is None
    assert opt['datasets']['train']['interval_list'] == [1, 2]


# ---------------------------------------------------------------------------------- 3. -h
@pytest.mark.parametrize('main, prog', [(sl_train.main, 'sl-train'), (sl_test.main, 'sl-test')])
def test_help_prints_usage_with_basicsr_arguments_and_exits_0(capsys, main, prog):
    with pytest.raises(SystemExit) as exit_info:
        main(['-h'])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f'usage: {prog} ')
    for argument in ('-opt FILE.yml', '--launcher', '--auto_resume', '--debug', '--local_rank', '--force_yml',
                     f'{prog}: BasicSR'):
        assert argument in out, argument


def test_unknown_argument_is_one_line(train_file, capsys):
    assert error_line(capsys, sl_train.main, '-opt', train_file, '--auto-resum') == (
        'error: unrecognized arguments: --auto-resum; run sl-train -h for the options.')


# ---------------------------------------------------------------------------------- 4. outputs
def test_a_file_named_experiments_in_the_way_is_one_line_and_nothing_is_written(train_file, tmp_path):
    (tmp_path / 'experiments').write_text('not a folder')
    result = run_cli('sl_arch.train', '-opt', train_file, cwd=tmp_path)
    assert result.returncode == 2 and 'Traceback' not in result.stderr
    assert result.stderr.strip().splitlines() == [
        f'error: cannot write {tmp_path}/experiments/tiny: {tmp_path}/experiments is not a folder; run sl-train from '
        'another folder, or move away the file in the way, or make the folder writable.']
    assert sorted(path.name for path in tmp_path.iterdir()) == ['experiments']


def test_an_output_path_under_a_file_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr('sys.argv', ['sl-test'])
    blocker = tmp_path / 'a_file'
    blocker.write_text('x')
    options = sl_test_options(tmp_path / 'data')
    options['path']['experiments_root'] = str(blocker / 'sub')
    option_file = write_options(tmp_path / 'test.yml', options)
    assert error_line(capsys, sl_test.main, '-opt', option_file) == (
        f'error: cannot write {blocker}/sub: {blocker} is not a folder; fix path.experiments_root in the option file.')
    assert not (tmp_path / 'results').exists()
    (tmp_path / 'results').write_text('x')
    option_file = write_options(tmp_path / 'test.yml', sl_test_options(tmp_path / 'data'))
    assert error_line(capsys, sl_test.main, '-opt', option_file).startswith(
        f'error: cannot write {tmp_path}/results/tiny_test: {tmp_path}/results is not a folder; run sl-test from ')


# ---------------------------------------------------------------------------------- 5. unknown keys
@pytest.mark.parametrize('section, key, message', [
    ((), 'lr', "option file train.yml got unknown option key(s) 'lr' under the top level; valid keys are: name, "),
    ((), 'manual_sed', "'manual_sed' (did you mean 'manual_seed'?) under the top level"),
    (('train',), 'ema_decy', "'ema_decy' (did you mean 'ema_decay'?) under train; valid keys are: ema_decay, optim_g"),
    (('train',), 'fix_flows', "'fix_flows' (did you mean 'fix_flow'?) under train"),
    (('val',), 'save_imgs', "'save_imgs' (did you mean 'save_img'?) under val"),
    (('val',), 'suffix', None),
    (('val', 'tile'), 'tile_overlapp', "'tile_overlapp' (did you mean 'tile_overlap'?) under val.tile; valid keys are: "
                                       'chunk, overlap, tile, tile_overlap, num_neighbours, padding, multiple.'),
    (('path',), 'pretrain_netwrok_g', "'pretrain_netwrok_g' (did you mean 'pretrain_network_g'?) under path"),
    (('logger',), 'print_frq', "'print_frq' (did you mean 'print_freq'?) under logger"),
    (('datasets', 'train'), 'use_hflipp', "SLVideoRecurrentDataset got unknown option key(s) 'use_hflipp' (did you "
                                          "mean 'use_hflip'?) under datasets.train"),
    (('datasets', 'val'), 'chunk_sise', "SLVideoTestDataset got unknown option key(s) 'chunk_sise' (did you mean "
                                        "'chunk_size'?) under datasets.val"),
    (('network_g',), 'num_feats', "'num_feats' (did you mean 'num_feat'?) under network_g"),
])
def test_unknown_keys_of_the_sections_we_read_get_did_you_mean(tmp_path, section, key, message):
    opt = make_options(tmp_path / 'data')
    opt['val']['tile'] = {'chunk': 4}
    node = opt
    for name in section:
        node = node[name]
    node[key] = 1
    if message is None:
        check_options(opt, 'train.yml', True, check_paths=False)
    else:
        assert message in check_error(opt)


def test_model_sections_of_other_model_types_are_not_checked_but_the_top_level_is(tmp_path):
    opt = make_options(tmp_path / 'data')
    opt['model_type'] = 'VideoRecurrentModel'
    opt['train']['gan_opt'] = {'type': 'GANLoss'}
    check_options(copy.deepcopy(opt), 'train.yml', True, check_paths=False)
    opt['lr'] = 1
    assert "unknown option key(s) 'lr' under the top level" in check_error(opt)


def test_reject_unknown_keys_lists_every_key_with_its_hint():
    with pytest.raises(SLError) as error:
        reject_unknown_keys(['use_hflipp', 'zzz'], ['use_hflip', 'use_rot'], 'datasets.train', 'X')
    assert str(error.value) == ("X got unknown option key(s) 'use_hflipp' (did you mean 'use_hflip'?), 'zzz' under "
                                'datasets.train; valid keys are: use_hflip, use_rot.')


@pytest.mark.parametrize('path', sorted(OPTIONS_DIR.glob('*/*/*.yml')), ids=lambda path: path.name)
def test_every_option_file_of_the_repository_passes_the_checks(path, slow_cpu_autocast):
    # slow_cpu_autocast: the model-zoo files' bf16 passes on any CPU here; a CPU without bf16 arithmetic refusing it
    # is tested in test_train.py
    check_options(load_option_file(str(path)), str(path), path.parts[-3] == 'train', check_paths=False)


# ---------------------------------------------------------------------------------- 7. other sections
@pytest.mark.parametrize('change, message', [
    (lambda opt: opt.pop('datasets'), 'option file train.yml has no datasets (needed by BasicSR'),
    (lambda opt: opt.pop('train'), 'option file train.yml has no train (needed by BasicSR'),
    (lambda opt: opt['datasets'].pop('train'), 'has no train dataset under datasets'),
    (lambda opt: opt['train'].pop('total_iter'), 'train has no total_iter (BasicSR reads it)'),
    (lambda opt: opt.update(model_type='SLVideoRecurentModel'),
     "model_type 'SLVideoRecurentModel' is not registered (did you mean 'SLVideoRecurrentModel'?)"),
    (lambda opt: opt['network_g'].update(type='SemanticLense'),
     "network_g.type 'SemanticLense' is not registered (did you mean 'SemanticLens'?)"),
    (lambda opt: opt['datasets']['train'].update(type='SLVideoRecurrentDatset'),
     "datasets.train.type 'SLVideoRecurrentDatset' is not registered (did you mean 'SLVideoRecurrentDataset'?)"),
    (lambda opt: opt['datasets'].update(test=opt['datasets'].pop('val')),
     "dataset phase 'test' is not one of train, val"),
    (lambda opt: opt['datasets']['train'].update(num_frame='5'), "num_frame: '5' is not a positive integer"),
    (lambda opt: opt['datasets']['train'].update(gt_size=64.5), 'gt_size: 64.5 is not a positive integer'),
    (lambda opt: opt['datasets']['train'].update(io_backend='disk'), "io_backend: 'disk' is not a mapping"),
    (lambda opt: opt['datasets']['train'].update(io_backend={'type': 'lmbd'}),
     "io_backend type 'lmbd' is not supported"),
    (lambda opt: opt['datasets']['train'].pop('batch_size_per_gpu'), 'datasets.train has no batch_size_per_gpu'),
    (lambda opt: opt.update(num_gpu='all'), "num_gpu: 'all' is not auto or an integer >= 0"),
    (lambda opt: (opt['train'].update(loss_border_frames=1), opt.update(network_g={'type': 'SLFrameWise'})),
     'train.loss_border_frames needs a network that reconstructs chosen frames (SemanticLens); SLFrameWise does not'),
])
def test_other_option_mistakes_are_one_line(tmp_path, change, message):
    opt = make_options(tmp_path / 'data')
    change(opt)
    assert message in check_error(opt)


def test_test_phase_needs_val_section_with_save_img(tmp_path):
    opt = sl_test_options(tmp_path / 'data')
    del opt['val']['save_img']
    assert 'val has no save_img (BasicSR reads it)' in check_error(opt, 'test.yml', is_train=False)


def test_missing_data_is_found_before_the_experiment_folder_is_made(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    options = make_options(tmp_path / 'data')
    options['datasets']['val']['dataroot_gt'] = str(tmp_path / 'nope')
    option_file = write_options(tmp_path / 'train.yml', options)
    assert error_line(capsys, sl_train.main, '-opt', option_file) == (
        f'error: option file {option_file}: dataroot_gt {tmp_path}/nope does not exist or is not a folder; fix the '
        'path in the option file.')
    options['datasets']['val']['dataroot_gt'] = options['datasets']['train']['dataroot_gt']
    options['datasets']['train']['meta_info_file'] = str(tmp_path / 'meta.txt')
    option_file = write_options(tmp_path / 'train.yml', options)
    assert error_line(capsys, sl_train.main, '-opt', option_file) == (
        f'error: option file {option_file}: meta_info_file {tmp_path}/meta.txt does not exist; fix the path or remove '
        'the option to scan folders.')
    del options['datasets']['train']['meta_info_file']
    options['datasets']['train']['io_backend'] = {'type': 'lmdb'}
    option_file = write_options(tmp_path / 'train.yml', options)
    assert error_line(capsys, sl_train.main, '-opt', option_file) == (
        f'error: option file {option_file}: {tmp_path}/data/LR is not an lmdb database (no data.mdb); create it with '
        'sl-prepare --lmdb or set io_backend.type to disk.')
    assert not (tmp_path / 'experiments').exists()


def test_a_key_given_twice_is_refused_instead_of_the_last_one_silently_winning(tmp_path, capsys):
    path = tmp_path / 'dup.yml'
    path.write_text('name: a\nval:\n  save_img: true\nscale: 4\nval:\n  metrics: ~\n')
    assert error_line(capsys, sl_test.main, '-opt', str(path)) == (
        f"error: option file {path} is not valid YAML: line 5, column 1: the key 'val' is given twice in one mapping; "
        'fix that line.')


def test_a_missing_pretrained_network_is_found_before_anything_is_written(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    options = sl_test_options(tmp_path / 'data')
    options['path']['pretrain_network_g'] = str(tmp_path / 'net_g_latest.pth')
    option_file = write_options(tmp_path / 'test.yml', options)
    assert error_line(capsys, sl_test.main, '-opt', option_file) == (
        f'error: option file {option_file}: path.pretrain_network_g {tmp_path}/net_g_latest.pth does not exist; fix '
        'the path (e.g. experiments/<name>/models/net_g_latest.pth) or set it to ~.')
    assert not (tmp_path / 'results').exists()


@pytest.mark.parametrize('main', [sl_train.main, sl_test.main], ids=['sl-train', 'sl-test'])
def test_weights_inside_the_folder_basicsr_moves_aside_are_refused_before_it_moves_it(tmp_path, capsys, monkeypatch,
                                                                                      main):
    # BasicSR moved experiments/<name> (results/<name>) to <name>_archived_<time> and then found no weights there
    monkeypatch.chdir(tmp_path)
    is_train = main is sl_train.main
    options = make_options(tmp_path / 'data') if is_train else sl_test_options(tmp_path / 'data')
    folder = tmp_path / ('experiments' if is_train else 'results') / options['name']
    weights = folder / 'models' / 'net_g_2.pth'
    weights.parent.mkdir(parents=True)
    torch.save({'params': {}}, weights)
    options['path']['pretrain_network_g'] = str(weights)
    option_file = write_options(tmp_path / 'run.yml', options)
    command = 'sl-train' if is_train else 'sl-test'
    assert error_line(capsys, main, '-opt', option_file) == (
        f'error: path.pretrain_network_g {weights} lies in {folder}, which {command} moves aside to '
        f'{options["name"]}_archived_<time> before it loads weights; copy the file out of that folder and point to '
        'the copy, or give the run another name.')
    assert sorted(path.name for path in folder.parent.iterdir()) == [options['name']] and weights.is_file()


def test_a_resumed_training_moves_nothing_aside(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # BasicSR looks for --auto_resume's states under ./experiments
    options = {'is_train': True, 'name': 'run', 'auto_resume': False, 'logger': {'use_tb_logger': True},
               'path': {'experiments_root': str(tmp_path / 'experiments' / 'run'), 'resume_state': None}}
    assert sl_train.folders_moved_aside(options, str(tmp_path)) == [str(tmp_path / 'experiments' / 'run'),
                                                                    str(tmp_path / 'tb_logger' / 'run')]
    options['path']['resume_state'] = 'experiments/run/training_states/2.state'
    assert sl_train.folders_moved_aside(options, str(tmp_path)) == []
    # with --auto_resume BasicSR resumes from a state it finds, or else starts afresh whatever resume_state says
    options['auto_resume'] = True
    assert len(sl_train.folders_moved_aside(options, str(tmp_path))) == 2
    (tmp_path / 'experiments' / 'run' / 'training_states').mkdir(parents=True)
    (tmp_path / 'experiments' / 'run' / 'training_states' / '4.state').write_bytes(b'')
    assert sl_train.folders_moved_aside(options, str(tmp_path)) == []


def test_the_train_and_val_keys_our_model_reads_are_all_known_to_the_checks():
    import re

    import sl_arch.models.sl_video_recurrent_model as model_module
    from sl_arch.utils.options import TRAIN_KEYS, VAL_KEYS

    source = Path(model_module.__file__).read_text()
    for prefix, known in (('train', TRAIN_KEYS), ('val', VAL_KEYS)):
        read = set(re.findall(prefix + r"_opt(?:\.get\(|\[)'(\w+)'", source))
        if prefix == 'train':
            read |= set(model_module.AUX_LOSS_KEYS)  # read through optional_loss(key)
        assert read and read <= set(known), f'{prefix} keys read by the model but unknown to the checks: ' \
                                            f'{sorted(read - set(known))}; add them to sl_arch/utils/options.py'
