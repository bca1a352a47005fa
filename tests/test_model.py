"""SLVideoRecurrentModel: CPU validation, EMA at test time, tiled test, flow freeze, checkpoints, option files."""
import glob
import math
from pathlib import Path

import pytest
import torch
import yaml

import sl_arch  # noqa: F401
from basicsr.archs import build_network
from basicsr.data import build_dataloader, build_dataset
from basicsr.models import build_model
from basicsr.utils.options import ordered_yaml
from sl_arch.models.sl_video_recurrent_model import is_flow_parameter
from sl_arch.utils.errors import CheckpointError, SLError
from tests.conftest import TINY_NET, make_options

ROOT = Path(__file__).resolve().parents[1]


def build(tmp_path, **kwargs):
    """A training-mode model on synthetic clips, with BasicSR's runtime keys filled in."""
    opt = make_options(tmp_path / 'data', **kwargs)
    opt.update(is_train=True, dist=False, rank=0, world_size=1, auto_resume=False)
    for phase, dataset_opt in opt['datasets'].items():
        dataset_opt.update(phase=phase, scale=opt['scale'])
    root = tmp_path / 'experiments' / opt['name']
    opt['path'].update(experiments_root=str(root), models=str(root / 'models'),
                       training_states=str(root / 'training_states'), visualization=str(root / 'visualization'))
    return build_model(opt), opt


def val_loader(opt, **overrides):
    dataset_opt = dict(opt['datasets']['val'], **overrides)
    return build_dataloader(build_dataset(dataset_opt), dataset_opt, num_gpu=0, dist=False)


def test_flow_freeze_is_decided_by_the_iteration_so_a_resumed_run_gets_it_right(tmp_path):
    model, _ = build(tmp_path, fix_flow=5)
    flow = {name: param for name, param in model.net_g.named_parameters() if is_flow_parameter(name)}
    others = [param for name, param in model.net_g.named_parameters() if not is_flow_parameter(name)]
    assert flow and all('flow_warper' in name for name in flow)

    model.apply_flow_freeze(7)  # a run resumed after the freeze ended
    assert all(param.requires_grad for param in flow.values())
    model.apply_flow_freeze(3)  # a run resumed inside the freeze
    assert not any(param.requires_grad for param in flow.values()) and all(param.requires_grad for param in others)
    model.apply_flow_freeze(5)
    assert all(param.requires_grad for param in flow.values())


def test_training_step_with_fixed_flow_leaves_flow_weights_unchanged_and_updates_the_rest(tmp_path):
    model, opt = build(tmp_path, fix_flow=3)
    batch = next(iter(build_dataloader(build_dataset(opt['datasets']['train']), opt['datasets']['train'], num_gpu=0)))
    before = {name: param.detach().clone() for name, param in model.net_g.named_parameters()}

    model.feed_data(batch)
    model.optimize_parameters(1)

    after = dict(model.net_g.named_parameters())
    assert all(torch.equal(before[name], after[name]) for name in before if is_flow_parameter(name))
    assert not torch.equal(before['conv_last.weight'], after['conv_last.weight'])
    assert set(model.get_current_log()) == {'l_pix'}


def test_cpu_validation_of_chunked_clips_measures_every_frame_once_in_order(tmp_path):
    model, opt = build(tmp_path)

    model.validation(val_loader(opt, chunk_size=4), current_iter=1, tb_logger=None, save_img=False)

    assert sorted(model.metric_results) == ['clip0', 'clip1']
    for table in model.metric_results.values():
        assert table.shape == (6, 2)  # 6 frames (chunks of 4 + 2), PSNR and SSIM
        assert (table[:, 0] > 5).all() and (table[:, 1] > 0).all()
    assert model.best_metric_results['synthetic_val']['psnr']['iter'] == 1


def test_validation_uses_the_ema_network_when_there_is_one(tmp_path):
    model, opt = build(tmp_path, ema_decay=0.999)
    with torch.no_grad():
        for param in model.net_g_ema.parameters():
            param.add_(0.05)
    lq = torch.rand(1, 3, 3, 16, 16)
    model.feed_data({'lq': lq})

    model.test()

    with torch.no_grad():
        assert torch.allclose(model.output, model.net_g_ema.eval()(lq), atol=1e-6)
        assert not torch.allclose(model.output, model.net_g.eval()(lq), atol=1e-3)


def test_tiled_test_never_gives_the_network_more_than_a_window_or_a_tile(tmp_path):
    model, opt = build(tmp_path)
    seen = []
    model.net_g.register_forward_pre_hook(lambda module, args: seen.append(tuple(args[0].shape)))
    model.opt['val']['tile'] = {'chunk': 3, 'overlap': 1, 'tile': 16, 'tile_overlap': 4}
    lq = torch.rand(1, 6, 3, 24, 32)
    model.feed_data({'lq': lq, 'masks': torch.randint(0, 2, (1, 6, 24, 32))})

    model.test()

    assert model.output.shape == (1, 6, 3, 96, 128)
    assert seen and max(shape[1] for shape in seen) == 3 and max(max(shape[-2:]) for shape in seen) == 16


def test_saved_network_is_atomic_and_carries_network_options(tmp_path, monkeypatch):
    model, opt = build(tmp_path)
    Path(opt['path']['models']).mkdir(parents=True)
    model.save_network(model.net_g, 'net_g', 5)
    path = Path(opt['path']['models']) / 'net_g_5.pth'
    good = path.read_bytes()

    def interrupted_save(obj, handle, *args, **kwargs):
        handle.write(b'partial')
        raise KeyboardInterrupt  # a kill in the middle of writing

    monkeypatch.setattr(torch, 'save', interrupted_save)
    with pytest.raises(KeyboardInterrupt):
        model.save_network(model.net_g, 'net_g', 5)

    assert path.read_bytes() == good
    assert sorted(p.name for p in path.parent.iterdir()) == ['net_g_5.pth']
    assert torch.load(path, weights_only=False)['network_g'] == TINY_NET


def test_loading_weights_of_another_configuration_names_the_mismatched_keys(tmp_path):
    model, opt = build(tmp_path)
    other = build_network(dict(TINY_NET, num_block=2))
    path = tmp_path / 'other.pth'
    torch.save({'params': other.state_dict()}, path)

    with pytest.raises(CheckpointError, match=r'other.pth.*unexpected: trunk\.backward\.2\.1\.conv1\.weight'):
        model.load_network(model.net_g, str(path))


@pytest.mark.parametrize('option_file', sorted(glob.glob(str(ROOT / 'options' / '*' / '*' / '*.yml'))),
                         ids=lambda path: Path(path).name)
def test_every_option_file_uses_registered_classes_and_builds_its_network(option_file):
    from basicsr.utils.registry import DATASET_REGISTRY, MODEL_REGISTRY
    with open(option_file) as handle:
        opt = yaml.load(handle, Loader=ordered_yaml()[0])

    assert opt['model_type'] == 'SLVideoRecurrentModel' and MODEL_REGISTRY.get(opt['model_type'])
    assert all(DATASET_REGISTRY.get(dataset['type']) for dataset in opt['datasets'].values())
    assert opt['val']['metrics']['psnr']['test_y_channel'] is True
    net = build_network(dict(opt['network_g']))
    inner = getattr(net, 'net', net)  # SLFrameWise wraps a single-image network
    # SemanticLens has `scale`, SRResNet `upscale`; BasicSR's BasicVSR, IconVSR, BasicVSR++ and EDVR are x4 only
    network_scale = getattr(net, 'scale', None) or getattr(inner, 'upscale', None) or 4
    assert opt['scale'] == network_scale


def training_batch(opt):
    return next(iter(build_dataloader(build_dataset(opt['datasets']['train']), opt['datasets']['train'], num_gpu=0)))


def test_validation_writes_per_sequence_metrics_and_the_mean_of_sequence_means_as_json(tmp_path):
    import json
    model, opt = build(tmp_path)
    Path(opt['path']['experiments_root']).mkdir(parents=True)
    model.validation(val_loader(opt, chunk_size=4), current_iter=3, tb_logger=None, save_img=False)

    record = json.loads((Path(opt['path']['experiments_root']) / 'metrics_synthetic_val.json').read_text())
    assert record['iteration'] == 3 and record['frames'] == {'clip0': 6, 'clip1': 6}
    for index, metric in enumerate(('psnr', 'ssim')):
        sequences = {folder: table[:, index].mean().item() for folder, table in model.metric_results.items()}
        assert record['metrics'][metric]['sequences'] == pytest.approx(sequences)
        assert record['metrics'][metric]['mean'] == pytest.approx(sum(sequences.values()) / 2)
    assert record['metrics']['psnr']['mean'] == pytest.approx(model.best_metric_results['synthetic_val']['psnr']['val'])


def test_budget_cosine_anneals_over_the_spent_part_of_the_cpu_seconds(tmp_path):
    model, _ = build(tmp_path)
    options = dict(model.opt)
    options['train'] = dict(options['train'], cpu_seconds=100,
                            scheduler={'type': 'BudgetCosineLR', 'eta_min': 1e-5})
    model = build_model(options)
    assert model.clock.kind == 'cpu' and model.clock.budget == 100
    groups = model.optimizer_g.param_groups  # flow parameters at lr * flow_lr_mul (0.5)
    for spent, factor in ((0, 1.0), (50, 0.5), (100, 0.0)):
        model.clock.offset = spent
        model.update_learning_rate(2)
        # the clock also counts the CPU time since update_learning_rate started it: well under 0.1 s
        assert groups[0]['lr'] == pytest.approx(1e-5 + (1e-3 - 1e-5) * factor, abs=1e-6)
        assert groups[1]['lr'] == pytest.approx(1e-5 + (5e-4 - 1e-5) * factor, abs=1e-6)
    assert model.budget_spent() and not build_model(dict(options, train=dict(options['train'], cpu_seconds=1e9))) \
        .budget_spent()


def test_lr_mul_sets_named_modules_rates_the_longest_name_winning_over_flow_lr_mul(tmp_path):
    from sl_arch.models.sl_video_recurrent_model import learning_rate_groups
    from sl_arch.utils.options import OptionError
    model, opt = build(tmp_path)
    net = model.net_g
    named = dict(net.named_parameters())
    lr_mul = {'upsample': 0.5, 'trunk': 2, 'trunk.backward': 0.25, 'flow_warper.basic_module.0': 3}
    groups = learning_rate_groups(net.named_parameters(), 0.5, lr_mul)
    assert groups[0][0] == 1 and sum(len(members) for _, members in groups) == len(named)
    factor_of = {id(param): factor for factor, members in groups for param in members}

    def expected(name):
        owners = [key for key in lr_mul if name == key or name.startswith(key + '.')]
        return lr_mul[max(owners, key=len)] if owners else (0.5 if is_flow_parameter(name) else 1)
    assert all(factor_of[id(param)] == expected(name) for name, param in named.items())
    seen = {factor_of[id(param)] for param in named.values()}
    assert seen == {1, 0.5, 2, 0.25, 3}  # every rule above applied to some parameter
    assert {factor_of[id(named[name])] for name in named if name.startswith('trunk.forwards')} == {2}

    # in the model: one Adam group per factor at lr * factor, annealed by the scheduler from there
    opt['train'] = dict(opt['train'], lr_mul={'upsample': 0.5})
    model = build_model(opt)
    rates = {id(param): group['lr'] for group in model.optimizer_g.param_groups for param in group['params']}
    for name, param in model.net_g.named_parameters():
        assert rates[id(param)] == pytest.approx(1e-3 * (0.5 if name.startswith('upsample.') or
                                                          is_flow_parameter(name) else 1))
    # without flow parameters (OpenCV's flow) the flow group stays, empty: the layout of earlier optimizer states
    conv = torch.nn.Sequential(torch.nn.Conv2d(1, 1, 1))
    assert [(factor, len(members)) for factor, members in learning_rate_groups(conv.named_parameters(), 0.25)] == \
        [(1, 2), (0.25, 0)]
    for bad, message in (({'upsampler': 0.5}, "'upsampler' names no module of network_g"),
                         ({'upsample': 0}, 'train.lr_mul: upsample: 0 is not a positive number'),
                         ({'upsample': True}, 'not a positive number'), (0.5, 'is not a mapping')):
        with pytest.raises(OptionError, match=message):
            learning_rate_groups(net.named_parameters(), 1, bad)


def test_loss_border_frames_and_pixels_train_on_the_inner_frames_and_pixels_only_and_bad_values_are_refused(
        tmp_path):
    from sl_arch.utils.options import OptionError
    model, opt = build(tmp_path, num_frame=5)
    opt['train'] = dict(opt['train'], loss_border_frames=1)
    model = build_model(opt)
    batch = next(iter(build_dataloader(build_dataset(opt['datasets']['train']), opt['datasets']['train'], num_gpu=0)))
    model.feed_data(batch)
    before = {name: param.detach().clone() for name, param in model.net_g.named_parameters()}
    seen = {}
    real_losses = model._losses

    def losses(aux):  # the reconstructed frames and the loss against the GT's inner three
        seen['output'] = model.output.detach().clone()
        total, named = real_losses(aux)
        seen['loss'] = named['l_pix'].item()
        return total, named
    model._losses = losses
    model.optimize_parameters(1)
    assert seen['output'].shape[1] == 3 and batch['gt'].shape[1] == 5
    assert seen['loss'] == pytest.approx(model.cri_pix(seen['output'], model.gt[:, 1:4]).item(), rel=1e-5)
    assert any(not torch.equal(before[name], param) for name, param in model.net_g.named_parameters())
    for value, message in ((-1, 'loss_border_frames: -1 is not an integer >= 0'),
                           (1.5, 'loss_border_frames: 1.5 is not an integer >= 0')):
        with pytest.raises(OptionError, match=message):
            build_model(dict(opt, train=dict(opt['train'], loss_border_frames=value)))
    model = build_model(dict(opt, train=dict(opt['train'], loss_border_frames=3)))
    model.feed_data(batch)
    with pytest.raises(OptionError, match='leaves no frame of the 5-frame training clips'):
        model.optimize_parameters(1)
    # and the patches' border: no loss on 2 LR px (8 GT px) of each side of the 64-px GT patches
    model = build_model(dict(opt, train=dict(opt['train'], loss_border_frames=0, loss_border_pixels=2)))
    model.feed_data(batch)
    model._losses = losses
    real_losses = model.__class__._losses.__get__(model)
    model.optimize_parameters(1)
    assert seen['output'].shape[-2:] == (64, 64)
    assert seen['loss'] == pytest.approx(
        model.cri_pix(seen['output'][..., 8:-8, 8:-8], model.gt[..., 8:-8, 8:-8]).item(), rel=1e-5)
    for value in (-1, 'two'):
        with pytest.raises(OptionError, match='train: loss_border_pixels: .* is not an integer >= 0'):
            build_model(dict(opt, train=dict(opt['train'], loss_border_pixels=value)))
    model = build_model(dict(opt, train=dict(opt['train'], loss_border_pixels=8)))
    model.feed_data(batch)
    with pytest.raises(OptionError, match='leaves no pixel of the 64x64 GT patches'):
        model.optimize_parameters(1)
    edvr = dict(type='EDVR', num_in_ch=3, num_out_ch=3, num_feat=8, num_frame=5, deformable_groups=1,
                num_extract_block=1, num_reconstruct_block=1, center_frame_idx=None, hr_in=False, with_predeblur=False,
                with_tsa=False)
    with pytest.raises(OptionError, match='train.loss_border_frames needs a network that reconstructs chosen frames'):
        build_model(dict(opt, network_g=edvr))


def test_a_time_scheduler_without_a_budget_and_both_budgets_are_refused(tmp_path):
    from sl_arch.utils.options import OptionError
    model, opt = build(tmp_path)
    with pytest.raises(OptionError, match='BudgetCosineLR anneals over a time budget'):
        build_model(dict(opt, train=dict(opt['train'], scheduler={'type': 'BudgetCosineLR', 'eta_min': 0})))
    with pytest.raises(OptionError, match='both set'):
        build_model(dict(opt, train=dict(opt['train'], cpu_seconds=1, gpu_seconds=1)))


@pytest.mark.parametrize('autocast', ['bf16', 'fp16'])
def test_mixed_precision_training_step_updates_the_weights_with_a_float32_loss(tmp_path, autocast, slow_cpu_autocast):
    model, opt = build(tmp_path)
    opt = dict(opt, train=dict(opt['train'], autocast=autocast))
    torch.manual_seed(0)
    model = build_model(opt)
    assert (model.grad_scaler is not None) == (autocast == 'fp16')
    seen = []
    model.net_g.conv_last.register_forward_hook(lambda module, args, output: seen.append(output.dtype))
    before = model.net_g.conv_last.weight.detach().clone()
    model.feed_data(training_batch(opt))
    model.optimize_parameters(1)

    assert set(seen) == {torch.bfloat16 if autocast == 'bf16' else torch.float16}
    assert model.output.dtype == torch.float32 and math.isfinite(model.log_dict['l_pix'])
    assert not torch.equal(before, model.net_g.conv_last.weight) and model.net_g.conv_last.weight.dtype == torch.float32
    assert model.clock.iterations == 1
    with pytest.raises(Exception, match="train.autocast: 'bf32' is not one of bf16, fp16, false"):
        build_model(dict(opt, train=dict(opt['train'], autocast='bf32')))


@pytest.mark.parametrize('autocast', ['bf16', 'fp16'])
def test_mixed_precision_on_a_cpu_without_its_arithmetic_is_refused_by_the_model_too(tmp_path, autocast,
                                                                                     cpu_without_bf16):
    _, opt = build(tmp_path)
    with pytest.raises(SLError, match=rf'^train.autocast: {autocast} on this CPU .* slower than float32; remove it from '
                                      r'the option file to train in float32, or train on a GPU\.$'):
        build_model(dict(opt, train=dict(opt['train'], autocast=autocast)))
    build_model(opt)  # float32: nothing to refuse


def test_channels_last_training_keeps_the_weights_channels_last_and_matches_the_default_order(tmp_path):
    model, opt = build(tmp_path)
    batch = training_batch(opt)
    steps = {}
    for channels_last in (False, True):
        torch.manual_seed(0)
        model = build_model(dict(opt, train=dict(opt['train'], channels_last=channels_last)))
        weight = model.net_g.conv_last.weight
        assert weight.is_contiguous(memory_format=torch.channels_last) == channels_last
        model.feed_data(batch)
        model.optimize_parameters(1)
        steps[channels_last] = (model.log_dict['l_pix'], model.net_g.conv_last.weight.detach().contiguous())
    assert steps[True][0] == pytest.approx(steps[False][0], rel=1e-4)
    assert torch.allclose(steps[True][1], steps[False][1], atol=1e-5)


def test_clips_below_min_input_size_are_padded_for_the_network_and_cropped_back(tmp_path):
    model, opt = build(tmp_path)
    model.min_input_size = 20
    seen = []
    model.net_g.register_forward_pre_hook(lambda module, args: seen.append(tuple(args[0].shape)))
    lq = torch.rand(1, 3, 3, 16, 24)
    model.feed_data({'lq': lq})
    model.test()
    assert seen == [(1, 3, 3, 20, 24)] and model.output.shape == (1, 3, 3, 64, 96)
    with torch.no_grad():
        padded = torch.cat([lq, lq[:, :, :, -1:].expand(-1, -1, -1, 4, -1)], dim=3)
        assert torch.allclose(model.output, model.net_g.eval()(padded)[..., :64, :], atol=1e-5)


def test_flip_width_averages_with_the_mirrored_clip_and_flip_seq_leaves_a_single_frame_network_as_it_is(tmp_path):
    lq = torch.rand(1, 4, 3, 16, 20)
    model, _ = build(tmp_path)
    net = model.net_g.eval()
    with torch.no_grad():
        expected = 0.5 * (net(lq) + net(lq.flip(-1)).flip(-1))
        plain = net(lq)
    model.opt['val'] = {'flip_width': True}
    model.feed_data({'lq': lq})
    model.test()
    assert torch.allclose(model.output, expected, atol=1e-5) and not torch.allclose(model.output, plain, atol=1e-3)
    # time reversed, a single-frame network gives each frame the same output: flip_seq is no ensemble for it
    frame_wise, _ = build(tmp_path / 'frame_wise', network={'type': 'SLFrameWise', 'network': {
        'type': 'MSRResNet', 'num_feat': 8, 'num_block': 1}})
    outputs = []
    for val in ({}, {'flip_seq': True}):
        frame_wise.opt['val'] = val
        frame_wise.feed_data({'lq': lq})
        frame_wise.test()
        outputs.append(frame_wise.output)
    assert torch.allclose(outputs[0], outputs[1], atol=1e-6)


def test_flows_of_the_dataset_reach_the_network_in_training_and_test_and_are_refused_where_they_cannot_go(tmp_path):
    from sl_arch.utils.options import OptionError
    model, _ = build(tmp_path)
    seen = []
    model.net_g.register_forward_pre_hook(lambda module, args, kwargs: seen.append(kwargs.get('flows')),
                                          with_kwargs=True)
    lq, flows = torch.rand(1, 3, 3, 16, 16), torch.randn(1, 2, 2, 2, 16, 16)
    model.feed_data({'lq': lq, 'gt': torch.rand(1, 3, 3, 64, 64), 'flows': flows})
    model.optimize_parameters(1)
    model.test()
    assert len(seen) == 2 and all(torch.equal(given[0], flows[:, 0]) and torch.equal(given[1], flows[:, 1])
                                  for given in seen)
    for ensemble in ('flip_seq', 'flip_width'):
        model.opt['val'] = {ensemble: True}
        with pytest.raises(OptionError, match='flip_seq, val.flip_width and val.tile do not carry the flows'):
            model.test()
    frame_wise, _ = build(tmp_path / 'frame_wise', network={'type': 'SLFrameWise', 'network': {
        'type': 'MSRResNet', 'num_feat': 8, 'num_block': 1}})
    with pytest.raises(OptionError, match='flow_root feeds flows to the network, and SLFrameWise takes none'):
        frame_wise.feed_data({'lq': lq, 'flows': flows})
