r"""Multi-head attention as a thin ``nn.Module`` around :func:`attnkit.attend`.

$\mathrm{MHA}(X_q, X_k, X_v) = [\mathrm{head}_1; \dots; \mathrm{head}_h] W_O$ with
$\mathrm{head}_i = \mathrm{attend}(X_q W_Q^i, X_k W_K^i, X_v W_V^i)$ (Vaswani et al., 2017).

Shapes: ``B`` batch, ``L``/``S`` query/key length, ``E`` embedding, ``H`` heads, ``Dh = E / H``.
"""

from __future__ import annotations

import torch
from torch import nn

from attnkit._checks import arg_name, argument_names, check_int, check_mask, check_positive, check_tensor
from attnkit.core import attend
from attnkit.masks import combine_masks, key_mask
from attnkit.normalize import NORMALIZERS
from attnkit.scores import SCORES


class MultiHeadAttention(nn.Module):
    """Multi-head attention, batch first: ``(B, L, E)`` in, ``(B, L, E)`` out.

    Args:
        embed_dim: ``E >= 1``. num_heads: ``H >= 1`` (must divide ``E``).
        bias: biases on the four projections.
        score, normalize: names or callables passed to :func:`attnkit.attend` for each head.
        dropout: probability in ``[0, 1)`` of dropping an attention weight during training
            (default 0.0, like ``torch.nn.MultiheadAttention``); the kept weights are scaled
            by ``1 / (1 - dropout)``. No effect in ``eval()`` mode.

    ``forward(query, key=None, value=None, mask=None, key_padding=None)`` returns
    ``(output (B, L, E), weights (B, H, L, S))``. ``mask`` is bool, broadcastable to
    ``(B, H, L, S)`` (e.g. a causal ``(L, S)``); ``key_padding`` is bool ``(B, S)``, ``True``
    for real tokens.

    Against ``torch.nn.MultiheadAttention(E, H, batch_first=True)``: the same projections
    (``in_proj_weight`` is ``cat([q_proj.weight, k_proj.weight, v_proj.weight])``) and the same
    output, but **both masks have the opposite polarity**: torch's bool ``attn_mask`` and
    ``key_padding_mask`` are ``True`` where a pair is *left out*, so ``attn_mask=~mask`` and
    ``key_padding_mask=~key_padding``. The weights returned are per head (torch's
    ``average_attn_weights=False``) and taken *before* dropout (they sum to 1; torch returns
    them after dropout).
    """

    def __init__(self, embed_dim: int, num_heads: int, *, bias: bool = True, score: str = "scaled_dot",
                 normalize: str = "softmax", dropout: float = 0.0) -> None:
        super().__init__()
        check_int("embed_dim", embed_dim, minimum=1)
        check_int("num_heads", num_heads, minimum=1)
        if embed_dim % num_heads:
            raise ValueError(f"num_heads={num_heads} must divide embed_dim={embed_dim}")
        for kind, value, table in (("score", score, SCORES), ("normalize", normalize, NORMALIZERS)):
            if not callable(value) and not (isinstance(value, str) and value in table):
                raise ValueError(f"{kind} must be one of {sorted(table)} or a callable; got {value!r}")
        check_positive("dropout", dropout, allow_zero=True)
        if dropout >= 1:
            raise ValueError(f"dropout must be a probability in [0, 1); got {dropout}")
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
        # names as the caller knows them (a block passes its own through _checks.argument_names)
        qn, kn, vn, mn, pn = (arg_name(n) for n in ("query", "key", "value", "mask", "key_padding"))
        for name, t in ((qn, query), (kn, key), (vn, value)):
            check_tensor(name, t, min_rank=3)
            if t.dim() != 3 or t.shape[-1] != self.embed_dim:
                raise ValueError(f"{name} must be (B, L, {self.embed_dim}); got shape {tuple(t.shape)}")
            weight = self.q_proj.weight
            if t.dtype != weight.dtype or t.device != weight.device:
                raise TypeError(f"{name} must have the module's dtype and device ({weight.dtype} on "
                                f"{weight.device}; use .to(...) on one or the other); got {t.dtype} on {t.device}")
        if key.shape[:2] != value.shape[:2] or key.shape[0] != query.shape[0]:
            raise ValueError(f"{qn}, {kn} and {vn} need one batch size B, and {kn} and {vn} one length S; got "
                             f"{qn}: {tuple(query.shape)}, {kn}: {tuple(key.shape)}, {vn}: {tuple(value.shape)}")
        B, L, S = query.shape[0], query.shape[1], key.shape[1]
        if mask is not None:
            check_mask(mask, (B, self.num_heads, L, S), name=mn, device=query.device,
                       source=f"(B, H, L, S) from {qn}: {tuple(query.shape)}, {kn}: {tuple(key.shape)}")
            if mask.dtype != torch.bool:
                raise TypeError(f"{mn} must be bool (True = attend); got dtype {mask.dtype}")
        if key_padding is not None:
            check_tensor(pn, key_padding, floating=False)
            if key_padding.dtype != torch.bool or key_padding.shape != (B, S) or key_padding.device != key.device:
                raise ValueError(f"{pn} must be bool (B, S) = ({B}, {S}) on {key.device} (B from {qn}: "
                                 f"{tuple(query.shape)}, S from {kn}: {tuple(key.shape)}), True for real tokens; got "
                                 f"shape {tuple(key_padding.shape)}, dtype {key_padding.dtype} on {key_padding.device}")
            key_padding = key_mask(key_padding, heads=True)  # (B, 1, 1, S)
        q = self._split(self.q_proj(query))  # (B, H, L, Dh)
        k = self._split(self.k_proj(key))  # (B, H, S, Dh)
        v = self._split(self.v_proj(value))  # (B, H, S, Dh)
        full = combine_masks(mask, key_padding)
        with argument_names(mask=f"{mn} (with {pn})"):
            out, w = attend(q, k, v, score=self.score, normalize=self.normalize, mask=full)
        if self.training and self.dropout.p > 0:
            # dropout on the attention weights (Vaswani et al., 2017), as nn.MultiheadAttention
            out = self.dropout(w) @ v  # (B, H, L, Dh)
        B, H, L, Dh = out.shape
        out = out.transpose(1, 2).reshape(B, L, H * Dh)  # (B, L, E)
        return self.out_proj(out), w
