"""A frozen pretrained instance segmenter of Hugging Face ``transformers`` as the Semantic Extractor.

The paper takes its semantics from a pretrained detector (X-Decoder). No weights can be downloaded
where sl_arch is developed, so this adapter is tested with small randomly initialised models; a
user with weights points ``model_path`` at a local folder saved by ``save_pretrained`` (for
instance ``facebook/mask2former-swin-tiny-coco-instance``, downloaded once with
``huggingface-cli download``), in the option file::

    network_g:
      type: SemanticLens
      semantic_extractor: {type: SLHFSegmenterSemantics, model_path: /models/mask2former-swin-tiny-coco-instance}

Any ``*ForUniversalSegmentation`` model whose output holds ``masks_queries_logits`` and
``class_queries_logits`` works (Mask2Former, MaskFormer, OneFormer).
"""
import torch
from torch.nn import functional as F

from basicsr.utils.registry import ARCH_REGISTRY
from sl_arch.archs.semantic_extractor_arch import SLPrecomputedSemantics
from sl_arch.utils.options import OptionError

#: ImageNet statistics, the normalisation of the segmenters above.
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def load_segmenter(model_path=None, config=None):
    """A frozen ``transformers`` segmentation model from a local folder or from a config dict.

    Raises:
        OptionError: neither or both given, transformers missing, or the folder cannot be loaded.
    """
    if (model_path is None) == (config is None):
        raise OptionError('SLHFSegmenterSemantics needs model_path (a local folder saved by save_pretrained) or '
                          'config (a transformers config dict with model_type), not both.')
    try:
        from transformers import AutoConfig, AutoModelForUniversalSegmentation
    except ImportError:
        raise OptionError('SLHFSegmenterSemantics needs Hugging Face transformers: pip install transformers.') \
            from None
    if model_path is not None:
        try:
            model = AutoModelForUniversalSegmentation.from_pretrained(model_path, local_files_only=True)
        except (OSError, ValueError) as error:
            raise OptionError(f'semantic_extractor.model_path {model_path} cannot be loaded ({error}); give a folder '
                              'written by save_pretrained (config.json and the weights).') from None
    else:
        config = dict(config)
        model = AutoModelForUniversalSegmentation.from_config(AutoConfig.for_model(config.pop('model_type'),
                                                                                   **config))
    model.eval()
    model.requires_grad_(False)
    return model


@ARCH_REGISTRY.register()
class SLHFSegmenterSemantics(SLPrecomputedSemantics):
    """Video instance masks from a frozen image segmenter, tokens pooled under them.

    Every LR frame is upscaled (``input_scale``, bicubic) and segmented. The clip's instances are
    the segmenter's queries with the highest mean object score over the clip, so one query keeps
    one slot in every frame (queries are the segmenter's object slots; their identity through a
    clip is not guaranteed by an image model, a video segmenter would do better). Slot 0 holds what
    no selected query covers. The segmenter's weights are not part of the network's state dict
    (checkpoints stay small); it is loaded from ``model_path`` whenever the network is built.

    Args:
        num_in_ch (int): Input channels (3). Default: 3.
        dim (int): Token dimension (SemanticLens' ``sem_dim``). Default: 32.
        num_video_instances (int): Mask slots (SemanticLens' ``num_video_instances``). Default: 8.
        model_path (str | None): Local folder of a pretrained model.
        config (dict | None): Instead, a ``transformers`` config (``model_type`` plus its keys), randomly
            initialised: for tests and for shapes.
        input_scale (float): Upscaling of the LR frames before segmentation. Default: 4.
    """

    needs_masks = False

    def __init__(self, num_in_ch=3, dim=32, num_video_instances=8, model_path=None, config=None, input_scale=4):
        super().__init__(num_in_ch, dim)
        self.num_video_instances = num_video_instances
        self.input_scale = input_scale
        # not a registered sub-module: frozen, kept out of state_dict(), train() and the optimizer
        object.__setattr__(self, 'segmenter', load_segmenter(model_path, config))
        self.register_buffer('mean', torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer('std', torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def _apply(self, fn, recurse=True):
        super()._apply(fn, recurse)
        self.segmenter._apply(fn)  # .to(device) / .half() reach the segmenter too
        return self

    @torch.no_grad()
    def segment(self, lqs):
        """(b, t, 3, h, w) LR clip -> (b, t, num_video_instances, h, w) instance distribution per pixel."""
        b, t, c, h, w = lqs.shape
        frames = F.interpolate(lqs.flatten(0, 1), scale_factor=self.input_scale, mode='bicubic',
                               align_corners=False).clamp(0, 1)
        output = self.segmenter(pixel_values=(frames - self.mean) / self.std)
        scores = output.class_queries_logits.softmax(-1)[..., :-1].amax(-1).view(b, t, -1)  # last class: no object
        chosen = scores.mean(1).topk(min(self.num_video_instances - 1, scores.size(-1)), dim=-1).indices  # (b, k)
        probs = F.interpolate(output.masks_queries_logits.sigmoid(), size=(h, w), mode='bilinear',
                              align_corners=False).view(b, t, -1, h, w)
        index = chosen[:, None, :, None, None].expand(b, t, chosen.size(1), h, w)
        objects = probs.gather(2, index) * scores.gather(2, chosen[:, None].expand(b, t, -1))[..., None, None]
        rest = (1 - objects.amax(2, keepdim=True)).clamp_min(0)
        masks = torch.cat([rest, objects], 2)
        masks = F.pad(masks, (0, 0, 0, 0, 0, self.num_video_instances - masks.size(2)))
        return masks / masks.sum(2, keepdim=True).clamp_min(1e-6)

    def forward(self, lqs):
        """
        Args:
            lqs (Tensor): (b, t, c, h, w) LR clip.

        Returns:
            dict: as :class:`~sl_arch.archs.semantic_extractor_arch.SLSemanticExtractor`.
        """
        return super().forward(lqs, self.segment(lqs))
