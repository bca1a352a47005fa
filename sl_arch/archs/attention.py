"""Attention building blocks shared by the Semantic Lens modules.

Everything here is bounded in memory: token-to-token attention is only ever computed inside
windows of ``window_size x window_size`` pixels (cost linear in frame area), and pixel-to-token
attention is against a handful of semantic tokens.
"""
import math

import torch
from torch import nn
from torch.nn import functional as F

# Additive bias for keys that are padding; large enough to vanish after softmax, finite so that
# a window made only of padding cannot produce NaNs.
PAD_BIAS = -1e4


def shrink_init(*layers, scale=0.1):
    """Scale the initial weights of output layers and zero their biases, so that a residual
    branch starts close to the identity (it still passes gradients: nothing is exactly zero)."""
    with torch.no_grad():
        for layer in layers:
            layer.weight.mul_(scale)
            if layer.bias is not None:
                layer.bias.zero_()


def pad_to_multiple(x, multiple):
    """Pad the last two dims of ``x`` (..., h, w) with zeros up to a multiple of ``multiple``.

    Returns:
        tuple: padded tensor, (pad_h, pad_w).
    """
    h, w = x.shape[-2:]
    pad_h = (multiple - h % multiple) % multiple
    pad_w = (multiple - w % multiple) % multiple
    if pad_h or pad_w:
        x = F.pad(x, (0, pad_w, 0, pad_h))
    return x, (pad_h, pad_w)


def window_partition(x, window_size):
    """Split feature maps into non-overlapping windows.

    Args:
        x (Tensor): (b, c, h, w) with h, w multiples of ``window_size``.
        window_size (int): Window side.

    Returns:
        Tensor: (b * num_windows, window_size * window_size, c).
    """
    b, c, h, w = x.shape
    x = x.view(b, c, h // window_size, window_size, w // window_size, window_size)
    return x.permute(0, 2, 4, 3, 5, 1).reshape(-1, window_size * window_size, c)


def window_reverse(windows, window_size, b, h, w):
    """Inverse of :func:`window_partition`: (b * num_windows, ws * ws, c) -> (b, c, h, w)."""
    c = windows.shape[-1]
    x = windows.view(b, h // window_size, w // window_size, window_size, window_size, c)
    return x.permute(0, 5, 1, 3, 2, 4).reshape(b, c, h, w)


def padding_bias(h, w, window_size, pad_hw, device, dtype):
    """Additive key bias that removes padded pixels from window attention.

    Returns:
        Tensor | None: (num_windows, 1, 1, ws * ws) bias, or None when nothing is padded.
    """
    if not any(pad_hw):
        return None
    valid = torch.ones(1, 1, h, w, device=device, dtype=dtype)
    valid, _ = pad_to_multiple(valid, window_size)
    valid = window_partition(valid, window_size)[..., 0]  # (num_windows, ws*ws)
    return ((1 - valid) * PAD_BIAS)[:, None, None, :]


class MultiHeadAttention(nn.Module):
    """Multi-head attention on token sequences with an optional additive bias.

    Args:
        dim (int): Token dimension (queries).
        num_heads (int): Number of heads; ``dim`` must be divisible by it.
        kv_dim (int | None): Dimension of key/value tokens. Default: ``dim``.
    """

    def __init__(self, dim, num_heads, kv_dim=None):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f'attention dim {dim} is not divisible by num_heads {num_heads}')
        self.num_heads = num_heads
        self.to_q = nn.Linear(dim, dim)
        self.to_kv = nn.Linear(kv_dim or dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, queries, keys, bias=None):
        """
        Args:
            queries (Tensor): (n, lq, dim).
            keys (Tensor): (n, lk, kv_dim); values are projected from the same tokens.
            bias (Tensor | None): additive attention bias broadcastable to (n, heads, lq, lk).

        Returns:
            Tensor: (n, lq, dim).
        """
        n, lq, dim = queries.shape
        head_dim = dim // self.num_heads
        q = self.to_q(queries).view(n, lq, self.num_heads, head_dim).transpose(1, 2)
        k, v = self.to_kv(keys).view(n, keys.shape[1], 2, self.num_heads, head_dim).permute(2, 0, 3, 1, 4)
        if bias is not None:
            bias = bias.to(q.dtype)
        if q.device.type == 'cpu' and torch.is_autocast_enabled('cpu'):
            # under autocast on a CPU, float32 attention is the faster one: PyTorch's CPU flash attention
            # in bfloat16 took 5.6x float32's time backward, 1.3x forward (SemanticLens tiny, 8x8
            # windows, AVX-512 BF16 AMD EPYC), more than the whole gain of autocast elsewhere
            with torch.autocast('cpu', enabled=False):
                out = F.scaled_dot_product_attention(q.float(), k.float(), v.float(),
                                                     attn_mask=None if bias is None else bias.float()).to(q.dtype)
        else:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        return self.proj(out.transpose(1, 2).reshape(n, lq, dim))


class FeedForward(nn.Sequential):
    """Two-layer MLP used after attention: (..., dim) -> (..., dim)."""

    def __init__(self, dim, mlp_ratio=2.0):
        hidden = max(1, int(dim * mlp_ratio))
        super().__init__(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))


class TransformerLayer(nn.Module):
    """Pre-norm transformer layer: optional cross-attention, self-attention, feed-forward.

    Args:
        dim (int): Token dimension.
        num_heads (int): Attention heads.
        cross (bool): Whether the layer first attends to a memory sequence.
        mlp_ratio (float): Hidden size of the feed-forward, relative to ``dim``.
    """

    def __init__(self, dim, num_heads, cross=False, mlp_ratio=2.0):
        super().__init__()
        self.cross = cross
        if cross:
            self.norm_cross = nn.LayerNorm(dim)
            self.norm_memory = nn.LayerNorm(dim)
            self.cross_attn = MultiHeadAttention(dim, num_heads)
        self.norm_self = nn.LayerNorm(dim)
        self.self_attn = MultiHeadAttention(dim, num_heads)
        self.norm_ffn = nn.LayerNorm(dim)
        self.ffn = FeedForward(dim, mlp_ratio)

    def forward(self, tokens, memory=None, context=None):
        """
        Args:
            tokens (Tensor): (n, l, dim) tokens being refined.
            memory (Tensor | None): (n, m, dim) sequence attended to by cross-attention.
            context (Tensor | None): (n, k, dim) extra keys for self-attention (e.g. class tokens);
                they are read, not refined.

        Returns:
            Tensor: (n, l, dim).
        """
        if self.cross:
            tokens = tokens + self.cross_attn(self.norm_cross(tokens), self.norm_memory(memory))
        normed = self.norm_self(tokens)
        keys = normed if context is None else torch.cat([normed, self.norm_self(context)], dim=1)
        tokens = tokens + self.self_attn(normed, keys)
        return tokens + self.ffn(self.norm_ffn(tokens))


def sinusoidal_embedding(positions, dim):
    """Fixed sinusoidal embedding of integer positions: (l,) -> (l, dim). Has no parameters, so
    clips of any length are handled the same way."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=positions.device, dtype=torch.float32) / max(half, 1))
    angles = positions.float()[:, None] * freqs[None]
    emb = torch.cat([angles.sin(), angles.cos()], dim=1)
    if dim % 2:
        emb = F.pad(emb, (0, 1))
    return emb
