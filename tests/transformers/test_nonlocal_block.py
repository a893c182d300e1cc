"""The non-local block against explicit loops, its three modes, the repeated-patches baselines, bad input and a
short training run."""

from __future__ import annotations

import math

import pytest
import torch

from attnkit.datasets.patterns import cells, repeated_patches
from attnkit.transformers.nonlocal_block import (
    Denoiser,
    NonLocalBlock,
    cell_nonlocal_means,
    fit_shrinkage,
    flatten_positions,
    nonlocal_attention,
    oracle_copy_average,
    shrink,
    train_denoiser,
    weight_on_copies,
)


def _loop_reference(theta: torch.Tensor, phi: torch.Tensor, g: torch.Tensor, mode: str) -> torch.Tensor:
    """y_i = sum_j f(x_i, x_j) g(x_j) / C(x), pixel by pixel, in float64."""
    B, _, H, W = theta.shape
    y = torch.zeros(B, g.shape[1], H, W, dtype=torch.float64)
    for b in range(B):
        for i in range(H * W):
            yi, xi = divmod(i, W)
            f = torch.zeros(H * W, dtype=torch.float64)
            for j in range(H * W):
                yj, xj = divmod(j, W)
                dot = float((theta[b, :, yi, xi] * phi[b, :, yj, xj]).sum())
                f[j] = dot if mode == "dot_product" else math.exp(dot)
            norm = H * W if mode == "dot_product" else float(f.sum())
            for j in range(H * W):
                yj, xj = divmod(j, W)
                y[b, :, yi, xi] += f[j] * g[b, :, yj, xj] / norm
    return y


@pytest.mark.parametrize("mode", ["embedded_gaussian", "dot_product"])
def test_matches_explicit_loop(mode: str) -> None:
    theta, phi, g = (torch.randn(2, c, 3, 4, dtype=torch.float64) for c in (3, 3, 5))
    y, w = nonlocal_attention(theta, phi, g, mode=mode)
    torch.testing.assert_close(y, _loop_reference(theta, phi, g, mode))
    assert w.shape == (2, 12, 12)
    if mode == "embedded_gaussian":
        torch.testing.assert_close(w.sum(-1), torch.ones(2, 12, dtype=torch.float64))


def test_block_is_identity_at_init_and_gaussian_mode_uses_the_input() -> None:
    x = torch.randn(2, 6, 4, 4)
    block = NonLocalBlock(6, 3)
    assert torch.equal(block(x), x)
    gauss = NonLocalBlock(6, mode="gaussian")
    gauss(x)
    q = flatten_positions(x)
    torch.testing.assert_close(gauss.last_weights, torch.softmax(q @ q.transpose(1, 2), -1))


def test_flatten_positions_is_row_major() -> None:
    x = torch.arange(2 * 3 * 4 * 5, dtype=torch.float32).reshape(2, 3, 4, 5)
    f = flatten_positions(x)
    assert f.shape == (2, 20, 3)
    assert torch.equal(f[1, 7], x[1, :, 1, 2])  # position 7 = row 1, column 2


def test_gradients_flow_to_every_parameter() -> None:
    block = NonLocalBlock(4, 2)
    torch.nn.init.normal_(block.W_z.weight)
    block(torch.randn(1, 4, 3, 3)).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in block.parameters())


def test_bad_input() -> None:
    t = torch.randn(1, 3, 4, 4)
    with pytest.raises(ValueError, match=r"theta must have shape \(B, C, H, W\)"):
        nonlocal_attention(t[0], t[0], t[0])
    with pytest.raises(ValueError, match="feature map"):
        nonlocal_attention(t[None], t[None], t[None])
    with pytest.raises(ValueError, match="theta and phi"):
        nonlocal_attention(t, torch.randn(1, 2, 4, 4), t)
    with pytest.raises(ValueError, match="g must share"):
        nonlocal_attention(t, t, torch.randn(1, 3, 4, 5))
    with pytest.raises(ValueError, match="mode"):
        nonlocal_attention(t, t, t, mode="concatenation")
    with pytest.raises(TypeError, match="theta"):
        nonlocal_attention(t.long(), t, t)
    with pytest.raises(ValueError, match=r"x must be \(B, 5, H, W\)"):
        NonLocalBlock(5)(t)
    with pytest.raises(ValueError, match="noisy"):
        Denoiser(4)(torch.randn(1, 2, 4, 4))
    with pytest.raises(ValueError, match="multiples of patch=4"):
        Denoiser(4)(torch.randn(1, 1, 6, 8))
    with pytest.raises(ValueError, match="same shape"):
        train_denoiser(Denoiser(4), t[:, :1], t[:, :1, :3], steps=1, progress=False)


def test_short_training_reduces_the_loss(one_thread: None) -> None:
    noisy, clean, _ = repeated_patches(64, grid=2, patch=4, motifs=2, noise=0.3, seed=0)
    torch.manual_seed(0)
    model = Denoiser(8, nonlocal_block=True)
    losses = train_denoiser(model, noisy, clean, steps=40, batch_size=16, lr=5e-3, progress=False)
    assert sum(losses[-5:]) / 5 < 0.7 * sum(losses[:5]) / 5
    assert model(noisy[:3]).shape == (3, 1, 8, 8) and model.block.last_weights.shape == (3, 4, 4)


# ---- the repeated-patches task and its baselines ----------------------------------------------


def test_oracle_averages_the_true_copies_by_a_loop() -> None:
    noisy, clean, groups = repeated_patches(3, grid=4, patch=2, motifs=4, noise=0.5, seed=1)
    out = cells(oracle_copy_average(noisy, groups, 2), 2)  # (3, 16, 4)
    x = cells(noisy, 2)
    for b in range(3):
        for i in range(16):
            copies = [j for j in range(16) if groups[b, j] == groups[b, i]]
            assert len(copies) == 4
            torch.testing.assert_close(out[b, i], x[b, copies].mean(0))
    # averaging 4 copies of independent noise divides its variance by 4
    assert ((oracle_copy_average(noisy, groups, 2) - clean) ** 2).mean() < 0.5 * ((noisy - clean) ** 2).mean()


def test_cell_nonlocal_means_is_a_gaussian_softmax_over_cells() -> None:
    noisy, _, _ = repeated_patches(2, grid=3, patch=3, motifs=3, noise=0.2, seed=2)
    x = cells(noisy, 3).double()
    d2 = ((x[:, :, None] - x[:, None]) ** 2).sum(-1)  # (2, 9, 9)
    w = torch.softmax(-d2 / 0.5, -1)
    torch.testing.assert_close(cells(cell_nonlocal_means(noisy.double(), 3, 0.5), 3), w @ x)


def test_shrinkage_fit_is_least_squares() -> None:
    noisy, clean, _ = repeated_patches(50, noise=0.3, seed=3)
    lam = fit_shrinkage(noisy, clean)
    best = ((shrink(noisy, lam) - clean) ** 2).mean()
    for other in (lam - 0.05, lam + 0.05):
        assert best < ((shrink(noisy, other) - clean) ** 2).mean()
    assert 0 < lam < 1


def test_weight_on_copies() -> None:
    _, _, groups = repeated_patches(2, grid=4, motifs=4, seed=4)
    uniform = torch.full((2, 16, 16), 1 / 16)
    on, share = weight_on_copies(uniform, groups)
    assert math.isclose(on, share) and math.isclose(share, 0.25)
    same = (groups[:, :, None] == groups[:, None, :]).float()
    assert math.isclose(weight_on_copies(same / same.sum(-1, keepdim=True), groups)[0], 1.0, rel_tol=1e-6)
