"""attnkit.transformers.sets: MAB against torch.nn.MultiheadAttention, permutation symmetries, padding, training."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from attnkit.datasets.sequences import set_max_task
from attnkit.masks import padding_mask
from attnkit.transformers.blocks import train_steps
from attnkit.transformers.sets import (
    ISAB,
    MAB,
    PMA,
    POOLS,
    SAB,
    SET_MODELS,
    DeepSets,
    SetTransformer,
    make_set_model,
    set_max_run,
)

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def test_mab_matches_the_formula_with_torch_attention() -> None:
    mab = MAB(8, 2).double()
    ref_attn = nn.MultiheadAttention(8, 2, batch_first=True).double()
    with torch.no_grad():
        a = mab.attn
        ref_attn.in_proj_weight.copy_(torch.cat([a.q_proj.weight, a.k_proj.weight, a.v_proj.weight]))
        ref_attn.in_proj_bias.copy_(torch.cat([a.q_proj.bias, a.k_proj.bias, a.v_proj.bias]))
        ref_attn.out_proj.load_state_dict(a.out_proj.state_dict())
    x, y = torch.randn(2, 3, 8, dtype=torch.float64), torch.randn(2, 5, 8, dtype=torch.float64)
    pad = torch.tensor([[True] * 5, [True, True, False, False, False]])
    att, w = ref_attn(x, y, y, key_padding_mask=~pad, average_attn_weights=False)
    h = mab.ln1(x + att)  # H = LN(X + MHA(X, Y, Y))
    ref = mab.ln2(h + mab.rff(h))  # LN(H + rFF(H))
    torch.testing.assert_close(mab(x, y, pad), ref)
    torch.testing.assert_close(mab.weights, w)


def _sets(seed: int, B: int = 2, N: int = 6, d: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(B, N, d, generator=g, dtype=torch.float64), torch.randperm(N, generator=g)


@given(seed=st.integers(0, 10_000))
def test_sab_and_isab_are_permutation_equivariant(seed: int) -> None:
    torch.manual_seed(seed)
    x, perm = _sets(seed)
    for block in (SAB(8, 2).double(), ISAB(8, 2, 3).double()):
        torch.testing.assert_close(block(x[:, perm]), block(x)[:, perm])


@given(seed=st.integers(0, 10_000))
def test_pma_and_set_transformer_are_permutation_invariant(seed: int) -> None:
    torch.manual_seed(seed)
    x, perm = _sets(seed)
    pma = PMA(8, 2, n_seeds=3).double()
    assert pma(x).shape == (2, 3, 8)
    torch.testing.assert_close(pma(x[:, perm]), pma(x))
    for model in (SetTransformer(8, 3, d_model=16, encoder="isab").double(),
                  SetTransformer(8, 3, d_model=16, encoder="sab").double(), DeepSets(8, 3).double()):
        torch.testing.assert_close(model(x[:, perm]), model(x))


@pytest.mark.parametrize("model", [SetTransformer(1, 2, d_model=16, n_inducing=3), SetTransformer(1, 2, encoder="sab"),
                                   *(DeepSets(1, 2, d_hidden=16, pool=p) for p in POOLS)])
def test_padding_elements_are_ignored(model: nn.Module) -> None:
    x = torch.rand(3, 7, 1)
    lengths = torch.tensor([7, 4, 2])
    pad = padding_mask(lengths, 7)
    x2 = x.clone()
    x2[~pad] = 100.0  # garbage in the padding
    torch.testing.assert_close(model(x, pad), model(x2, pad))
    # a set alone equals the same set padded inside a batch
    torch.testing.assert_close(model(x[1:2, :4]), model(x, pad)[1:2])


def test_deep_sets_poolings_by_formula() -> None:
    x = torch.randn(3, 6, 2, dtype=torch.float64)
    pad = padding_mask([6, 3, 1], 6)
    for pool in ("sum", "mean", "max"):
        torch.manual_seed(0)
        model = DeepSets(2, 1, d_hidden=8, pool=pool).double()
        h = model.phi(x)  # (B, N, D)
        rows = []
        for b, n in enumerate([6, 3, 1]):
            hb = h[b, :n]
            rows.append({"sum": hb.sum(0), "mean": hb.mean(0), "max": hb.amax(0)}[pool])
        torch.testing.assert_close(model(x, pad), model.rho(torch.stack(rows)))
    torch.manual_seed(0)
    model = DeepSets(2, 1, d_hidden=8, pool="attention", n_heads=2).double()
    torch.testing.assert_close(model(x, pad), model.rho(model.pma(model.phi(x), pad)[:, 0]))
    perm = torch.randperm(6)
    torch.testing.assert_close(model(x[:, perm]), model(x))
    with pytest.raises(ValueError, match="pool must be one of"):
        DeepSets(2, 1, pool="median")


def test_set_models_of_the_chapter() -> None:
    assert set(SET_MODELS) == {"Set Transformer (ISAB + PMA)", "Deep Sets, sum pooling", "Deep Sets, mean pooling",
                               "Deep Sets, max pooling", "Deep Sets, attention pooling (PMA)"}
    assert isinstance(make_set_model("Set Transformer (ISAB + PMA)"), SetTransformer)
    assert make_set_model("Deep Sets, max pooling").pool_kind == "max"
    with pytest.raises(ValueError, match="name must be one of"):
        make_set_model("Deep Sets")
    run = set_max_run("Deep Sets, max pooling", steps=30, seed=1)
    assert len(run["losses"]) == 30 and run["losses"][-1] < run["losses"][0] and 0 < run["mae"] < 0.5
    again = set_max_run("Deep Sets, max pooling", steps=30, seed=1)
    assert again["mae"] == run["mae"]  # seeded: the chapter and the record agree


def test_shapes() -> None:
    x = torch.randn(4, 9, 8)
    assert SAB(8, 2)(x).shape == (4, 9, 8)
    assert ISAB(8, 4, 5)(x).shape == (4, 9, 8)
    assert SetTransformer(8, 3)(x).shape == (4, 3)


def test_bad_input() -> None:
    with pytest.raises(ValueError, match=r"x must be \(B, N, 8\); got shape \(2, 3, 5\)"):
        SAB(8, 2)(torch.randn(2, 3, 5))
    with pytest.raises(TypeError, match="key_padding must be a bool tensor"):
        ISAB(8, 2, 2)(torch.randn(2, 3, 8), torch.ones(2, 3))
    with pytest.raises(ValueError, match=r"key_padding must be \(B, N\) = \(2, 3\)"):
        PMA(8, 2)(torch.randn(2, 3, 8), torch.ones(2, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="n_inducing must be an int >= 1"):
        ISAB(8, 2, 0)
    with pytest.raises(ValueError, match="encoder must be 'isab' or 'sab'"):
        SetTransformer(1, 1, encoder="rnn")
    with pytest.raises(ValueError, match="num_heads=3 must divide embed_dim=8"):
        SAB(8, 3)


def test_short_training_run_reduces_the_loss() -> None:
    model = SetTransformer(1, 1, d_model=16, n_heads=2, n_layers=1, n_inducing=4)
    x, lengths, y = set_max_task(256, seed=5)
    pad = padding_mask(lengths, x.shape[1])

    def loss(m: nn.Module, batch: tuple) -> torch.Tensor:
        xb, lb, yb = batch
        return nn.functional.mse_loss(m(xb, padding_mask(lb, xb.shape[1]))[:, 0], yb)

    with torch.no_grad():
        before = nn.functional.mse_loss(model(x, pad)[:, 0], y).item()
    train_steps(model, lambda s: set_max_task(32, seed=100 + s), loss, steps=40, lr=3e-3)
    with torch.no_grad():
        after = nn.functional.mse_loss(model(x, pad)[:, 0], y).item()
    assert after < 0.5 * before
