"""SLVideoRecurrentModel: CPU validation, EMA at test time, tiled test, flow freeze, checkpoints, option files."""
import glob
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
from sl_arch.utils.errors import CheckpointError
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
