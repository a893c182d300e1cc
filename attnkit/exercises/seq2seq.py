"""Checkers for the exercises of the chapter "Seq2seq with attention" (Bahdanau and Luong)."""

from __future__ import annotations

from collections.abc import Callable

import torch

from attnkit.core import attend
from attnkit.exercises._harness import Case, CheckResult, compare, run_cases
from attnkit.masks import key_mask, padding_mask
from attnkit.recurrent.seq2seq import local_mask


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _step_reference(s_prev: torch.Tensor, h: torch.Tensor, pad: torch.Tensor, W_q: torch.Tensor,
                    W_k: torch.Tensor, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    c, a = attend(s_prev.unsqueeze(1), h, h, score="additive", mask=key_mask(pad),
                  score_params={"W_q": W_q, "W_k": W_k, "w": w})  # (B, 1, H), (B, 1, S)
    return c.squeeze(1), a.squeeze(1)


def _pair_check(expected: tuple[torch.Tensor, torch.Tensor]) -> Callable[[object], str | None]:
    def check(got: object) -> str | None:
        if not isinstance(got, tuple) or len(got) != 2:
            return f"expected a tuple (context, weights); got {type(got).__name__}"
        for name, g, e in (("context", got[0], expected[0]), ("weights", got[1], expected[1])):
            problem = compare(g, e, atol=1e-6, rtol=1e-5)
            if problem is not None:
                return f"{name}: {problem}"
        return None

    return check


def bahdanau_step_cases(seed: int = 0) -> list[Case]:
    """The hidden cases of :func:`check_bahdanau_step`."""
    g = _gen(seed)
    H, A = 6, 5
    W_q, W_k = (torch.randn(A, H, generator=g, dtype=torch.float64) for _ in range(2))
    w = torch.randn(A, generator=g, dtype=torch.float64)
    s1, h1 = torch.randn(1, H, generator=g, dtype=torch.float64), torch.randn(1, 4, H, generator=g, dtype=torch.float64)
    pad1 = torch.ones(1, 4, dtype=torch.bool)
    s3, h3 = torch.randn(3, H, generator=g, dtype=torch.float64), torch.randn(3, 5, H, generator=g, dtype=torch.float64)
    pad3 = padding_mask([5, 2, 4])
    pad_one = padding_mask([1, 5, 3])
    cases = []
    for name, args, hint in (
        ("one sentence, no padding", (s1, h1, pad1, W_q, W_k, w),
         "score every annotation h_j with w . tanh(W_q s + W_k h_j), softmax over j, then c = sum_j a_j h_j"),
        ("a padded batch of three sentences", (s3, h3, pad3, W_q, W_k, w),
         "padded source positions (pad False) must get weight exactly 0; the real ones still sum to 1"),
        ("a one-word sentence in the batch", (s3, h3, pad_one, W_q, W_k, w),
         "a sentence with one real word puts all its weight on it: its context is that annotation"),
    ):
        cases.append(Case(name, args, hint=hint, check=_pair_check(_step_reference(*args))))
    return cases


def check_bahdanau_step(fn: Callable[..., tuple[torch.Tensor, torch.Tensor]], *,
                        quiet: bool = False) -> CheckResult:
    """Check a reader's ``fn(s_prev, h, pad, W_q, W_k, w) -> (context, weights)``.

    One attention step of Bahdanau's decoder: ``s_prev: (B, H)`` previous decoder state,
    ``h: (B, S, H)`` encoder annotations, ``pad: (B, S)`` bool (``True`` = real word),
    ``W_q: (A, H)``, ``W_k: (A, H)``, ``w: (A,)``. Returns ``context: (B, H)`` and
    ``weights: (B, S)`` with ``a_j = softmax_j(w . tanh(W_q s_prev + W_k h_j))`` over the real words.
    """
    return run_cases(fn, bahdanau_step_cases(), checker="check_bahdanau_step", quiet=quiet)


def _mask_check(expected: torch.Tensor) -> Callable[[object], str | None]:
    """Compare a float mask: first where it is -inf, then its finite values."""

    def check(got: object) -> str | None:
        if not isinstance(got, torch.Tensor):
            return f"expected a torch.Tensor, got {type(got).__name__}"
        if got.shape != expected.shape:
            return f"shape {tuple(got.shape)}, expected {tuple(expected.shape)}"
        out_g, out_e = torch.isneginf(got), torch.isneginf(expected)
        if not torch.equal(out_g, out_e):
            where = [int(i) for i in (out_g != out_e).nonzero()[0]]
            should = "-inf (outside the window or padding)" if out_e[tuple(where)] else "finite (inside the window)"
            return f"entry {where} should be {should}; got {got[tuple(where)].item():.4g}"
        zero = torch.zeros((), dtype=got.dtype)
        return compare(torch.where(out_g, zero, got), torch.where(out_e, zero, expected), atol=1e-6, rtol=1e-5)

    return check


def local_mask_cases(seed: int = 0) -> list[Case]:
    """The hidden cases of :func:`check_local_mask`."""
    g = _gen(seed)
    p1 = torch.tensor([[0.0, 1.5, 3.0]], dtype=torch.float64)
    len1 = torch.tensor([6])
    p2 = 4 * torch.rand(2, 4, generator=g, dtype=torch.float64)
    len2 = torch.tensor([5, 3])
    cases = [
        Case("one sentence, D = 1", (p1, len1, 6, 1), check=_mask_check(local_mask(p1, len1, 6, 1)),
             hint="keep |j - p| <= D with the score offset -(j - p)^2 / (2 sigma^2), sigma = D / 2; -inf elsewhere"),
        Case("one sentence, D = 2", (p1, len1, 6, 2), check=_mask_check(local_mask(p1, len1, 6, 2)),
             hint="sigma is D / 2, not D"),
        Case("a padded batch", (p2, len2, 6, 2), check=_mask_check(local_mask(p2, len2, 6, 2)),
             hint="source positions j >= src_len[b] are padding: -inf even inside the window"),
    ]
    return cases


def check_local_mask(fn: Callable[..., torch.Tensor], *, quiet: bool = False) -> CheckResult:
    """Check a reader's ``fn(p, src_len, S, D) -> mask``: Luong's local window as a float mask.

    ``p: (B, T)`` predicted positions, ``src_len: (B,)`` source lengths, ``S`` padded source
    length, ``D`` half-width. Returns ``(B, T, S)``: ``-(j - p)^2 / (2 (D/2)^2)`` where
    ``|j - p| <= D`` and ``j < src_len[b]``, ``-inf`` elsewhere.
    """
    return run_cases(fn, local_mask_cases(), checker="check_local_mask", quiet=quiet)
