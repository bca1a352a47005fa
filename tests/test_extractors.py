"""Pluggable Semantic Extractors: built from the registry, the Pixel Enhancer the same for each."""
import pytest
import torch

from basicsr.archs import build_network
from sl_arch.archs.semantic_lens_arch import PRESETS
from sl_arch.utils.errors import SLError

MICRO = dict(PRESETS['tiny'], num_feat=16, sem_dim=16, num_instances=4, num_video_instances=4, num_classes=4,
             window_size=4, flow_channels=[8, 8, 8, 8], num_upsample_feat=8)


def build(**overrides):
    torch.manual_seed(0)
    return build_network(dict({'type': 'SemanticLens'}, **dict(MICRO, **overrides))).eval()


def test_every_extractor_leaves_the_pixel_enhancer_unchanged():
    learned = build().state_dict()
    given = build(semantic_extractor={'type': 'SLPrecomputedSemantics'}).state_dict()

    def enhancer(state):
        return {name: tuple(value.shape) for name, value in state.items() if not name.startswith('semantic_extractor.')}

    assert enhancer(learned) == enhancer(given)
    assert build(semantic_extractor={'type': 'SLSemanticExtractor', 'detector_layers': 2}).state_dict().keys() > \
        learned.keys()


def test_precomputed_semantics_use_the_given_masks_and_pool_one_token_per_given_instance():
    net = build(semantic_extractor={'type': 'SLPrecomputedSemantics'})
    clip = torch.rand(1, 3, 3, 16, 16)
    ids = torch.zeros(1, 3, 16, 16, dtype=torch.long)
    ids[..., 8:] = 2
    swapped = torch.where(ids == 2, torch.zeros_like(ids), torch.full_like(ids, 2))

    with torch.no_grad():
        _, masks = net(clip, masks=ids, return_masks=True)
        semantics = net.semantic_extractor(clip, masks)
        swapped_semantics = net.semantic_extractor(clip, net(clip, masks=swapped, return_masks=True)[1])

    assert torch.equal(masks.argmax(2), ids)
    tokens, swapped_tokens = semantics['video_instance_tokens'], swapped_semantics['video_instance_tokens']
    assert torch.allclose(tokens[:, 0], swapped_tokens[:, 2], atol=1e-6)
    assert torch.allclose(tokens[:, 2], swapped_tokens[:, 0], atol=1e-6)
    assert not torch.allclose(tokens[:, 0], tokens[:, 2])


def test_precomputed_semantics_without_masks_and_an_unknown_extractor_are_clear_errors():
    with pytest.raises(SLError, match='SLPrecomputedSemantics needs the instance masks of the clip'):
        build(semantic_extractor={'type': 'SLPrecomputedSemantics'})(torch.rand(1, 2, 3, 16, 16))
    with pytest.raises(SLError, match="semantic_extractor type 'XDecoder' is not registered"):
        build(semantic_extractor={'type': 'XDecoder'})


def test_the_mask_gate_keeps_propagation_where_instances_agree_and_cuts_it_where_they_differ():
    gated, plain = build(use_mask_gate=True), build()
    clip = torch.rand(1, 3, 3, 16, 16)
    same = torch.zeros(1, 3, 16, 16, dtype=torch.long)
    changing = torch.arange(3).view(1, 3, 1, 1).expand(1, 3, 16, 16)  # every frame another instance

    with torch.no_grad():
        assert torch.allclose(gated(clip, masks=same), plain(clip, masks=same), atol=1e-6)
        cut = gated(clip, masks=changing)
        alone = torch.stack([gated(clip[:, [t]], masks=changing[:, [t]])[:, 0] for t in range(3)], 1)

    assert not torch.allclose(cut, plain(clip, masks=changing), atol=1e-3)
    # nothing propagates between frames of different instances: as if each frame were alone, but for
    # the flow warper and attention blocks that still see both frames
    assert (cut - alone).abs().mean() < (plain(clip, masks=changing) - alone).abs().mean()


def test_the_mask_gate_reads_given_masks_without_the_semantic_branch():
    gated, plain = build(use_semantics=False, use_mask_gate=True), build(use_semantics=False)
    clip = torch.rand(1, 3, 3, 16, 16)
    same = torch.zeros(1, 3, 16, 16, dtype=torch.long)
    changing = torch.arange(3).view(1, 3, 1, 1).expand(1, 3, 16, 16)

    with torch.no_grad():
        # one instance throughout: nothing to cut, the network without the gate; no masks: the gate is off
        assert torch.allclose(gated(clip, masks=same), plain(clip), atol=1e-6)
        assert torch.allclose(gated(clip), plain(clip), atol=1e-6)
        cut = gated(clip, masks=changing)
        alone = torch.stack([gated(clip[:, [t]])[:, 0] for t in range(3)], 1)
    # every frame another instance: no propagated feature survives, each frame scores as if alone but for MFSAB
    assert (cut - alone).abs().mean() < (plain(clip) - alone).abs().mean()
