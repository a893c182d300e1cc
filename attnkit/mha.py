r"""Multi-head attention as a thin ``nn.Module`` around :func:`attnkit.attend`.

$\mathrm{MHA}(X_q, X_k, X_v) = [\mathrm{head}_1; \dots; \mathrm{head}_h] W_O$ with
$\mathrm{head}_i = \mathrm{attend}(X_q W_Q^i, X_k W_K^i, X_v W_V^i)$ (Vaswani et al., 2017).

Shapes: ``B`` batch, ``L``/``S`` query/key length, ``E`` embedding, ``H`` heads, ``Dh = E / H``.
"""

from __future__ import annotations

import torch
from torch import nn

from attnkit._checks import check_tensor
from attnkit.core import attend
from attnkit.masks import combine_masks, key_mask


class MultiHeadAttention(nn.Module):
    """Multi-head attention, batch first: ``(B, L, E)`` in, ``(B, L, E)`` out.

    Args:
        embed_dim: ``E``. num_heads: ``H`` (must divide ``E``).
        bias: biases on the four projections.
        score, normalize: passed to :func:`attnkit.attend` for each head.
        dropout: dropout on the attention weights during training.

    ``forward(query, key=None, value=None, mask=None, key_padding=None)`` returns
    ``(output (B, L, E), weights (B, H, L, S))``. ``mask`` is bool, broadcastable to
    ``(B, H, L, S)`` (e.g. a causal ``(L, S)``); ``key_padding`` is bool ``(B, S)``, ``True``
    for real tokens. Its projections have the layout of ``torch.nn.MultiheadAttention``.
    """

    def __init__(self, embed_dim: int, num_heads: int, *, bias: bool = True, score: str = "scaled_dot",
                 normalize: str = "softmax", dropout: float = 0.0) -> None:
        super().__init__()
        if embed_dim % num_heads:
            raise ValueError(f"num_heads={num_heads} must divide embed_dim={embed_dim}")
        self.embed_dim, self.num_heads = embed_dim, num_heads
        self.head_dim = embed_dim // num_heads
        self.q_proj = nn.Linear(embed_dim, embed_dim, bias=bias)
        self.k_proj = nn.Linear(embed_dim, embed_dim, bias=bias)
        self.v_proj = nn.Linear(embed_dim, embed_dim, bias=bias)
        self.out_proj = nn.Linear(embed_dim, embed_dim, bias=bias)
        self.score, self.normalize = score, normalize
        self.dropout = nn.Dropout(dropout)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        B, L, _ = x.shape
        return x.view(B, L, self.num_heads, self.head_dim).transpose(1, 2)  # (B, H, L, Dh)

    def forward(self, query: torch.Tensor, key: torch.Tensor | None = None, value: torch.Tensor | None = None,
                mask: torch.Tensor | None = None,
                key_padding: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        key = query if key is None else key
        value = key if value is None else value
        for name, t in (("query", query), ("key", key), ("value", value)):
            check_tensor(name, t, min_rank=3)
            if t.dim() != 3 or t.shape[-1] != self.embed_dim:
                raise ValueError(f"{name} must be (B, L, {self.embed_dim}); got shape {tuple(t.shape)}")
        q = self._split(self.q_proj(query))  # (B, H, L, Dh)
        k = self._split(self.k_proj(key))  # (B, H, S, Dh)
        v = self._split(self.v_proj(value))  # (B, H, S, Dh)
        if key_padding is not None:
            key_padding = key_mask(key_padding, heads=True)  # (B, 1, 1, S)
        if mask is not None and mask.dtype != torch.bool:
            raise TypeError(f"mask must be bool (True = attend); got dtype {mask.dtype}")
        full = combine_masks(mask, key_padding)
        out, w = attend(q, k, v, score=self.score, normalize=self.normalize, mask=full)
        if self.training and self.dropout.p > 0:
            out = self.dropout(w) @ v  # dropout on the weights, as in the Transformer
        B, H, L, Dh = out.shape
        out = out.transpose(1, 2).reshape(B, L, H * Dh)  # (B, L, E)
        return self.out_proj(out), w
