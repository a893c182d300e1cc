"""Checkers for the chapter "Attention is all you need (2017)": positions and causal attention."""

from __future__ import annotations

from collections.abc import Callable

import torch

from attnkit.core import attend
from attnkit.exercises._harness import Case, CheckResult, run_cases
from attnkit.masks import causal_mask
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


def rotary_cases() -> list[Case]:
    """The hidden cases of ``check_rotary``."""
    g = torch.Generator().manual_seed(2)
    x1 = torch.randn(5, 4, generator=g, dtype=torch.float64)
    x2 = torch.randn(2, 3, 7, 8, generator=g, dtype=torch.float64)
    same = torch.randn(1, 8, generator=g, dtype=torch.float64).expand(6, 8).contiguous()
    return [
        Case("L = 5, d = 4", (x1,), apply_rotary(x1),
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
    queries and keys depend on the offset ``m - n`` only.
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


__all__ = ["check_causal_attention", "check_rotary", "check_sinusoidal_positions", "rotary_cases", "sinusoidal_cases"]
