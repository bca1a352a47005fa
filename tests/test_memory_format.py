"""train.channels_last: hr puts the HR stage of every network a comparison trains in channels-last order, and only it."""
import pytest
import torch
from torch import nn

import sl_arch  # noqa: F401  (registers, installs the torchvision shim)
from basicsr.archs import build_network

from sl_arch.archs.memory_format import hr_stage_channels_last
from sl_arch.bench.options import network_options
from sl_arch.utils.options import OptionError

LEAN_ROW = 'SL_dis_neighbours_no_semantics_no_mfsab_no_image_gate_up16_bounded_e0p3r0_diff_reverse_interval12_ema_lr2e-3'


@pytest.mark.parametrize('key, entries, hr_conv', [
    (LEAN_ROW, ['upsample'], 'conv_last'),
    ('SingleFrame_lean', ['net.upconv1'], 'net.conv_last'),
    ('BasicVSR', ['upconv1'], 'conv_last'),
    ('EDVR', ['upconv1'], 'conv_last'),
])
def test_the_hr_stage_runs_channels_last_with_the_same_values_and_gradients(key, entries, hr_conv):
    torch.manual_seed(0)
    network_opt = network_options(key, 'tiny', pretrained_flow=False, num_frame=5)
    plain, hr = build_network(network_opt), build_network(network_opt)
    hr.load_state_dict(plain.state_dict())
    assert hr_stage_channels_last(hr) == entries
    seen = {}

    def record(label):
        def hook(module, args):
            seen.setdefault(label, args[0].is_contiguous())
        return hook

    for label, net in (('plain', plain), ('hr', hr)):
        net.get_submodule(hr_conv).register_forward_pre_hook(record(label))
    clip = torch.rand(1, 5, 3, 40, 40, generator=torch.Generator().manual_seed(1))
    outputs = {label: net(clip) for label, net in (('plain', plain), ('hr', hr))}
    assert seen == {'plain': True, 'hr': False}  # the last convolution read a channels-last map
    assert hr.get_submodule(hr_conv).weight.is_contiguous()  # weights, so checkpoints, as they were
    torch.testing.assert_close(outputs['hr'], outputs['plain'], rtol=0, atol=1e-5)
    for output in outputs.values():
        output.square().mean().backward()
    for (name, grad_plain), grad_hr in zip(((n, p.grad) for n, p in plain.named_parameters() if p.grad is not None),
                                           (p.grad for p in hr.parameters() if p.grad is not None)):
        torch.testing.assert_close(grad_hr, grad_plain, rtol=1e-4, atol=1e-6, msg=name)


def test_a_network_without_an_hr_stage_is_left_as_it_is_and_refused_in_training():
    from sl_arch.models.sl_video_recurrent_model import SLVideoRecurrentModel
    net = nn.Sequential(nn.Conv2d(3, 3, 3, 1, 1))
    assert hr_stage_channels_last(net) == [] and not net[0]._forward_pre_hooks
    model = SLVideoRecurrentModel.__new__(SLVideoRecurrentModel)  # only model_to_device, which reads these
    model.opt, model.device = {'train': {'channels_last': 'hr'}, 'dist': False, 'num_gpu': 0}, torch.device('cpu')
    with pytest.raises(OptionError, match='train.channels_last: hr: Sequential has no HR stage that sl_arch knows'):
        model.model_to_device(net)


@pytest.mark.parametrize('value', ['HR', 'yes', 1])
def test_channels_last_takes_true_false_or_hr_and_nothing_else(value):
    from sl_arch.utils.options import _check_sl_model_values
    opt = {'network_g': {'type': 'SemanticLens'}, 'train': {'channels_last': value}}
    with pytest.raises(OptionError, match=rf"option file x.yml: train.channels_last: {value!r} is not true, false or hr"):
        _check_sl_model_values(opt, 'x.yml', True)
    for good in (True, False, 'hr'):
        _check_sl_model_values(dict(opt, train={'channels_last': good}), 'x.yml', True)
