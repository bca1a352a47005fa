"""python -m sl_arch.bench.instance_motion on a small synthetic set: the masks carry the objects' motion."""
import pytest
import torch

from sl_arch.bench import instance_motion
from sl_arch.bench.flow import build_warper, load_synthetic
from sl_arch.data.synthetic import write_synthetic


@pytest.fixture(scope='module')
def small_set(tmp_path_factory):
    root = tmp_path_factory.mktemp('synthetic')
    write_synthetic(str(root), num_train=0, num_val=2, size=(160, 96), num_frames=8, kinds=('BI',))
    return str(root)


def test_true_masks_recover_object_motion_that_an_untrained_flow_misses(small_set):
    torch.manual_seed(0)
    pairs = load_synthetic(small_set, 'val')
    masks = instance_motion.clip_masks(small_set, pairs, 8)
    rows = instance_motion.regime_errors(build_warper('tiny').eval(), pairs, masks, 'crossing')
    objects = {name: errors[1] for name, errors in rows.items()}
    assert objects['zero flow'] > 1.0  # the objects move
    assert objects['instance motion, true masks'] < 0.5 * objects['pretrained flow warper']
    assert objects['instance motion, masks shifted 6 px'] > objects['instance motion, true masks']


def test_missing_set_is_one_clear_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        instance_motion.main(['--root', str(tmp_path / 'none')])
    assert exit_info.value.code == 2
    assert 'sl-prepare --synthetic' in capsys.readouterr().err
