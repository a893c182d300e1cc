"""The distributed chapter's checkers accept correct answers and reject the plausible wrong ones."""

from __future__ import annotations

import torch

from attnkit.distributed.merge import merge_partials
from attnkit.exercises.distributed import check_lse_merge, check_zigzag_shard


def good_merge(o_a, lse_a, o_b, lse_b):
    lse = torch.logaddexp(lse_a, lse_b)
    safe = torch.where(torch.isfinite(lse), lse, torch.zeros_like(lse))
    return (torch.exp(lse_a - safe)[..., None] * o_a + torch.exp(lse_b - safe)[..., None] * o_b), lse


def max_trick_merge(o_a, lse_a, o_b, lse_b):  # another correct form: subtract the larger lse
    m = torch.maximum(lse_a, lse_b)
    m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))
    w_a, w_b = torch.exp(lse_a - m), torch.exp(lse_b - m)
    z = w_a + w_b
    lse = m + torch.log(z)
    z = torch.where(z > 0, z, torch.ones_like(z))
    return (w_a[..., None] * o_a + w_b[..., None] * o_b) / z[..., None], lse


def average(o_a, lse_a, o_b, lse_b):
    return (o_a + o_b) / 2, torch.logaddexp(lse_a, lse_b)


def unnormalised(o_a, lse_a, o_b, lse_b):  # weights e^{lse} but never divided by the total
    return torch.exp(lse_a)[..., None] * o_a + torch.exp(lse_b)[..., None] * o_b, torch.logaddexp(lse_a, lse_b)


def naive_exp(o_a, lse_a, o_b, lse_b):  # right maths, but exp(lse) overflows
    ea, eb = torch.exp(lse_a), torch.exp(lse_b)
    z = ea + eb
    return (ea[..., None] * o_a + eb[..., None] * o_b) / z[..., None], torch.log(z)


def wrong_axis(o_a, lse_a, o_b, lse_b):  # weights broadcast against dv instead of the query rows
    lse = torch.logaddexp(lse_a, lse_b)
    safe = torch.where(torch.isfinite(lse), lse, torch.zeros_like(lse))
    w_a, w_b = torch.exp(lse_a - safe), torch.exp(lse_b - safe)
    if o_a.shape[-1] != w_a.shape[-1]:
        return good_merge(o_a, lse_a, o_b, lse_b)
    return w_a[..., None, :] * o_a + w_b[..., None, :] * o_b, lse


def nan_on_empty(o_a, lse_a, o_b, lse_b):  # no guard for lse = -inf in both blocks
    lse = torch.logaddexp(lse_a, lse_b)
    return torch.exp(lse_a - lse)[..., None] * o_a + torch.exp(lse_b - lse)[..., None] * o_b, lse


def max_as_lse(o_a, lse_a, o_b, lse_b):  # the output is right, the returned lse is only the max
    o, _ = good_merge(o_a, lse_a, o_b, lse_b)
    return o, torch.maximum(lse_a, lse_b)


def in_float64(o_a, lse_a, o_b, lse_b):  # dodges the float32 overflow by computing (and returning) float64
    return naive_exp(o_a.double(), lse_a.double(), o_b.double(), lse_b.double())


def test_lse_merge_checker_accepts_correct_answers() -> None:
    for fn in (good_merge, max_trick_merge, merge_partials):
        result = check_lse_merge(fn, quiet=True)
        assert result, result.message


def test_lse_merge_checker_rejects_plausible_mistakes() -> None:
    expected = {average: "two halves of the keys", unnormalised: "two halves of the keys",
                naive_exp: "scores of about 200", wrong_axis: "heads and a batch, Lq = dv",
                nan_on_empty: "two empty blocks", max_as_lse: "two halves of the keys",
                in_float64: "scores of about 200"}
    for fn, case in expected.items():
        result = check_lse_merge(fn, quiet=True)
        assert not result and result.failed_case == case, (fn.__name__, result.failed_case, result.message)


def test_lse_merge_checker_reports_the_case_and_a_hint(capsys) -> None:
    check_lse_merge(average)
    out = capsys.readouterr().out
    assert "✗ check_lse_merge" in out and "hint:" in out


def good_zigzag(x, P, rank):
    chunks = x.chunk(2 * P, dim=-2)
    return torch.cat([chunks[rank], chunks[2 * P - 1 - rank]], dim=-2)


def contiguous(x, P, rank):
    return x.chunk(P, dim=-2)[rank]


def striped(x, P, rank):
    return x[..., rank::P, :]


def off_by_one(x, P, rank):  # mirror chunk 2P - rank (wraps for rank 0)
    chunks = x.chunk(2 * P, dim=-2)
    return torch.cat([chunks[rank], chunks[(2 * P - rank) % (2 * P)]], dim=-2)


def mirror_first(x, P, rank):
    chunks = x.chunk(2 * P, dim=-2)
    return torch.cat([chunks[2 * P - 1 - rank], chunks[rank]], dim=-2)


def wrong_dim(x, P, rank):
    chunks = x.chunk(2 * P, dim=0)
    return torch.cat([chunks[rank], chunks[2 * P - 1 - rank]], dim=0)


def test_zigzag_checker() -> None:
    assert check_zigzag_shard(good_zigzag, quiet=True)
    for fn in (contiguous, striped, off_by_one, mirror_first, wrong_dim):
        result = check_zigzag_shard(fn, quiet=True)
        assert not result, fn.__name__
    assert check_zigzag_shard(contiguous, quiet=True).failed_case == "N = 8, P = 2, rank 0"
    assert check_zigzag_shard(off_by_one, quiet=True).failed_case == "N = 8, P = 2, rank 0"
