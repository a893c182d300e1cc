"""The Part V checkers accept correct answers and reject the plausible wrong ones."""

from __future__ import annotations

import torch

from attnkit.exercises.llm import check_alibi_bias, check_kv_cache_bytes, check_pool_heads


def test_kv_cache_bytes_checker() -> None:
    def right(L, H, Hkv, Dh, n, B, b):
        return 2 * L * B * Hkv * n * Dh * b

    assert check_kv_cache_bytes(right, quiet=True)
    keys_only = check_kv_cache_bytes(lambda L, H, Hkv, Dh, n, B, b: L * B * Hkv * n * Dh * b, quiet=True)
    assert not keys_only and keys_only.failed_case.startswith("one layer")
    all_heads = check_kv_cache_bytes(lambda L, H, Hkv, Dh, n, B, b: 2 * L * B * H * n * Dh * b, quiet=True)
    assert not all_heads and all_heads.failed_case.startswith("grouped-query")
    no_batch = check_kv_cache_bytes(lambda L, H, Hkv, Dh, n, B, b: 2 * L * Hkv * n * Dh * b, quiet=True)
    assert not no_batch and "batch" in no_batch.failed_case
    assert not check_kv_cache_bytes(lambda *a: "many", quiet=True)


def test_pool_heads_checker() -> None:
    def right(w, hkv, dh):
        H, E = w.shape[0] // dh, w.shape[1]
        return w.view(hkv, H // hkv, dh, E).mean(1).reshape(hkv * dh, E)  # (Hkv, G, Dh, E) -> mean over G

    assert check_pool_heads(right, quiet=True)

    def strided(w, hkv, dh):  # heads h and h + Hkv in one group: the wrong grouping
        H, E = w.shape[0] // dh, w.shape[1]
        return w.view(H // hkv, hkv, dh, E).mean(0).reshape(hkv * dh, E)

    bad = check_pool_heads(strided, quiet=True)
    assert not bad and bad.failed_case.startswith("8 heads of 4")

    def summed(w, hkv, dh):
        H, E = w.shape[0] // dh, w.shape[1]
        return w.view(hkv, H // hkv, dh, E).sum(1).reshape(hkv * dh, E)

    assert not check_pool_heads(summed, quiet=True)

    def wrong_axis(w, hkv, dh):  # averages across the width of a head
        H, E = w.shape[0] // dh, w.shape[1]
        return w.view(H, dh, E).mean(1).repeat_interleave(dh, 0)[: hkv * dh]

    assert not check_pool_heads(wrong_axis, quiet=True)
    assert not check_pool_heads(lambda w, hkv, dh: right(w.float(), hkv, dh), quiet=True)  # float64 lost


def _alibi(H, Lq, Lk, *, top_left=False, sign=-1.0, reverse=False):
    slopes = torch.tensor([2.0 ** (-8 * (h + 1) / H) for h in range(H)], dtype=torch.float64)
    if reverse:
        slopes = slopes.flip(0)
    i = torch.arange(Lq)[:, None] + (0 if top_left else Lk - Lq)
    j = torch.arange(Lk)[None, :]
    bias = sign * slopes[:, None, None] * (i - j)
    return bias.masked_fill(j > i, float("-inf"))


def test_alibi_checker() -> None:
    assert check_alibi_bias(_alibi, quiet=True)
    tl = check_alibi_bias(lambda H, Lq, Lk: _alibi(H, Lq, Lk, top_left=True), quiet=True)
    assert not tl and tl.failed_case.startswith("decoding")
    assert not check_alibi_bias(lambda H, Lq, Lk: _alibi(H, Lq, Lk, sign=1.0), quiet=True)
    rev = check_alibi_bias(lambda H, Lq, Lk: _alibi(H, Lq, Lk, reverse=True), quiet=True)
    assert not rev and rev.failed_case.startswith("8 heads")
    no_mask = check_alibi_bias(lambda H, Lq, Lk: _alibi(H, Lq, Lk).nan_to_num(neginf=0.0), quiet=True)
    assert not no_mask
