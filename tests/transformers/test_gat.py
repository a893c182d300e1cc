"""GAT against a float64 loop over edges and PyTorch Geometric's GATConv (copied weights), the uniform
baseline, karate club data and training."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch_geometric.nn import GATConv  # a test dependency (requirements.txt): an independent GAT

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
            e = torch.stack([torch.nn.functional.leaky_relu(a_dst[k] @ Wh[i] + a_src[k] @ Wh[j], 0.2) for j in nbrs])
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


def _edge_index(adj: torch.Tensor) -> torch.Tensor:
    # ours: adj[i, j] = True when j sends to i; PyG: edge_index = [sources j, destinations i], no self-loops
    dst, src = (adj & ~torch.eye(len(adj), dtype=torch.bool)).nonzero().T
    return torch.stack([src, dst])


def _copy_to_pyg(ours: GATLayer, theirs: GATConv) -> None:
    H, F_in, Fh = ours.W.shape
    with torch.no_grad():
        theirs.lin.weight.copy_(ours.W.transpose(1, 2).reshape(H * Fh, F_in))  # (H*Fh, F): head-major rows
        theirs.att_src.copy_(ours.a_src[None])  # (1, H, Fh): the neighbour j's half of a
        theirs.att_dst.copy_(ours.a_dst[None])  # (1, H, Fh): the attending node i's half of a
        theirs.bias.copy_(ours.bias)


@pytest.mark.parametrize(("heads", "concat"), [(1, True), (3, True), (4, False)])
def test_gat_layer_matches_pyg_gatconv(heads: int, concat: bool) -> None:
    n, F_in, Fh = 9, 5, 4
    adj = _random_graph(n, heads)
    ours = GATLayer(F_in, Fh, heads, concat=concat).double()
    with torch.no_grad():
        ours.bias.normal_()  # a non-zero bias, so the copy is checked too
    theirs = GATConv(F_in, Fh, heads=heads, concat=concat, negative_slope=0.2, dropout=0.0,
                     add_self_loops=True).double()
    _copy_to_pyg(ours, theirs)
    h = torch.randn(n, F_in, dtype=torch.float64)
    ei = _edge_index(adj)
    out, (ei_full, alpha) = theirs(h, ei, return_attention_weights=True)  # alpha: (E, H) per edge (src, dst)
    torch.testing.assert_close(ours(h, adj), out)
    dense = torch.zeros(heads, n, n, dtype=torch.float64)
    dense[:, ei_full[1], ei_full[0]] = alpha.T  # coefficient of source j in destination i's softmax
    torch.testing.assert_close(ours.last_alpha, dense)


def test_gat_names_follow_pyg_a_dst_is_the_attending_node() -> None:
    # a_src = 0: the score is a_dst . Wh_i, constant over the neighbours j of i -> uniform rows
    adj = _random_graph(6, 3)
    layer = GATLayer(4, 3, heads=2).double()
    with torch.no_grad():
        layer.a_src.zero_()
    layer(torch.randn(6, 4, dtype=torch.float64), adj)
    torch.testing.assert_close(layer.last_alpha, (adj / adj.sum(-1, keepdim=True)).double().expand(2, 6, 6))


def test_attention_dropout_in_training_only() -> None:
    adj, h = torch.ones(8, 8, dtype=torch.bool), torch.randn(8, 5)
    layer = GATLayer(5, 4, heads=2, attn_dropout=0.6)
    layer.eval()
    torch.testing.assert_close(layer(h, adj), layer(h, adj))
    torch.manual_seed(1)
    layer.train()
    a, b = layer(h, adj), layer(h, adj)
    assert not torch.allclose(a, b)  # a random subset of the neighbours each time
    layer.attn_dropout = 0.0
    torch.testing.assert_close(layer(h, adj), layer.eval()(h, adj))


def test_glorot_initialisation_like_pyg() -> None:
    torch.manual_seed(0)
    F_in, Fh, H = 300, 8, 8
    layer = GATLayer(F_in, Fh, H)
    expected = (2.0 / (F_in + H * Fh)) ** 0.5  # Glorot std of the (F, H*Fh) linear map
    assert abs(layer.W.std().item() / expected - 1) < 0.05
    pyg = GATConv(F_in, Fh, heads=H)
    assert abs(layer.W.std().item() / pyg.lin.weight.std().item() - 1) < 0.05
    assert abs(layer.a_src.std().item() / pyg.att_src.std().item() - 1) < 0.35  # 64 numbers each


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
    res = train_node_classifier(GraphNet(34, 4, 2, kind=kind, heads=2, dropout=0.0, attn_dropout=0.0), data,
                                epochs=60, progress=False)
    assert res["losses"][-1] < 0.5 * res["losses"][0]
    assert res["train_acc"] == 1.0


def test_gat_checker_accepts_masked_and_rejects_unmasked() -> None:
    from attnkit.exercises.everywhere import check_gat_coefficients

    def score(Wh, a_src, a_dst):  # a_dst on the attending node i (rows), a_src on the neighbour j
        return torch.nn.functional.leaky_relu((Wh @ a_dst)[:, None] + (Wh @ a_src)[None, :], 0.2)

    def good(Wh, adj, a_src, a_dst):
        return torch.softmax(score(Wh, a_src, a_dst).masked_fill(~adj, float("-inf")), -1)

    def unmasked(Wh, adj, a_src, a_dst):
        return torch.softmax(score(Wh, a_src, a_dst), -1)

    def relu(Wh, adj, a_src, a_dst):
        s = torch.relu((Wh @ a_dst)[:, None] + (Wh @ a_src)[None, :])
        return torch.softmax(s.masked_fill(~adj, float("-inf")), -1)

    def swapped(Wh, adj, a_src, a_dst):  # a_src on the attending node: the names reversed
        return good(Wh, adj, a_dst, a_src)

    def columns(Wh, adj, a_src, a_dst):  # softmax over the wrong axis
        return torch.softmax(score(Wh, a_src, a_dst).masked_fill(~adj, float("-inf")), 0)

    assert check_gat_coefficients(good, quiet=True)
    assert not check_gat_coefficients(unmasked, quiet=True)
    assert not check_gat_coefficients(relu, quiet=True)
    assert not check_gat_coefficients(swapped, quiet=True)
    assert not check_gat_coefficients(columns, quiet=True)


def test_karate_run_is_seeded_by_the_split(one_thread: None) -> None:
    from attnkit.transformers.gat import GRAPH_MODELS, karate_run

    assert set(GRAPH_MODELS) == {"GAT, 1 head", "GAT, 8 heads", "uniform weights (GCN-style)"}
    a = karate_run("uniform weights (GCN-style)", split=3, epochs=20)
    b = karate_run("uniform weights (GCN-style)", split=3, epochs=20)
    assert a["test_acc"] == b["test_acc"] and torch.equal(a["data"]["train"], karate_club(2, seed=3)["train"])
    assert karate_run("GAT, 8 heads", split=0, epochs=2)["model"].l1.W.shape == (8, 34, 8)
    with pytest.raises(ValueError, match="name must be one of"):
        karate_run("GCN", split=0)

