"""Semantic Extractor of Semantic Lens: instances, events and scenes from the LR clip.

VITA-style recipe (frame-level detector -> instance encoder -> instance decoder with video queries
-> masks by dot product), small enough to be trained end-to-end with the SR loss. Everything runs
on a pixel embedding at 1/4 of the LR resolution, so its cost is a small fraction of the network.
"""
import math

import torch
from torch import nn
from torch.nn import functional as F

from basicsr.archs.arch_util import ResidualBlockNoBN
from basicsr.utils.registry import ARCH_REGISTRY

from sl_arch.archs.attention import TransformerLayer, sinusoidal_embedding


class FrameEncoder(nn.Module):
    """LR frame -> feature map f_t at 1/4 resolution.

    Args:
        num_in_ch (int): Input channels.
        dim (int): Feature channels.
    """

    def __init__(self, num_in_ch, dim):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(num_in_ch, dim, 3, 1, 1), nn.LeakyReLU(0.1, inplace=True),
            nn.Conv2d(dim, dim, 3, 2, 1), nn.LeakyReLU(0.1, inplace=True),
            nn.Conv2d(dim, dim, 3, 2, 1), nn.LeakyReLU(0.1, inplace=True),
            ResidualBlockNoBN(dim))

    def forward(self, frames):
        """(n, c, h, w) -> (n, dim, ceil(h/4), ceil(w/4))."""
        return self.body(frames)


class FrameLevelDetector(nn.Module):
    """Per-frame queries (N instance tokens + 1 global token) refined against the frame features,
    with classificatory tokens as extra self-attention context, plus the refined pixel embedding.

    Args:
        dim (int): Token / embedding dimension.
        num_instances (int): N, frame-wise instance queries.
        num_classes (int): Number of classificatory tokens (a learnable table standing in for
            the paper's text encoder of category names).
        num_layers (int): Transformer layers.
        num_heads (int): Attention heads.
    """

    def __init__(self, dim, num_instances, num_classes, num_layers, num_heads):
        super().__init__()
        self.queries = nn.Parameter(torch.randn(num_instances + 1, dim) * 0.02)
        self.class_tokens = nn.Parameter(torch.randn(num_classes, dim) * 0.02)
        self.layers = nn.ModuleList(TransformerLayer(dim, num_heads, cross=True) for _ in range(num_layers))
        self.pixel_embed = nn.Conv2d(dim, dim, 1)

    def forward(self, features):
        """
        Args:
            features (Tensor): (n, dim, h4, w4) frame features (n = b * t).

        Returns:
            tuple: tokens (n, N + 1, dim) with the global token last; pixel embedding (n, dim, h4, w4).
        """
        n = features.shape[0]
        memory = features.flatten(2).transpose(1, 2)  # (n, h4*w4, dim): queries x pixels is linear in area
        tokens = self.queries.unsqueeze(0).expand(n, -1, -1)
        context = self.class_tokens.unsqueeze(0).expand(n, -1, -1)
        for layer in self.layers:
            tokens = layer(tokens, memory=memory, context=context)
        return tokens, self.pixel_embed(features)


class InstanceEncoder(nn.Module):
    """Temporal context across the clip: self-attention over the tokens of all T frames.

    Args:
        dim (int): Token dimension.
        num_layers (int): Transformer layers.
        num_heads (int): Attention heads.
    """

    def __init__(self, dim, num_layers, num_heads):
        super().__init__()
        self.layers = nn.ModuleList(TransformerLayer(dim, num_heads) for _ in range(num_layers))

    def forward(self, frame_tokens):
        """(b, t, N + 1, dim) -> (b, t, N + 1, dim), with a fixed sinusoidal frame-index embedding."""
        b, t, k, dim = frame_tokens.shape
        time_embedding = sinusoidal_embedding(torch.arange(t, device=frame_tokens.device), dim)
        tokens = (frame_tokens + time_embedding[None, :, None].to(frame_tokens.dtype)).reshape(b, t * k, dim)
        for layer in self.layers:
            tokens = layer(tokens)
        return tokens.view(b, t, k, dim)


class InstanceDecoder(nn.Module):
    """Video-wise instance queries attend to every frame-wise instance token of the clip, giving
    one token per object identity for the whole clip.

    Args:
        dim (int): Token dimension.
        num_video_instances (int): Number of video-wise instance queries.
        num_layers (int): Transformer layers.
        num_heads (int): Attention heads.
    """

    def __init__(self, dim, num_video_instances, num_layers, num_heads):
        super().__init__()
        self.video_queries = nn.Parameter(torch.randn(num_video_instances, dim) * 0.02)
        self.layers = nn.ModuleList(TransformerLayer(dim, num_heads, cross=True) for _ in range(num_layers))
        self.norm = nn.LayerNorm(dim)

    def forward(self, frame_instance_tokens):
        """(b, t, N, dim) -> video-wise instance tokens (b, N_v, dim)."""
        b, t, n, dim = frame_instance_tokens.shape
        memory = frame_instance_tokens.reshape(b, t * n, dim)
        tokens = self.video_queries.unsqueeze(0).expand(b, -1, -1)
        for layer in self.layers:
            tokens = layer(tokens, memory=memory)
        return self.norm(tokens)


@ARCH_REGISTRY.register()
class SLSemanticExtractor(nn.Module):
    """Semantic Extractor: LR clip -> scene, instance and video-instance semantics.

    The interface every extractor honours (so a frozen pretrained or external one can replace it):
    ``forward(lqs)`` returns a dict with

    - ``global_tokens``: (b, t, dim) frame-wise global (scene) tokens.
    - ``frame_instance_tokens``: (b, t, N, dim) frame-wise instance tokens.
    - ``video_instance_tokens``: (b, N_v, dim) video-wise instance tokens, one identity per object
      shared by all frames.
    - ``masks``: (b, t, N_v, h, w) video instance masks, a distribution over instances per pixel.

    Args:
        num_in_ch (int): Input channels. Default: 3.
        dim (int): Token / embedding dimension. Default: 32.
        num_instances (int): Frame-wise instance queries. Default: 8.
        num_video_instances (int): Video-wise instance queries. Default: 8.
        num_classes (int): Classificatory tokens. Default: 16.
        detector_layers (int): Frame-level detector layers. Default: 1.
        encoder_layers (int): Instance encoder layers. Default: 1.
        decoder_layers (int): Instance decoder layers. Default: 1.
        num_heads (int): Attention heads. Default: 2.
        fine_masks (bool): Masks at the full LR resolution: a two-layer convolution of the frames
            adds full-resolution detail to the upsampled 1/4-resolution pixel embedding before the
            dot product with the instance tokens (as Mask2Former's pixel decoder adds its fine
            level). Without it an object of a few LR pixels falls inside one embedding cell.
            Default: False.
    """

    def __init__(self,
                 num_in_ch=3,
                 dim=32,
                 num_instances=8,
                 num_video_instances=8,
                 num_classes=16,
                 detector_layers=1,
                 encoder_layers=1,
                 decoder_layers=1,
                 num_heads=2,
                 fine_masks=False):
        super().__init__()
        self.frame_encoder = FrameEncoder(num_in_ch, dim)
        self.fine_embed = nn.Sequential(
            nn.Conv2d(num_in_ch, dim, 3, 1, 1), nn.LeakyReLU(0.1, inplace=True),
            nn.Conv2d(dim, dim, 3, 1, 1)) if fine_masks else None
        self.detector = FrameLevelDetector(dim, num_instances, num_classes, detector_layers, num_heads)
        self.instance_encoder = InstanceEncoder(dim, encoder_layers, num_heads)
        self.instance_decoder = InstanceDecoder(dim, num_video_instances, decoder_layers, num_heads)

    def instance_masks(self, video_instance_tokens, pixel_embedding, lqs):
        """Video instance masks M_{t,i} = softmax_i(O_{V,i} . f~_t) at the LR size.

        Args:
            video_instance_tokens (Tensor): (b, N_v, dim).
            pixel_embedding (Tensor): (b, t, dim, h4, w4).
            lqs (Tensor): (b, t, c, h, w) the LR clip.

        Returns:
            Tensor: (b, t, N_v, h, w); non-negative and summing to 1 over N_v at each pixel
            (without ``fine_masks`` the masks are computed at 1/4 resolution and upsampled
            bilinearly, a convex combination, which keeps both properties).
        """
        b, t, dim, h4, w4 = pixel_embedding.shape
        size = lqs.shape[-2:]
        if self.fine_embed is not None:
            coarse = F.interpolate(pixel_embedding.flatten(0, 1), size=size, mode='bilinear', align_corners=False)
            fine = (coarse + self.fine_embed(lqs.flatten(0, 1))).view(b, t, dim, *size)
            logits = torch.einsum('bnd,btdhw->btnhw', video_instance_tokens, fine) / math.sqrt(dim)
            return logits.softmax(dim=2)
        logits = torch.einsum('bnd,btdhw->btnhw', video_instance_tokens, pixel_embedding) / math.sqrt(dim)
        masks = logits.softmax(dim=2).flatten(0, 1)
        masks = F.interpolate(masks, size=size, mode='bilinear', align_corners=False)
        return masks.view(b, t, -1, *size)

    def forward(self, lqs):
        """
        Args:
            lqs (Tensor): (b, t, c, h, w) LR clip.

        Returns:
            dict: see the class docstring.
        """
        b, t, c, h, w = lqs.shape
        features = self.frame_encoder(lqs.flatten(0, 1))
        tokens, pixel_embedding = self.detector(features)
        tokens = self.instance_encoder(tokens.view(b, t, *tokens.shape[1:]))
        frame_instance_tokens, global_tokens = tokens[:, :, :-1], tokens[:, :, -1]
        video_instance_tokens = self.instance_decoder(frame_instance_tokens)
        pixel_embedding = pixel_embedding.view(b, t, *pixel_embedding.shape[1:])
        return {
            'global_tokens': global_tokens,
            'frame_instance_tokens': frame_instance_tokens,
            'video_instance_tokens': video_instance_tokens,
            'masks': self.instance_masks(video_instance_tokens, pixel_embedding, lqs),
        }


@ARCH_REGISTRY.register()
class SLPrecomputedSemantics(nn.Module):
    """Semantics from instance masks that come with the clip (a dataset's ``semantics_root``, an
    external segmenter): the masks are used as given, and the tokens are pooled under them.

    A small frame encoder (as the learned extractor's) embeds the pixels at 1/4 resolution; the
    frame-wise global token is the mean embedding of a frame, an instance's frame-wise token the
    mean embedding under its mask in that frame, and its video-wise token the mean under its mask
    over the whole clip. So the tokens that ISEE and GPS read belong to the very instances of the
    masks, which the learned extractor's tokens do not when external masks replace its own.

    Args:
        num_in_ch (int): Input channels. Default: 3.
        dim (int): Token dimension (SemanticLens' ``sem_dim``). Default: 32.
    """

    #: SemanticLens passes the clip's masks to ``forward``.
    needs_masks = True

    def __init__(self, num_in_ch=3, dim=32):
        super().__init__()
        self.frame_encoder = FrameEncoder(num_in_ch, dim)
        self.global_proj = nn.Linear(dim, dim)
        self.instance_proj = nn.Linear(dim, dim)

    def forward(self, lqs, masks):
        """
        Args:
            lqs (Tensor): (b, t, c, h, w) LR clip.
            masks (Tensor): (b, t, n, h, w) instance distribution per pixel.

        Returns:
            dict: as :class:`SLSemanticExtractor`, with ``masks`` the given masks.
        """
        b, t, n = masks.shape[:3]
        features = self.frame_encoder(lqs.flatten(0, 1))  # (bt, dim, h4, w4)
        weights = F.adaptive_avg_pool2d(masks.flatten(0, 1), features.shape[-2:])  # (bt, n, h4, w4)
        sums = torch.einsum('bnhw,bdhw->bnd', weights, features).view(b, t, n, -1)
        mass = weights.sum((2, 3)).view(b, t, n, 1)
        frame_instance_tokens = self.instance_proj(sums / mass.clamp_min(1e-6))
        video_instance_tokens = self.instance_proj(sums.sum(1) / mass.sum(1).clamp_min(1e-6))
        global_tokens = self.global_proj(features.mean((2, 3)).view(b, t, -1))
        return {'global_tokens': global_tokens, 'frame_instance_tokens': frame_instance_tokens,
                'video_instance_tokens': video_instance_tokens, 'masks': masks}
