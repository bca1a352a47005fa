"""Specifications of the one checkpoint-to-network loader and of the architecture spec."""
import warnings

import pytest
import torch
import yaml
from basicsr.archs import build_network

from sl_arch.archs.spec import ArchSpec, arch_spec, check_input_fits
from sl_arch.utils.checkpoint import load_network, read_checkpoint
from sl_arch.utils.errors import CheckpointError, InputShapeError, SLError

from tests.conftest import TINY_NET

SMALL_BASICVSR = {'type': 'BasicVSR', 'num_feat': 4, 'num_block': 1}
SMALL_EDVR = {'type': 'EDVR', 'num_feat': 8, 'num_frame': 3, 'deformable_groups': 1, 'num_extract_block': 1,
              'num_reconstruct_block': 1, 'with_tsa': False}


def save(path, net_opt, metadata=True, keys=('params',), seed=0, prefix=''):
    """Save a randomly initialised ``net_opt`` network; each key in ``keys`` gets its own weights."""
    checkpoint = {}
    for offset, key in enumerate(keys):
        torch.manual_seed(seed + offset)
        checkpoint[key] = {prefix + name: value for name, value in build_network(dict(net_opt)).state_dict().items()}
    if metadata:
        checkpoint['network_g'] = dict(net_opt)
    torch.save(checkpoint, path)
    return str(path)


def clip(frames=2, height=16, width=16):
    torch.manual_seed(1)
    return torch.rand(1, frames, 3, height, width)


def same_output(first, second, lqs):
    with torch.no_grad():
        return torch.equal(first(lqs), second(lqs))


# ------------------------------------------------------------------------------------------ options
def test_checkpoint_metadata_builds_the_network_when_nothing_else_is_given(tmp_path):
    weights = save(tmp_path / 'sl.pth', TINY_NET)
    net, net_opt, spec, source, param_key = load_network(weights)
    assert net_opt == TINY_NET and source == weights and param_key == 'params'
    assert spec.type == 'SemanticLens' and not net.training
    reference = build_network(dict(TINY_NET))
    reference.load_state_dict(torch.load(weights)['params'])
    assert same_output(net, reference.eval(), clip())


def test_explicit_options_win_over_the_option_file_which_wins_over_the_metadata(tmp_path, capsys):
    wider = dict(TINY_NET, num_block=2)
    weights = save(tmp_path / 'wide.pth', wider)
    option_file = tmp_path / 'opt.yml'
    option_file.write_text(yaml.safe_dump({'name': 'x', 'network_g': dict(TINY_NET)}))
    # the option file names a smaller network than the weights: it is used, so loading fails on its keys
    with pytest.raises(CheckpointError, match=r'unexpected: trunk\.backward\.2\.1\.conv1\.weight'):
        load_network(weights, opt_path=str(option_file))
    # explicit options beat the option file; equal to the metadata: nothing to warn about
    loaded = load_network(weights, net_opt=wider, opt_path=str(option_file))
    assert loaded.source == 'net_opt' and loaded.net_opt['num_block'] == 2
    assert capsys.readouterr().err == ''


def test_explicit_options_that_load_but_differ_from_the_metadata_are_named_in_one_warning_line(tmp_path, capsys):
    weights = save(tmp_path / 'sl.pth', TINY_NET)
    loaded = load_network(weights, net_opt=dict(TINY_NET, window_size=8, use_mask_gate=True))
    assert loaded.net_opt['window_size'] == 8  # no weights depend on it: it loads, and computes differently
    assert capsys.readouterr().err == (f'warning: network_g from net_opt differs from the one saved in {weights} in '
                                       'use_mask_gate, window_size; using the one from net_opt.\n')
    # keys left at their defaults and *_path keys are not differences
    load_network(weights, net_opt=dict(TINY_NET, num_in_ch=3, flow_load_path='nowhere/flow.pth'))
    assert capsys.readouterr().err == ''


def test_an_option_file_of_only_the_network_section_is_read(tmp_path):
    weights = save(tmp_path / 'edvr.pth', SMALL_EDVR, metadata=False)
    option_file = tmp_path / 'edvr.yml'
    option_file.write_text(yaml.safe_dump(SMALL_EDVR))
    loaded = load_network(weights, opt_path=str(option_file))
    assert loaded.source == str(option_file) and loaded.spec.sliding_window_frames == 3


# ------------------------------------------------------------------------------------------ weights
def test_params_ema_is_preferred_params_is_used_when_asked_and_ema_falls_back_to_params(tmp_path):
    both = save(tmp_path / 'both.pth', TINY_NET, keys=('params', 'params_ema'))
    default, plain = load_network(both), load_network(both, param_key='params')
    assert default.param_key == 'params_ema' and plain.param_key == 'params'
    ema_state = torch.load(both)['params_ema']
    assert all(torch.equal(value, ema_state[name]) for name, value in default.net.state_dict().items())
    assert not same_output(default.net, plain.net, clip())
    only_params = save(tmp_path / 'params.pth', TINY_NET)
    assert load_network(only_params, param_key='params_ema').param_key == 'params'


def test_an_unknown_param_key_is_one_clear_error(tmp_path):
    weights = save(tmp_path / 'sl.pth', TINY_NET)
    with pytest.raises(CheckpointError) as error:
        load_network(weights, param_key='param_ema')
    assert str(error.value) == (f'--param-key param_ema: checkpoint {weights} has no such key (it has network_g, '
                                'params); use params or params_ema, or leave --param-key out.')


def test_data_parallel_module_prefix_is_stripped(tmp_path):
    plain = load_network(save(tmp_path / 'plain.pth', TINY_NET)).net
    wrapped = load_network(save(tmp_path / 'ddp.pth', TINY_NET, prefix='module.')).net
    assert same_output(plain, wrapped, clip())


def test_a_bare_state_dict_loads_with_an_option_file(tmp_path):
    torch.manual_seed(0)
    weights = tmp_path / 'bare.pth'
    torch.save(build_network(dict(SMALL_BASICVSR)).state_dict(), weights)
    loaded = load_network(str(weights), net_opt=SMALL_BASICVSR)
    assert loaded.param_key is None and loaded.spec.min_size == 33


def test_weights_of_another_configuration_name_the_missing_unexpected_and_mismatched_keys(tmp_path):
    weights = save(tmp_path / 'sl.pth', TINY_NET)
    with pytest.raises(CheckpointError) as error:
        load_network(weights, net_opt=SMALL_BASICVSR)
    message = str(error.value)
    assert message.startswith(f'checkpoint {weights} was made for another architecture or configuration than BasicVSR')
    assert 'missing: spynet.' in message and 'unexpected: semantic_extractor.' in message
    with pytest.raises(CheckpointError, match=r'shape mismatch \(checkpoint vs network\): feat_extract\.0\.weight '
                                              r'\(8, 3, 3, 3\) vs \(16, 3, 3, 3\)'):
        load_network(weights, net_opt=dict(TINY_NET, num_feat=16))


# ------------------------------------------------------------------------------------------ errors
@pytest.mark.parametrize('case', ['folder', 'no metadata', 'unregistered', 'does not fit', 'option file folder',
                                  'missing file', 'not a checkpoint'])
def test_bad_inputs_are_one_line_that_names_the_file_and_the_fix(tmp_path, case):
    weights = save(tmp_path / 'sl.pth', TINY_NET)
    bare = save(tmp_path / 'bare.pth', SMALL_BASICVSR, metadata=False)
    (tmp_path / 'models').mkdir()
    save(tmp_path / 'models' / 'net_g_100.pth', TINY_NET)
    (tmp_path / 'junk.pth').write_bytes(b'not a checkpoint')
    calls = {
        'folder': (dict(weights=str(tmp_path / 'models')),
                   f'--weights {tmp_path / "models"} is a folder; give the checkpoint file in it '
                   f'(e.g. {tmp_path / "models" / "net_g_100.pth"}).'),
        'no metadata': (dict(weights=bare), f'checkpoint {bare} carries no network_g metadata (it was not saved by '
                                            'sl-train); pass the option file it was trained with: --opt FILE.yml.'),
        'unregistered': (dict(weights=weights, net_opt={'type': 'SemanticLense'}),
                         "architecture 'SemanticLense' from net_opt is not registered; check network_g.type "
                         '(e.g. SemanticLens, BasicVSR, IconVSR, EDVR).'),
        'does not fit': (dict(weights=bare, net_opt=dict(SMALL_BASICVSR, num_feats=4)),
                         'network_g from net_opt does not fit BasicVSR: '),
        'option file folder': (dict(weights=bare, opt_path=str(tmp_path)),
                               f'option file {tmp_path} is a folder; give the .yml file (--opt).'),
        'missing file': (dict(weights=str(tmp_path / 'none.pth')), f'checkpoint {tmp_path / "none.pth"} does not exist'),
        'not a checkpoint': (dict(weights=str(tmp_path / 'junk.pth')), f'checkpoint {tmp_path / "junk.pth"} cannot '
                                                                       'be read'),
    }
    kwargs, expected = calls[case]
    with pytest.raises(SLError) as error:
        load_network(**kwargs)
    message = str(error.value)
    assert message.startswith(expected) and '\n' not in message


def test_messages_name_the_inputs_as_the_caller_does(tmp_path):
    (tmp_path / 'models').mkdir()
    with pytest.raises(CheckpointError, match=r'^path\.pretrain_network_g .* is a folder'):
        load_network(str(tmp_path / 'models'), names={'weights': 'path.pretrain_network_g'})
    with pytest.raises(CheckpointError, match=r'^checkpoint .*models is a folder; give a checkpoint file \(\.pth\) in it'):
        read_checkpoint(str(tmp_path / 'models'))  # as bench.pack reads its input (it had said 'does not exist')


# ------------------------------------------------------------------------------------------ spec
def runs(net_opt, frames, height, width):
    """True when the network built from ``net_opt`` processes such a clip, False when it raises."""
    torch.manual_seed(0)
    net = build_network(dict(net_opt)).eval()
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter('ignore')
            net(torch.rand(1, frames, 3, height, width))
    except (RuntimeError, AssertionError, IndexError, InputShapeError):
        return False
    return True


def test_semantic_lens_spec_matches_what_the_network_accepts():
    spec = arch_spec(TINY_NET)
    assert (spec.scale, spec.min_size, spec.makes_masks, spec.needs_masks, spec.is_sliding_window) == (4, 16, True,
                                                                                                       False, False)
    assert spec.graph_multiple == TINY_NET['window_size']
    # from this side on the flow pyramid uses all its levels (SLFlowWarper's min_level_size 4 px at the coarsest)
    from sl_arch.archs.semantic_lens_arch import PRESETS
    for name in ('tiny', 'paper'):
        side = arch_spec(dict(PRESETS[name], type='SemanticLens')).graph_min_size
        warper = build_network(dict(PRESETS[name], type='SemanticLens', use_semantics=False)).flow_warper
        assert warper.levels_for(side, side) == warper.num_levels > warper.levels_for(side - 1, side)
    assert arch_spec(dict(PRESETS['paper'], type='SemanticLens')).graph_min_size == 128
    assert runs(TINY_NET, 1, 16, 16) and not runs(TINY_NET, 2, 15, 40)
    assert arch_spec(dict(TINY_NET, scale=2)).scale == 2
    assert not arch_spec(dict(TINY_NET, use_semantics=False)).makes_masks
    given = arch_spec(dict(TINY_NET, semantic_extractor={'type': 'SLPrecomputedSemantics'}))
    assert given.needs_masks and not given.makes_masks


def test_basicvsr_and_iconvsr_specs_match_what_spynet_and_the_keyframes_accept():
    spec = arch_spec(SMALL_BASICVSR)
    assert (spec.scale, spec.min_size, spec.min_frames) == (4, 33, 1)
    assert runs(SMALL_BASICVSR, 1, 33, 33) and not runs(SMALL_BASICVSR, 1, 32, 48)
    icon = {'type': 'IconVSR', 'num_feat': 8, 'num_block': 1, 'temporal_padding': 2}
    spec = arch_spec(icon)
    assert (spec.min_size, spec.min_frames) == (33, 5)
    assert runs(icon, 5, 36, 36) and not runs(icon, 4, 36, 36)
    assert arch_spec(dict(icon, temporal_padding=3)).min_frames == 7
    # SLBasicVSR: BasicVSR's limits with SpyNet; with OpenCV's DIS, DIS's own 12 px
    assert arch_spec(dict(SMALL_BASICVSR, type='SLBasicVSR')).min_size == 33
    with_dis = dict(SMALL_BASICVSR, type='SLBasicVSR', flow_estimator='dis')
    assert (arch_spec(with_dis).scale, arch_spec(with_dis).min_size) == (4, 12)
    assert runs(with_dis, 2, 12, 12) and not runs(with_dis, 2, 11, 11)


def test_edvr_spec_is_a_sliding_window_of_its_frame_count_on_multiples_of_four():
    spec = arch_spec(SMALL_EDVR)
    assert (spec.sliding_window_frames, spec.size_multiple, spec.scale) == (3, 4, 4)
    assert arch_spec({'type': 'EDVR'}).sliding_window_frames == 5  # EDVR's own default
    assert runs(SMALL_EDVR, 3, 4, 8) and not runs(SMALL_EDVR, 3, 6, 8)
    assert arch_spec({'type': 'EDVR', 'hr_in': True}).size_multiple == 16


def test_frame_wise_and_basicvsrpp_specs():
    assert arch_spec({'type': 'SLFrameWise'}).scale == 4
    assert arch_spec({'type': 'SLFrameWise', 'network': {'type': 'MSRResNet', 'upscale': 2}}).scale == 2
    small = {'type': 'BasicVSRPlusPlus', 'mid_channels': 8, 'num_blocks': 1, 'cpu_cache_length': 2}
    spec = arch_spec(small)  # BasicSR's: longer clips than cpu_cache_length need CUDA
    assert (spec.min_size, spec.max_frames_cpu, spec.scale) == (64, 2, 4)
    assert runs(small, 2, 64, 64) and not runs(small, 2, 63, 64) and not runs(small, 3, 64, 64)
    ours = dict(small, type='SLBasicVSRPlusPlus')  # ours keeps them on the CPU
    spec = arch_spec(ours)
    assert (spec.min_size, spec.max_frames_cpu, spec.scale) == (64, None, 4)
    assert runs(ours, 3, 64, 64) and not runs(ours, 2, 63, 64)


def test_a_network_without_a_spec_entry_gets_the_whole_clip_defaults_and_unknown_types_are_refused():
    assert arch_spec({'type': 'MSRResNet'}) == ArchSpec(type='MSRResNet')
    with pytest.raises(SLError, match="'Nope' is not registered"):
        arch_spec({'type': 'Nope'})


def test_check_input_fits_names_the_limit_and_the_fix():
    spec = arch_spec(SMALL_BASICVSR)
    check_input_fits(spec, 33, 40, 3)
    with pytest.raises(SLError) as error:
        check_input_fits(spec, 32, 40, 3, source='clip.mp4')
    assert str(error.value) == ('BasicVSR needs frames and tiles of at least 33x33 input pixels; clip.mp4 is 40x32: '
                                'use larger frames.')
    with pytest.raises(SLError, match='with --tile 24: use larger frames or a larger --tile.'):
        check_input_fits(spec, 64, 64, 3, tile=24)
    icon = arch_spec({'type': 'IconVSR'})
    with pytest.raises(SLError, match=r'IconVSR needs at least 5 frames per window; x gives 3 \(9 frames\): '
                                      'raise --chunk to 5 or more'):
        check_input_fits(icon, 64, 64, [5, 3], source='x', clip_frames=9)
    edvr = arch_spec(SMALL_EDVR)
    check_input_fits(edvr, 8, 8, 1)  # windows are padded at the clip ends: any clip length
    plus = arch_spec({'type': 'BasicVSRPlusPlus', 'cpu_cache_length': 10})  # BasicSR's; ours has no such limit
    with pytest.raises(SLError, match='at most 10 frames per window without CUDA.*set --chunk 10 or less'):
        check_input_fits(plus, 64, 64, [12, 4])
    check_input_fits(plus, 64, 64, [12, 4], device='cuda:0')
    check_input_fits(arch_spec({'type': 'SLBasicVSRPlusPlus', 'cpu_cache_length': 10}), 64, 64, [12, 4])


# ------------------------------------------------------------------------------------------ model-zoo packing
def test_pack_keeps_float16_weights_the_network_options_and_the_runs_record_and_never_overwrites(tmp_path, capsys):
    import json

    from sl_arch.bench import pack
    models = tmp_path / 'experiments' / 'run' / 'models'
    models.mkdir(parents=True)
    weights = save(models / 'net_g_latest.pth', TINY_NET, keys=('params', 'params_ema'))
    (models.parent / 'train_time.json').write_text(json.dumps({'iterations': 12, 'clock': 'cpu', 'seconds': 3.5,
                                                               'seconds_per_iteration': 0.29, 'name': 'run'}))
    out = tmp_path / 'zoo' / 'packed.pth'
    pack.main([weights, '-o', str(out), '--data', 'demo frames', '--command', 'sl-train -opt x.yml'])
    packed = torch.load(out, weights_only=False)
    assert set(packed) == {'params', 'network_g', 'trained'} and packed['network_g'] == TINY_NET
    assert all(value.dtype == torch.float16 for value in packed['params'].values() if value.is_floating_point())
    assert {key: packed['trained'][key] for key in ('iterations', 'clock', 'seconds', 'data', 'command', 'weights')} == {
        'iterations': 12, 'clock': 'cpu', 'seconds': 3.5, 'data': 'demo frames', 'command': 'sl-train -opt x.yml',
        'weights': 'params, float16'}
    original, packed_net = load_network(weights, param_key='params').net, load_network(str(out)).net
    lqs = clip()
    with torch.no_grad():
        assert torch.allclose(original(lqs), packed_net(lqs), atol=2e-3)
    written = out.read_bytes()
    for argv, message in (([weights, '-o', str(out)], 'exists; nothing was written'),
                          ([weights, '-o', str(tmp_path / 'other.pth'), '--param-key', 'params_x'],
                           'no weights under --param-key params_x')):
        with pytest.raises(SystemExit) as exit_info:
            pack.main(argv)
        assert exit_info.value.code == 2 and message in capsys.readouterr().err
    assert out.read_bytes() == written and not (tmp_path / 'other.pth').exists()
    bare = save(tmp_path / 'bare.pth', TINY_NET, metadata=False)
    with pytest.raises(SLError, match='carries no network_g; pack a checkpoint saved by sl-train'):
        pack.pack(bare, str(tmp_path / 'bare_packed.pth'))
