"""A frozen pretrained transformers segmenter as the Semantic Extractor, tested with a tiny random Mask2Former."""
import pytest
import torch

from basicsr.archs import build_network
from sl_arch.archs.semantic_lens_arch import PRESETS
from sl_arch.utils.errors import SLError

pytest.importorskip('transformers')  # an extra (pip install transformers); CI installs it with .[test]

#: A Mask2Former of 0.35 M random parameters: the model class of facebook/mask2former-swin-*.
TINY_MASK2FORMER = {
    'model_type': 'mask2former', 'hidden_dim': 32, 'mask_feature_size': 32, 'feature_size': 32, 'encoder_layers': 1,
    'decoder_layers': 2, 'num_queries': 6, 'num_attention_heads': 2, 'dim_feedforward': 64,
    'encoder_feedforward_dim': 64, 'num_labels': 5, 'use_pretrained_backbone': False,
    'backbone_config': {'model_type': 'swin', 'embed_dim': 16, 'depths': [1, 1, 1, 1], 'num_heads': [1, 1, 1, 1],
                        'window_size': 4, 'out_features': ['stage1', 'stage2', 'stage3', 'stage4']},
}
MICRO = dict(PRESETS['tiny'], num_feat=16, sem_dim=16, num_instances=4, num_video_instances=4, num_classes=4,
             window_size=4, flow_channels=[8, 8, 8, 8], num_upsample_feat=8)


def build(extractor):
    torch.manual_seed(0)
    return build_network(dict(MICRO, type='SemanticLens', semantic_extractor=extractor))


def test_the_segmenter_gives_video_masks_and_stays_frozen_and_out_of_the_checkpoint():
    net = build({'type': 'SLHFSegmenterSemantics', 'config': TINY_MASK2FORMER})
    clip = torch.rand(1, 3, 3, 16, 24)

    output, masks = net(clip, return_masks=True)
    output.mean().backward()

    assert output.shape == (1, 3, 3, 64, 96) and masks.shape == (1, 3, 4, 16, 24)
    assert torch.allclose(masks.sum(2), torch.ones(1, 3, 16, 24), atol=1e-5)
    segmenter = net.semantic_extractor.segmenter
    assert all(param.grad is None and not param.requires_grad for param in segmenter.parameters())
    assert not any(name.startswith('semantic_extractor.segmenter') for name in net.state_dict())
    assert not segmenter.training and net.train().semantic_extractor.segmenter.training is False
    learned = {name for name in build(None).state_dict() if not name.startswith('semantic_extractor.')}
    assert learned == {name for name in net.state_dict() if not name.startswith('semantic_extractor.')}


def test_a_user_with_weights_loads_them_from_a_local_folder(tmp_path):
    from transformers import AutoConfig, AutoModelForUniversalSegmentation
    config = dict(TINY_MASK2FORMER)
    torch.manual_seed(1)
    saved = AutoModelForUniversalSegmentation.from_config(AutoConfig.for_model(config.pop('model_type'), **config))
    saved.save_pretrained(tmp_path / 'mask2former')

    net = build({'type': 'SLHFSegmenterSemantics', 'model_path': str(tmp_path / 'mask2former')})

    loaded = net.semantic_extractor.segmenter.state_dict()
    assert all(torch.equal(value, loaded[name]) for name, value in saved.state_dict().items())


def test_a_missing_model_folder_and_a_missing_choice_are_one_clear_error(tmp_path):
    with pytest.raises(SLError, match='model_path .*nope cannot be loaded'):
        build({'type': 'SLHFSegmenterSemantics', 'model_path': str(tmp_path / 'nope')})
    with pytest.raises(SLError, match='needs model_path .* or config'):
        build({'type': 'SLHFSegmenterSemantics'})
