r"""Graph attention networks (Veličković et al., 2018) and a GCN-style uniform baseline.

A graph layer updates every node from its neighbours. With node features $h_i$ and a shared
projection $W$, graph attention scores each edge with a tiny additive score,

.. math::

    s_{ij} = \operatorname{LeakyReLU}\big(a^\top [W h_i \,\|\, W h_j]\big)
           = \operatorname{LeakyReLU}\big(a_{\text{dst}}^\top W h_i + a_{\text{src}}^\top W h_j\big),
    \qquad \alpha_{ij} = \operatorname{softmax}_{j \in \mathcal{N}(i) \cup \{i\}} s_{ij},
    \qquad h_i' = \sum_j \alpha_{ij} W h_j ,

which is ``attend(Wh, Wh, Wh, score=gat_score, mask=adjacency)``: the graph is the mask.

**Naming, as in PyTorch Geometric's** ``GATConv``: messages flow from a *source* node ``j``
to the *destination* node ``i`` that attends, so ``a_dst`` is the half of the paper's $a$ that
multiplies the attending node $W h_i$ (the query) and ``a_src`` the half that multiplies the
neighbour $W h_j$ (the key); PyG's ``att_dst`` and ``att_src`` are these vectors, shape
``(1, H, Fh)``. The adjacency is dense and bool, ``adj[i, j] = True`` when ``j`` sends to
``i`` (self-loops included), the opposite orientation of PyG's ``edge_index = [src, dst]``.

The GCN-style baseline (Kipf & Welling, 2017, with row normalisation) gives every neighbour
the same weight ``1 / (degree(i) + 1)``: ``attend`` with a constant score and the same mask.
Multi-head GAT runs ``H`` such heads and concatenates (hidden layers) or averages (the output
layer) them.

Shapes: ``N`` nodes, ``F`` input features, ``Fh`` features per head, ``H`` heads.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from attnkit._checks import (
    argument_names,
    check_int,
    check_module_input,
    check_positive,
    check_probability,
    check_same_dtype_device,
    check_sizes,
    check_tensor,
    shape_str,
)
from attnkit.core import attend
from attnkit.scores import check_qk


def check_adjacency(adj: object, n: int | None = None, *, device: torch.device | None = None) -> torch.Tensor:
    """A bool square adjacency ``(N, N)`` (``True`` = edge, self-loops included); else a clear error.

    ``adj[i, j]`` is ``True`` when node ``j`` is a neighbour of node ``i`` (``i`` attends to ``j``):
    PyG's ``edge_index`` lists the same edge as the column ``[j, i]`` (source ``j``, target
    ``i``), so ``adj = to_dense_adj(edge_index)[0].T.bool()`` (plus self-loops).
    """
    if n is not None:
        check_int("n", n, minimum=1)
    if not isinstance(adj, torch.Tensor):
        raise TypeError(f"adj must be a bool torch.Tensor (N, N); got {type(adj).__name__}")
    if adj.dtype != torch.bool:
        raise TypeError(f"adj must be bool (True = edge); got dtype {adj.dtype}")
    if adj.dim() != 2 or adj.shape[0] != adj.shape[1]:
        raise ValueError(f"adj must be a square (N, N) matrix; got shape {shape_str(adj)}")
    if n is not None and adj.shape[0] != n:
        raise ValueError(f"adj has {adj.shape[0]} nodes but the features (h) have n = {n} rows")
    if device is not None and adj.device != device:
        raise ValueError(f"adj must be on the device of the features h ({device}); got {adj.device}")
    return adj


def gat_score(q: torch.Tensor, k: torch.Tensor, a_src: torch.Tensor, a_dst: torch.Tensor,
              negative_slope: float = 0.2) -> torch.Tensor:
    r"""GAT's edge score $s_{ij} = \mathrm{LeakyReLU}(a_{dst}^\top q_i + a_{src}^\top k_j)$.

    ``q: (H, N, Fh)`` the attending (destination) nodes, ``k: (H, N, Fh)`` the neighbours
    (sources), ``a_src, a_dst: (H, Fh)`` -> ``(H, N, N)``. The concatenation
    $a^\top [Wh_i \,\|\, Wh_j]$ of the paper splits into these two dot products, with
    $a = [a_{dst}; a_{src}]$ (PyG's naming; see the module docstring).
    """
    check_qk(q, k, same_width=True, what="gat_score")
    for name, a in (("a_src", a_src), ("a_dst", a_dst)):
        check_tensor(name, a, min_rank=1, shape="(H, Fh)")
        if a.shape != (*q.shape[:-2], q.shape[-1]):
            raise ValueError(f"{name} must be (H, Fh) = {(*q.shape[:-2], q.shape[-1])} for q: {shape_str(q)}; "
                             f"got shape {shape_str(a)}")
        check_same_dtype_device(q=q, **{name: a})
    check_positive("negative_slope", negative_slope, allow_zero=True)
    dst = (q * a_dst.unsqueeze(-2)).sum(-1)  # a_dst . Wh_i: (H, N)
    src = (k * a_src.unsqueeze(-2)).sum(-1)  # a_src . Wh_j: (H, N)
    return F.leaky_relu(dst.unsqueeze(-1) + src.unsqueeze(-2), negative_slope)  # (H, N, N)


def uniform_score(q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """A constant score 0 for every pair ``(..., Lq, Lk)``: softmax then gives uniform weights.

    It reads only the shapes of ``q`` and ``k`` (a NaN in them does not reach the scores)."""
    check_qk(q, k, same_width=False, what="uniform_score")
    return q.new_zeros(*q.shape[:-1], k.shape[-2])  # (..., Lq, Lk)


def gat_attention(h: torch.Tensor, adj: torch.Tensor, W: torch.Tensor, a_src: torch.Tensor,
                  a_dst: torch.Tensor, *, negative_slope: float = 0.2,
                  attn_dropout: float = 0.0, training: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """One multi-head GAT aggregation; returns ``(out (H, N, Fh), alpha (H, N, N))``.

    Equivalent to::

        Wh = torch.einsum("nf,hfo->hno", h, W)                         # (H, N, Fh)
        s = leaky_relu(Wh @ a_dst[..., None] + (Wh @ a_src[..., None]).mT)  # (H, N, N)
        alpha = softmax(s.masked_fill(~adj, -inf), -1)                  # neighbours only
        out = dropout(alpha, attn_dropout) @ Wh

    Args:
        h: node features ``(N, F)``. adj: bool ``(N, N)``, ``True`` where ``j`` is a neighbour
            of ``i`` (include self-loops). W: ``(H, F, Fh)``. a_src, a_dst: ``(H, Fh)``, PyG's
            ``att_src`` (neighbour ``j``) and ``att_dst`` (attending node ``i``).
        attn_dropout: dropout on the coefficients when ``training`` (the paper: 0.6); the
            returned ``alpha`` is the one before dropout.
    """
    check_tensor("h", h, min_rank=2, shape="(N, F)")
    if h.dim() != 2 or h.shape[0] < 1:
        raise ValueError(f"h must be node features (N, F) with N >= 1; got shape {shape_str(h)}")
    check_adjacency(adj, h.shape[0], device=h.device)
    check_tensor("W", W, min_rank=3, shape="(H, F, Fh)")
    if W.dim() != 3 or W.shape[1] != h.shape[1]:
        raise ValueError(f"W must be (H, F={h.shape[1]}, Fh) for h: {shape_str(h)}; got shape {shape_str(W)}")
    check_same_dtype_device(h=h, W=W)
    for name, a in (("a_src", a_src), ("a_dst", a_dst)):
        check_tensor(name, a, min_rank=2)
        if a.shape != (W.shape[0], W.shape[2]):
            raise ValueError(f"{name} must be (H, Fh) = ({W.shape[0]}, {W.shape[2]}) for W: {shape_str(W)}; got shape "
                             f"{shape_str(a)}")
    Wh = torch.einsum("nf,hfo->hno", h, W)  # (H, N, Fh)
    with argument_names(q="Wh (from h and W)", k="Wh (from h and W)", mask="adj"):
        out, alpha = attend(Wh, Wh, Wh, score=gat_score, mask=adj,
                            score_params={"a_src": a_src, "a_dst": a_dst, "negative_slope": negative_slope})
    if training and attn_dropout > 0:
        out = F.dropout(alpha, attn_dropout, True) @ Wh  # each node sees a random subset of neighbours
    return out, alpha


class GATLayer(nn.Module):
    """Multi-head graph attention: ``forward(h (N, F), adj (N, N)) -> (N, H*Fh)`` or ``(N, Fh)``.

    ``concat=True`` concatenates the heads (hidden layers), ``False`` averages them (output
    layer). ``dropout`` is applied to the input features and ``attn_dropout`` to the
    coefficients, during training (the paper uses 0.6 for both). The last coefficients
    ``(H, N, N)`` are kept in ``self.last_alpha``.

    Initialisation as PyG's ``GATConv``: Glorot-uniform on ``W`` seen as the ``(F, H * Fh)``
    matrix of one linear map (bound ``sqrt(6 / (F + H Fh))``) and on ``a_src``, ``a_dst`` seen as
    ``(H, Fh)`` (bound ``sqrt(6 / (H + Fh))``); zero bias. Differences from ``GATConv``: PyG has
    no input dropout (apply it before the layer), adds self-loops itself, and takes a sparse
    ``edge_index``; the test suite checks equal outputs with copied weights.
    """

    def __init__(self, in_features: int, out_features: int, heads: int = 1, *, concat: bool = True,
                 dropout: float = 0.0, attn_dropout: float = 0.0) -> None:
        super().__init__()
        check_sizes(in_features=in_features, out_features=out_features, heads=heads)
        check_probability("dropout", dropout)
        self.W = nn.Parameter(torch.empty(heads, in_features, out_features))
        self.a_src = nn.Parameter(torch.empty(heads, out_features))
        self.a_dst = nn.Parameter(torch.empty(heads, out_features))
        self.bias = nn.Parameter(torch.zeros(out_features * heads if concat else out_features))
        self.concat, self.dropout, self.attn_dropout = concat, dropout, attn_dropout
        self.reset_parameters()
        self.last_alpha: torch.Tensor | None = None

    def reset_parameters(self) -> None:
        H, F_in, Fh = self.W.shape
        bound = (6.0 / (F_in + H * Fh)) ** 0.5  # Glorot for the (F, H*Fh) linear map
        nn.init.uniform_(self.W, -bound, bound)
        for a in (self.a_src, self.a_dst):
            nn.init.xavier_uniform_(a)  # a 2-D (H, Fh) tensor: bound sqrt(6 / (H + Fh)), as PyG
        nn.init.zeros_(self.bias)

    def forward(self, h: torch.Tensor, adj: torch.Tensor) -> torch.Tensor:
        check_module_input("h", h, self.W, rank=2, width=self.W.shape[1], shape=f"(N, {self.W.shape[1]})")
        h = F.dropout(h, self.dropout, self.training)
        out, alpha = gat_attention(h, adj, self.W, self.a_src, self.a_dst, attn_dropout=self.attn_dropout,
                                   training=self.training)  # (H, N, Fh), (H, N, N)
        self.last_alpha = alpha.detach()
        H, N, Fh = out.shape
        out = out.transpose(0, 1).reshape(N, H * Fh) if self.concat else out.mean(0)  # (N, H*Fh) or (N, Fh)
        return out + self.bias


class UniformGraphLayer(nn.Module):
    """The GCN-style baseline: ``h_i' = mean_{j in N(i) + i} W h_j``, i.e. attention with equal weights."""

    def __init__(self, in_features: int, out_features: int, *, dropout: float = 0.0) -> None:
        super().__init__()
        check_sizes(in_features=in_features, out_features=out_features)
        check_probability("dropout", dropout)
        self.lin = nn.Linear(in_features, out_features)
        self.dropout = dropout

    def forward(self, h: torch.Tensor, adj: torch.Tensor) -> torch.Tensor:
        w = self.lin.weight
        check_module_input("h", h, w, rank=2, width=w.shape[1], shape=f"(N, {w.shape[1]})")
        if h.shape[0] < 1:
            raise ValueError(f"h must hold at least one node; got shape {shape_str(h)}")
        check_adjacency(adj, h.shape[0], device=h.device)
        Wh = self.lin(F.dropout(h, self.dropout, self.training))  # (N, Fh)
        out, _ = attend(Wh, Wh, Wh, score=uniform_score, mask=adj)  # a_ij = 1 / deg(i)
        return out


class GraphNet(nn.Module):
    """Two graph layers with an ELU between: GAT (``kind="gat"``) or the uniform baseline.

    ``forward(h (N, F), adj (N, N)) -> logits (N, classes)``. The GAT has ``heads`` heads of
    ``hidden`` features in the first layer (concatenated) and one head in the output layer,
    the paper's layout for Cora (8 heads of 8 features there); the baseline has one
    uniform-weight layer of width ``hidden * heads`` instead. ``dropout`` on the inputs of both
    layers, ``attn_dropout`` on GAT's coefficients.
    """

    def __init__(self, in_features: int, hidden: int, classes: int, *, kind: str = "gat", heads: int = 8,
                 dropout: float = 0.6, attn_dropout: float = 0.6) -> None:
        super().__init__()
        check_sizes(in_features=in_features, hidden=hidden, classes=classes, heads=heads)
        if kind == "gat":
            self.l1 = GATLayer(in_features, hidden, heads, concat=True, dropout=dropout, attn_dropout=attn_dropout)
            self.l2 = GATLayer(hidden * heads, classes, 1, concat=False, dropout=dropout, attn_dropout=attn_dropout)
        elif kind == "uniform":
            self.l1 = UniformGraphLayer(in_features, hidden * heads, dropout=dropout)
            self.l2 = UniformGraphLayer(hidden * heads, classes, dropout=dropout)
        else:
            raise ValueError(f"kind must be 'gat' or 'uniform'; got {kind!r}")
        self.kind = kind

    def forward(self, h: torch.Tensor, adj: torch.Tensor) -> torch.Tensor:
        return self.l2(F.elu(self.l1(h, adj)), adj)


def karate_club(n_labelled: int = 2, *, seed: int = 0) -> dict[str, torch.Tensor]:
    """Zachary's karate club (from networkx) as tensors for node classification.

    Returns a dict with ``features`` (identity ``(34, 34)``: a node knows only who it is),
    ``adj`` (bool ``(34, 34)`` with self-loops), ``labels`` (0 = Mr. Hi's club, 1 = the
    officer's), ``train`` (bool: nodes 0 and 33, the two leaders, plus ``n_labelled - 1`` more
    random nodes of each club) and ``test`` (the other nodes).
    """
    import networkx as nx

    check_int("n_labelled", n_labelled, minimum=1)
    G = nx.karate_club_graph()
    n = G.number_of_nodes()
    adj = torch.eye(n, dtype=torch.bool)
    for i, j in G.edges():
        adj[i, j] = adj[j, i] = True
    labels = torch.tensor([0 if G.nodes[i]["club"] == "Mr. Hi" else 1 for i in range(n)])
    g = torch.Generator().manual_seed(seed)
    train = torch.zeros(n, dtype=torch.bool)
    train[[0, n - 1]] = True
    for c in (0, 1):
        others = [i for i in range(1, n - 1) if labels[i] == c]
        pick = torch.randperm(len(others), generator=g)[: max(n_labelled - 1, 0)]
        train[[others[int(p)] for p in pick]] = True
    return {"features": torch.eye(n), "adj": adj, "labels": labels, "train": train, "test": ~train}


def train_node_classifier(model: nn.Module, data: dict[str, torch.Tensor], *, epochs: int = 150, lr: float = 0.01,
                          weight_decay: float = 5e-4, progress: bool = True) -> dict[str, object]:
    """Full-batch training on ``data["train"]`` nodes with Adam and cross-entropy.

    Returns ``{"losses": [...], "train_acc": float, "test_acc": float, "pred": (N,)}``.
    """
    from tqdm.auto import trange

    check_int("epochs", epochs, minimum=1)
    check_positive("lr", lr)
    check_positive("weight_decay", weight_decay, allow_zero=True)
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay, foreach=True)
    x, adj, y, tr = data["features"], data["adj"], data["labels"], data["train"]
    losses = []
    for _ in trange(epochs, desc=f"{getattr(model, 'kind', 'model')}", disable=not progress):
        model.train()
        loss = F.cross_entropy(model(x, adj)[tr], y[tr])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    model.eval()
    with torch.no_grad():
        pred = model(x, adj).argmax(-1)
    acc = {name: (pred[data[name]] == y[data[name]]).float().mean().item() for name in ("train", "test")}
    return {"losses": losses, "train_acc": acc["train"], "test_acc": acc["test"], "pred": pred}


GRAPH_MODELS = {"GAT, 1 head": {"kind": "gat", "heads": 1},
                "GAT, 8 heads": {"kind": "gat", "heads": 8},
                "uniform weights (GCN-style)": {"kind": "uniform", "heads": 8}}
"""The karate-club models of *Attention everywhere*: name -> ``GraphNet`` keyword arguments."""


def karate_run(name: str, split: int, *, epochs: int = 150, lr: float = 0.01) -> dict[str, object]:
    """Train ``GRAPH_MODELS[name]`` (8 features per head) on ``karate_club(2, seed=split)``.

    Seeds the initialisation with ``split``; returns ``train_node_classifier``'s dict plus the
    ``"model"`` and the ``"data"``.
    """
    if name not in GRAPH_MODELS:
        raise ValueError(f"name must be one of {list(GRAPH_MODELS)}; got {name!r}")
    data = karate_club(n_labelled=2, seed=split)
    torch.manual_seed(split)
    model = GraphNet(data["features"].shape[1], 8, 2, **GRAPH_MODELS[name])
    res = train_node_classifier(model, data, epochs=epochs, lr=lr, progress=False)
    return {**res, "model": model, "data": data}

