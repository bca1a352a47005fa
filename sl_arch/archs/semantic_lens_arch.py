"""SemanticLens: instance-centric semantic alignment for video super-resolution.

Semantic Extractor (instances, events, scenes) + Pixel Enhancer (bidirectional recurrent
propagation where every step aligns the propagated features with flow pre-alignment, IMAGE,
SPACE = GPS + ISEE, and a multi-frame self-attention block), then pixel-shuffle reconstruction
added to the bicubically upsampled LR frame (a residual that starts at bicubic quality).
"""
import contextlib
import inspect

import torch
from torch import nn
from torch.nn import functional as F

from basicsr.archs.arch_util import ResidualBlockNoBN, default_init_weights, flow_warp, make_layer
from basicsr.utils.registry import ARCH_REGISTRY

from sl_arch.archs.prealign_arch import SLDISFlow, SLFlowWarper, SLMaskedPreAlign, instance_motion_flow
from sl_arch.archs import semantic_extractor_arch  # noqa: F401  (registers the extractors)
from sl_arch.archs.space_arch import SLMultiFrameSelfAttention, SLSPACEBlock
from sl_arch.archs.upsample import bicubic_upsample
from sl_arch.utils.errors import InputShapeError
from sl_arch.utils.options import OptionError, check_option_types, reject_unknown_options

# Option dicts for `network_g` (add `type: SemanticLens`). `tiny` trains on two CPU cores in
# minutes; `paper` is the size a GPU user starts from (the paper's sizes are not published).
PRESETS = {
    'tiny': dict(
        num_feat=32, num_extract_block=1, num_block=2, num_reconstruct_block=1, num_upsample_feat=32,
        window_size=8, num_heads=2, sem_dim=32, num_instances=8, num_video_instances=8, num_classes=16,
        detector_layers=1, encoder_layers=1, decoder_layers=1, flow_levels=3, flow_channels=[16, 32, 16, 8],
        flow_kernel_size=5),
    'paper': dict(
        num_feat=64, num_extract_block=5, num_block=15, num_reconstruct_block=5, num_upsample_feat=64,
        window_size=8, num_heads=4, sem_dim=128, num_instances=10, num_video_instances=10, num_classes=80,
        detector_layers=3, encoder_layers=2, decoder_layers=3, flow_levels=6, flow_channels=[32, 64, 32, 16],
        flow_kernel_size=7),
}


class ResidualBlock(ResidualBlockNoBN):
    """BasicSR's ``ResidualBlockNoBN`` (same parameters and names, same output) that skips its multiplication by
    ``res_scale`` where that is 1: one elementwise operation less forward and backward per block, which the recurrent
    steps run on small maps many times per clip (about 3% of a bf16 training iteration of the lean16 rows)."""

    def forward(self, x):
        if self.res_scale != 1:
            return super().forward(x)
        return x + self.conv2(self.relu(self.conv1(x)))


@ARCH_REGISTRY.register()
class SemanticLens(nn.Module):
    """Semantic Lens video super-resolution network.

    Args:
        num_in_ch (int): Input channels. Default: 3.
        num_out_ch (int): Output channels. Default: 3.
        scale (int): Upsampling factor, 1, 2, 3 or 4. Default: 4.
        num_feat (int): Pixel-feature channels. Default: 32.
        num_extract_block (int): Residual blocks of the pixel-feature extractor. Default: 1.
        num_block (int): Residual blocks of each propagation step. Default: 2.
        num_reconstruct_block (int): Residual blocks before upsampling. Default: 1.
        num_upsample_feat (int): Channels of the pixel-shuffle stages. Default: 16.
        window_size (int): Window side of IMAGE and MFSAB attention. Default: 8.
        num_heads (int): Attention heads. Default: 2.
        sem_dim (int): Semantic token dimension. Default: 32.
        num_instances (int): Frame-wise instance queries. Default: 8.
        num_video_instances (int): Video-wise instance queries (mask channels). Default: 8.
        num_classes (int): Classificatory tokens. Default: 16.
        detector_layers, encoder_layers, decoder_layers (int): Extractor depths. Default: 1.
        flow_levels (int): Pyramid levels of the flow warper. Default: 3.
        flow_channels (list[int]): Hidden channels of each flow level. Default: [16, 32, 16, 8].
        flow_kernel_size (int): Kernel size of the flow levels. Default: 5.
        flow_load_path (str | None): SPyNet-format weights for the flow warper.
        flow_estimator (str): ``'learned'``: the flow warper above (:class:`SLFlowWarper`), trained with the
            network unless frozen (``train.fix_flow``); ``'dis'``: OpenCV's DIS optical flow
            (:class:`SLDISFlow`), frozen by nature, no parameters (``flow_levels``, ``flow_channels``,
            ``flow_kernel_size`` unused, ``flow_load_path`` refused); not exportable to ONNX. Ours, not
            the paper's. Default: 'learned'.
        semantic_extractor (dict | None): ``type`` (and keyword arguments) of the Semantic Extractor,
            built from BasicSR's ``ARCH_REGISTRY``: ``SLSemanticExtractor`` (default: the learned one,
            sized by ``sem_dim``, ``num_instances``, ... above), ``SLPrecomputedSemantics`` (the masks
            given to ``forward``, e.g. a dataset's ``semantics_root``, with tokens pooled under them) or
            ``SLHFSegmenterSemantics`` (a frozen pretrained segmenter of transformers, ``model_path``).
            The Pixel Enhancer is the same for every extractor.
        use_semantics (bool): Build the Semantic Extractor. Off: IMAGE attends without masks and
            GPS/ISEE are off. Default: True.
        use_flow (bool): Flow pre-alignment before IMAGE. Default: True.
        use_image (bool): IMAGE masked-attention pre-alignment. Default: True.
        use_gps (bool): Global Perspective Shifter. Default: True.
        use_isee (bool): Instance-Specific Semantic Embedding Encoder. Default: True.
        use_mfsab (bool): Multi-frame self-attention block. Default: True.
        use_mask_gate (bool): After the flow warp, scale the propagated features at each pixel by the
            agreement (cosine similarity) of the reference frame's instance distribution and the
            warped neighbour's: where the flow brings features of another instance (occlusion,
            objects crossing) they are suppressed and the step relies on the current frame. The masks are
            the learned ones, or given ones (``masks=``), which also works with ``use_semantics: false``;
            without any masks it does nothing. Ours, not the paper's; no parameters. Default: False.
        instance_motion (bool): Instance-centric motion: every instance moves by whichever of
            the pixel flow, its instance-wise affine fit and the shift of its mask between the
            two frames best explains its pixels (:func:`instance_motion_flow`). Fast small objects
            that the flow pyramid misses get their motion from their masks. Needs the flow warper
            and the instance masks: learned, or given (``masks=``, the datasets' ``semantics_root``),
            which with ``use_semantics: false`` is instance motion alone, without the semantic
            branch. Ours, not the paper's; no parameters. Default: False.
        neighbour_input (bool): Early fusion of aligned neighbours: the pixel-feature extractor reads
            each LR frame together with its two neighbours warped onto it by the flow warper (the
            clip's ends repeat the frame itself), so sub-pixel detail of the neighbours reaches every
            frame's features directly, not only through the propagated hidden state. Needs the flow
            warper. Ours, not the paper's; ``2 * num_in_ch * num_feat * 9`` more parameters. Default: False.
        neighbour_radius (int): With ``neighbour_input``, how many frames on each side are warped onto each frame:
            1, the two neighbours; 2 also frames ``i - 2`` and ``i + 2``, each warped by the two steps' flows
            composed (``flow(i <- i+2) = flow(i <- i+1) + flow(i+1 <- i+2)`` read where the first lands, no more
            flow estimates), so twice as many sub-pixel samples of the scene reach each frame's features directly,
            before the recurrence has learned to carry them. A frame without such a neighbour (the clip's ends)
            stands in for it. ``2 * num_in_ch * num_feat * 9`` more parameters per step of radius. Ours, not the
            paper's. Default: 1.
        neighbour_difference (bool): With ``neighbour_input``, each warped neighbour enters as its difference from the
            frame (``warped - frame``; 0 where the frame has no such neighbour) instead of as itself: what the
            neighbour adds is what differs from the frame (sub-pixel detail, or misalignment), and a first convolution
            reading differences need not learn to cancel the frame from its nearly equal neighbours. The temporal
            difference of Isobe et al., "Look Back and Forth: Video Super-Resolution with Explicit Temporal Difference
            Modeling", CVPR 2022, taken after the warp. Ours as built here; no parameters. Default: False.
        neighbour_offsets (bool): With ``neighbour_input``, each warped neighbour comes with where its samples lie on
            the frame's grid: the sub-pixel part of the flow that brought it, ``flow - round(flow)`` (x, y; LR px, in
            [-0.5, 0.5]; 0 where the frame stands in for a missing neighbour), two more input channels per neighbour.
            Detail beyond the frame's own sampling is in where the neighbours' samples sit between its pixels, which a
            warp alone does not say. Ours; ``2 * 2 * neighbour_radius * num_feat * 9`` more parameters. In
            ``sl-bench``'s 300-s trainings it lost 0.05-0.1 dB (docs/benchmark-rounds.md, twenty-second round).
            Default: False.
        neighbour_sampling (str): With ``neighbour_input``, how the neighbours' LR frames are read at the flow's
            positions: ``'bilinear'`` interpolates between their pixels (smooths what it moves by a fraction of a
            pixel); ``'nearest'`` takes the nearest pixel as it is, its offset from the position being what
            ``neighbour_offsets`` gives (the placement of classical multi-frame super-resolution's shift-and-add). The
            propagated features and the alignment gate's error are warped bilinearly either way. ``'nearest'`` lost
            more than the offsets alone in ``sl-bench``'s 300-s trainings. ``'bicubic'`` interpolates with cubic
            convolution (PyTorch's ``grid_sample``, a = -0.75), which smooths less than bilinear interpolation what lies
            between the pixels: the neighbours' detail beyond the frame's own sampling, which a video network draws on,
            survives the warp better; it did not help in ``sl-bench``'s 300-s trainings (docs/benchmark-rounds.md,
            twenty-third round). Default: 'bilinear'.
        neighbour_scale (float): With ``neighbour_difference``, the differences are multiplied by this before the
            extractor reads them. Aligned neighbours differ little from their frame (on ``sl-bench``'s training
            patches the differences' standard deviation is 0.07 against the frames' 0.24), so a step of the optimiser
            on the weights that read them moves the features about a third as far as one on the frame's weights
            (Adam's steps are the same size for every weight): a scale near 4 gives both the same reach from the
            start. The same network as weights scaled by it, learned at a rate scaled by it. Ours. In ``sl-bench``'s
            300-s trainings x4 and x8 did not help (-0.03 and -0.05 dB against x1, four seeds; docs/benchmark-rounds.md,
            twenty-ninth round): the input's scale is not what slows learning to use the neighbours. Default: 1.0.
        align_gate (bool): Alignment confidence: after the flow warp, the propagated features are scaled at
            each pixel by a gate learned from two measures of where the flow fails, the error of the
            neighbour's LR frame warped onto the frame (mean over channels) and the forward-backward
            inconsistency of the two flows (LR px): ``sigmoid(conv3x3([error, inconsistency]))``, started at
            about 0.95 where both are 0 and 0.5 at an error of 0.075 or 0.75 px of inconsistency. Where the
            flow is wrong the step relies on the current frame instead of misaligned features. Needs the flow
            warper. Ours, not the paper's; 19 parameters. Default: False.
        align_gate_trained (bool): With ``align_gate``, whether training changes the gate. False keeps it at its
            start, a fixed test of where the flow fails (an occlusion mask without parameters to learn: the
            network cannot learn to close the gate where the flow is right). Default: True.
        align_gate_error (bool): With ``align_gate``, whether the gate reads the warp's photometric error besides
            the flows' inconsistency. False: the inconsistency alone (a forward-backward occlusion test: a
            correct flow over a textured background keeps a warp error from the LR frames' aliasing, but
            the two flows agree there), 10 parameters. Default: True.
        state_bound (float | None): Soft bound of the propagated features: each propagation step's output (the state
            carried to the next frame, and what the frame is reconstructed from) becomes
            ``state_bound * tanh(x / state_bound)``, so no value can grow from frame to frame past the bound. Trained
            on clips of a few frames, an unbounded recurrence can learn a loop gain above 1 that only shows past them:
            on a 192-frame clip, networks trained 1200 CPU s on 7-frame clips lost 6.6-6.9 dB (``sl-bench``'s long-clip
            drop); the same weights with a bound of 1 or 2 lost 0.00-0.01, and their first 16 frames were as good or
            better. Ours, not the paper's; no parameters. None: unbounded (BasicVSR's propagation). Default: None.
        direct_upsample (bool): Reconstruct with one 3x3 convolution from the ``num_feat`` LR features to
            ``scale * scale * num_out_ch`` channels and one pixel shuffle (the last stage of IMDN, Hui et al. 2019, and
            RLFN, Kong et al. 2022) instead of ``num_upsample_feat`` pixel-shuffle stages and an HR refinement
            convolution: no convolution runs at the HR size (measured: 0.72x the CPU time of a bf16 training iteration
            of ``sl-bench``'s lean16 rows, one thread). ``num_upsample_feat`` unused. Default: False.
        share_propagation (bool): One propagation trunk (the convolution and residual blocks of each recurrent step)
            for both directions instead of one per direction: the backward and the forward pass run the same weights,
            so each weight learns from both passes' frames and motions at every iteration, at the same compute and
            with the trunk's parameters once (the lean 300-s rows: 0.111M instead of 0.185M). The forward pass still
            reads the backward pass's features through its own 1x1 convolution first. Ours, not the paper's. In
            ``sl-bench``'s 300-s trainings it lost 0.11 dB, 0.2 on the validation shots (docs/benchmark-rounds.md,
            twenty-fifth round). Default: False.
        recurrent (bool): Propagate features through the clip (BasicVSR's bidirectional recurrence, the paper's
            Pixel Enhancer). False: no state passes between frames; each frame goes through the same two trunks, the
            forward one reading the backward one's features of the frame, without the propagated features (their half
            of each trunk's first convolution is left out: 2 * 9 * ``num_feat`` ** 2 fewer parameters), all frames of
            the clip at once. What reaches a frame from its neighbours then comes only through ``neighbour_input`` (an
            early-fusion sliding window, as VESPCN, Caballero et al. 2017). Needs IMAGE, SPACE, MFSAB and the
            alignment gate off (they act on the propagated features). Ours. In ``sl-bench``'s 300-s trainings it ended 0.41
            dB below the same network with recurrence, 0.18 below the single-frame network (docs/benchmark-rounds.md,
            twenty-sixth round). Default: True.
        state_carry (float | None): Start each recurrent step's first convolution with its propagated-features half at
            ``state_carry`` times the identity (each channel of the aligned state added to the same output channel)
            instead of at random, as recurrent networks started at the identity (Le et al. 2015), so that from the
            first iteration the state carries the previous frames' features forward rather than a random mixture of
            them. Only the start changes; no parameters. None: He initialisation, as the rest. In ``sl-bench``'s 300-s
            trainings 0.5 tied with None (docs/benchmark-rounds.md, twenty-sixth round). Default: None.
        second_order (bool): Each recurrent step also reads the state of the frame two steps back, warped onto the frame
            by the two flows composed (BasicVSR++'s second-order propagation, Chan et al. 2022, without its deformable
            alignment): what the state carries from there reaches the frame through one resampling instead of two.
            Each trunk's first convolution reads ``num_feat`` more channels (9 * ``num_feat`` ** 2 more parameters per
            direction); IMAGE, SPACE, MFSAB and the alignment gate act on the first-order state only. Needs
            ``recurrent``. In ``sl-bench``'s 300-s trainings it led the single-frame network by 0.03 dB less than the
            same network without it (four seeds; docs/benchmark-rounds.md, twenty-seventh round). Default: False.
        hr_state_channels (int): How many of the propagated features (the first ones; a multiple of ``scale ** 2``,
            at most ``num_feat``) are warped at the HR size: taken as a depth-to-space map (``pixel_shuffle`` by
            ``scale``: ``hr_state_channels / scale ** 2`` HR channels), warped by the flow brought to the HR size
            (bilinearly upsampled, times ``scale``), and space-to-depth again. A motion of a fraction of an LR pixel is
            then a whole number of HR pixels for those channels, moved as it is, where the LR warp interpolates
            between LR pixels and blends the sub-pixel detail the state carries. The HR warp of FRVSR's estimates
            (Sajjadi et al., "Frame-Recurrent Video Super-Resolution", CVPR 2018), applied here to the LR state; the
            rest of the channels are warped at the LR size as before. Ours; no parameters; the same number of samples
            as the LR warp. Needs ``recurrent``. 0: every channel warped at the LR size. In ``sl-bench``'s 300-s
            trainings all 32 channels lost 0.7 dB on the validation shots (the trunks' features are not laid out as
            depth-to-space maps, so small moves swap values between channels), half of them 0.08 dB on the test
            footage (docs/benchmark-rounds.md, twenty-eighth round). Default: 0.
        hr_feedback (bool): The forward pass reconstructs each frame as soon as its features are ready, and its next
            step reads that HR output, warped onto the next frame at the HR size (the flow bilinearly upsampled, times
            ``scale``), minus the next frame's bicubic upsampling, space-to-depth (``3 * scale ** 2`` more input
            channels of the forward trunk's first convolution, scaled by the alignment gate where there is one; zeros
            at the first frame): detail already restored reaches the next frame without passing through the LR state
            (FRVSR's recurrence of HR estimates, Sajjadi et al., CVPR 2018, beside BasicVSR's of LR features). Ours as
            built here; ``3 * scale ** 2 * num_feat * 9`` more parameters; the HR stage runs frame by frame in
            training too. Needs ``recurrent`` and one trunk per direction. In ``sl-bench``'s 300-s trainings
            it cost 1.3x the CPU per iteration and lost 0.18 dB against the same network without it (two seeds;
            docs/benchmark-rounds.md, twenty-eighth round). Default: False.
        float32_propagation (bool): Under mixed precision (``torch.autocast``, ``train.autocast``), the recurrent
            steps run in float32 (their features cast up once, autocast off inside them); the extractor and the HR
            stage keep the lower precision. bf16 keeps 8 bits of a value, and what the recurrence carries from
            frame to frame is sub-pixel detail, small beside the features that hold it. Without autocast it
            changes nothing. Ours. In ``sl-bench``'s 300-s trainings (bf16) it cost 1.3x the CPU per iteration and
            tied (-0.03 dB against the same network without it, four seeds; docs/benchmark-rounds.md, twenty-ninth
            round): bf16 costs the recurrence nothing that shows. Default: False.
    """

    #: Smallest LR side accepted (the flow pyramid's coarsest level and the attention windows need it).
    MIN_INPUT_SIZE = 16

    def __init__(self,
                 num_in_ch=3,
                 num_out_ch=3,
                 scale=4,
                 num_feat=32,
                 num_extract_block=1,
                 num_block=2,
                 num_reconstruct_block=1,
                 num_upsample_feat=16,
                 window_size=8,
                 num_heads=2,
                 sem_dim=32,
                 num_instances=8,
                 num_video_instances=8,
                 num_classes=16,
                 detector_layers=1,
                 encoder_layers=1,
                 decoder_layers=1,
                 flow_levels=3,
                 flow_channels=(16, 32, 16, 8),
                 flow_kernel_size=5,
                 flow_load_path=None,
                 flow_estimator='learned',
                 semantic_extractor=None,
                 use_semantics=True,
                 use_flow=True,
                 use_image=True,
                 use_gps=True,
                 use_isee=True,
                 use_mfsab=True,
                 use_mask_gate=False,
                 instance_motion=False,
                 neighbour_input=False,
                 neighbour_radius=1,
                 neighbour_difference=False,
                 neighbour_offsets=False,
                 neighbour_sampling='bilinear',
                 neighbour_scale=1.0,
                 align_gate=False,
                 align_gate_trained=True,
                 align_gate_error=True,
                 state_bound=None,
                 direct_upsample=False,
                 share_propagation=False,
                 recurrent=True,
                 state_carry=None,
                 second_order=False,
                 hr_state_channels=0,
                 hr_feedback=False,
                 float32_propagation=False,
                 **unknown_options):
        super().__init__()
        reject_unknown_options(type(self), unknown_options)
        if scale not in (1, 2, 3, 4):
            raise OptionError(f'SemanticLens supports scale 1, 2, 3 or 4, got {scale}.')
        sizes = dict(num_in_ch=num_in_ch, num_out_ch=num_out_ch, num_feat=num_feat, num_upsample_feat=num_upsample_feat,
                     window_size=window_size, num_heads=num_heads, sem_dim=sem_dim, num_instances=num_instances,
                     num_video_instances=num_video_instances, num_classes=num_classes, flow_levels=flow_levels,
                     flow_kernel_size=flow_kernel_size)  # a 0 among them had ended in a ZeroDivisionError
        check_option_types(sizes, dict.fromkeys(sizes, 'int>0'), 'network_g (SemanticLens)')
        self.num_in_ch = num_in_ch
        self.scale = scale
        self.num_video_instances = num_video_instances
        self.use_gps = use_gps and use_semantics
        self.use_isee = use_isee and use_semantics
        self.use_mask_gate = use_mask_gate
        if instance_motion and not use_flow:
            raise OptionError('SemanticLens instance_motion refines the flow warper\'s flow: set use_flow to true, or '
                              'instance_motion to false.')
        self.instance_motion = instance_motion
        if neighbour_input and not use_flow:
            raise OptionError('SemanticLens neighbour_input warps the neighbours with the flow warper: set use_flow '
                              'to true, or neighbour_input to false.')
        self.neighbour_input = neighbour_input
        if isinstance(neighbour_radius, bool) or not isinstance(neighbour_radius, int) or neighbour_radius < 1:
            raise OptionError(f'SemanticLens neighbour_radius must be an integer >= 1, got {neighbour_radius!r}.')
        if neighbour_radius > 1 and not neighbour_input:
            raise OptionError('SemanticLens neighbour_radius sets how many neighbours neighbour_input warps in: set '
                              'neighbour_input to true, or neighbour_radius to 1.')
        self.neighbour_radius = neighbour_radius
        if neighbour_sampling not in ('bilinear', 'bicubic', 'nearest'):
            raise OptionError(f"SemanticLens neighbour_sampling must be 'bilinear', 'bicubic' or 'nearest', got "
                              f'{neighbour_sampling!r}.')
        for name, value, default in (('neighbour_difference', neighbour_difference, False),
                                     ('neighbour_offsets', neighbour_offsets, False),
                                     ('neighbour_sampling', neighbour_sampling, 'bilinear')):
            if value != default and not neighbour_input:
                raise OptionError(f'SemanticLens {name} changes what neighbour_input reads: set neighbour_input to '
                                  f'true, or {name} to {str(default).lower()}.')
        self.neighbour_difference = neighbour_difference
        self.neighbour_offsets = neighbour_offsets
        self.neighbour_sampling = neighbour_sampling
        if (isinstance(neighbour_scale, bool) or not isinstance(neighbour_scale, (int, float))
                or not neighbour_scale > 0):
            raise OptionError(f'SemanticLens neighbour_scale must be a positive number (e.g. 4.0), got '
                              f'{neighbour_scale!r}.')
        if neighbour_scale != 1 and not neighbour_difference:
            raise OptionError('SemanticLens neighbour_scale scales the differences neighbour_difference feeds in: set '
                              'neighbour_input and neighbour_difference to true, or neighbour_scale to 1.')
        self.neighbour_scale = float(neighbour_scale)
        if align_gate and not use_flow:
            raise OptionError('SemanticLens align_gate measures how well the flow warper aligns: set use_flow to true, '
                              'or align_gate to false.')
        if state_bound is not None and (isinstance(state_bound, bool) or not isinstance(state_bound, (int, float))
                                        or not state_bound > 0):
            raise OptionError(f'SemanticLens state_bound must be a positive number (e.g. 1.0), or null for no bound; '
                              f'got {state_bound!r}.')
        self.state_bound = None if state_bound is None else float(state_bound)
        if not isinstance(recurrent, bool):
            raise OptionError(f'SemanticLens recurrent must be true or false, got {recurrent!r}.')
        if not recurrent:
            on = [name for name, value in (('use_image', use_image), ('use_gps', self.use_gps),
                                           ('use_isee', self.use_isee), ('use_mfsab', use_mfsab),
                                           ('align_gate', align_gate)) if value]
            if on:
                raise OptionError(f'SemanticLens recurrent: false propagates no features, which {", ".join(on)} '
                                  'act on: set them to false, or recurrent to true.')
        self.recurrent = recurrent
        if state_carry is not None and (isinstance(state_carry, bool) or not isinstance(state_carry, (int, float))
                                        or not recurrent):
            raise OptionError(f'SemanticLens state_carry must be a number (e.g. 0.5) with recurrent: true, or null; got '
                              f'{state_carry!r}.')
        if not isinstance(second_order, bool) or (second_order and not recurrent):
            raise OptionError(f'SemanticLens second_order must be true or false, and true only with recurrent: true; got '
                              f'{second_order!r}.')
        self.second_order = second_order
        if (isinstance(hr_state_channels, bool) or not isinstance(hr_state_channels, int) or hr_state_channels < 0
                or hr_state_channels % (scale * scale) or hr_state_channels > num_feat
                or (hr_state_channels and not recurrent)):
            raise OptionError(f'SemanticLens hr_state_channels must be a multiple of scale ** 2 = {scale * scale} '
                              f'from 0 to num_feat = {num_feat}, and 0 with recurrent: false; got '
                              f'{hr_state_channels!r}.')
        self.hr_state_channels = hr_state_channels
        if not isinstance(hr_feedback, bool) or (hr_feedback and (not recurrent or share_propagation)):
            raise OptionError(f'SemanticLens hr_feedback must be true or false, and true only with recurrent: true and '
                              f'share_propagation: false; got {hr_feedback!r}.')
        self.hr_feedback = hr_feedback
        if not isinstance(float32_propagation, bool) or (float32_propagation and not recurrent):
            raise OptionError(f'SemanticLens float32_propagation must be true or false, and true only with recurrent: '
                              f'true; got {float32_propagation!r}.')
        self.float32_propagation = float32_propagation
        if flow_estimator not in ('learned', 'dis'):
            raise OptionError(f"SemanticLens flow_estimator must be 'learned' or 'dis', got {flow_estimator!r}.")
        if flow_estimator == 'dis' and flow_load_path:
            raise OptionError('SemanticLens flow_estimator dis (OpenCV) has no weights to load: remove flow_load_path, '
                              "or set flow_estimator to 'learned'.")

        # Semantic Extractor
        self.semantic_extractor = None
        if use_semantics:
            extractor_opt = dict(semantic_extractor or {'type': 'SLSemanticExtractor'})
            extractor_type = extractor_opt.pop('type', None)
            if extractor_type not in ARCH_REGISTRY:
                raise OptionError(f'network_g.semantic_extractor type {extractor_type!r} is not registered; use '
                                  'SLSemanticExtractor (learned), SLPrecomputedSemantics (given masks) or '
                                  'SLHFSegmenterSemantics (a pretrained transformers segmenter).')
            # the sizes the extractor shares with the network, those its constructor takes
            shared = dict(num_in_ch=num_in_ch, dim=sem_dim, num_instances=num_instances,
                          num_video_instances=num_video_instances, num_classes=num_classes,
                          detector_layers=detector_layers, encoder_layers=encoder_layers,
                          decoder_layers=decoder_layers, num_heads=num_heads)
            accepted = inspect.signature(ARCH_REGISTRY.get(extractor_type).__init__).parameters
            extractor_opt = dict({key: value for key, value in shared.items() if key in accepted}, **extractor_opt)
            self.semantic_extractor = ARCH_REGISTRY.get(extractor_type)(**extractor_opt)

        # Pixel Enhancer
        self.feat_extract = nn.Sequential(
            nn.Conv2d(num_in_ch * (1 + 2 * neighbour_radius if neighbour_input else 1)
                      + (4 * neighbour_radius if neighbour_offsets else 0), num_feat, 3, 1, 1),
            nn.LeakyReLU(0.1, inplace=True),
            make_layer(ResidualBlock, num_extract_block, num_feat=num_feat))
        self.flow_warper = None
        if use_flow:
            self.flow_warper = SLDISFlow() if flow_estimator == 'dis' else SLFlowWarper(
                flow_levels, tuple(flow_channels), flow_kernel_size, load_path=flow_load_path)
        self.align_gate = None
        if align_gate:
            # inputs: warped-LR error (image units) and flow inconsistency (LR px); the start: sigmoid(3 - 40 e - 4 c)
            self.align_gate = nn.Conv2d(2 if align_gate_error else 1, 1, 3, 1, 1)
            with torch.no_grad():
                self.align_gate.weight.zero_()
                if align_gate_error:
                    self.align_gate.weight[0, 0, 1, 1] = -40.
                self.align_gate.weight[0, -1, 1, 1] = -4.
                self.align_gate.bias.fill_(3.)
            self.align_gate.requires_grad_(align_gate_trained)
        directions = ('backward', 'forwards')  # ModuleDict keys; 'forward' is taken by nn.Module
        self.image = nn.ModuleDict({d: SLMaskedPreAlign(num_feat, num_heads, window_size, use_semantics)
                                    for d in directions}) if use_image else None
        self.space = nn.ModuleDict({d: SLSPACEBlock(num_feat, sem_dim, num_heads, self.use_gps, self.use_isee)
                                    for d in directions}) if (self.use_gps or self.use_isee) else None
        self.mfsab = nn.ModuleDict({d: SLMultiFrameSelfAttention(num_feat, 2, num_heads, window_size)
                                    for d in directions}) if use_mfsab else None
        # the forward branch reads the backward branch's features of the same frame
        self.forward_reference = nn.Conv2d(2 * num_feat, num_feat, 1)
        def trunk(feedback=0):  # reads the frame's features and, when recurrent, the propagated ones
            return nn.Sequential(nn.Conv2d((1 + recurrent + second_order) * num_feat + feedback, num_feat, 3, 1, 1),
                                 nn.LeakyReLU(0.1, inplace=True),
                                 make_layer(ResidualBlock, num_block, num_feat=num_feat))

        if share_propagation:
            shared = trunk()  # both keys hold the same module: parameters() counts it once, state_dict names it twice
            self.trunk = nn.ModuleDict({d: shared for d in directions})
        else:
            # with hr_feedback the forward trunk also reads the previous HR output, space-to-depth
            self.trunk = nn.ModuleDict({'backward': trunk(),
                                        'forwards': trunk(3 * scale * scale if hr_feedback else 0)})

        # Reconstruction
        self.fusion = nn.Conv2d(2 * num_feat, num_feat, 1)
        self.reconstruct = make_layer(ResidualBlock, num_reconstruct_block, num_feat=num_feat)
        if direct_upsample:
            self.upsample = nn.Sequential()
            self.conv_last = nn.Sequential(nn.Conv2d(num_feat, num_out_ch * scale * scale, 3, 1, 1),
                                           nn.PixelShuffle(scale))
        else:
            stages = {1: [], 2: [2], 3: [3], 4: [2, 2]}[scale]
            upsample, in_ch = [], num_feat
            for factor in stages:
                upsample += [nn.Conv2d(in_ch, num_upsample_feat * factor * factor, 3, 1, 1),
                             nn.PixelShuffle(factor), nn.LeakyReLU(0.1, inplace=True)]
                in_ch = num_upsample_feat
            upsample += [nn.Conv2d(in_ch, in_ch, 3, 1, 1), nn.LeakyReLU(0.1, inplace=True)]  # HR refinement
            self.upsample = nn.Sequential(*upsample)
            self.conv_last = nn.Conv2d(in_ch, num_out_ch, 3, 1, 1)
        # He-initialised main path and a small last layer: the untrained network starts close to
        # bicubic upsampling while its early layers still receive useful gradients (measured on
        # the demo data: +0.33 dB over bicubic after 150 iterations, against +0.00 with every
        # layer scaled by 0.1 and +0.03 with PyTorch's default initialisation).
        default_init_weights([self.feat_extract[0], self.forward_reference, self.fusion, self.upsample] +
                             [trunk[0] for trunk in self.trunk.values()], 1.0)
        default_init_weights([self.conv_last], 0.1)
        if state_carry is not None:
            with torch.no_grad():
                for trunk in self.trunk.values():  # a shared trunk twice: the same values
                    state_half = trunk[0].weight[:, num_feat:2 * num_feat]
                    state_half.zero_()
                    state_half[:, :, 1, 1] = float(state_carry) * torch.eye(num_feat)

    def _check_input(self, lqs):
        if not torch.is_tensor(lqs) or lqs.dim() != 5:
            shape = tuple(lqs.shape) if torch.is_tensor(lqs) else type(lqs).__name__
            raise InputShapeError(f'SemanticLens expects a clip of shape (b, t, c, h, w), got {shape}; '
                                  'add the time axis with lqs.unsqueeze(1) for single frames.')
        if lqs.shape[2] != self.num_in_ch:
            raise InputShapeError(f'SemanticLens was built with num_in_ch={self.num_in_ch} but the input has '
                                  f'{lqs.shape[2]} channels (shape {tuple(lqs.shape)}); set num_in_ch in network_g.')
        if min(lqs.shape[-2:]) < self.MIN_INPUT_SIZE:
            raise InputShapeError(f'SemanticLens needs LR frames of at least {self.MIN_INPUT_SIZE}x{self.MIN_INPUT_SIZE} '
                                  f'px, got {tuple(lqs.shape[-2:])}.')

    def _instance_masks(self, masks, shape):
        """External masks -> (b, t, n, h, w) distribution. Ids are mapped onto the n mask slots modulo n."""
        b, t, _, h, w = shape
        if masks.dim() == 4 and not masks.is_floating_point():
            if tuple(masks.shape) != (b, t, h, w):
                raise InputShapeError(f'instance-id masks must be (b, t, h, w) = {(b, t, h, w)}, got {tuple(masks.shape)}.')
            ids = masks.long().clamp_min(0) % self.num_video_instances
            return F.one_hot(ids, self.num_video_instances).permute(0, 1, 4, 2, 3).float()
        if masks.dim() == 5 and tuple(masks.shape[:2]) == (b, t) and tuple(masks.shape[-2:]) == (h, w):
            masks = masks.float().clamp_min(0)
            return masks / masks.sum(dim=2, keepdim=True).clamp_min(1e-6)
        raise InputShapeError(f'masks must be instance ids (b, t, h, w) or soft masks (b, t, n, h, w) for an input '
                              f'of {(b, t, h, w)}, got {tuple(masks.shape)}.')

    def _flows(self, lqs, masks=None, flows=None):
        """Flows between neighbours: backward[i] aligns frame i+1 to i, forward[i] aligns frame i to i+1.

        With ``instance_motion`` and ``masks`` (b, t, n, h, w), each flow is refined instance by
        instance (:func:`instance_motion_flow`). Given ``flows`` (backward, forward) replace the estimate as they are.
        """
        b, t, c, h, w = lqs.shape
        if flows is not None and t > 1:
            for name, flow in zip(('backward', 'forward'), flows):
                if tuple(flow.shape) != (b, t - 1, 2, h, w):
                    raise InputShapeError(f'flows: the {name} flows must be (b, t - 1, 2, h, w) = {(b, t - 1, 2, h, w)} '
                                          f'for an input of {(b, t, c, h, w)}, got {tuple(flow.shape)}.')
            return tuple(flow.to(lqs.dtype) for flow in flows)
        if self.flow_warper is None or t == 1:
            return None, None
        current, following = lqs[:, :-1].flatten(0, 1), lqs[:, 1:].flatten(0, 1)
        flows_backward = self.flow_warper(current, following)
        flows_forward = self.flow_warper(following, current)
        if self.instance_motion and masks is not None:
            current_masks, following_masks = masks[:, :-1].flatten(0, 1), masks[:, 1:].flatten(0, 1)
            flows_backward = instance_motion_flow(flows_backward, current, following, current_masks, following_masks)
            flows_forward = instance_motion_flow(flows_forward, following, current, following_masks, current_masks)
        return flows_backward.view(b, t - 1, 2, h, w), flows_forward.view(b, t - 1, 2, h, w)

    def _warped_neighbours(self, lqs, flows_backward, flows_forward):
        """The neighbours' LR frames warped by the flows, read by ``neighbour_input`` and by ``align_gate``'s warp
        error: ``(following, previous)``, each (b, t - 1, c, h, w): following[i] is frame i + 1 warped onto frame i,
        previous[i] frame i warped onto frame i + 1. None without flows."""
        if flows_backward is None:
            return None
        # backward[i] aligns frame i+1 to frame i; forward[i] aligns frame i to frame i+1
        return self._warp(lqs[:, 1:], flows_backward), self._warp(lqs[:, :-1], flows_forward)

    def _feature_input(self, lqs, warped, flows_backward, flows_forward):
        """What the pixel-feature extractor reads: the clip, or with ``neighbour_input`` each frame with its
        previous and next frame warped onto it (``warped``: :meth:`_warped_neighbours`, used where the neighbours are
        sampled bilinearly), and with ``neighbour_radius`` r > 1 the frames up to r steps away, warped by the composed
        flows: (b, t, (1 + 2r) c, h, w), ordered frame, previous, next, second previous, second next, ...; a frame
        without such a neighbour stands in for it. With ``neighbour_difference`` the neighbours enter less the frame
        (times ``neighbour_scale``); with ``neighbour_offsets`` their flows' sub-pixel parts follow them, 2 channels
        each, in the same order."""
        if not self.neighbour_input:
            return lqs
        b, t, c, h, w = lqs.shape
        neighbours, offsets = [], []
        # flows to the frames k steps away, composed step by step: far_backward[i] aligns frame i + k to frame i
        far_backward, far_forward = flows_backward, flows_forward
        for k in range(1, self.neighbour_radius + 1):
            previous, following = lqs.clone(), lqs.clone()
            neighbours += [previous, following]
            if self.neighbour_offsets:
                previous_offset, following_offset = lqs.new_zeros(b, t, 2, h, w), lqs.new_zeros(b, t, 2, h, w)
                offsets += [previous_offset, following_offset]
            if flows_backward is not None and t > k:
                if k > 1:
                    far_backward, far_forward = self._farther_flows(far_backward, far_forward, flows_backward,
                                                                    flows_forward, k)
                if k == 1 and warped is not None and self.neighbour_sampling == 'bilinear':
                    following[:, :-1], previous[:, 1:] = warped
                else:
                    following[:, :-k] = self._warp(lqs[:, k:], far_backward, self.neighbour_sampling)
                    previous[:, k:] = self._warp(lqs[:, :-k], far_forward, self.neighbour_sampling)
                if self.neighbour_offsets:
                    following_offset[:, :-k] = far_backward - torch.round(far_backward)
                    previous_offset[:, k:] = far_forward - torch.round(far_forward)
        if self.neighbour_difference:
            neighbours = [(neighbour - lqs) * self.neighbour_scale for neighbour in neighbours]
        return torch.cat([lqs] + neighbours + offsets, dim=2)

    @staticmethod
    def _warp(frames, flows, sampling='bilinear'):
        """``frames`` (b, n, c, h, w) warped by ``flows`` (b, n, 2, h, w), border padding, ``sampling`` ``'bilinear'``,
        ``'bicubic'`` or ``'nearest'``."""
        b, n, c, h, w = frames.shape
        return flow_warp(frames.flatten(0, 1), flows.flatten(0, 1).permute(0, 2, 3, 1), interp_mode=sampling,
                         padding_mode='border').view(b, n, c, h, w)

    @classmethod
    def _compose(cls, first, second):
        """The flow of ``first`` then ``second`` (each (b, n, 2, h, w)): a pixel moves by ``first``, then by
        ``second`` read where it landed."""
        return first + cls._warp(second, first)

    @classmethod
    def _farther_flows(cls, far_backward, far_forward, flows_backward, flows_forward, k):
        """The flows between frames ``k`` steps apart from those between frames ``k - 1`` apart, indexed like the
        flows: far_backward[i] aligns frame i + k to frame i, far_forward[i] frame i to frame i + k."""
        return (cls._compose(far_backward[:, :-1], flows_backward[:, k - 1:]),
                cls._compose(flows_forward[:, k - 1:], far_forward[:, :-1]))

    def _gate_reads_error(self):
        """Whether ``align_gate`` reads the warp error (``align_gate_error``), so needs the warped LR frames."""
        return self.align_gate is not None and self.align_gate.in_channels == 2

    def _align_gates(self, lqs, warped, flows_backward, flows_forward):
        """With ``align_gate``: the gates (b, t - 1, 1, h, w) of each direction's warps, indexed like the flows:
        backward[i] gates frame i + 1's features warped onto frame i, forward[i] frame i's onto frame i + 1.
        ``warped``: :meth:`_warped_neighbours`, read only when the gate reads the warp error (None otherwise)."""
        if self.align_gate is None or flows_backward is None:
            return None, None
        b, t, c, h, w = lqs.shape

        def gate(ref, warped_supp, flow, reverse):
            flow, reverse = flow.flatten(0, 1), reverse.flatten(0, 1)
            # a pixel's flow and the reverse flow where it lands should cancel
            cues = (flow + flow_warp(reverse, flow.permute(0, 2, 3, 1), padding_mode='border')).norm(
                dim=1, keepdim=True)
            if self._gate_reads_error():
                error = (warped_supp - ref).abs().mean(2, keepdim=True).flatten(0, 1)
                cues = torch.cat([error, cues], 1)
            return torch.sigmoid(self.align_gate(cues)).view(b, t - 1, 1, h, w)

        following, previous = warped if warped is not None else (None, None)
        return (gate(lqs[:, :-1], following, flows_backward, flows_forward),
                gate(lqs[:, 1:], previous, flows_forward, flows_backward))

    def _align(self, direction, ref_feat, hidden, flow, semantics, masks, frame, neighbour, gate=None):
        """Align the propagated features ``hidden`` (from ``neighbour``) to ``frame``."""
        ref_masks = masks[:, frame] if masks is not None else None
        supp_masks = masks[:, neighbour] if masks is not None else None
        if flow is not None:
            hidden = self._warp_state(hidden, flow)
            if supp_masks is not None:
                supp_masks = flow_warp(supp_masks, flow.permute(0, 2, 3, 1), padding_mode='border')
        if gate is not None:
            hidden = hidden * gate
        if self.use_mask_gate and ref_masks is not None:
            agreement = F.cosine_similarity(ref_masks, supp_masks, dim=1, eps=1e-6).unsqueeze(1)  # (b, 1, h, w)
            hidden = hidden * agreement.clamp(0, 1)
        if self.image is not None:
            hidden = self.image[direction](ref_feat, hidden, ref_masks, supp_masks)
        if self.space is not None:
            hidden = self.space[direction](hidden, semantics['global_tokens'][:, frame],
                                           semantics['video_instance_tokens'], ref_masks)
        if self.mfsab is not None:
            hidden = self.mfsab[direction]([ref_feat, hidden])
        return hidden

    def _warp_at_hr(self, hr_map, flow):
        """``hr_map`` (b, c, scale*h, scale*w) warped by the LR-pixel ``flow`` (b, 2, h, w) brought to the HR size
        (bilinearly upsampled, times ``scale``)."""
        r = self.scale
        hr_flow = r * F.interpolate(flow, scale_factor=r, mode='bilinear', align_corners=False)
        return flow_warp(hr_map, hr_flow.permute(0, 2, 3, 1))

    def _warp_state(self, state, flow):
        """The propagated features ``state`` (b, c, h, w) warped by ``flow`` (b, 2, h, w, LR px): the first
        ``hr_state_channels`` at the HR size, the rest at the LR size (bilinearly, as ``flow_warp``)."""
        k, r = self.hr_state_channels, self.scale
        if not k:
            return flow_warp(state, flow.permute(0, 2, 3, 1))
        warped = [F.pixel_unshuffle(self._warp_at_hr(F.pixel_shuffle(state[:, :k], r), flow), r)]
        if k < state.shape[1]:
            warped.append(flow_warp(state[:, k:], flow.permute(0, 2, 3, 1)))
        return torch.cat(warped, 1) if len(warped) > 1 else warped[0]

    def _propagate(self, direction, feats, flows, semantics, masks, backward_feats=None, gates=None, far_flows=None,
                   lqs=None):
        """One direction's recurrence over ``feats`` (b, t, c, h, w): each frame's state (a list of (b, c, h, w)).
        ``far_flows`` (b, t - 2, 2, h, w), indexed like ``flows``, align the frames two steps apart, for
        ``second_order``. With ``hr_feedback``, the forward pass (given the LR clip ``lqs``) returns each frame's HR
        output (b, c, scale*h, scale*w) too, as a second list."""
        b, t, c, h, w = feats.shape
        frames = range(t - 1, -1, -1) if direction == 'backward' else range(t)
        hidden = torch.zeros_like(feats[:, 0])  # laid out as the features (channels-last where they are)
        outputs = [None] * t
        feedback = self.hr_feedback and direction == 'forwards'
        restored = [None] * t if feedback else None
        flow = gate = None  # the step's alignment from the neighbour; none at the first step
        for step, frame in enumerate(frames):
            ref_feat = feats[:, frame]
            if backward_feats is not None:
                ref_feat = self.forward_reference(torch.cat([ref_feat, backward_feats[frame]], 1))
            if step > 0:
                neighbour = frame + 1 if direction == 'backward' else frame - 1
                flow = None if flows is None else flows[:, min(frame, neighbour)]
                gate = None if gates is None else gates[:, min(frame, neighbour)]
                hidden = self._align(direction, ref_feat, hidden, flow, semantics, masks, frame, neighbour, gate)
                # under autocast the warp runs in float32 and returns a contiguous map: back to the features' type and
                # memory order here (the cast the trunk's convolution would make of the whole concatenation, on half of
                # it), so that the concatenation is not promoted to float32 and reordered again for the convolution
                hidden = torch.empty_like(ref_feat).copy_(hidden)
            inputs = [ref_feat, hidden]
            if self.second_order:
                if step > 1:
                    far = frame + 2 if direction == 'backward' else frame - 2
                    second = outputs[far]
                    if far_flows is not None:
                        second = self._warp_state(second, far_flows[:, min(frame, far)])
                    second = torch.empty_like(ref_feat).copy_(second)  # as the first-order state above
                else:
                    second = torch.zeros_like(ref_feat)
                inputs.append(second)
            if feedback:
                skip = bicubic_upsample(lqs[:, frame], self.scale)  # for the feedback and the frame's output
                inputs.append(self._feedback(skip, restored[frame - 1] if step > 0 else None, flow, gate, ref_feat))
            hidden = self._bound(self.trunk[direction](torch.cat(inputs, 1)))
            outputs[frame] = hidden
            if feedback:
                restored[frame] = self._upscale(skip, backward_feats[frame], hidden)
        return (outputs, restored) if feedback else outputs

    def _feedback(self, skip, previous, flow, gate, like):
        """``hr_feedback``'s input to a forward step: the previous frame's HR output ``previous`` warped onto the
        frame by ``flow`` (b, 2, h, w, LR px) at the HR size, minus the frame's bicubic upsampling ``skip``,
        space-to-depth and scaled by ``gate``; zeros without a previous output. Laid out and typed as ``like``."""
        b, _, h, w = like.shape
        r = self.scale
        if previous is None:
            residual = like.new_zeros(b, 3 * r * r, h, w)
        else:
            if flow is not None:
                previous = self._warp_at_hr(previous, flow)
            residual = F.pixel_unshuffle(previous - skip, r)
            if gate is not None:
                residual = residual * gate
        # in the features' type and memory order (one copy), so that the trunk's concatenation is not promoted
        channels_last = like.is_contiguous(memory_format=torch.channels_last) and not like.is_contiguous()
        return residual.to(dtype=like.dtype,
                           memory_format=torch.channels_last if channels_last else torch.contiguous_format)

    def _propagation_precision(self, feats):
        """The context of the recurrent steps: autocast off with ``float32_propagation`` where it is on."""
        device = feats.device.type
        if self.float32_propagation and torch.is_autocast_enabled(device):
            return torch.autocast(device, enabled=False)
        return contextlib.nullcontext()

    def _bound(self, feats):
        """``state_bound`` applied to a trunk's output."""
        if self.state_bound == 1:
            return torch.tanh(feats)  # the same values, without the division and multiplication by 1
        if self.state_bound is not None:
            return self.state_bound * torch.tanh(feats / self.state_bound)
        return feats

    def _frame_wise(self, feats):
        """``recurrent: false``: both trunks on every frame of ``feats`` (b, t, c, h, w) at once, no state between
        frames; the two directions' features as :meth:`_propagate` returns them (lists of (b, c, h, w))."""
        b, t = feats.shape[:2]
        feats = feats.flatten(0, 1)
        backward = self._bound(self.trunk['backward'](feats))
        forward = self._bound(self.trunk['forwards'](self.forward_reference(torch.cat([feats, backward], 1))))
        return ([feat.view(b, t, *feat.shape[1:])[:, frame] for frame in range(t)] for feat in (backward, forward))

    def _upscale(self, skip, backward_feat, forward_feat):
        """HR frames (n, c, scale*h, scale*w) from both directions' features, added to ``skip``, their LR frames'
        bicubic upsampling (``bicubic_upsample``: F.interpolate's bicubic values, 3-4x faster on a CPU)."""
        fused = self.fusion(torch.cat([backward_feat, forward_feat], 1))
        return self.conv_last(self.upsample(self.reconstruct(fused))) + skip

    def _reconstruct(self, lqs, backward_feats, forward_feats, frames):
        """The HR frames ``frames`` (a range of frame indices) of the clip, (b, len(frames), c, scale*h, scale*w), from
        both directions' features (lists of (b, c, h, w)).

        With autograd recording (training), all frames at once: autograd keeps every frame's HR maps anyway,
        and larger operations run faster. Without it (inference), frame by frame: only one frame's HR feature
        maps are alive at once, so test-time memory does not grow with the clip's length at the HR stage.
        """
        b = lqs.shape[0]
        if torch.is_grad_enabled():
            # frame-major order, as the lists are: (t * b, ...)
            out = self._upscale(bicubic_upsample(lqs[:, frames.start:frames.stop].transpose(0, 1).flatten(0, 1),
                                                 self.scale),
                                torch.cat(backward_feats[frames.start:frames.stop]),
                                torch.cat(forward_feats[frames.start:frames.stop]))
            return out.view(len(frames), b, *out.shape[1:]).transpose(0, 1)
        return torch.stack([self._upscale(bicubic_upsample(lqs[:, frame], self.scale), backward_feats[frame],
                                          forward_feats[frame]) for frame in frames], dim=1)

    def forward(self, lqs, masks=None, return_masks=False, return_aux=False, flows=None, output_frames=None):
        """
        Args:
            lqs (Tensor): (b, t, c, h, w) LR clip, h and w >= 16 (any values, odd included).
            masks (Tensor | None): precomputed instance ids (b, t, h, w) or soft masks
                (b, t, n, h, w); they replace the learned masks in IMAGE and ISEE; with the
                semantic branch off only ``instance_motion`` and ``use_mask_gate`` read them (otherwise
                they are only returned).
            return_masks (bool): Also return the instance masks used.
            return_aux (bool): Also return a dict of what the mask losses read: ``masks``
                (b, t, n, h, w) or None, ``flows_backward`` / ``flows_forward`` (b, t - 1, 2, h, w) or None.
            flows (tuple | None): given LR-pixel flows ``(backward, forward)``, each (b, t - 1, 2, h, w):
                backward[:, i] aligns frame i + 1 to frame i (at frame i, where its pixels are in frame
                i + 1), forward[:, i] frame i to frame i + 1. They replace the flow warper's estimate and
                instance motion (an oracle where the flow is known, as in ``sl-prepare --synthetic``'s
                clips); with the flow warper off they align all the same.
            output_frames (slice | None): Reconstruct only these frames of the clip (every frame's features are still
                computed: they carry the state), e.g. ``slice(1, t - 1)`` for a loss without the clip's end frames
                (``train.loss_border_frames``); contiguous, step 1. Default: every frame.

        Returns:
            Tensor: (b, t, num_out_ch, scale*h, scale*w) (t: the frames of ``output_frames``); with
            ``return_masks`` a tuple (output, masks (b, t, n, h, w) or None when the semantic branch is off and no
            masks are given); with ``return_aux`` a tuple (output, aux dict).
        """
        self._check_input(lqs)
        b, t, c, h, w = lqs.shape
        frames = range(t)[output_frames] if isinstance(output_frames, slice) else range(t)
        if not isinstance(output_frames, (slice, type(None))) or frames.step != 1 or not frames:
            raise InputShapeError(f'output_frames must be a slice of contiguous frames of the {t}-frame clip, e.g. '
                                  f'slice(1, {t - 1}); got {output_frames!r}.')
        if masks is not None:
            masks = self._instance_masks(masks, lqs.shape)
        semantics = None
        if getattr(self.semantic_extractor, 'needs_masks', False):
            if masks is None:
                raise InputShapeError(f'{type(self.semantic_extractor).__name__} needs the instance masks of the clip: '
                                      'pass masks= (in an option file, set semantics_root in the datasets).')
            semantics = self.semantic_extractor(lqs, masks)
        elif self.semantic_extractor is not None:
            semantics = self.semantic_extractor(lqs)
            masks = semantics['masks'] if masks is None else masks
        elif self.instance_motion and masks is None and flows is None and t > 1:
            raise InputShapeError('instance_motion without the semantic branch moves the instances of given masks: pass '
                                  'masks= (in an option file, set semantics_root in the datasets).')

        flows_backward, flows_forward = self._flows(lqs, masks, flows)
        warped = None  # the neighbours' LR frames warped by the flows, computed once for both readers
        if (self.neighbour_input and self.neighbour_sampling == 'bilinear') or self._gate_reads_error():
            warped = self._warped_neighbours(lqs, flows_backward, flows_forward)
        feats = self.feat_extract(self._feature_input(lqs, warped, flows_backward, flows_forward).flatten(0, 1))
        feats = feats.view(b, t, -1, h, w)
        if self.recurrent:
            gates_backward, gates_forward = self._align_gates(lqs, warped, flows_backward, flows_forward)
            far_backward = far_forward = None
            if self.second_order and flows_backward is not None and t > 2:
                far_backward, far_forward = self._farther_flows(flows_backward, flows_forward, flows_backward,
                                                                flows_forward, 2)
            with self._propagation_precision(feats):
                if self.float32_propagation:
                    feats = feats.float()  # keeps the memory order (channels-last where it is)
                backward_feats = self._propagate('backward', feats, flows_backward, semantics, masks,
                                                 gates=gates_backward, far_flows=far_backward)
                forward_feats = self._propagate('forwards', feats, flows_forward, semantics, masks, backward_feats,
                                                gates_forward, far_flows=far_forward, lqs=lqs)
        else:
            backward_feats, forward_feats = self._frame_wise(feats)

        if self.hr_feedback:  # the forward pass has reconstructed every frame
            forward_feats, restored = forward_feats
            out = torch.stack(restored[frames.start:frames.stop], dim=1)
        else:
            out = self._reconstruct(lqs, backward_feats, forward_feats, frames)
        if return_aux:
            return out, {'masks': masks, 'flows_backward': flows_backward, 'flows_forward': flows_forward}
        return (out, masks) if return_masks else out
