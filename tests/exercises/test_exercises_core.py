"""The core checkers accept correct solutions and catch the usual mistakes, with the right case."""

from __future__ import annotations

import math

import torch

from attnkit import attend, masked_softmax
from attnkit.exercises import check_masked_softmax, check_scaled_dot_attention


def test_correct_solution_passes(capsys) -> None:
    result = check_masked_softmax(lambda s, m: masked_softmax(s, m))
    assert result and result.n_passed == result.n_cases
    assert "all 7 cases passed" in capsys.readouterr().out


def test_naive_softmax_fails_on_the_fully_masked_row(capsys) -> None:
    result = check_masked_softmax(lambda s, m: torch.softmax(s.masked_fill(~m, float("-inf")), -1))
    assert not result and result.failed_case == "a fully masked row"
    out = capsys.readouterr().out
    assert "NaN" in out and "hint:" in out and "2 of 7 cases passed" in out


def test_no_max_subtraction_fails_on_large_logits() -> None:
    def unstable(s, m):
        e = torch.exp(s) * m
        z = e.sum(-1, keepdim=True)
        return e / torch.where(z > 0, z, torch.ones_like(z))

    result = check_masked_softmax(unstable, quiet=True)
    assert not result and result.failed_case.startswith("large logits")


def test_exceptions_in_the_readers_code_are_reported_not_raised() -> None:
    def broken(s, m):
        raise RuntimeError("oops")

    result = check_masked_softmax(broken, quiet=True)
    assert not result and "RuntimeError: oops" in result.message


def test_scaled_dot_attention_checker() -> None:
    assert check_scaled_dot_attention(lambda q, k, v, m: attend(q, k, v, mask=m)[0], quiet=True)

    def unscaled(q, k, v, m):
        return attend(q * math.sqrt(q.shape[-1]), k, v, mask=m)[0]

    result = check_scaled_dot_attention(unscaled, quiet=True)
    assert not result and result.failed_case == "no mask"

    def ignores_mask(q, k, v, m):
        return attend(q, k, v)[0]

    assert check_scaled_dot_attention(ignores_mask, quiet=True).failed_case == "padding mask"


def test_compare_accepts_matching_infinities_and_rejects_others() -> None:
    from attnkit.exercises._harness import compare

    inf = float("-inf")
    assert compare(torch.tensor([inf, 1.0]), torch.tensor([inf, 1.0]), 1e-6, 1e-6) is None
    assert "inf" in compare(torch.tensor([inf, 1.0]), torch.tensor([0.0, 1.0]), 1e-6, 1e-6)
    assert "values differ" in compare(torch.tensor([inf, 2.0]), torch.tensor([inf, 1.0]), 1e-6, 1e-6)
