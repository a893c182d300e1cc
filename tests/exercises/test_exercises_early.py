"""The Part I checkers pass the reference solutions and catch the usual mistakes."""

from __future__ import annotations

import pytest
import torch

from attnkit.classic.cocktail import select_channel
from attnkit.classic.fast_weights import causal_linear_attention, fast_weight_programmer
from attnkit.classic.sigma_pi import sigma_pi_score
from attnkit.exercises.early import check_attenuator, check_bilinear_score, check_fast_weights


def test_check_attenuator():
    assert check_attenuator(lambda q, k, c, T: select_channel(q, k, c, temperature=T)[0], quiet=True)
    times_T = check_attenuator(lambda q, k, c, T: torch.softmax(k @ q * T, -1) @ c, quiet=True)
    assert not times_T and times_T.failed_case == "low temperature 0.1" and times_T.n_passed == 1

    def no_max_shift(q, k, c, T):
        e = torch.exp(k @ q / T)
        return (e / e.sum()) @ c

    unstable = check_attenuator(no_max_shift, quiet=True)
    assert not unstable and "large scores" in unstable.failed_case


@pytest.mark.filterwarnings("ignore:The use of `x.T` on tensors:UserWarning")  # the bug under test
def test_check_bilinear_score(capsys):
    assert check_bilinear_score(sigma_pi_score, quiet=True)
    assert check_bilinear_score(lambda q, k, W: torch.einsum("...ia,ab,...jb->...ij", q, W, k), quiet=True)
    wrong_W = check_bilinear_score(lambda q, k, W: q @ W.T @ k.T, quiet=True)
    assert not wrong_W and wrong_W.failed_case == "square W"
    batch_bug = check_bilinear_score(lambda q, k, W: q @ W @ k.T)
    assert not batch_bug and batch_bug.failed_case == "a batch of 2"
    assert "check_bilinear_score" in capsys.readouterr().out


def test_check_fast_weights():
    assert check_fast_weights(fast_weight_programmer, quiet=True)
    assert check_fast_weights(causal_linear_attention, quiet=True)

    def read_before_write(q, k, v):
        W = torch.zeros(*q.shape[:-2], v.shape[-1], q.shape[-1], dtype=q.dtype)
        ys = []
        for t in range(q.shape[-2]):
            ys.append((W @ q[..., t, :, None])[..., 0])
            W = W + v[..., t, :, None] * k[..., t, None, :]
        return torch.stack(ys, -2)

    res = check_fast_weights(read_before_write, quiet=True)
    assert not res and res.failed_case == "a single step" and "write" in res.message
