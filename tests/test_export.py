"""Specifications of ``sl-export``: ONNX that onnxruntime runs like PyTorch, and clear refusals."""
import json
import types

import cv2
import numpy as np
import onnx
import pytest
import torch
from basicsr.archs import build_network

from sl_arch import export
from sl_arch.archs.spec import arch_spec
from sl_arch.utils.checkpoint import load_network
from sl_arch.utils.errors import SLError

from tests.conftest import TINY_NET

#: TINY_NET without flow: nothing in it fixes the frame size (the flow pyramid's level count does).
NO_FLOW = dict(TINY_NET, use_flow=False)


def save(path, net_opt, seed=0):
    torch.manual_seed(seed)
    net = build_network(dict(net_opt))
    with torch.no_grad():  # away from the near-identity start, so that every branch shows in the output
        for parameter in net.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.05)
    torch.save({'params': net.state_dict(), 'network_g': dict(net_opt)}, path)
    return str(path)


def run_export(*argv):
    return export.export(export.parse_args([str(arg) for arg in argv]))


def test_exported_model_matches_pytorch_and_takes_other_frame_sizes(tmp_path, capsys, monkeypatch):
    weights = save(tmp_path / 'sl.pth', NO_FLOW)
    output = tmp_path / 'sl.onnx'
    loads = []
    monkeypatch.setattr(export, 'ort_session', lambda path, load=export.ort_session: loads.append(path) or load(path))
    summary = run_export('--weights', weights, '-o', output, '--frames', 2, '--height', 16, '--width', 16,
                         '--repeats', 1, '--no-optimize')
    monkeypatch.undo()
    assert len(loads) == 1  # the session that showed the model loads also runs the parity check
    printed = capsys.readouterr().out
    assert summary['dynamic_size'] and 'height/width: dynamic: any multiples of 4 from 16' in printed
    assert summary['max_abs_diff'] < 1e-4 and summary['psnr_db'] > 80

    model = onnx.load(str(output))
    properties = {prop.key: prop.value for prop in model.metadata_props}
    assert json.loads(properties['sl_arch.network_g']) == NO_FLOW and properties['sl_arch.frames'] == '2'
    session = export.ort_session(str(output))
    net = load_network(weights).net
    lqs = torch.rand(1, 2, 3, 24, 36, generator=torch.Generator().manual_seed(3))  # not the example's size
    (result,) = session.run(None, {'lqs': lqs.numpy()})
    with torch.no_grad():
        reference = net(lqs).numpy()
    assert result.shape == (1, 2, 3, 96, 144)
    np.testing.assert_allclose(result, reference, atol=1e-4)
    assert not [path.name for path in tmp_path.iterdir() if path.name.startswith('.sl-tmp-')]


def test_a_network_that_specialises_on_the_size_keeps_it_fixed_and_says_why():
    # flow and trunks only: the flow pyramid picks its number of levels from the frame size
    net_opt = dict(TINY_NET, use_semantics=False, use_image=False, use_mfsab=False)
    program, reason = export.capture(build_network(dict(net_opt)).eval(), arch_spec(net_opt),
                                     torch.rand(1, 2, 3, 16, 24), dynamic=True)
    assert reason.startswith('the exported graph holds only near the example size (Guard failed')
    (lqs,) = [node for node in program.graph.nodes if node.op == 'placeholder' and node.name == 'lqs']
    assert tuple(lqs.meta['val'].shape) == (1, 2, 3, 16, 24)  # plain ints: fixed


@pytest.mark.parametrize('case', ['missing weights', 'weights folder', 'exists', 'not onnx', 'output folder',
                                  'frames of a sliding window', 'missing clip', 'short clip', 'tiny frames',
                                  'DIS flow'])
def test_bad_input_is_one_line_exit_2_and_nothing_written(tmp_path, capsys, case):
    weights = save(tmp_path / 'sl.pth', NO_FLOW)
    existing = tmp_path / 'mine.onnx'
    existing.write_bytes(b'the user\'s model')
    short = tmp_path / 'short'
    short.mkdir()
    cv2.imwrite(str(short / '00000000.png'), np.zeros((32, 32, 3), np.uint8))
    tiny = tmp_path / 'tiny'  # frames smaller than the scale: the downscaling had ended in a traceback
    tiny.mkdir()
    for index in range(2):
        cv2.imwrite(str(tiny / f'0000000{index}.png'), np.zeros((2, 3, 3), np.uint8))
    edvr = {'type': 'EDVR', 'num_feat': 8, 'num_frame': 3, 'deformable_groups': 1, 'num_extract_block': 1,
            'num_reconstruct_block': 1, 'with_tsa': False}
    cases = {
        'missing weights': (['--weights', tmp_path / 'none.pth', '-o', tmp_path / 'a.onnx'],
                            f'checkpoint {tmp_path / "none.pth"} does not exist'),
        'weights folder': (['--weights', tmp_path, '-o', tmp_path / 'a.onnx'],
                           f'--weights {tmp_path} is a folder; give the checkpoint file in it'),
        'exists': (['--weights', weights, '-o', existing],
                   f'output {existing} already exists; pass --overwrite to replace it or choose another name.'),
        'not onnx': (['--weights', weights, '-o', tmp_path / 'a.pt'], f'-o {tmp_path / "a.pt"}: give a file name '
                                                                        'ending in .onnx.'),
        'output folder': (['--weights', weights, '-o', tmp_path], f'-o {tmp_path}: give a file name ending in .onnx.'),
        'frames of a sliding window': (['--weights', save(tmp_path / 'edvr.pth', edvr), '-o', tmp_path / 'a.onnx',
                                        '--frames', 5],
                                       '--frames 5: EDVR predicts the centre of exactly 3 frames (its num_frame); '
                                       'drop --frames.'),
        'missing clip': (['--weights', weights, '-o', tmp_path / 'a.onnx', '--check', tmp_path / 'none'],
                         f'input {tmp_path / "none"} does not exist; give a video file or a folder of frames (--check).'),
        'short clip': (['--weights', weights, '-o', tmp_path / 'a.onnx', '--check', short, '--frames', 2],
                       f'--check {short} has 1 frame(s); the export takes 2: use a longer clip or lower --frames.'),
        'tiny frames': (['--weights', weights, '-o', tmp_path / 'a.onnx', '--check', tiny, '--frames', 2],
                        f'--check {tiny} gives LR frames of 0x0, smaller than the exported 64x64: export with a '
                        'smaller --height/--width or use a larger clip.'),
        'DIS flow': (['--weights', save(tmp_path / 'dis.pth', dict(TINY_NET, flow_estimator='dis')), '-o',
                      tmp_path / 'a.onnx'],
                     f'{tmp_path / "dis.pth"}: network_g.flow_estimator dis computes its flow with OpenCV, outside '
                     'the graph ONNX can hold; export a network with the learned flow warper.'),
    }
    argv, expected = cases[case]
    before = sorted(path.name for path in tmp_path.iterdir())
    with pytest.raises(SystemExit) as exit_info:
        export.main([str(arg) for arg in argv])
    message = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2 and '\n' not in message
    assert message.startswith(f'error: {expected}')
    assert sorted(path.name for path in tmp_path.iterdir()) == before
    assert existing.read_bytes() == b'the user\'s model'


def test_an_opset_without_grid_sample_or_beyond_onnx_is_refused(tmp_path, capsys):
    for opset, message in (('13', '--opset must be 16 or later'),
                           ('99', f'--opset 99: the installed onnx {onnx.__version__} knows opsets up to')):
        with pytest.raises(SystemExit) as exit_info:
            export.parse_args(['--weights', 'x.pth', '-o', str(tmp_path / 'a.onnx'), '--opset', opset])
        assert exit_info.value.code == 2
        assert message in capsys.readouterr().err


def test_a_model_onnxruntime_cannot_load_is_refused_and_the_file_there_kept(tmp_path, monkeypatch):
    output = tmp_path / 'sl.onnx'
    output.write_bytes(b'the user\'s model')  # replaced only by a model that loads (sl-export --overwrite)
    identity = onnx.helper.make_model(onnx.helper.make_graph(
        [onnx.helper.make_node('Identity', ['lqs'], ['out'])], 'g',
        [onnx.helper.make_tensor_value_info('lqs', onnx.TensorProto.FLOAT, [1])],
        [onnx.helper.make_tensor_value_info('out', onnx.TensorProto.FLOAT, [1])]))
    monkeypatch.setattr(torch.onnx, 'export', lambda *args, **kwargs: types.SimpleNamespace(model_proto=identity))

    def refuse(path):  # as onnxruntime refused a graph exported at an opset it does not run
        raise RuntimeError('[ONNXRuntimeError] : 10 : INVALID_GRAPH : No Op registered for Attention')

    monkeypatch.setattr(export, 'ort_session', refuse)
    with pytest.raises(SLError) as error:
        export.to_onnx(None, torch.zeros(1), str(output), 18, {})
    assert str(error.value).startswith('onnxruntime ') and str(error.value).endswith(
        'cannot load the model exported at --opset 18 ([ONNXRuntimeError] : 10 : INVALID_GRAPH : No Op registered '
        'for Attention); nothing was written: export at a lower --opset (default 18).')
    assert output.read_bytes() == b'the user\'s model' and [path.name for path in tmp_path.iterdir()] == ['sl.onnx']
    monkeypatch.undo()
    monkeypatch.setattr(torch.onnx, 'export', lambda *args, **kwargs: types.SimpleNamespace(model_proto=identity))
    _, session = export.to_onnx(None, torch.zeros(1), str(output), 18, {})  # one that loads takes the name
    assert onnx.load(str(output)).graph.node[0].op_type == 'Identity'
    assert session.run(['out'], {'lqs': np.full(1, 0.5, np.float32)})[0].tolist() == [0.5]  # read before the rename
