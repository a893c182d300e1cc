"""Checkers for the Part II chapters on recurrent-era attention (vision 2015, self-attention 2016)."""

from __future__ import annotations

from collections.abc import Callable

import torch

from attnkit.exercises._harness import Case, CheckResult, run_cases
from attnkit.recurrent.self_attention import attention_penalty


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def reinforce_surrogate(log_probs: torch.Tensor, reward: torch.Tensor, baseline: float | torch.Tensor) -> torch.Tensor:
    """The reference: ``-mean_b((R_b - b) * sum_t log p(l_bt))`` with the advantage held constant."""
    advantage = (reward - baseline).detach()  # (B,)
    return -(advantage * log_probs.sum(-1)).mean()


def check_reinforce_surrogate(fn: Callable[..., torch.Tensor], *, quiet: bool = False) -> CheckResult:
    r"""Check a reader's ``fn(log_probs, reward, baseline) -> loss`` (a scalar to minimise).

    ``log_probs: (B, T)`` are $\log p(l_t)$ of the sampled glimpse locations, ``reward: (B,)``
    the reward of each sampled caption (e.g. its log-likelihood), ``baseline`` a number. The
    gradient of the loss must be the REINFORCE estimate
    $-\frac{1}{B}\sum_b (R_b - b) \sum_t \nabla \log p(l_{bt})$: no gradient may flow into the
    reward or the baseline.
    """
    g = _gen(7)
    lp = -torch.rand(4, 3, generator=g, dtype=torch.float64) * 3
    R = torch.randn(4, generator=g, dtype=torch.float64)

    def gradients_ok(_: object) -> str | None:
        reward = R.clone().requires_grad_(True)
        logp = lp.clone().requires_grad_(True)
        loss = fn(logp, reward, 0.3)
        if not isinstance(loss, torch.Tensor) or loss.dim() != 0:
            return "the loss must be a scalar tensor"
        loss.backward()
        if reward.grad is not None and reward.grad.abs().max() > 0:
            return "gradient flows into the reward: detach the advantage (R - b)"
        expected = -(R - 0.3)[:, None].expand(4, 3) / 4
        if logp.grad is None or not torch.allclose(logp.grad, expected):
            return f"the gradient with respect to log_probs is {logp.grad}, expected {expected}"
        return None

    cases = [
        Case("zero baseline", (lp, R, 0.0), reinforce_surrogate(lp, R, 0.0),
             hint="loss = -mean over the batch of (reward - baseline) * (sum over steps of log_probs)"),
        Case("a baseline", (lp, R, 0.5), reinforce_surrogate(lp, R, 0.5),
             hint="subtract the baseline from the reward before weighting the log-probabilities"),
        Case("reward equal to the baseline", (lp, torch.full((4,), 0.5, dtype=torch.float64), 0.5),
             torch.zeros((), dtype=torch.float64), hint="with R = b nothing is learnt: the loss is 0"),
        Case("gradients", (lp, R, 0.3), None, check=gradients_ok,
             hint="the reward is a number to the estimator, not something to differentiate"),
    ]
    return run_cases(fn, cases, checker="check_reinforce_surrogate", quiet=quiet)


def check_attention_penalty(fn: Callable[[torch.Tensor], torch.Tensor], *, quiet: bool = False) -> CheckResult:
    r"""Check a reader's ``fn(A) -> P`` with $P = \lVert A A^\top - I \rVert_F^2$ per example.

    ``A: (B, r, L)`` holds ``r`` attention rows over ``L`` words; the result has shape ``(B,)``.
    """
    g = _gen(3)
    A = torch.softmax(torch.randn(3, 4, 6, generator=g, dtype=torch.float64), -1)
    distinct = torch.zeros(1, 3, 5, dtype=torch.float64)
    distinct[0, [0, 1, 2], [4, 0, 2]] = 1.0
    same = torch.zeros(1, 3, 5, dtype=torch.float64)
    same[0, :, 1] = 1.0
    uniform = torch.full((2, 2, 4), 0.25, dtype=torch.float64)
    padded = A.clone()
    padded[:, :, 4:] = 0
    padded = padded / padded.sum(-1, keepdim=True)
    cases = [
        Case("random softmax rows", (A,), attention_penalty(A),
             hint="P = sum of squares of the entries of A @ A^T - I, one number per example"),
        Case("one-hot rows on distinct words", (distinct,), torch.zeros(1, dtype=torch.float64),
             hint="A A^T = I here, so the penalty is 0"),
        Case("three heads on the same word", (same,), attention_penalty(same),
             hint="A A^T is all ones (3 x 3): 6 off-diagonal ones"),
        Case("uniform heads", (uniform,), attention_penalty(uniform),
             hint="the identity has the shape (r, r), not (L, L): use A @ A.transpose(-2, -1)"),
        Case("padded sentences (zero weight on padding)", (padded,), attention_penalty(padded)),
    ]
    return run_cases(fn, cases, checker="check_attention_penalty", quiet=quiet)
