r"""A GPT-style decoder (Radford et al., 2018, 2019) whose attention is one ``attend`` call.

Pre-norm blocks ``x = x + attn(ln(x)); x = x + mlp(ln(x))``, causal self-attention, a final
layer norm and an unembedding tied to the token embedding, as in GPT-2 and nanoGPT. The
options this Part measures:

- ``positions``: ``"learned"`` (GPT-2's table), ``"sinusoidal"`` (Vaswani et al.; the token
  embeddings are multiplied by ``sqrt(E)`` before the sinusoids are added, their section 3.4),
  ``"rotary"`` (Su et al.), ``"alibi"`` (Press et al.: a per-head linear bias
  $-m_h (i - j)$ added to the scores) or ``"none"`` (the causal mask alone);
- ``n_kv_head``: grouped-query attention (Ainslie et al., 2023): ``H`` query heads share
  ``Hkv`` key/value heads in groups of ``G = H / Hkv``; ``Hkv = 1`` is multi-query attention
  (Shazeer, 2019), ``Hkv = H`` ordinary multi-head attention;
- ``window``: sliding-window attention (Longformer; Mistral 7B), each query sees the last
  ``window`` positions.

The attention of one layer, for ``x: (B, T, E)``, is::

    q = x W_q -> (B, Hkv, G, T, Dh);  k, v = x W_k, x W_v -> (B, Hkv, 1, S, Dh)
    out, a = attend(rope(q), rope(k), v, mask=causal [& window] [+ alibi])

with the group axis broadcast, so each key/value head serves ``G`` query heads without
being copied. A cache (``attnkit.llm.cache``) supplies the earlier keys and values.

Shapes: ``B`` batch, ``T`` new tokens, ``S`` keys (cached + new), ``E`` model width,
``H`` query heads, ``Hkv`` key/value heads, ``G = H / Hkv``, ``Dh = E / H``, ``V`` vocabulary.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from attnkit._checks import (
    check_ids,
    check_int,
    check_positive,
    check_same_device,
    check_size_fits,
    check_tensor,
    check_values,
)
from attnkit.core import attend
from attnkit.llm.cache import KVCache, StreamingCache, _PagedView
from attnkit.transformers.positions import apply_rotary, sinusoidal_positions

POSITIONS = ("learned", "sinusoidal", "rotary", "alibi", "none")
"""The kinds of position information ``GPT`` accepts."""


@dataclass(frozen=True)
class GPTConfig:
    """The size and options of a ``GPT`` (defaults: the Part V tiny model, 0.1M parameters)."""

    vocab_size: int = 65
    block_size: int = 64
    n_layer: int = 2
    n_head: int = 8
    n_kv_head: int | None = None
    d_model: int = 64
    positions: str = "learned"
    window: int | None = None
    rope_base: float = 10000.0

    def __post_init__(self) -> None:
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "d_model"):
            check_int(name, getattr(self, name), minimum=1)
        if self.positions not in POSITIONS:
            raise ValueError(f"positions must be one of {POSITIONS}; got {self.positions!r}")
        if self.d_model % self.n_head:
            raise ValueError(f"d_model={self.d_model} must be a multiple of n_head={self.n_head}")
        if self.n_kv_head is not None:
            check_int("n_kv_head", self.n_kv_head, minimum=1)
        check_positive("rope_base", self.rope_base)
        if self.kv_heads < 1 or self.n_head % self.kv_heads:
            raise ValueError(f"n_kv_head must divide n_head={self.n_head}; got {self.n_kv_head}")
        if self.window is not None:
            check_int("window", self.window, minimum=1)

    @property
    def kv_heads(self) -> int:
        return self.n_head if self.n_kv_head is None else self.n_kv_head

    @property
    def d_head(self) -> int:
        return self.d_model // self.n_head


def alibi_slopes(n_head: int) -> torch.Tensor:
    """ALiBi's head slopes ``m_h = 2^(-8 (h + 1) / H)``, ``h = 0 .. H-1`` (Press et al., 2022): ``(H,)``."""
    check_int("n_head", n_head, minimum=1)
    return 2.0 ** (-8.0 * torch.arange(1, n_head + 1, dtype=torch.float64) / n_head)


def decoder_mask(q_pos: torch.Tensor, k_pos: torch.Tensor, *, window: int | None = None) -> torch.Tensor:
    """Bool ``(T, S)``: query at ``q_pos[i]`` sees key at ``k_pos[j]`` iff ``0 <= q - k (< window)``."""
    for name, pos in (("q_pos", q_pos), ("k_pos", k_pos)):
        check_tensor(name, pos, min_rank=1, floating=False, shape="(T,)")
        if pos.ndim != 1 or pos.dtype == torch.bool or pos.is_floating_point() or pos.is_complex():
            raise TypeError(f"{name} must be a 1-d integer tensor of positions; got {pos.dtype} of shape "
                            f"{tuple(pos.shape)}")
    check_same_device(q_pos=q_pos, k_pos=k_pos)
    if window is not None:
        check_int("window", window, minimum=1)
    gap = q_pos[:, None] - k_pos[None, :]  # (T, S): i - j
    keep = gap >= 0
    if window is not None:
        keep = keep & (gap < window)
    return keep


class CausalSelfAttention(nn.Module):
    """Causal (grouped-query) self-attention through ``attend``; see the module docstring."""

    def __init__(self, cfg: GPTConfig, layer: int) -> None:
        super().__init__()
        self.cfg, self.layer = cfg, layer
        E, Dh = cfg.d_model, cfg.d_head
        self.wq = nn.Linear(E, cfg.n_head * Dh, bias=False)
        self.wk = nn.Linear(E, cfg.kv_heads * Dh, bias=False)
        self.wv = nn.Linear(E, cfg.kv_heads * Dh, bias=False)
        self.wo = nn.Linear(cfg.n_head * Dh, E, bias=False)
        if cfg.positions == "alibi":
            self.register_buffer("slopes", alibi_slopes(cfg.n_head), persistent=False)
        self.rope_scale = 1.0  # position interpolation (Chen et al., 2023): rotate by scale * position
        self.last_weights: torch.Tensor | None = None

    def forward(self, x: torch.Tensor, cache: object | None = None, *, keep_weights: bool = False) -> torch.Tensor:
        cfg = self.cfg
        B, T, _ = x.shape
        H, Hkv, Dh = cfg.n_head, cfg.kv_heads, cfg.d_head
        G = H // Hkv
        q = self.wq(x).view(B, T, Hkv, G, Dh).permute(0, 2, 3, 1, 4)  # (B, Hkv, G, T, Dh)
        k = self.wk(x).view(B, T, Hkv, Dh).transpose(1, 2)  # (B, Hkv, T, Dh)
        v = self.wv(x).view(B, T, Hkv, Dh).transpose(1, 2)  # (B, Hkv, T, Dh)
        if cache is not None:
            k, v = cache.update(self.layer, k, v)  # (B, Hkv, S, Dh), keys before rotation
        S = k.shape[-2]
        k_pos = torch.arange(S, device=x.device)  # slot in the cache = position
        q_pos = k_pos[S - T:]  # the new tokens are the last T slots
        if cfg.positions == "rotary":
            q = apply_rotary(q, q_pos * self.rope_scale, base=cfg.rope_base)
            k = apply_rotary(k, k_pos * self.rope_scale, base=cfg.rope_base)
        window = None if isinstance(cache, StreamingCache) else cfg.window
        mask: torch.Tensor = decoder_mask(q_pos, k_pos, window=window)  # (T, S)
        if cfg.positions == "alibi":
            # s_ij - m_h (i - j)
            bias = -(q_pos[:, None] - k_pos[None, :]).to(x.dtype) * self.slopes.to(x.dtype).view(Hkv, G, 1, 1)
            mask = bias.masked_fill(~mask, float("-inf"))  # (Hkv, G, T, S)
        out, w = attend(q, k[:, :, None], v[:, :, None], mask=mask)  # (B, Hkv, G, T, Dh)
        self.last_weights = w.view(B, H, T, S) if keep_weights else None  # (B, H, T, S)
        out = out.permute(0, 3, 1, 2, 4).reshape(B, T, H * Dh)  # (B, T, H Dh)
        return self.wo(out)


class Block(nn.Module):
    """Pre-norm block: ``x + attn(ln1(x))``, then ``x + mlp(ln2(x))`` (MLP width ``4 E``, GELU)."""

    def __init__(self, cfg: GPTConfig, layer: int) -> None:
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(cfg.d_model), nn.LayerNorm(cfg.d_model)
        self.attn = CausalSelfAttention(cfg, layer)
        self.mlp = nn.Sequential(nn.Linear(cfg.d_model, 4 * cfg.d_model), nn.GELU(),
                                 nn.Linear(4 * cfg.d_model, cfg.d_model))

    def forward(self, x: torch.Tensor, cache: object | None = None, *, keep_weights: bool = False) -> torch.Tensor:
        x = x + self.attn(self.ln1(x), cache, keep_weights=keep_weights)
        return x + self.mlp(self.ln2(x))


class GPT(nn.Module):
    """A decoder-only language model: ``forward(idx: (B, T), cache=None) -> logits (B, T, V)``.

    With a cache, ``idx`` holds only the new tokens; the cache supplies the earlier keys and
    values and counts the tokens seen (``cache.seen``), which places learned and sinusoidal
    positions. A learned table has ``block_size`` rows: it cannot place a token beyond them.
    """

    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.tok = nn.Embedding(cfg.vocab_size, cfg.d_model)
        if cfg.positions == "learned":
            self.pos = nn.Embedding(cfg.block_size, cfg.d_model)
        self.blocks = nn.ModuleList(Block(cfg, i) for i in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(cfg.d_model)
        self.apply(self._init)

    @staticmethod
    def _init(m: nn.Module) -> None:
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=0.02)
            if getattr(m, "bias", None) is not None:
                nn.init.zeros_(m.bias)

    def set_rope_scale(self, scale: float) -> None:
        """Position interpolation: rotary angles use ``scale * position`` (1 = off)."""
        for b in self.blocks:
            b.attn.rope_scale = float(scale)

    def forward(self, idx: torch.Tensor, cache: object | None = None, *, keep_weights: bool = False) -> torch.Tensor:
        if not isinstance(idx, torch.Tensor) or idx.dtype != torch.long or idx.ndim != 2:
            raise TypeError(f"idx must be a long tensor (B, T); got {getattr(idx, 'dtype', type(idx).__name__)} "
                            f"of shape {tuple(getattr(idx, 'shape', ()))}")
        check_ids("idx", idx, self.cfg.vocab_size, rank=2, device=self.tok.weight.device)
        cached = next(iter(cache.k.values()), None) if isinstance(cache, KVCache) else None  # (B, Hkv, S, Dh)
        if isinstance(cache, _PagedView) and idx.shape[0] != 1:
            raise ValueError(f"idx must be one sequence (1, T) for a paged sequence; got shape {tuple(idx.shape)}")
        if cached is not None and cached.shape[0] != idx.shape[0]:
            raise ValueError(f"idx must continue the cache's batch of {cached.shape[0]} sequences; "
                             f"got shape {tuple(idx.shape)}")
        T = idx.shape[1]
        start = cache.seen if cache is not None else 0
        x = self.tok(idx)  # (B, T, E)
        kind = self.cfg.positions
        if kind == "learned":
            if start + T > self.cfg.block_size:
                raise ValueError(f"learned positions stop at block_size={self.cfg.block_size}; "
                                 f"got positions up to {start + T - 1}")
            x = x + self.pos(torch.arange(start, start + T, device=idx.device))
        elif kind == "sinusoidal":  # Vaswani et al. (2017, sec. 3.4): embeddings times sqrt(E)
            pe = sinusoidal_positions(start + T, self.cfg.d_model, dtype=x.dtype)[start:]  # (T, E)
            x = x * math.sqrt(self.cfg.d_model) + pe.to(x.device)
        for block in self.blocks:
            x = block(x, cache, keep_weights=keep_weights)
        if cache is not None:
            cache.seen = start + T
        return self.ln_f(x) @ self.tok.weight.T  # (B, T, V), unembedding tied to the embedding

    def attention_weights(self) -> list[torch.Tensor]:
        """The weights of the last ``forward(..., keep_weights=True)``, one ``(B, H, T, S)`` per layer."""
        return [b.attn.last_weights for b in self.blocks]

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())


def sample_next(logits: torch.Tensor, *, temperature: float = 1.0, top_k: int | None = None,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """Draw the next token from ``logits: (B, V)`` -> ``(B,)``.

    Equivalent to ``torch.multinomial(softmax(logits / temperature), 1)`` after keeping only
    the ``top_k`` largest logits (``1 <= top_k <= V``); ``temperature = 0`` is greedy (argmax).
    A row of ``logits`` must be a distribution: no NaN or ``+inf``, at least one finite entry.
    """
    check_tensor("logits", logits, min_rank=2, shape="(B, V)")
    if logits.ndim != 2 or logits.shape[-1] == 0:
        raise ValueError(f"logits must be (B, V) with V >= 1; got shape {tuple(logits.shape)}")
    check_values("logits", logits)
    if torch.isnan(logits).any() or (logits == float("inf")).any() or not (logits > float("-inf")).any(-1).all():
        raise ValueError("logits must hold no NaN or +inf and at least one finite entry per row (a distribution)")
    check_positive("temperature", temperature, allow_zero=True)
    if top_k is not None:
        check_int("top_k", top_k, minimum=1)
        check_size_fits("top_k", top_k, logits.shape[-1], "the vocabulary size V of logits")
    if temperature == 0:
        return logits.argmax(-1)
    z = logits / temperature
    if top_k is not None:
        kth = z.topk(top_k, dim=-1).values[..., -1:]  # (B, 1)
        z = z.masked_fill(z < kth, float("-inf"))
    return torch.multinomial(F.softmax(z, dim=-1), 1, generator=generator)[:, 0]


@torch.no_grad()
def generate(model: GPT, prompt: torch.Tensor, n_new: int, *, temperature: float = 1.0,
             top_k: int | None = None, seed: int = 0, use_cache: bool = True) -> torch.Tensor:
    """Continue ``prompt: (B, T0)`` by ``n_new`` sampled tokens -> ``(B, T0 + n_new)``.

    With ``use_cache`` the prompt is run once (prefill), then one token per step through a
    ``attnkit.llm.cache.KVCache``; without, every step reruns the whole sequence (the last
    ``block_size`` tokens for learned positions). A learned table has no row past
    ``block_size``: once the context fills it, decoding switches to recomputing the last
    ``block_size`` tokens (a sliding context), with or without ``use_cache``.
    """
    check_int("n_new", n_new, minimum=0)
    check_ids("prompt", prompt, model.cfg.vocab_size, rank=2, shape="(B, T0)")
    if prompt.shape[1] == 0:
        raise ValueError(f"prompt must hold at least one token per sequence; got shape {tuple(prompt.shape)}")
    check_positive("temperature", temperature, allow_zero=True)
    if top_k is not None:
        check_int("top_k", top_k, minimum=1)
        check_size_fits("top_k", top_k, model.cfg.vocab_size, "the vocabulary size")
    g = torch.Generator().manual_seed(seed)
    model.eval()
    out = prompt
    cache = KVCache() if use_cache else None
    nxt = prompt
    learned = model.cfg.positions == "learned"
    for _ in range(n_new):
        if cache is not None and learned and cache.seen + nxt.shape[1] > model.cfg.block_size:
            cache = None  # the table is full: slide the context from now on
        if cache is not None:
            logits = model(nxt, cache)[:, -1]  # (B, V)
        else:
            ctx = out[:, -model.cfg.block_size:] if learned else out
            logits = model(ctx)[:, -1]
        nxt = sample_next(logits, temperature=temperature, top_k=top_k, generator=g)[:, None]  # (B, 1)
        out = torch.cat([out, nxt], dim=1)
    return out


def _check_targets(model: GPT, x: torch.Tensor, y: torch.Tensor) -> None:
    """Targets ``y``: ids of the model's vocabulary, the shape of the inputs ``x: (B, T)``."""
    check_ids("x", x, model.cfg.vocab_size, rank=2, shape="(B, T)")
    check_ids("y", y, model.cfg.vocab_size, rank=2, shape="(B, T)")
    if x.shape != y.shape:
        raise ValueError(f"y must have the shape of x; got x: {tuple(x.shape)}, y: {tuple(y.shape)}")
    if x.numel() == 0:  # a mean over no token would be NaN
        raise ValueError(f"x must hold at least one token; got shape {tuple(x.shape)}")


def nll_per_position(model: GPT, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Cross-entropy (nats) of each position, averaged over the batch: ``x, y: (B, T)`` -> ``(T,)``."""
    _check_targets(model, x, y)
    with torch.no_grad():
        logits = model(x)  # (B, T, V)
        nll = F.cross_entropy(logits.transpose(1, 2), y, reduction="none")  # (B, T)
    return nll.mean(0)


def loss_fn(model: GPT, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy of ``x, y: (B, T)``."""
    _check_targets(model, x, y)
    logits = model(x)  # (B, T, V)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))  # (B T, V) -> mean


__all__ = ["GPT", "POSITIONS", "GPTConfig", "alibi_slopes", "decoder_mask", "generate", "loss_fn",
           "nll_per_position", "sample_next"]
