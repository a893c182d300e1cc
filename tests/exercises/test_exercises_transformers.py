"""The Part III checkers (masks, multi-head attention, rotary, InfoNCE, patches, rollout) accept correct
solutions and reject the plausible wrong ones, at the case that explains the mistake."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from attnkit import attend, key_mask, padding_mask
from attnkit.exercises.everywhere import check_info_nce, check_patchify, check_rollout
from attnkit.exercises.transformer import (
    check_multihead_attention,
    check_padded_attention,
    check_rotary,
    rotate_half_rotary,
)
from attnkit.transformers.clip import info_nce
from attnkit.transformers.positions import apply_rotary
from attnkit.transformers.vit import attention_rollout, patchify

# ---- padding masks -----------------------------------------------------------------------------


def _padded(q, k, v, lengths, *, flip=False, le=False):
    pos = torch.arange(k.shape[-2])
    real = pos <= lengths[:, None] if le else pos < lengths[:, None]  # (B, Lk)
    return attend(q, k, v, mask=(~real if flip else real)[:, None, :])[0]


def test_padded_attention_checker() -> None:
    assert check_padded_attention(lambda q, k, v, n: attend(q, k, v, mask=key_mask(padding_mask(n, k.shape[-2])))[0],
                                  quiet=True)
    inverted = check_padded_attention(lambda q, k, v, n: _padded(q, k, v, n, flip=True), quiet=True)
    assert not inverted and inverted.failed_case == "lengths (5, 3, 1)"
    assert not check_padded_attention(lambda q, k, v, n: _padded(q, k, v, n, le=True), quiet=True)  # off by one

    def naive(q, k, v, n):  # -inf then softmax: NaN for an empty sequence
        s = (q @ k.mT / q.shape[-1] ** 0.5).masked_fill(~padding_mask(n, k.shape[-2])[:, None], float("-inf"))
        return torch.softmax(s, -1) @ v

    r = check_padded_attention(naive, quiet=True)
    assert not r and r.failed_case == "a sequence of length 0" and "NaN" in r.message

    def unscaled(q, k, v, n):
        return attend(q, k, v, score="dot", mask=key_mask(padding_mask(n, k.shape[-2])))[0]

    assert not check_padded_attention(unscaled, quiet=True)
    assert not check_padded_attention(lambda q, k, v, n: attend(q, k, v)[0], quiet=True)  # padding ignored


# ---- multi-head attention vs torch.nn.MultiheadAttention ---------------------------------------


def _my_mha(mha, x, kpm, *, polarity=True, head_scale=True, heads_first=True):
    B, L, E = x.shape
    H = mha.num_heads
    Dh = E // H
    q, k, v = (x @ mha.in_proj_weight.T + mha.in_proj_bias).chunk(3, dim=-1)  # (B, L, E) each

    def split(t):
        if heads_first:
            return t.view(B, L, H, Dh).transpose(1, 2)  # (B, H, L, Dh)
        return t.view(B, L, Dh, H).permute(0, 3, 1, 2)  # the wrong split

    mask = None if kpm is None else (~kpm if polarity else kpm)[:, None, None, :]
    q = split(q) if head_scale else split(q) * (Dh / E) ** 0.5  # 1/sqrt(E) instead of 1/sqrt(Dh)
    out, _ = attend(q, split(k), split(v), mask=mask)
    out = out.transpose(1, 2).reshape(B, L, E) if heads_first else out.permute(0, 2, 3, 1).reshape(B, L, E)
    return mha.out_proj(out)


def test_multihead_attention_checker() -> None:
    assert check_multihead_attention(_my_mha, quiet=True)
    r = check_multihead_attention(lambda m, x, p: _my_mha(m, x, p, polarity=False), quiet=True)
    assert not r and "True = pad" in r.failed_case and "~key_padding_mask" in r.message
    r = check_multihead_attention(lambda m, x, p: _my_mha(m, x, p, head_scale=False), quiet=True)
    assert not r and r.failed_case == "two heads"
    assert not check_multihead_attention(lambda m, x, p: _my_mha(m, x, p, heads_first=False), quiet=True)
    assert not check_multihead_attention(lambda m, x, p: F.linear(x, m.out_proj.weight), quiet=True)


def test_multihead_checker_leaves_the_global_random_state_alone() -> None:
    torch.manual_seed(123)
    before = torch.rand(3)
    torch.manual_seed(123)
    check_multihead_attention(_my_mha, quiet=True)
    assert torch.equal(torch.rand(3), before)


# ---- rotary: the half-split convention is named ------------------------------------------------


def test_rotary_checker_names_rotate_half() -> None:
    assert check_rotary(apply_rotary, quiet=True)
    r = check_rotary(rotate_half_rotary, quiet=True)
    assert not r and "rotate_half" in r.message and "(x[2i], x[2i+1])" in r.message
    x = torch.randn(6, 8, dtype=torch.float64)  # the half-split form is still relative: a fair rival
    s = rotate_half_rotary(x[:1].expand(6, 8)) @ rotate_half_rotary(x[1:2].expand(6, 8)).T
    torch.testing.assert_close(s.diagonal(1), s.diagonal(1)[:1].expand(5))
    assert not check_rotary(lambda x: x, quiet=True)


# ---- InfoNCE, patchify, rollout ----------------------------------------------------------------


def _nce(u, t, tau, *, normalise=True, both=True):
    if normalise:
        u, t = F.normalize(u, dim=-1), F.normalize(t, dim=-1)
    S = u @ t.T / tau
    y = torch.arange(len(S))
    return (F.cross_entropy(S, y) + F.cross_entropy(S.T, y)) / 2 if both else F.cross_entropy(S, y)


def test_info_nce_checker() -> None:
    assert check_info_nce(info_nce, quiet=True) and check_info_nce(_nce, quiet=True)
    r = check_info_nce(lambda u, t, tau: _nce(u, t, tau, both=False), quiet=True)
    assert not r  # already at the first case: the two halves differ for random pairs
    r = check_info_nce(lambda u, t, tau: _nce(u, t, tau, normalise=False), quiet=True)
    assert not r
    assert not check_info_nce(lambda u, t, tau: _nce(u, t, 1.0), quiet=True)  # temperature forgotten


def test_patchify_checker() -> None:
    assert check_patchify(patchify, quiet=True)

    def channel_last(x, P):
        B, C, H, W = x.shape
        return x.reshape(B, C, H // P, P, W // P, P).permute(0, 2, 4, 3, 5, 1).reshape(B, -1, C * P * P)

    def column_major(x, P):
        B, C, H, W = x.shape
        return x.reshape(B, C, H // P, P, W // P, P).permute(0, 4, 2, 1, 3, 5).reshape(B, -1, C * P * P)

    r = check_patchify(lambda x, P: x.reshape(x.shape[0], -1, x.shape[1] * P * P), quiet=True)  # strips
    assert not r and r.failed_case.startswith("16 x 16")
    r = check_patchify(channel_last, quiet=True)
    assert not r and r.failed_case.startswith("3 channels")
    assert not check_patchify(column_major, quiet=True)


def test_rollout_checker() -> None:
    assert check_rollout(attention_rollout, quiet=True)

    def reversed_order(atts):
        R = None
        for A in atts:
            A = 0.5 * (A.mean(1) + torch.eye(A.shape[-1], dtype=A.dtype))
            R = A if R is None else R @ A
        return R

    r = check_rollout(reversed_order, quiet=True)
    assert not r and r.failed_case == "two layers"
    assert not check_rollout(lambda atts: attention_rollout(atts, residual=False), quiet=True)
    assert not check_rollout(lambda atts: attention_rollout([a.amax(1, keepdim=True) for a in atts]), quiet=True)
