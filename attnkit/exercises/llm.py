"""Checkers for the exercises of Part V (decoder-only models, KV caches, long context)."""

from __future__ import annotations

from collections.abc import Callable

import torch

from attnkit.exercises._harness import Case, CheckResult, run_cases
from attnkit.llm.cache import cache_bytes
from attnkit.llm.gpt import alibi_slopes, decoder_mask


def _int_answer(expected: int) -> Callable[[object], str | None]:
    def check(got: object) -> str | None:
        if isinstance(got, torch.Tensor) and got.numel() == 1:
            got = got.item()
        if isinstance(got, bool) or not isinstance(got, int | float) or got != int(got):
            return f"expected a whole number of bytes, got {got!r}"
        if int(got) != expected:
            return f"got {int(got):,} bytes, expected {expected:,}"
        return None

    return check


def kv_bytes_cases() -> list[Case]:
    """The hidden cases of ``check_kv_cache_bytes``: ``(n_layer, n_head, n_kv_head, d_head, length, batch,
    itemsize)``."""
    specs = [
        ("one layer, one head, one token, float32", (1, 1, 1, 4, 1, 1, 4), "keys and values: 2 tensors"),
        ("multi-head: 12 layers, 12 heads of 64, 1024 tokens, fp16 (GPT-2 small)", (12, 12, 12, 64, 1024, 1, 2),
         "2 * n_layer * batch * n_kv_head * length * d_head * itemsize"),
        ("grouped-query: 32 query heads share 8 key/value heads", (32, 32, 8, 128, 4096, 1, 2),
         "only the key/value heads are cached: use n_kv_head, not n_head"),
        ("multi-query, a batch of 4", (4, 16, 1, 64, 100, 4, 4), "every sequence of the batch has its own cache"),
        ("an empty cache", (2, 4, 2, 8, 0, 3, 4), "no tokens, no bytes"),
    ]
    return [Case(name, args, check=_int_answer(cache_bytes(args[0], args[2], args[3], args[4], batch=args[5],
                                                           itemsize=args[6])), hint=hint)
            for name, args, hint in specs]


def check_kv_cache_bytes(fn: Callable[..., int], *, quiet: bool = False) -> CheckResult:
    """Check ``fn(n_layer, n_head, n_kv_head, d_head, length, batch, itemsize) -> bytes`` of a KV cache."""
    return run_cases(fn, kv_bytes_cases(), checker="check_kv_cache_bytes", quiet=quiet)


def _pool(w: torch.Tensor, n_kv_head: int, d_head: int) -> torch.Tensor:
    H = w.shape[0] // d_head
    return w.view(n_kv_head, H // n_kv_head, d_head, w.shape[1]).mean(1).reshape(n_kv_head * d_head, w.shape[1])


def pool_cases(seed: int = 0) -> list[Case]:
    """The hidden cases of ``check_pool_heads``: ``(W: (H Dh, E), n_kv_head, d_head)``."""
    g = torch.Generator().manual_seed(seed)
    w8 = torch.randn(8 * 4, 6, generator=g)  # 8 heads of width 4, E = 6
    w4 = torch.randn(4 * 3, 5, generator=g, dtype=torch.float64)
    return [
        Case("8 heads of 4 -> 2 groups", (w8, 2, 4), _pool(w8, 2, 4),
             hint="group g holds the consecutive heads g G .. g G + G - 1; view W as (Hkv, G, Dh, E) and average G"),
        Case("8 heads -> 1 (multi-query)", (w8, 1, 4), _pool(w8, 1, 4), hint="the mean of all eight heads"),
        Case("8 heads -> 8 (nothing to pool)", (w8, 8, 4), w8.clone(), hint="a group of one head is that head"),
        Case("float64, 4 heads of 3 -> 2", (w4, 2, 3), _pool(w4, 2, 3),
             hint="average (mean), not sum, and keep the dtype"),
    ]


def check_pool_heads(fn: Callable[[torch.Tensor, int, int], torch.Tensor], *, quiet: bool = False) -> CheckResult:
    """Check ``fn(W, n_kv_head, d_head)``: mean-pool a key/value projection ``W: (H Dh, E)`` into groups."""
    return run_cases(fn, pool_cases(), checker="check_pool_heads", quiet=quiet)


def _alibi(n_head: int, Lq: int, Lk: int) -> torch.Tensor:
    q_pos = torch.arange(Lk - Lq, Lk)
    k_pos = torch.arange(Lk)
    keep = decoder_mask(q_pos, k_pos)  # (Lq, Lk), bottom-right
    bias = -alibi_slopes(n_head)[:, None, None] * (q_pos[:, None] - k_pos[None, :])  # (H, Lq, Lk)
    return bias.masked_fill(~keep, float("-inf"))


def alibi_cases() -> list[Case]:
    """The hidden cases of ``check_alibi_bias``: ``(n_head, Lq, Lk)``."""
    return [
        Case("one head, 3 x 3", (1, 3, 3), _alibi(1, 3, 3),
             hint="bias[h, i, j] = -m_h (i - j) for j <= i, -inf for j > i; with one head m = 2^-8"),
        Case("8 heads, 4 x 4 (slopes 1/2 .. 1/256)", (8, 4, 4), _alibi(8, 4, 4),
             hint="m_h = 2 ** (-8 (h + 1) / H): the first head has the steepest slope"),
        Case("decoding: 1 query after 5 cached keys", (4, 1, 6), _alibi(4, 1, 6),
             hint="the query is the last position (Lk - 1): align the mask bottom-right, as a cache does"),
        Case("prefill of 3 after 4 cached keys", (2, 3, 7), _alibi(2, 3, 7),
             hint="query i sits at position Lk - Lq + i"),
    ]


def check_alibi_bias(fn: Callable[[int, int, int], torch.Tensor], *, quiet: bool = False) -> CheckResult:
    """Check ``fn(n_head, Lq, Lk) -> (H, Lq, Lk)``: ALiBi's float mask for queries that are the last ``Lq``."""
    return run_cases(fn, alibi_cases(), checker="check_alibi_bias", quiet=quiet)


__all__ = ["check_alibi_bias", "check_kv_cache_bytes", "check_pool_heads"]
