"""GAT against a float64 loop over edges, the uniform baseline, karate club data and training."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from attnkit.transformers.gat import (
    GATLayer,
    GraphNet,
    UniformGraphLayer,
    gat_attention,
    karate_club,
    train_node_classifier,
)


def _random_graph(n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    adj = torch.rand(n, n, generator=g) > 0.6
    return adj | adj.T | torch.eye(n, dtype=torch.bool)


def _loop_gat(h, adj, W, a_src, a_dst):
    H, _, Fh = W.shape
    N = h.shape[0]
    out = torch.zeros(H, N, Fh, dtype=torch.float64)
    alpha = torch.zeros(H, N, N, dtype=torch.float64)
    for k in range(H):
        Wh = h @ W[k]
        for i in range(N):
            nbrs = [j for j in range(N) if adj[i, j]]
            e = torch.stack([torch.nn.functional.leaky_relu(a_src[k] @ Wh[i] + a_dst[k] @ Wh[j], 0.2) for j in nbrs])
            a = torch.exp(e - e.max()) / torch.exp(e - e.max()).sum()
            for a_ij, j in zip(a, nbrs, strict=True):
                alpha[k, i, j] = a_ij
                out[k, i] += a_ij * Wh[j]
    return out, alpha


@given(n=st.integers(2, 7), heads=st.integers(1, 3), seed=st.integers(0, 1000))
def test_gat_matches_loop(n: int, heads: int, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(n, 4, generator=g, dtype=torch.float64)
    W = torch.randn(heads, 4, 3, generator=g, dtype=torch.float64)
    a_src, a_dst = (torch.randn(heads, 3, generator=g, dtype=torch.float64) for _ in range(2))
    adj = _random_graph(n, seed)
    out, alpha = gat_attention(h, adj, W, a_src, a_dst)
    ref_out, ref_alpha = _loop_gat(h, adj, W, a_src, a_dst)
    torch.testing.assert_close(out, ref_out)
    torch.testing.assert_close(alpha, ref_alpha)
    assert (alpha[:, ~adj] == 0).all()


def test_uniform_layer_is_neighbour_mean() -> None:
    adj = _random_graph(6, 1)
    layer = UniformGraphLayer(4, 3).double()
    h = torch.randn(6, 4, dtype=torch.float64)
    Wh = layer.lin(h)
    expected = (adj.double() @ Wh) / adj.double().sum(-1, keepdim=True)
    torch.testing.assert_close(layer(h, adj), expected)


def test_layer_shapes_concat_and_mean() -> None:
    adj = _random_graph(5, 2)
    h = torch.randn(5, 6)
    assert GATLayer(6, 4, heads=3, concat=True)(h, adj).shape == (5, 12)
    layer = GATLayer(6, 4, heads=3, concat=False)
    assert layer(h, adj).shape == (5, 4)
    assert layer.last_alpha.shape == (3, 5, 5)
    torch.testing.assert_close(layer.last_alpha.sum(-1), torch.ones(3, 5))


def test_karate_club_data() -> None:
    data = karate_club(n_labelled=3, seed=1)
    assert data["adj"].shape == (34, 34) and torch.equal(data["adj"], data["adj"].T)
    assert int(data["adj"].sum()) == 2 * 78 + 34
    assert data["train"][0] and data["train"][33] and int(data["train"].sum()) == 6
    assert torch.equal(data["test"], ~data["train"])
    assert data["labels"][0] == 0 and data["labels"][33] == 1


def test_bad_input() -> None:
    h, adj = torch.randn(4, 3), _random_graph(4, 0)
    W, a = torch.randn(2, 3, 5), torch.randn(2, 5)
    with pytest.raises(TypeError, match="adj must be bool"):
        gat_attention(h, adj.float(), W, a, a)
    with pytest.raises(ValueError, match="square"):
        gat_attention(h, adj[:, :3], W, a, a)
    with pytest.raises(ValueError, match="4 rows"):
        gat_attention(h, _random_graph(5, 0), W, a, a)
    with pytest.raises(ValueError, match=r"W must be \(H, F=3, Fh\)"):
        gat_attention(h, adj, torch.randn(2, 4, 5), a, a)
    with pytest.raises(ValueError, match="a_src must be"):
        gat_attention(h, adj, W, torch.randn(2, 4), a)
    with pytest.raises(ValueError, match="kind"):
        GraphNet(3, 4, 2, kind="gcn2")


@pytest.mark.parametrize("kind", ["gat", "uniform"])
def test_short_training_reduces_the_loss(kind: str, one_thread: None) -> None:
    torch.manual_seed(0)
    data = karate_club(2, seed=0)
    res = train_node_classifier(GraphNet(34, 4, 2, kind=kind, heads=2), data, epochs=60, progress=False)
    assert res["losses"][-1] < 0.5 * res["losses"][0]
    assert res["train_acc"] == 1.0


def test_gat_checker_accepts_masked_and_rejects_unmasked() -> None:
    from attnkit.exercises.everywhere import check_gat_coefficients

    def score(Wh, a_src, a_dst):
        return torch.nn.functional.leaky_relu((Wh @ a_src)[:, None] + (Wh @ a_dst)[None, :], 0.2)

    def good(Wh, adj, a_src, a_dst):
        return torch.softmax(score(Wh, a_src, a_dst).masked_fill(~adj, float("-inf")), -1)

    def unmasked(Wh, adj, a_src, a_dst):
        return torch.softmax(score(Wh, a_src, a_dst), -1)

    def relu(Wh, adj, a_src, a_dst):
        s = torch.relu((Wh @ a_src)[:, None] + (Wh @ a_dst)[None, :])
        return torch.softmax(s.masked_fill(~adj, float("-inf")), -1)

    assert check_gat_coefficients(good, quiet=True)
    assert not check_gat_coefficients(unmasked, quiet=True)
    assert not check_gat_coefficients(relu, quiet=True)
