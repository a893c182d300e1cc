"""Checkers for the chapter "Attention is all you need (2017)": positions, masks and multi-head attention."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from attnkit.core import attend
from attnkit.exercises._harness import Case, CheckResult, compare, run_cases
from attnkit.masks import causal_mask, key_mask, padding_mask
from attnkit.transformers.positions import apply_rotary, sinusoidal_positions


def sinusoidal_cases() -> list[Case]:
    """The hidden cases of ``check_sinusoidal_positions``."""
    shapes = [(4, 8, "a small table"), (1, 4, "a single position (all sines 0, all cosines 1)"),
              (50, 16, "50 positions, d_model = 16"), (6, 2, "d_model = 2: one clock only")]
    hints = ["column 2i holds sin(pos / 10000 ** (2i / d_model)) and column 2i + 1 the cosine of the same "
             "angle: interleave them, do not put all sines first",
             "position 0 has angle 0: sin 0 = 0 in even columns, cos 0 = 1 in odd ones",
             "the frequency of pair i is 10000 ** (-2i / d_model), where 2i is the even column index",
             "with d_model = 2 there is one pair: (sin(pos), cos(pos))"]
    return [Case(name, (L, d), sinusoidal_positions(L, d, dtype=torch.float64), hint=hint, atol=1e-5)
            for (L, d, name), hint in zip(shapes, hints, strict=True)]


def check_sinusoidal_positions(fn: Callable[[int, int], torch.Tensor], *, quiet: bool = False) -> CheckResult:
    """Check a reader's ``fn(length, d_model) -> (length, d_model)`` sinusoidal position table.

    ``pe[pos, 2i] = sin(pos / 10000 ** (2i / d_model))``, ``pe[pos, 2i + 1] = cos(...)``, as in
    ``attnkit.transformers.positions.sinusoidal_positions`` (``d_model`` even in every case).
    """
    return run_cases(fn, sinusoidal_cases(), checker="check_sinusoidal_positions", quiet=quiet)


def _relative_only() -> Callable[[object], str | None]:
    # the same q and k vectors at every position: scores must depend on (m - n) only
    def check(got: object) -> str | None:
        if not isinstance(got, torch.Tensor) or got.shape != (6, 8):
            return f"expected a tensor of shape (6, 8), got {getattr(got, 'shape', type(got).__name__)}"
        g = torch.Generator().manual_seed(3)
        k = apply_rotary(torch.randn(1, 8, generator=g, dtype=torch.float64).expand(6, 8))  # (L, d)
        s = got.to(torch.float64) @ k.T  # (L, L): s[m, n]
        for off in range(-5, 6):
            diag = torch.diagonal(s, off)
            if (diag - diag[0]).abs().max() > 1e-6:
                return f"the scores q_m . k_n are not a function of m - n (offset {off} varies)"
        return None
    return check


def rotate_half_rotary(x: torch.Tensor) -> torch.Tensor:
    """RoPE in the half-split convention of GPT-NeoX / LLaMA code (``rotate_half``): ``x: (..., L, d)``.

    Pairs coordinate ``i`` with ``i + d/2`` (not ``2i`` with ``2i + 1``) and rotates them by
    ``m * theta_i``. Scores still depend on the offset only; the numbers differ from
    ``apply_rotary`` (the RoFormer paper's interleaved pairs) by a fixed permutation of coordinates.
    """
    L, d = x.shape[-2], x.shape[-1]
    theta = 10000 ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)  # (d/2,)
    angle = torch.arange(L, dtype=torch.float64)[:, None] * theta  # (L, d/2)
    cos, sin = torch.cat([angle.cos()] * 2, -1).to(x.dtype), torch.cat([angle.sin()] * 2, -1).to(x.dtype)  # (L, d)
    x1, x2 = x[..., : d // 2], x[..., d // 2:]
    return x * cos + torch.cat([-x2, x1], -1) * sin  # x cos + rotate_half(x) sin


def _interleaved(expected: torch.Tensor, x: torch.Tensor) -> Callable[[object], str | None]:
    # compare with apply_rotary; name the half-split convention when that is what the reader wrote
    def check(got: object) -> str | None:
        problem = compare(got, expected, 1e-5, 1e-4)
        if problem and compare(got, rotate_half_rotary(x), 1e-5, 1e-4) is None:
            return ("you used the half-split pairing (x[i], x[i + d/2]) of GPT-NeoX/LLaMA code (rotate_half); "
                    "this book and the RoFormer paper pair neighbours (x[2i], x[2i+1]). Both give relative scores, "
                    "but their numbers differ: interleave the pairs")
        return problem
    return check


def rotary_cases() -> list[Case]:
    """The hidden cases of ``check_rotary``."""
    g = torch.Generator().manual_seed(2)
    x1 = torch.randn(5, 4, generator=g, dtype=torch.float64)
    x2 = torch.randn(2, 3, 7, 8, generator=g, dtype=torch.float64)
    same = torch.randn(1, 8, generator=g, dtype=torch.float64).expand(6, 8).contiguous()
    return [
        Case("L = 5, d = 4", (x1,), apply_rotary(x1), check=_interleaved(apply_rotary(x1), x1),
             hint="rotate the pair (x[2i], x[2i+1]) at position m by the angle m * 10000 ** (-2i / d)"),
        Case("batched (2, 3, 7, 8)", (x2,), apply_rotary(x2),
             hint="positions run along the second-to-last axis; the leading axes are batch"),
        Case("position 0 is left unchanged", (x1[:1],), x1[:1].clone(),
             hint="at position 0 every angle is 0, so the rotation is the identity"),
        Case("scores depend on m - n only", (same,), None, check=_relative_only(),
             hint="rotate both coordinates of each pair with the same angle: a rotation keeps dot products "
                  "of equally rotated vectors"),
    ]


def check_rotary(fn: Callable[[torch.Tensor], torch.Tensor], *, quiet: bool = False) -> CheckResult:
    """Check a reader's rotary embedding ``fn(x: (..., L, d)) -> (..., L, d)`` (RoPE, interleaved pairs).

    Compared with ``attnkit.transformers.positions.apply_rotary``, plus a property: scores of rotated
    queries and keys depend on the offset ``m - n`` only. The half-split convention of GPT-NeoX/LLaMA
    code (``rotate_half``, pairs ``(x[i], x[i + d/2])``) is recognised and named in the verdict.
    """
    return run_cases(fn, rotary_cases(), checker="check_rotary", quiet=quiet)


def check_causal_attention(fn: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor], *,
                           quiet: bool = False) -> CheckResult:
    """Check a reader's causal self-attention ``fn(q, k, v) -> (..., L, dv)``: query ``i`` sees keys ``j <= i``.

    ``q: (..., L, d)``, ``k: (..., L, d)``, ``v: (..., L, dv)``; compared with
    ``attend(q, k, v, mask=causal_mask(L))``, including the property that changing the future
    does not change the past.
    """
    g = torch.Generator().manual_seed(4)
    q, k, v = (torch.randn(2, 5, 4, generator=g, dtype=torch.float64) for _ in range(3))
    v_future = v.clone()
    v_future[:, 3:] += 10.0  # change only the last two positions

    def past_unchanged(got: object) -> str | None:
        if not isinstance(got, torch.Tensor) or got.shape != v.shape:
            return f"expected a tensor of shape {tuple(v.shape)}"
        ref = attend(q, k, v, mask=causal_mask(5))[0]
        if not torch.allclose(got.to(torch.float64)[:, :3], ref[:, :3], atol=1e-6):
            return "changing the values at positions 3 and 4 changed the outputs at positions 0-2: the future leaks"
        return None

    one = torch.randn(1, 1, 3, generator=g, dtype=torch.float64)
    cases = [
        Case("random (2, 5, 4)", (q, k, v), attend(q, k, v, mask=causal_mask(5))[0],
             hint="mask the scores above the diagonal (key j > query i) before the softmax, and scale by sqrt(d)"),
        Case("the future does not leak", (q, k, v_future), None, check=past_unchanged,
             hint="query i must give weight exactly 0 to keys j > i"),
        Case("the first query sees only itself", (q[:, :1], k[:, :1], v[:, :1]), v[:, :1].clone(),
             hint="with one key the weight is 1 and the output is that value"),
        Case("length 1", (one, one, one), one.clone()),
    ]
    return run_cases(fn, cases, checker="check_causal_attention", quiet=quiet)


def _padded_reference(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    return attend(q, k, v, mask=key_mask(padding_mask(lengths, k.shape[-2])))[0]  # (B, Lq, dv)


def check_padded_attention(fn: Callable[..., torch.Tensor], *, quiet: bool = False) -> CheckResult:
    """Check a reader's ``fn(q, k, v, lengths) -> (B, Lq, dv)``: attention over the real keys only.

    ``q: (B, Lq, d)``, ``k: (B, Lk, d)``, ``v: (B, Lk, dv)``, ``lengths: (B,)`` long: sequence
    ``b`` has ``lengths[b]`` real keys, then padding. Compared with
    ``attend(q, k, v, mask=key_mask(padding_mask(lengths, Lk)))`` (scaled dot product); a
    sequence with no real key must give zeros, not NaN, and the padding must not matter.
    """
    g = torch.Generator().manual_seed(5)
    q = torch.randn(3, 4, 6, generator=g, dtype=torch.float64)
    k = torch.randn(3, 5, 6, generator=g, dtype=torch.float64)
    v = torch.randn(3, 5, 2, generator=g, dtype=torch.float64)
    lengths = torch.tensor([5, 3, 1])
    k_junk, v_junk = k.clone(), v.clone()
    k_junk[1, 3:] = 50.0  # huge keys in the padding: they would win every softmax
    v_junk[1, 3:] = -1e3
    empty = torch.tensor([2, 0, 4])

    def no_nan(got: object) -> str | None:
        if not isinstance(got, torch.Tensor) or got.shape != (3, 4, 2):
            return f"expected a tensor of shape (3, 4, 2); got {getattr(got, 'shape', type(got).__name__)}"
        if torch.isnan(got).any():
            return "a sequence with no real key gave NaN: a fully masked row must give zero weights and zero output"
        return compare(got, _padded_reference(q, k, v, empty), 1e-5, 1e-4)

    cases = [
        Case("lengths (5, 3, 1)", (q, k, v, lengths), _padded_reference(q, k, v, lengths),
             hint="mask the KEYS j >= lengths[b] (a (B, 1, Lk) mask that broadcasts over the queries); True = "
                  "takes part in attnkit; the scaled dot product divides by sqrt(d)"),
        Case("what sits in the padding does not matter", (q, k_junk, v_junk, lengths),
             _padded_reference(q, k, v, lengths),
             hint="padded keys must get weight exactly 0, whatever their values (mask before the softmax)"),
        Case("no padding at all", (q, k, v, torch.tensor([5, 5, 5])), attend(q, k, v)[0],
             hint="with every key real this is plain scaled dot-product attention"),
        Case("a sequence of length 0", (q, k, v, empty), None, check=no_nan,
             hint="attnkit.attend gives all-zero weights for a fully masked row; torch.softmax of all -inf gives NaN"),
    ]
    return run_cases(fn, cases, checker="check_padded_attention", quiet=quiet)


def _torch_mha(E: int, H: int, seed: int) -> nn.MultiheadAttention:
    with torch.random.fork_rng(devices=[]):  # leave the reader's random state alone
        mha = nn.MultiheadAttention(E, H, batch_first=True, dtype=torch.float64)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in mha.parameters():
            p.copy_(0.5 * torch.randn(p.shape, generator=g, dtype=p.dtype))  # non-zero biases too
    return mha.eval()


def check_multihead_attention(fn: Callable[..., torch.Tensor], *, quiet: bool = False) -> CheckResult:
    """Check a reader's ``fn(mha, x, key_padding_mask) -> (B, L, E)`` against ``torch.nn.MultiheadAttention``.

    ``mha`` is a ``torch.nn.MultiheadAttention(E, H, batch_first=True)``: use its
    ``in_proj_weight (3E, E)``, ``in_proj_bias (3E,)``, ``out_proj``, ``num_heads``. ``x: (B, L, E)``
    is the query, key and value. ``key_padding_mask: (B, L)`` bool or ``None`` follows
    **PyTorch's convention: True = padding, ignored** (the opposite of attnkit's masks).
    The expected output is ``mha(x, x, x, key_padding_mask=key_padding_mask)[0]``.
    """
    g = torch.Generator().manual_seed(6)
    x = torch.randn(2, 5, 8, generator=g, dtype=torch.float64)
    pad = ~padding_mask([5, 3], 5)  # PyTorch's polarity: True where the position is padding
    x_wide = torch.randn(1, 4, 32, generator=g, dtype=torch.float64)

    def case(name: str, E: int, H: int, xx: torch.Tensor, kpm: torch.Tensor | None, hint: str, seed: int) -> Case:
        mha = _torch_mha(E, H, seed)
        with torch.no_grad():
            expected = mha(xx, xx, xx, key_padding_mask=kpm, need_weights=False)[0]
        return Case(name, (mha, xx, kpm), expected, hint=hint)

    cases = [
        case("one head, no padding", 8, 1, x, None, "q, k, v = x @ W.T + b with W_q, W_k, W_v the three (E, E) "
             "row blocks of in_proj_weight; then scaled dot-product attention and out_proj", 0),
        case("two heads", 8, 2, x, None, "split E into H heads of Dh = E / H: view (B, L, H, Dh), transpose to "
             "(B, H, L, Dh); scale the scores by 1 / sqrt(Dh), not 1 / sqrt(E)", 1),
        case("four heads, E = 32", 32, 4, x_wide, None, "the heads are contiguous blocks of Dh columns: "
             "view(B, L, H, Dh), not view(B, L, Dh, H)", 2),
        case("two heads with padding (True = pad)", 8, 2, x, pad, "torch's key_padding_mask marks the PADDING with "
             "True: attnkit's masks mark the real tokens, so pass mask=~key_padding_mask", 3),
    ]
    return run_cases(fn, cases, checker="check_multihead_attention", quiet=quiet)


__all__ = ["check_causal_attention", "check_multihead_attention", "check_padded_attention", "check_rotary",
           "check_sinusoidal_positions", "rotary_cases", "rotate_half_rotary", "sinusoidal_cases"]
