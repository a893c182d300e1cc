"""The Part I checkers pass the reference solutions and catch the usual mistakes, with the right case."""

from __future__ import annotations

import pytest
import torch

from attnkit.classic.cocktail import select_channel
from attnkit.classic.fast_weights import causal_linear_attention, fast_weight_programmer
from attnkit.classic.sigma_pi import sigma_pi_score
from attnkit.exercises._typed import dtype_problem, typed_case
from attnkit.exercises.early import check_attenuator, check_bilinear_score, check_fast_weights


def attenuator(q, k, c, T):  # the chapter's solution
    s = k @ q / T
    e = torch.exp(s - s.max())
    return (e / e.sum()) @ c


def test_check_attenuator_accepts_correct_answers():
    assert check_attenuator(attenuator, quiet=True)
    assert check_attenuator(lambda q, k, c, T: select_channel(q, k, c, temperature=T)[0], quiet=True)
    assert check_attenuator(lambda q, k, c, T: torch.softmax(k @ q / T, -1) @ c, quiet=True)
    # computing in float64 and casting back is fine
    assert check_attenuator(lambda q, k, c, T: attenuator(q.double(), k.double(), c.double(), T).to(q.dtype),
                            quiet=True)


def test_check_attenuator_rejects_the_usual_mistakes():
    times_T = check_attenuator(lambda q, k, c, T: torch.softmax(k @ q * T, -1) @ c, quiet=True)
    assert not times_T and times_T.failed_case == "low temperature 0.1" and times_T.n_passed == 1

    def no_max_shift(q, k, c, T):
        e = torch.exp(k @ q / T)
        return (e / e.sum()) @ c

    unstable = check_attenuator(no_max_shift, quiet=True)
    assert not unstable and "large scores" in unstable.failed_case

    def cosine(q, k, c, T):  # normalises the query (and keys): right only for unit vectors
        s = torch.nn.functional.normalize(k, dim=-1) @ torch.nn.functional.normalize(q, dim=0)
        return torch.softmax(s / T, -1) @ c

    res = check_attenuator(cosine, quiet=True)
    assert not res and "not unit-norm" in res.failed_case and "cosine" in res.message

    def unit_keys(q, k, c, T):  # normalises the keys only
        return torch.softmax(torch.nn.functional.normalize(k, dim=-1) @ q / T, -1) @ c

    res = check_attenuator(unit_keys, quiet=True)
    assert not res and res.failed_case == "keys of different norms"

    def float64_answer(q, k, c, T):
        return attenuator(q.double(), k.double(), c.double(), T)

    res = check_attenuator(float64_answer, quiet=True)
    assert not res and res.failed_case == "float32 inputs" and "dtype torch.float64" in res.message

    def float32_answer(q, k, c, T):  # right in float32, but float16 inputs come back float32
        return attenuator(q.float(), k.float(), c.float(), T)

    res = check_attenuator(float32_answer, quiet=True)
    assert not res and res.failed_case == "temperature 1"  # float64 in, float32 out is wrong too

    def half_to_float(q, k, c, T):
        out = attenuator(q.float(), k.float(), c.float(), T)
        return out if q.dtype == torch.float16 else out.to(q.dtype)

    res = check_attenuator(half_to_float, quiet=True)
    assert not res and res.failed_case == "float16 inputs" and "expected torch.float16" in res.message


@pytest.mark.filterwarnings("ignore:The use of `x.T` on tensors:UserWarning")  # the bug under test
def test_check_bilinear_score(capsys):
    assert check_bilinear_score(sigma_pi_score, quiet=True)
    assert check_bilinear_score(lambda q, k, W: torch.einsum("...ia,ab,...jb->...ij", q, W, k), quiet=True)
    assert check_bilinear_score(lambda q, k, W: q @ W @ k.transpose(-2, -1), quiet=True)
    wrong_W = check_bilinear_score(lambda q, k, W: q @ W.T @ k.T, quiet=True)
    assert not wrong_W and wrong_W.failed_case == "square W"
    batch_bug = check_bilinear_score(lambda q, k, W: q @ W @ k.T)
    assert not batch_bug and batch_bug.failed_case == "a batch of 2"
    assert "check_bilinear_score" in capsys.readouterr().out
    doubled = check_bilinear_score(lambda q, k, W: (q.double() @ W.double() @ k.double().transpose(-2, -1)),
                                   quiet=True)
    assert not doubled and doubled.failed_case == "float32 inputs"
    wrong_axis = check_bilinear_score(lambda q, k, W: (k @ W.T @ q.transpose(-2, -1)), quiet=True)
    assert not wrong_axis and wrong_axis.failed_case == "square W"  # (Lk, Lq): keys on the rows


def read_before_write(q, k, v):
    W = torch.zeros(*q.shape[:-2], v.shape[-1], q.shape[-1], dtype=q.dtype)
    ys = []
    for t in range(q.shape[-2]):
        ys.append((W @ q[..., t, :, None])[..., 0])
        W = W + v[..., t, :, None] * k[..., t, None, :]
    return torch.stack(ys, -2)


def test_check_fast_weights():
    assert check_fast_weights(fast_weight_programmer, quiet=True)
    assert check_fast_weights(causal_linear_attention, quiet=True)

    res = check_fast_weights(read_before_write, quiet=True)
    assert not res and res.failed_case == "a single step" and "write" in res.message

    def softmaxed(q, k, v):  # normalises the scores: softmax attention, not fast weights
        L = q.shape[-2]
        s = (q @ k.transpose(-2, -1)).masked_fill(~torch.ones(L, L, dtype=torch.bool).tril(), float("-inf"))
        return torch.softmax(s, -1) @ v

    res = check_fast_weights(softmaxed, quiet=True)
    assert not res and res.failed_case == "a single step"

    def no_mask(q, k, v):  # every step reads the whole sequence, future included
        return (q @ k.transpose(-2, -1)) @ v

    res = check_fast_weights(no_mask, quiet=True)
    assert not res and res.failed_case == "six steps"

    def float64_state(q, k, v):  # accumulates W in float64 and forgets to cast back
        return fast_weight_programmer(q.double(), k.double(), v.double())

    res = check_fast_weights(float64_state, quiet=True)
    assert not res and res.failed_case == "float32 inputs"


def test_typed_case_rejects_a_wrong_dtype_before_comparing_values():
    x = torch.ones(3, dtype=torch.float16)
    assert dtype_problem(x, x) is None
    assert "expected torch.float16" in dtype_problem(x.double(), x)
    assert dtype_problem("not a tensor", x) is None  # compare reports that one
    case = typed_case("c", (x,), x, atol=1e-3)
    assert case.check(x.clone()) is None
    assert "dtype torch.float32" in case.check(x.float())
    assert "values differ" in case.check(2 * x)
    assert "torch.Tensor" in case.check([1, 1, 1])
