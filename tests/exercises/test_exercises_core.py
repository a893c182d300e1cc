"""The core checkers accept correct solutions and catch the usual mistakes, with the right case."""

from __future__ import annotations

import math

import torch

from attnkit import attend, masked_softmax
from attnkit.exercises import check_masked_softmax, check_scaled_dot_attention


def test_correct_solution_passes(capsys) -> None:
    result = check_masked_softmax(lambda s, m: masked_softmax(s, m))
    assert result and result.n_passed == result.n_cases
    assert "all 8 cases passed" in capsys.readouterr().out


def test_naive_softmax_fails_on_the_fully_masked_row(capsys) -> None:
    result = check_masked_softmax(lambda s, m: torch.softmax(s.masked_fill(~m, float("-inf")), -1))
    assert not result and result.failed_case == "a fully masked row"
    out = capsys.readouterr().out
    assert "NaN" in out and "hint:" in out and "2 of 8 cases passed" in out


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


def sdpa_solution(q, k, v, mask=None):  # the chapter's solution, with a NaN-free masked softmax
    s = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is None:
        mask = torch.ones_like(s, dtype=torch.bool)
    return masked_softmax(s, mask) @ v


def test_scaled_dot_attention_checker_accepts_correct_answers() -> None:
    assert check_scaled_dot_attention(sdpa_solution, quiet=True)

    def sdpa_with_zero_rows(q, k, v, m):  # torch's SDPA, with fully masked rows set to zero by hand
        out = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=m)
        if m is None:
            return out
        return torch.where(torch.broadcast_to(m, (*q.shape[:-1], k.shape[-2])).any(-1, keepdim=True), out, 0.0)

    assert check_scaled_dot_attention(sdpa_with_zero_rows, quiet=True)


def test_scaled_dot_attention_checker_rejects_the_usual_mistakes() -> None:
    def naive(q, k, v, m):  # the scaffold: torch.softmax of a row of -inf is NaN
        s = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
        if m is not None:
            s = s.masked_fill(~m, float("-inf"))
        return torch.softmax(s, -1) @ v

    res = check_scaled_dot_attention(naive, quiet=True)
    assert not res and res.failed_case == "a query with every key masked" and "NaN" in res.message

    def own_causal(q, k, v, m):  # ignores the mask it is given and builds a top-left causal one
        if m is not None and m.shape[-2:] == (q.shape[-2], k.shape[-2]) and not m.all():
            m = torch.ones(q.shape[-2], k.shape[-2], dtype=torch.bool).tril()
        return sdpa_solution(q, k, v, m)

    res = check_scaled_dot_attention(own_causal, quiet=True)
    assert not res and res.failed_case.startswith("Lq = 3 queries")

    def wrong_axis(q, k, v, m):  # normalises over the queries
        s = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
        return masked_softmax(s.transpose(-2, -1), None).transpose(-2, -1) @ v

    assert check_scaled_dot_attention(wrong_axis, quiet=True).failed_case == "no mask"

    def float64_answer(q, k, v, m):
        return sdpa_solution(q.double(), k.double(), v.double(), m)

    res = check_scaled_dot_attention(float64_answer, quiet=True)
    assert not res and res.failed_case == "float32 inputs" and "dtype torch.float64" in res.message

    def float32_for_half(q, k, v, m):
        out = sdpa_solution(q.float(), k.float(), v.float(), m)
        return out if q.dtype == torch.float16 else out.to(q.dtype)

    assert check_scaled_dot_attention(float32_for_half, quiet=True).failed_case == "float16 inputs"


def test_masked_softmax_checker_rejects_a_wrong_dtype() -> None:
    def float64_answer(s, m):
        return masked_softmax(s.double(), m)

    res = check_masked_softmax(float64_answer, quiet=True)
    assert not res and res.failed_case == "large logits (1e4) in float32" and "dtype" in res.message

    def float32_for_half(s, m):
        out = masked_softmax(s.float(), m)
        return out if s.dtype == torch.float16 else out.to(s.dtype)

    res = check_masked_softmax(float32_for_half, quiet=True)
    assert not res and res.failed_case == "large logits (1e4) in float16" and "float16" in res.message


def test_compare_accepts_matching_infinities_and_rejects_others() -> None:
    from attnkit.exercises._harness import compare

    inf = float("-inf")
    assert compare(torch.tensor([inf, 1.0]), torch.tensor([inf, 1.0]), 1e-6, 1e-6) is None
    assert "inf" in compare(torch.tensor([inf, 1.0]), torch.tensor([0.0, 1.0]), 1e-6, 1e-6)
    assert "values differ" in compare(torch.tensor([inf, 2.0]), torch.tensor([inf, 1.0]), 1e-6, 1e-6)


# ---- wrong answers that look right: each checker must reject them ------------------------------

def _naive_masked_softmax(s, m):
    """Correct, in float32 internally, back in the scores' dtype."""
    x = s.float().masked_fill(~torch.broadcast_to(m, s.shape), float("-inf"))
    mx = x.amax(-1, keepdim=True)
    e = torch.exp(x - torch.where(torch.isfinite(mx), mx, torch.zeros_like(mx)))
    z = e.sum(-1, keepdim=True)
    return (e / torch.where(z > 0, z, torch.ones_like(z))).to(s.dtype)


def test_a_plain_correct_masked_softmax_passes() -> None:
    assert check_masked_softmax(_naive_masked_softmax, quiet=True)


def test_masked_softmax_wrong_answers_fail() -> None:
    wrong = {
        "float64 for every input": lambda s, m: _naive_masked_softmax(s.double(), m),
        "float32 for float16": lambda s, m: _naive_masked_softmax(s.float(), m),
        "over the wrong axis": lambda s, m: _naive_masked_softmax(s.mT, torch.broadcast_to(m, s.shape).mT).mT,
        "inverted mask polarity": lambda s, m: _naive_masked_softmax(s, ~torch.broadcast_to(m, s.shape)),
        "mask ignored": lambda s, m: _naive_masked_softmax(s, torch.ones_like(s, dtype=torch.bool)),
        "mask added as 0/1": lambda s, m: torch.softmax(s + m.to(s.dtype), -1),
    }
    for name, fn in wrong.items():
        assert not check_masked_softmax(fn, quiet=True), name


def _sdpa(q, k, v, m=None):
    s = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    return _naive_masked_softmax(s, torch.ones_like(s, dtype=torch.bool) if m is None else m) @ v


def test_scaled_dot_attention_wrong_answers_fail() -> None:
    assert check_scaled_dot_attention(_sdpa, quiet=True)
    wrong = {
        "float32 output for float16": lambda q, k, v, m=None: _sdpa(q.float(), k.float(), v.float(), m),
        "scaled by sqrt(dv)": lambda q, k, v, m=None: _sdpa(q * math.sqrt(q.shape[-1] / v.shape[-1]), k, v, m),
        "scaled by d": lambda q, k, v, m=None: _sdpa(q / math.sqrt(q.shape[-1]), k, v, m),
        "inverted mask": lambda q, k, v, m=None: _sdpa(q, k, v, None if m is None else ~m),
    }
    for name, fn in wrong.items():
        assert not check_scaled_dot_attention(fn, quiet=True), name

    def over_queries(q, k, v, m=None):
        s = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
        if m is not None:
            s = s.masked_fill(~m, float("-inf"))
        return torch.nan_to_num(torch.softmax(s, dim=-2)) @ v

    result = check_scaled_dot_attention(over_queries, quiet=True)
    assert not result


def test_compare_checks_dtype_and_device() -> None:
    from attnkit.exercises._harness import compare

    assert "dtype torch.float32, expected torch.float16" in compare(torch.ones(2), torch.ones(2).half(), 1, 1)
    assert "device meta" in compare(torch.ones(2, device="meta"), torch.ones(2), 1, 1)
    assert compare(torch.ones(2).half(), torch.ones(2).half(), 0, 0) is None
