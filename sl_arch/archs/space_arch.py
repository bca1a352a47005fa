"""SPACE block (Semantics-Powered Attention Cross-Embedding) and the multi-frame self-attention
block that follows it.

- GPS (Global Perspective Shifter): frame-wise global tokens -> spatial affine (gamma, beta).
- ISEE (Instance-Specific Semantic Embedding Encoder): pixel features attend to the video-wise
  instance tokens, biased towards the instance each pixel belongs to.
- MFSAB: window self-attention over the tokens of the current and the aligned frame together.
"""
import torch
from torch import nn

from basicsr.utils.registry import ARCH_REGISTRY

from sl_arch.archs.attention import (FeedForward, MultiHeadAttention, pad_to_multiple, padding_bias, shrink_init,
                                     window_partition, window_reverse)


class GlobalPerspectiveShifter(nn.Module):
    """GPS: F <- F * (1 + gamma) + beta, with (gamma, beta) predicted from the frame's global token
    projected to a spatial map and read together with the features (SFT / FiLM style).

    Args:
        num_feat (int): Feature channels.
        token_dim (int): Dimension of the global tokens.
    """

    def __init__(self, num_feat, token_dim):
        super().__init__()
        self.project = nn.Linear(token_dim, num_feat)
        self.condition = nn.Sequential(
            nn.Conv2d(2 * num_feat, num_feat, 1), nn.LeakyReLU(0.1, inplace=True),
            nn.Conv2d(num_feat, 2 * num_feat, 3, 1, 1))
        shrink_init(self.condition[-1])  # starts near gamma = beta = 0: the identity

    def forward(self, feat, global_token):
        """(b, c, h, w), (b, token_dim) -> (b, c, h, w)."""
        scene = self.project(global_token)[:, :, None, None].expand_as(feat)
        gamma, beta = self.condition(torch.cat([feat, scene], 1)).chunk(2, dim=1)
        return feat * (1 + gamma) + beta


class InstanceSemanticEmbedding(nn.Module):
    """ISEE: cross-attention from embedded pixel features (queries) to the video-wise instance
    tokens (keys/values). The pixel's own instance probabilities enter as a log bias, so each
    pixel reads mostly the semantics of its instance. Cost: pixels x instances (linear in area).

    Args:
        num_feat (int): Feature channels.
        token_dim (int): Dimension of the instance tokens.
        num_heads (int): Attention heads.
    """

    def __init__(self, num_feat, token_dim, num_heads):
        super().__init__()
        self.norm = nn.LayerNorm(num_feat)
        self.attention = MultiHeadAttention(num_feat, num_heads, kv_dim=token_dim)
        shrink_init(self.attention.proj)

    def forward(self, feat, video_instance_tokens, masks):
        """
        Args:
            feat (Tensor): (b, c, h, w).
            video_instance_tokens (Tensor): (b, n, token_dim).
            masks (Tensor): (b, n, h, w) instance distribution of this frame.

        Returns:
            Tensor: (b, c, h, w).
        """
        b, c, h, w = feat.shape
        pixels = self.norm(feat.flatten(2).transpose(1, 2))
        bias = masks.flatten(2).transpose(1, 2).clamp_min(1e-4).log().unsqueeze(1)  # (b, 1, hw, n)
        read = self.attention(pixels, video_instance_tokens, bias)
        return feat + read.transpose(1, 2).reshape(b, c, h, w)


@ARCH_REGISTRY.register()
class SLMultiFrameSelfAttention(nn.Module):
    """MFSAB: window self-attention over the tokens of several frames at once (PSRT-recurrent style).

    Args:
        num_feat (int): Feature channels.
        num_frames (int): Frames attended jointly. Default: 2 (current + aligned neighbour).
        num_heads (int): Attention heads.
        window_size (int): Window side.
        mlp_ratio (float): Feed-forward width.
    """

    def __init__(self, num_feat, num_frames=2, num_heads=2, window_size=8, mlp_ratio=2.0):
        super().__init__()
        self.window_size = window_size
        self.norm_attn = nn.LayerNorm(num_feat)
        self.attention = MultiHeadAttention(num_feat, num_heads)
        self.norm_ffn = nn.LayerNorm(num_feat)
        self.ffn = FeedForward(num_feat, mlp_ratio)
        self.fuse = nn.Conv2d(num_frames * num_feat, num_feat, 1)
        shrink_init(self.attention.proj, self.ffn[-1], self.fuse)

    def forward(self, feats):
        """
        Args:
            feats (list[Tensor]): frames' features, each (b, c, h, w).

        Returns:
            Tensor: (b, c, h, w) the last frame's features refined by all of them (residual).
        """
        b, c, h, w = feats[0].shape
        ws = self.window_size
        frames = len(feats)
        padded = [pad_to_multiple(feat, ws) for feat in feats]
        pad_h, pad_w = padded[0][1]
        tokens = torch.cat([window_partition(feat, ws) for feat, _ in padded], dim=1)  # (b*nw, frames*ws*ws, c)
        bias = padding_bias(h, w, ws, (pad_h, pad_w), feats[0].device, feats[0].dtype)
        if bias is not None:
            bias = bias.repeat(b, 1, 1, frames)
        normed = self.norm_attn(tokens)
        tokens = tokens + self.attention(normed, normed, bias)
        tokens = tokens + self.ffn(self.norm_ffn(tokens))
        outs = [window_reverse(part, ws, b, h + pad_h, w + pad_w)[:, :, :h, :w]
                for part in tokens.chunk(frames, dim=1)]
        return feats[-1] + self.fuse(torch.cat(outs, 1))


@ARCH_REGISTRY.register()
class SLSPACEBlock(nn.Module):
    """SPACE = GPS then ISEE, each optional, applied to the pre-aligned supporting features.

    Args:
        num_feat (int): Feature channels.
        token_dim (int): Semantic token dimension.
        num_heads (int): Attention heads.
        use_gps (bool): Use the Global Perspective Shifter.
        use_isee (bool): Use the Instance-Specific Semantic Embedding Encoder.
    """

    def __init__(self, num_feat, token_dim, num_heads=2, use_gps=True, use_isee=True):
        super().__init__()
        self.gps = GlobalPerspectiveShifter(num_feat, token_dim) if use_gps else None
        self.isee = InstanceSemanticEmbedding(num_feat, token_dim, num_heads) if use_isee else None

    def forward(self, feat, global_token, video_instance_tokens, masks):
        """
        Args:
            feat (Tensor): (b, c, h, w) aligned features.
            global_token (Tensor): (b, token_dim) global token of the reference frame.
            video_instance_tokens (Tensor): (b, n, token_dim).
            masks (Tensor): (b, n, h, w) instance masks of the reference frame.

        Returns:
            Tensor: (b, c, h, w).
        """
        if self.gps is not None:
            feat = self.gps(feat, global_token)
        if self.isee is not None:
            feat = self.isee(feat, video_instance_tokens, masks)
        return feat
