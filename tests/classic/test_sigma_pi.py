"""Tests for attnkit.classic.sigma_pi: sigma-pi units as bilinear scores, XOR, gating."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from attnkit.classic.sigma_pi import (
    BOOLEAN_INPUTS,
    best_linear_accuracy,
    bilinear_terms,
    boolean_functions,
    fit_sigma_pi,
    gated_sum,
    higher_order_terms,
    linear_threshold_unit,
    parity_data,
    sigma_pi,
    sigma_pi_score,
    sigma_pi_unit,
    train_units,
)
from attnkit.scores import general_score

pytestmark = pytest.mark.usefixtures("one_thread")


def test_sigma_pi_matches_a_python_loop():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 5, generator=g, dtype=torch.float64)
    terms = [(), (0,), (1, 2), (0, 3, 4), (2, 2)]
    w = torch.randn(5, generator=g, dtype=torch.float64)
    got = sigma_pi(x, terms, w, bias=0.5)
    for n in range(3):
        ref = 0.5
        for wi, term in zip(w.tolist(), terms, strict=True):
            ref += wi * float(np.prod([x[n, j].item() for j in term]))
        assert got[n].item() == pytest.approx(ref, abs=1e-12)


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 4), st.integers(1, 4), st.integers(1, 5), st.integers(1, 5), st.integers(0, 10_000))
def test_one_sigma_pi_unit_per_pair_is_the_bilinear_score(d, dk, Lq, Lk, seed):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(Lq, d, generator=g, dtype=torch.float64)
    k = torch.randn(Lk, dk, generator=g, dtype=torch.float64)
    W = torch.randn(d, dk, generator=g, dtype=torch.float64)
    x = torch.cat([q[:, None, :].expand(Lq, Lk, d), k[None].expand(Lq, Lk, dk)], dim=-1)  # (Lq, Lk, d + dk)
    via_units = sigma_pi(x, bilinear_terms(d, dk), W.flatten())
    torch.testing.assert_close(sigma_pi_score(q, k, W), via_units, atol=1e-12, rtol=1e-12)
    torch.testing.assert_close(sigma_pi_score(q, k, W), general_score(q, k, W))
    np.testing.assert_allclose(sigma_pi_score(q, k, W).numpy(), q.numpy() @ W.numpy() @ k.numpy().T, atol=1e-12)


def test_gated_sum_is_a_third_order_sigma_pi_layer():
    g = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn(2, n, c, generator=g, dtype=torch.float64) for n, c in ((3, 4), (5, 2), (5, 3)))
    W = torch.randn(4, 2, generator=g, dtype=torch.float64)
    ref = torch.einsum("ab,zia,zjb,zjc->zic", W, q, k, v)  # sum over a, b, j of W q k v
    torch.testing.assert_close(gated_sum(q, k, v, W), ref)


def test_sigma_pi_unit_is_bias_plus_linear_plus_product():
    W = torch.tensor([[0.3, -1.0], [2.0, 5.0]])
    x1, x2 = BOOLEAN_INPUTS[:, 0], BOOLEAN_INPUTS[:, 1]
    torch.testing.assert_close(sigma_pi_unit(BOOLEAN_INPUTS, W), 0.3 - x2 + 2 * x1 + 5 * x1 * x2)
    # a batch of units
    Ws = torch.stack([W, -W])
    torch.testing.assert_close(sigma_pi_unit(BOOLEAN_INPUTS, Ws)[1], -(0.3 - x2 + 2 * x1 + 5 * x1 * x2))
    # hand-set XOR: x1 + x2 - 2 x1 x2 - 0.5
    xor = torch.tensor([[-0.5, 1.0], [1.0, -2.0]])
    assert (sigma_pi_unit(BOOLEAN_INPUTS, xor) > 0).float().tolist() == [0.0, 1.0, 1.0, 0.0]


def test_boolean_functions_truth_tables():
    names, tables = boolean_functions()
    assert len(names) == len(set(names)) == 16
    x1, x2 = BOOLEAN_INPUTS[:, 0], BOOLEAN_INPUTS[:, 1]
    expect = {"AND": x1 * x2, "OR": torch.maximum(x1, x2), "XOR": (x1 != x2).float(), "XNOR": (x1 == x2).float(),
              "x1": x1, "NOT x2": 1 - x2, "x1 => x2": torch.maximum(1 - x1, x2)}
    for name, table in expect.items():
        assert torch.equal(tables[names.index(name)], table), name


def test_training_sigma_pi_learns_all_16_functions_linear_misses_xor_and_xnor():
    names, tables = boolean_functions()
    sp = train_units(tables, "sigma_pi", steps=100)
    lin = train_units(tables, "linear", steps=100)
    assert (sp.accuracy == 1).all()
    assert sp.losses[-1] < 0.5 * sp.losses[0]
    assert lin.losses[-1] < lin.losses[0]
    missed = {names[i] for i in range(16) if lin.accuracy[i] < 1}
    assert missed == {"XOR", "XNOR"}
    assert all(lin.accuracy[names.index(n)] <= 0.75 for n in missed)  # never above the best possible
    assert torch.equal(sp.predict(BOOLEAN_INPUTS), tables)


def test_best_linear_accuracy_is_three_quarters_on_xor_only():
    names, tables = boolean_functions()
    best = best_linear_accuracy(tables)
    for name, acc in zip(names, best.tolist(), strict=True):
        assert acc == (0.75 if name in ("XOR", "XNOR") else 1.0), name
    # an independent brute force: every (w1, w2, b) in {-2..2} x {-2..2} x {-2.5..2.5}
    xor = tables[names.index("XOR")]
    best_xor = 0.0
    for w1, w2, b in itertools.product(range(-2, 3), range(-2, 3), np.arange(-2.5, 3)):
        pred = (linear_threshold_unit(BOOLEAN_INPUTS, torch.tensor([w1, w2], dtype=torch.float32),
                                      torch.tensor(float(b))) > 0).float()
        best_xor = max(best_xor, float((pred == xor).float().mean()))
    assert best_xor == 0.75


def test_higher_order_terms_and_parity_data():
    assert higher_order_terms(3, 2) == [(), (0,), (1,), (2,), (0, 1), (0, 2), (1, 2)]
    assert len(higher_order_terms(5, 5)) == 2**5
    assert higher_order_terms(2, 0) == [()]
    x, y = parity_data(3)
    assert x.shape == (8, 3) and len({tuple(r) for r in x.tolist()}) == 8
    assert torch.equal(y, torch.tensor([(a + b + c) % 2 for a, b, c in x.int().tolist()], dtype=torch.float32))


def test_parity_needs_a_unit_of_full_order():
    # order 3 represents 3-bit parity exactly: 4 x1x2x3 - 2(x1x2 + x1x3 + x2x3) + (x1 + x2 + x3) - 0.5 (a sign
    # of the Moebius expansion), and gradient descent finds such weights
    x, y = parity_data(3)
    terms3 = higher_order_terms(3, 3)
    w = torch.tensor([-0.5, 1, 1, 1, -2, -2, -2, 4])
    assert torch.equal((sigma_pi(x, terms3, w) > 0).float(), y)
    w3, acc3 = fit_sigma_pi(x, y, terms3, steps=300, seed=0, restarts=3)
    assert w3.shape == (3, 8) and (acc3 == 1.0).all()
    # order 2 cannot (Minsky and Papert): no restart reaches 8 of 8, and no weights on a grid do either
    _, acc2 = fit_sigma_pi(x, y, higher_order_terms(3, 2), steps=300, seed=1, restarts=4)
    assert (acc2 < 1.0).all()
    # restarts are independent units: a restart trained next to a copy of itself ends where it ends alone
    w_pair, _ = fit_sigma_pi(x.repeat(2, 1), y.repeat(2), terms3, steps=40, seed=7, restarts=2)
    w_solo, _ = fit_sigma_pi(x, y, terms3, steps=40, seed=7, restarts=2)
    torch.testing.assert_close(w_pair, w_solo)  # the data duplicated: same mean loss, same steps
    assert not torch.allclose(w_solo[0], w_solo[1])
    grid = torch.tensor([-2.0, -1.0, -0.5, 0.5, 1.0, 2.0])
    feats = torch.stack([sigma_pi(x, [t], torch.ones(1)) for t in higher_order_terms(3, 2)], -1)  # (8, 7)
    ws = torch.cartesian_prod(*([grid] * 7))  # (6^7, 7) candidate weights
    correct = ((feats @ ws.T > 0).float() == y[:, None]).all(0)
    assert not correct.any()


def test_fit_sigma_pi_learns_xor_with_the_product_term_only():
    x, y = BOOLEAN_INPUTS, torch.tensor([0.0, 1.0, 1.0, 0.0])
    w, acc = fit_sigma_pi(x, y, higher_order_terms(2, 2), steps=300)
    assert acc.item() == 1.0 and w.shape == (1, 4)
    _, acc1 = fit_sigma_pi(x, y, higher_order_terms(2, 1), steps=300, restarts=3)
    assert (acc1 <= 0.75).all()


def test_bad_inputs_raise_clear_errors():
    x = torch.randn(2, 3)
    with pytest.raises(ValueError, match="order"):
        higher_order_terms(3, 4)
    with pytest.raises(ValueError, match="n must be"):
        higher_order_terms(0, 0)
    with pytest.raises(ValueError, match="n must be"):
        parity_data(0)
    with pytest.raises(ValueError, match="one entry per row"):
        fit_sigma_pi(torch.ones(4, 2), torch.ones(3), [(0,)])
    with pytest.raises(ValueError, match="restarts"):
        fit_sigma_pi(torch.ones(4, 2), torch.ones(4), [(0,)], restarts=0)
    with pytest.raises(ValueError, match="weights"):
        sigma_pi(x, [(0,), (1,)], torch.ones(3))
    with pytest.raises(ValueError, match="term"):
        sigma_pi(x, [(0, 7)], torch.ones(1))
    with pytest.raises(TypeError, match="x"):
        sigma_pi(torch.ones(2, 3, dtype=torch.long), [(0,)], torch.ones(1))
    with pytest.raises(ValueError, match="W of shape"):
        sigma_pi_score(torch.randn(3, 4), torch.randn(5, 2), torch.randn(2, 4))
    with pytest.raises(ValueError, match=r"x must be \(N, 2\)"):
        sigma_pi_unit(torch.randn(4, 3), torch.randn(2, 2))
    with pytest.raises(ValueError, match="kind"):
        train_units(boolean_functions()[1], "cubic")
    with pytest.raises(ValueError, match="targets"):
        train_units(torch.ones(3, 5), "linear")
    with pytest.raises(ValueError, match="d and dk"):
        bilinear_terms(0, 2)
