"""Checkers for the Part III chapters "Attention everywhere" and "Associative memories and giant models"."""

from __future__ import annotations

from collections.abc import Callable

import torch

from attnkit.exercises._harness import Case, CheckResult, run_cases
from attnkit.transformers.clip import info_nce
from attnkit.transformers.gat import gat_attention
from attnkit.transformers.hopfield import hopfield_update
from attnkit.transformers.vit import attention_rollout, patchify


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _alpha(Wh: torch.Tensor, adj: torch.Tensor, a_src: torch.Tensor, a_dst: torch.Tensor) -> torch.Tensor:
    # the reference: one head through attnkit.transformers.gat.gat_attention with W = identity
    eye = torch.eye(Wh.shape[-1], dtype=Wh.dtype)[None]  # (1, Fh, Fh)
    return gat_attention(Wh, adj, eye, a_src[None], a_dst[None])[1][0]  # (N, N)


def check_gat_coefficients(fn: Callable[..., torch.Tensor], *, quiet: bool = False) -> CheckResult:
    """Check a reader's ``fn(Wh, adj, a_src, a_dst) -> alpha`` (one GAT head).

    ``Wh: (N, Fh)`` projected node features, ``adj``: bool ``(N, N)`` with self-loops (``True``
    = edge), ``a_src, a_dst: (Fh,)`` with PyG's names (``a_dst`` for the attending node ``i``,
    ``a_src`` for its neighbour ``j``). ``alpha: (N, N)`` must be the softmax over each node's
    neighbours of ``LeakyReLU(a_dst . Wh_i + a_src . Wh_j)`` (slope 0.2), zero off the graph.
    """
    g = _gen(3)
    N, Fh = 6, 4
    Wh = torch.randn(N, Fh, generator=g, dtype=torch.float64)
    a_src, a_dst = (torch.randn(Fh, generator=g, dtype=torch.float64) for _ in range(2))
    full = torch.ones(N, N, dtype=torch.bool)
    idx = torch.arange(N)
    path = (idx[:, None] - idx[None, :]).abs() <= 1  # a chain 0 - 1 - ... - (N-1), with self-loops
    star = torch.eye(N, dtype=torch.bool)
    star[0, :] = star[:, 0] = True
    a_neg = -a_src.abs()
    cases = [
        Case("complete graph", (Wh, full, a_src, a_dst), _alpha(Wh, full, a_src, a_dst),
             hint="score each pair with LeakyReLU(a_dst . Wh_i + a_src . Wh_j), then softmax over j "
                  "(row i = the attending node; a_dst goes with i, a_src with the neighbour j, as in PyG)"),
        Case("a path graph", (Wh, path, a_src, a_dst), _alpha(Wh, path, a_src, a_dst),
             hint="only neighbours take part: non-edges must get weight exactly 0 (mask before the softmax)"),
        Case("a star graph", (Wh, star, a_src, a_dst), _alpha(Wh, star, a_src, a_dst),
             hint="leaves see only the hub and themselves"),
        Case("negative scores (LeakyReLU slope 0.2)", (Wh, path, a_neg, -a_dst.abs()),
             _alpha(Wh, path, a_neg, -a_dst.abs()),
             hint="LeakyReLU keeps 0.2 * x for x < 0; a plain ReLU would flatten these scores to 0"),
    ]
    return run_cases(fn, cases, checker="check_gat_coefficients", quiet=quiet)


def check_hopfield_update(fn: Callable[..., torch.Tensor], *, quiet: bool = False) -> CheckResult:
    """Check a reader's ``fn(X, xi, beta) -> xi_new``, one modern Hopfield update.

    ``X: (d, N)`` stored patterns as columns (Ramsauer et al.'s notation), ``xi: (d,)`` the
    state, ``beta > 0`` the inverse temperature; ``xi_new = X softmax(beta X^T xi)``.
    """
    g = _gen(4)
    d, N = 8, 5
    X = torch.randn(d, N, generator=g, dtype=torch.float64)
    xi = torch.randn(d, generator=g, dtype=torch.float64)
    big = X * 100.0  # scores in the thousands: exp overflows even in float64

    def ref(X: torch.Tensor, xi: torch.Tensor, beta: float) -> torch.Tensor:
        return hopfield_update(X.T, xi[None], beta)[0][0]  # patterns as rows, one query

    cases = [
        Case("beta = 1", (X, xi, 1.0), ref(X, xi, 1.0),
             hint="xi_new = X @ softmax(beta * X.T @ xi): a weighted average of the stored columns"),
        Case("beta = 0.1 (a metastable average)", (X, xi, 0.1), ref(X, xi, 0.1),
             hint="multiply the scores by beta before the softmax"),
        Case("beta = 8 (retrieval of one pattern)", (X, xi, 8.0), ref(X, xi, 8.0),
             hint="the softmax runs over the N stored patterns (the columns of X)"),
        Case("large scores (overflow)", (big, xi, 5.0), ref(big, xi, 5.0),
             hint="use a stable softmax (torch.softmax, or subtract the maximum)"),
    ]
    return run_cases(fn, cases, checker="check_hopfield_update", quiet=quiet)


def check_info_nce(fn: Callable[..., torch.Tensor], *, quiet: bool = False) -> CheckResult:
    """Check a reader's ``fn(u, t, tau) -> scalar``, CLIP's symmetric InfoNCE loss.

    ``u: (B, D)`` image embeddings and ``t: (B, D)`` caption embeddings, NOT normalised (pair
    ``i`` is row ``i`` of both); ``tau > 0``. The loss is the mean of the cross-entropies of
    ``S = cos(u_i, t_j) / tau`` over its rows (image -> caption) and over its columns
    (caption -> image), as ``attnkit.transformers.clip.info_nce``.
    """
    g = _gen(7)
    u, t = torch.randn(6, 4, generator=g, dtype=torch.float64), torch.randn(6, 4, generator=g, dtype=torch.float64)
    scaled = u * torch.tensor([[0.1], [10.0], [1.0], [3.0], [0.5], [2.0]], dtype=torch.float64)  # unequal lengths
    lopsided = t.clone()
    lopsided[1:] = t[0]  # five identical captions: image -> caption and caption -> image differ a lot
    one_u, one_t = (torch.randn(1, 4, generator=g, dtype=torch.float64) for _ in range(2))
    cases = [
        Case("B = 6, tau = 1", (u, t, 1.0), info_nce(u, t, 1.0),
             hint="S = normalize(u) @ normalize(t).T / tau; loss = (cross_entropy(S, arange(B)) + "
                  "cross_entropy(S.T, arange(B))) / 2"),
        Case("tau = 0.07 (CLIP's initial temperature)", (u, t, 0.07), info_nce(u, t, 0.07),
             hint="divide the cosine similarities by tau before the softmax"),
        Case("embeddings of different lengths", (scaled, t, 0.5), info_nce(scaled, t, 0.5),
             hint="the similarity is a cosine: normalise u and t to unit length first"),
        Case("both directions count", (u, lopsided, 0.5), info_nce(u, lopsided, 0.5),
             hint="average the image -> caption loss (softmax over each row) and the caption -> image loss "
                  "(softmax over each column); they differ when captions repeat"),
        Case("a batch of one pair: loss 0", (one_u, one_t, 0.3), info_nce(one_u, one_t, 0.3),
             hint="with one candidate the softmax is 1 and the cross-entropy is 0"),
    ]
    return run_cases(fn, cases, checker="check_info_nce", quiet=quiet)


def check_patchify(fn: Callable[..., torch.Tensor], *, quiet: bool = False) -> CheckResult:
    """Check a reader's ``fn(images, P) -> (B, Np, C P P)``, ViT's cut into patches.

    ``images: (B, C, H, W)`` with ``P`` dividing ``H`` and ``W``. Patches come in row-major order
    (left to right, then top to bottom) and each is flattened channel first, ``(C, P, P)``, as
    ``attnkit.transformers.vit.patchify`` and a ``Conv2d(C, E, P, stride=P)`` patch embedding
    read them (lucidrains' vit-pytorch flattens ``(P, P, C)`` instead).
    """
    g = _gen(8)
    gray = torch.arange(16 * 16, dtype=torch.float64).reshape(1, 1, 16, 16)  # pixel values = their index
    colour = torch.randn(2, 3, 8, 12, generator=g, dtype=torch.float64)
    one = torch.randn(1, 2, 4, 4, generator=g, dtype=torch.float64)
    cases = [
        Case("16 x 16, one channel, P = 4", (gray, 4), patchify(gray, 4),
             hint="reshape to (B, C, H/P, P, W/P, P), move the two patch-grid axes to the front "
                  "(permute(0, 2, 4, 1, 3, 5)), then flatten: a plain reshape cuts strips, not squares"),
        Case("3 channels, 8 x 12, P = 4", (colour, 4), patchify(colour, 4),
             hint="flatten each patch channel first, (C, P, P); and number the patches row by row"),
        Case("P = H: one patch", (one, 4), patchify(one, 4), hint="one patch holds the whole image: (B, 1, C H W)"),
    ]
    return run_cases(fn, cases, checker="check_patchify", quiet=quiet)


def _softmax_layers(g: torch.Generator, layers: int, B: int = 2, H: int = 3, L: int = 5) -> list[torch.Tensor]:
    return [torch.softmax(2 * torch.randn(B, H, L, L, generator=g, dtype=torch.float64), -1) for _ in range(layers)]


def check_rollout(fn: Callable[..., torch.Tensor], *, quiet: bool = False) -> CheckResult:
    """Check a reader's ``fn(attentions) -> (B, L, L)``, attention rollout (Abnar & Zuidema, 2020).

    ``attentions``: a list, first layer first, of ``(B, H, L, L)`` weights. Average the heads,
    add the identity for the residual (``0.5 (A + I)``, rows renormalised) and multiply so that
    the last layer is on the left, ``R = A_L ... A_1``, as ``attention_rollout``.
    """
    g = _gen(9)
    two, three, one = _softmax_layers(g, 2), _softmax_layers(g, 3), _softmax_layers(g, 1)
    cases = [
        Case("one layer", (one,), attention_rollout(one),
             hint="average over the heads (dim 1), then 0.5 * (A + I) and renormalise the rows"),
        Case("two layers", (two,), attention_rollout(two),
             hint="R = A_2 @ A_1: the later layer multiplies from the left (information flows from layer 1 to 2)"),
        Case("three layers", (three,), attention_rollout(three),
             hint="accumulate R = A_l @ R over the layers, first layer first"),
    ]
    return run_cases(fn, cases, checker="check_rollout", quiet=quiet)
