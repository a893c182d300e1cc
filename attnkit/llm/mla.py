r"""Multi-head latent attention (MLA, DeepSeek-AI, 2024), naive and absorbed.

Keys and values are generated from one small latent per token, ``c = x W_dkv`` of width
``d_c``, and only ``c`` is cached::

    c = x W_dkv                          # (B, S, dc): the cache, dc numbers per token
    k_h = c W_uk[h],  v_h = c W_uv[h]    # (B, H, S, Dh): up-projected, not stored
    q_h = x W_q[h]                       # (B, H, T, Dh)
    o_h = attend(q_h, k_h, v_h)

Because ``q_h . k_h = (q_h W_uk[h]^T) . c``, the up-projection of the keys can be folded
into the query ("absorbed"), and ``W_uv`` applied after the weighted sum, so attention runs
directly on the cached latents::

    q~_h = q_h W_uk[h]^T / sqrt(Dh)          # (B, H, T, dc)
    o~_h = attend(q~_h, c, c, score="dot")   # (B, H, T, dc)
    o_h  = o~_h W_uv[h]                      # (B, H, T, Dh)

Differences from the paper: no decoupled rotary key (DeepSeek-V2 adds a shared
``d_h^R``-wide rotated key per token to the cache, because a rotation between ``q`` and
``W_uk`` would block the absorption) and no low-rank query compression.

Shapes: ``B`` batch, ``T`` queries, ``S`` keys, ``E`` width, ``H`` heads, ``Dh`` head width,
``dc`` latent width.
"""

from __future__ import annotations

import math

import torch

from attnkit._checks import check_int, check_tensor, shape_str
from attnkit.core import attend


def mla_weights(d_model: int, n_head: int, d_head: int, d_latent: int, *, seed: int = 0,
                dtype: torch.dtype = torch.float64) -> dict[str, torch.Tensor]:
    """Random MLA projections: ``W_q: (H, E, Dh)``, ``W_dkv: (E, dc)``, ``W_uk, W_uv: (H, dc, Dh)``."""
    for name, val in (("d_model", d_model), ("n_head", n_head), ("d_head", d_head), ("d_latent", d_latent)):
        check_int(name, val, minimum=1)
    g = torch.Generator().manual_seed(seed)

    def r(*shape: int, fan_in: int) -> torch.Tensor:
        return torch.randn(*shape, generator=g, dtype=dtype) / math.sqrt(fan_in)

    return {"W_q": r(n_head, d_model, d_head, fan_in=d_model), "W_dkv": r(d_model, d_latent, fan_in=d_model),
            "W_uk": r(n_head, d_latent, d_head, fan_in=d_latent), "W_uv": r(n_head, d_latent, d_head, fan_in=d_latent)}


def mla_latents(x: torch.Tensor, w: dict[str, torch.Tensor]) -> torch.Tensor:
    """The cached latents ``c = x W_dkv``: ``x: (B, S, E)`` -> ``(B, S, dc)``."""
    _check_x(x, w)
    return x @ w["W_dkv"]


def _check_x(x: torch.Tensor, w: dict[str, torch.Tensor]) -> None:
    """``x: (B, T, E)`` with ``E`` and the dtype/device of the weights."""
    W = w["W_dkv"]  # (E, dc)
    check_tensor("x", x, min_rank=3, shape="(B, T, E)")
    if x.ndim != 3 or x.shape[-1] != W.shape[0]:
        raise ValueError(f"x must be (B, T, E={W.shape[0]}); got {shape_str(x)}")
    if x.dtype != W.dtype or x.device != W.device:
        raise TypeError(f"x must have the weights' dtype and device ({W.dtype} on {W.device}); "
                        f"got {x.dtype} on {x.device}")


def mla_attention(x: torch.Tensor, w: dict[str, torch.Tensor], *, latents: torch.Tensor | None = None,
                  absorbed: bool = False, causal: bool = True) -> torch.Tensor:
    """MLA of the new tokens ``x: (B, T, E)`` over ``latents: (B, S, dc)`` -> ``(B, H, T, Dh)``.

    ``latents`` defaults to ``mla_latents(x, w)`` (self-attention, ``S = T``); with a cache, pass
    the cached latents (the new tokens are the last ``T``). ``absorbed`` folds ``W_uk`` into the
    queries and ``W_uv`` after the sum (see the module docstring); the result is the same.
    """
    if not isinstance(x, torch.Tensor) or x.ndim != 3:
        raise ValueError(f"x must be (B, T, E); got {getattr(x, 'shape', type(x).__name__)}")
    _check_x(x, w)
    if latents is not None:
        dc = w["W_dkv"].shape[1]
        check_tensor("latents", latents, min_rank=3, shape="(B, S, dc)")
        if latents.ndim != 3 or latents.shape[0] != x.shape[0] or latents.shape[-1] != dc \
                or latents.shape[1] < x.shape[1]:
            raise ValueError(f"latents must be (B, S, dc={dc}) with B and S >= T those of x: {shape_str(x)} "
                             f"(the new tokens are the last T); got {shape_str(latents)}")
        if latents.dtype != x.dtype or latents.device != x.device:
            raise TypeError(f"latents must have the dtype and device of x ({x.dtype} on {x.device}); "
                            f"got {latents.dtype} on {latents.device}")
    c = mla_latents(x, w) if latents is None else latents  # (B, S, dc)
    T, S = x.shape[1], c.shape[1]
    q = torch.einsum("bte,hed->bhtd", x, w["W_q"])  # (B, H, T, Dh)
    # bottom-right causal: the new tokens are the last T of the S
    mask = torch.ones(T, S, dtype=torch.bool, device=x.device).tril(S - T) if causal else None  # (T, S)
    if not absorbed:
        k = torch.einsum("bsc,hcd->bhsd", c, w["W_uk"])  # (B, H, S, Dh)
        v = torch.einsum("bsc,hcd->bhsd", c, w["W_uv"])  # (B, H, S, Dh)
        return attend(q, k, v, mask=mask)[0]
    Dh = q.shape[-1]
    # q~ = q W_uk^T / sqrt(Dh): scores q~ . c equal q . k / sqrt(Dh)
    q_lat = torch.einsum("bhtd,hcd->bhtc", q, w["W_uk"]) / math.sqrt(Dh)  # (B, H, T, dc)
    c_h = c[:, None]  # (B, 1, S, dc): one latent shared by every head
    o_lat = attend(q_lat, c_h, c_h, score="dot", mask=mask)[0]  # (B, H, T, dc)
    return torch.einsum("bhtc,hcd->bhtd", o_lat, w["W_uv"])  # (B, H, T, Dh)


def kv_cache_elements(kind: str, *, n_head: int, d_head: int, n_kv_head: int | None = None,
                      d_latent: int | None = None, d_rope: int = 0) -> int:
    """Numbers cached per token and layer: MHA ``2 H Dh``, GQA ``2 Hkv Dh``, MQA ``2 Dh``, MLA ``dc + d_rope``."""
    check_int("n_head", n_head, minimum=1)
    check_int("d_head", d_head, minimum=1)
    check_int("d_rope", d_rope, minimum=0)
    for name, val in (("n_kv_head", n_kv_head), ("d_latent", d_latent)):
        if val is not None:
            check_int(name, val, minimum=1)
    if kind == "mha":
        return 2 * n_head * d_head
    if kind == "gqa":
        if n_kv_head is None:
            raise ValueError("kind='gqa' needs n_kv_head")
        return 2 * n_kv_head * d_head
    if kind == "mqa":
        return 2 * d_head
    if kind == "mla":
        if d_latent is None:
            raise ValueError("kind='mla' needs d_latent")
        return d_latent + d_rope
    raise ValueError(f"kind must be 'mha', 'gqa', 'mqa' or 'mla'; got {kind!r}")


__all__ = ["kv_cache_elements", "mla_attention", "mla_latents", "mla_weights"]
