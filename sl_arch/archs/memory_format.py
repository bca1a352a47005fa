"""Channels-last memory order for a network's HR stage alone (``train.channels_last: hr``).

On a CPU, oneDNN runs the convolutions at the HR size (pixel-shuffle upsampling, HR refinement, the last convolution
to RGB, whose 3 output channels it handles slowly in the default order) faster on channels-last maps, while the small
convolutions of a recurrent step at the LR size gain nothing. So the whole network in channels-last (``train.channels_last:
true``) speeds a training iteration less than its HR stage alone does: ``python -m sl_arch.bench.step_time`` lists both.

A forward pre-hook on the module that starts the HR stage puts its input in channels-last order; the convolutions
after it keep that order, the weights stay as they are (checkpoints are the same), and the values are the same up to
float rounding. The hook does nothing on a GPU, where cuDNN picks its own layouts.
"""
import torch

#: BasicSR's name for the first upsampling convolution (MSRResNet, so the single-frame reference, BasicVSR, IconVSR,
#: BasicVSR++, EDVR).
BASICSR_HR_STAGE_ENTRY = 'upconv1'


def hr_stage_entries(net):
    """Names of the modules of ``net`` whose input starts an HR stage: the network's own ``hr_stage_entry`` (a class
    attribute, SemanticLens's ``'upsample'``) and every module BasicSR names ``upconv1``, nested ones included (the
    single-frame reference wraps an MSRResNet)."""
    own = getattr(net, 'hr_stage_entry', None)
    return [name for name, _ in net.named_modules()
            if name == own or name.rsplit('.', 1)[-1] == BASICSR_HR_STAGE_ENTRY]


def _to_channels_last(module, args):
    """Forward pre-hook: the first argument, a CPU 4-D tensor, in channels-last order."""
    x = args[0]
    if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.device.type != 'cpu':
        return None
    return (x.contiguous(memory_format=torch.channels_last),) + tuple(args[1:])


def hr_stage_channels_last(net):
    """Run ``net``'s HR stage in channels-last memory order on a CPU (see the module's docstring).

    Returns:
        list[str]: The modules whose input is converted (empty where ``net`` has no HR stage this knows: nothing
        changes then).
    """
    names = hr_stage_entries(net)
    for name in names:
        net.get_submodule(name).register_forward_pre_hook(_to_channels_last)
    return names
