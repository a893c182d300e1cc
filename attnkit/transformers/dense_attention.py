r"""Cheaper attention over images and pairs: CCNet, DANet, axial and triangle attention.

A non-local block lets each of the $N = HW$ positions attend to all $N$: $N^2$ weights. Three
2019-2021 designs restrict or factor the pattern, each an ``attend`` call with a mask or a
reshaping:

- **Criss-cross attention** (CCNet, Huang et al. 2019): position $(y, x)$ attends only to its row
  and its column, $H + W - 1$ keys; applied twice (with shared weights) information reaches every
  position. As a mask: ``criss_cross_mask``. As a gather of row and column keys:
  ``criss_cross_attention``.
- **Dual attention** (DANet, Fu et al. 2019): a *position* module (non-local attention over
  pixels) and a *channel* module where the $C$ channels attend to one another
  (``danet_channel_attention``). The paper's equation (3) scores channels by their dot product,
  $a = \operatorname{softmax}_j(s_{ij})$ with $s = X X^\top$ (``danet_channel_score``); the
  authors' code (``CAM_Module`` in github.com/junfu1115/DANet) uses
  $\max_{j'} s_{ij'} - s_{ij}$ instead (``danet_code_channel_score``), and since a row softmax
  ignores a constant shift that is $\operatorname{softmax}_j(-s_{ij})$: it favours the
  *least* similar channels.
- **Axial attention** (Ho et al. 2019): attend along rows, then along columns
  (``axial_attention``), as AlphaFold's MSA row and column attention (Jumper et al. 2021).
  AlphaFold's **triangle attention** updates a pair representation $z_{ij}$ with row attention
  biased by the third edge $z_{jk}$ of each triangle: a float mask (``triangle_attention``).

Shapes: ``B`` batch, ``C`` channels, ``Ci`` query/key channels, ``Cv`` value channels,
``H x W`` map, ``N = H W`` positions; ``Nr x Nr`` pairs with ``c`` channels for triangles.
"""

from __future__ import annotations

import torch

from attnkit._checks import check_int, check_same_dtype_device, check_tensor, shape_str
from attnkit.core import attend
from attnkit.scores import check_qk
from attnkit.transformers.nonlocal_block import flatten_positions


def _check_map(name: str, x: torch.Tensor) -> None:
    check_tensor(name, x, min_rank=4, shape="(B, C, H, W)")
    if x.dim() != 4:
        raise ValueError(f"{name} must be a feature map (B, C, H, W); got shape {shape_str(x)}")


def _check_qkv(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> None:
    for name, t in (("q", q), ("k", k), ("v", v)):
        _check_map(name, t)
    if q.shape != k.shape:
        raise ValueError(f"q and k must have the same shape; got q: {shape_str(q)}, k: {shape_str(k)}")
    if v.shape[0] != q.shape[0] or v.shape[2:] != q.shape[2:]:
        raise ValueError(f"v must share q's batch and H x W; got q: {shape_str(q)}, v: {shape_str(v)}")
    check_same_dtype_device(q=q, k=k, v=v)


def criss_cross_mask(H: int, W: int) -> torch.Tensor:
    """Bool ``(N, N)``: ``True`` where key ``j`` is in the same row or column as query ``i`` (row-major)."""
    for name, n in (("H", H), ("W", W)):
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"{name} must be a positive int; got {n!r}")
    rows = torch.arange(H).repeat_interleave(W)  # row of each position: (N,)
    cols = torch.arange(W).repeat(H)  # column of each position: (N,)
    return (rows[:, None] == rows[None, :]) | (cols[:, None] == cols[None, :])  # (N, N)


def full_attention_2d(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                      mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Attention over all positions of maps (optionally masked): ``-> ((B, Cv, H, W), (B, N, N))``.

    Equivalent to ``attend(flat(q), flat(k), flat(v), score="dot", mask=mask)`` with
    ``flat: (B, C, H, W) -> (B, N, C)``: the non-local block / DANet position attention.
    """
    _check_qkv(q, k, v)
    B, Cv, H, W = v.shape
    out, w = attend(flatten_positions(q), flatten_positions(k), flatten_positions(v), score="dot", mask=mask)
    return out.transpose(1, 2).reshape(B, Cv, H, W), w  # (B, Cv, H, W), (B, N, N)


def criss_cross_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """CCNet's criss-cross attention, gathering only row and column keys: ``-> ((B, Cv, H, W), (B, H, W, H+W))``.

    Equals ``full_attention_2d(q, k, v, mask=criss_cross_mask(H, W))`` but stores ``N (H + W)``
    weights instead of ``N^2``. Key axis of the weights: the ``W`` keys of the row, then the
    ``H`` keys of the column (the query's own position in the column is masked: counted once).
    """
    _check_qkv(q, k, v)
    B, C, H, W = q.shape
    qm = q.permute(0, 2, 3, 1).unsqueeze(-2)  # (B, H, W, 1, C): one query per position
    kp, vp = k.permute(0, 2, 3, 1), v.permute(0, 2, 3, 1)  # (B, H, W, C), (B, H, W, Cv)
    k_row = kp.unsqueeze(2).expand(B, H, W, W, C)  # keys of row y for query (y, x): (B, H, W, W, C)
    v_row = vp.unsqueeze(2).expand(B, H, W, W, vp.shape[-1])
    k_col = kp.transpose(1, 2).unsqueeze(1).expand(B, H, W, H, C)  # keys of column x: (B, H, W, H, C)
    v_col = vp.transpose(1, 2).unsqueeze(1).expand(B, H, W, H, vp.shape[-1])
    keys, values = torch.cat([k_row, k_col], dim=3), torch.cat([v_row, v_col], dim=3)  # (B, H, W, W+H, C*)
    # the column part contains the query itself a second time: mask key (y', x) when y' == y
    rows = torch.arange(H, device=q.device)
    keep_col = rows[None, :] != rows[:, None]  # (H query rows, H column keys)
    mask = torch.cat([torch.ones(H, W, W, dtype=torch.bool, device=q.device), keep_col[:, None, :].expand(H, W, H)],
                     dim=-1)
    out, w = attend(qm, keys, values, score="dot", mask=mask.unsqueeze(-2))  # (B, H, W, 1, Cv), (B, H, W, 1, W+H)
    return out.squeeze(-2).permute(0, 3, 1, 2), w.squeeze(-2)  # (B, Cv, H, W), (B, H, W, W+H)


def danet_channel_score(q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    r"""DANet's channel score as in the paper (Fu et al., 2019, eq. 3): $s_{ij} = q_i^\top k_j$, ``(..., C, C)``.

    With ``q = k = X`` (channels as tokens) the softmax of a row favours the channels most
    similar to channel $i$. No $1/\sqrt{d}$.
    """
    check_qk(q, k, same_width=True, what="danet_channel_score")
    return q @ k.transpose(-2, -1)  # (..., C, C)


def danet_code_channel_score(q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    r"""DANet's channel score as in the authors' code: $\max_{j'} s_{ij'} - s_{ij}$ with $s = q k^\top$.

    ``energy_new = max(energy) - energy`` in ``CAM_Module`` (github.com/junfu1115/DANet). A row
    softmax ignores the constant $\max_{j'} s_{ij'}$, so the weights are
    $\operatorname{softmax}_j(-s_{ij})$: *dissimilar* channels get the larger weights, the
    opposite of the paper's equation (``danet_channel_score``).
    """
    check_qk(q, k, same_width=True, what="danet_channel_score")
    s = q @ k.transpose(-2, -1)  # (..., C, C)
    if s.shape[-1] == 0:
        return s  # no channels: no scores
    return s.amax(-1, keepdim=True) - s


DANET_VARIANTS = {"paper": danet_channel_score, "code": danet_code_channel_score}
"""The two channel scores of DANet: the paper's equation and the authors' code."""


def danet_channel_attention(x: torch.Tensor, *, variant: str = "paper") -> tuple[torch.Tensor, torch.Tensor]:
    """DANet's channel attention module (without its learned ``gamma``): ``(B, C, H, W) -> ((B, C, H, W), (B, C, C))``.

    Each channel, seen as a vector of its ``N`` values, attends over all channels:
    ``attend(X, X, X, score=DANET_VARIANTS[variant])`` with ``X: (B, C, N)``. ``variant="paper"``
    is the paper's $\\operatorname{softmax}(X X^\top)$, ``"code"`` the authors' code,
    $\\operatorname{softmax}(\\max - X X^\top) = \\operatorname{softmax}(-X X^\top)$.
    """
    _check_map("x", x)
    if variant not in DANET_VARIANTS:
        raise ValueError(f"variant must be one of {tuple(DANET_VARIANTS)}; got {variant!r}")
    B, C, H, W = x.shape
    X = x.reshape(B, C, H * W)  # (B, C, N): channels are the tokens
    out, w = attend(X, X, X, score=DANET_VARIANTS[variant])  # (B, C, N), (B, C, C)
    return out.reshape(B, C, H, W), w  # (B, C, H, W)


def axial_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Row attention then column attention: ``-> ((B, Cv, H, W), [row (B, H, W, W), column (B, W, H, H)])``.

    Equivalent to::

        x = attend(rows(q), rows(k), rows(v))        # each row is a sequence of W tokens
        x = attend(cols(q), cols(k), cols(x))        # each column a sequence of H tokens

    with the same ``q``/``k`` for both passes (a full model would project again between them).
    Two passes reach every position, at a cost of ``N (H + W)`` weights.
    """
    _check_qkv(q, k, v)
    qr, kr, vr = (t.permute(0, 2, 3, 1) for t in (q, k, v))  # (B, H, W, C*): rows are sequences
    x, w_row = attend(qr, kr, vr, score="dot")  # (B, H, W, Cv), (B, H, W, W)
    qc, kc, xc = (t.transpose(1, 2) for t in (qr, kr, x))  # (B, W, H, C*): columns are sequences
    y, w_col = attend(qc, kc, xc, score="dot")  # (B, W, H, Cv), (B, W, H, H)
    return y.permute(0, 3, 2, 1), [w_row, w_col]  # (B, Cv, H, W)


def triangle_attention(z: torch.Tensor, W_q: torch.Tensor, W_k: torch.Tensor, W_v: torch.Tensor,
                       w_b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    r"""AlphaFold's triangle attention around the starting node (one head, no gating).

    For every edge $(i, j)$ of a pair representation $z$: $o_{ij} = \sum_k a_{ijk} v_{ik}$ with
    $a_{ijk} = \operatorname{softmax}_k(q_{ij}^\top k_{ik} / \sqrt{c} + b_{jk})$, where
    $q = z W_q$, $k = z W_k$, $v = z W_v$ and the bias $b_{jk} = w_b^\top z_{jk}$ comes from the
    third edge of the triangle $(i, j, k)$. Row $i$ of $z$ is a sequence; the bias is a float mask.

    ``z: (Nr, Nr, c)``, ``W_q, W_k, W_v: (c, c')``, ``w_b: (c,)`` -> ``((Nr, Nr, c'), (Nr, Nr, Nr))``.
    """
    check_tensor("z", z, min_rank=3, shape="(Nr, Nr, c)")
    if z.dim() != 3 or z.shape[0] != z.shape[1]:
        raise ValueError(f"z must be a pair representation (Nr, Nr, c); got shape {shape_str(z)}")
    c = z.shape[-1]
    for name, Wm in (("W_q", W_q), ("W_k", W_k), ("W_v", W_v)):
        check_tensor(name, Wm, min_rank=2)
        if Wm.dim() != 2 or Wm.shape[0] != c:
            raise ValueError(f"{name} must be (c={c}, c') for z: {shape_str(z)}; got shape {shape_str(Wm)}")
    check_tensor("w_b", w_b, min_rank=1)
    if w_b.shape != (c,):
        raise ValueError(f"w_b must be (c,) = ({c},); got shape {shape_str(w_b)}")
    if not W_q.shape[1] == W_k.shape[1]:
        raise ValueError(f"W_q and W_k must project to one width c'; got W_q: {shape_str(W_q)}, W_k: {shape_str(W_k)}")
    check_same_dtype_device(z=z, W_q=W_q, W_k=W_k, W_v=W_v, w_b=w_b)
    bias = (z @ w_b).unsqueeze(0)  # b_jk = w_b . z_jk, shared by every row i: (1, Nr, Nr)
    # row i: queries z_ij W_q, keys z_ik W_k, values z_ik W_v; the bias is added to the scores
    return attend(z @ W_q, z @ W_k, z @ W_v, mask=bias)  # (Nr, Nr, c'), (Nr, Nr, Nr)


def attention_cost(kind: str, H: int, W: int, C: int, Ci: int | None = None, *,
                   recurrence: int = 2) -> dict[str, int]:
    """Multiply-adds of the attention (scores plus weighted sum) and stored weights, per image.

    ``kind``: ``"nonlocal"`` (full, ``N^2`` pairs), ``"criss_cross"`` (``recurrence`` passes of
    ``N (H + W - 1)`` pairs), ``"danet"`` (position ``N^2`` plus channel ``C^2``), ``"axial"``
    (``N (W + H)`` pairs). ``Ci`` query/key channels (default ``C // 8`` as in CCNet and DANet);
    values have ``C`` channels. Returns ``{"pairs", "macs", "weights"}``.
    """
    for name, n in (("H", H), ("W", W), ("C", C), ("recurrence", recurrence)):
        check_int(name, n, minimum=1)
    if Ci is not None:
        check_int("Ci", Ci, minimum=1)
    Ci = max(C // 8, 1) if Ci is None else Ci
    N = H * W
    if kind == "nonlocal":
        pairs = N * N
        return {"pairs": pairs, "macs": pairs * (Ci + C), "weights": pairs}
    if kind == "criss_cross":
        pairs = recurrence * N * (H + W - 1)
        return {"pairs": pairs, "macs": pairs * (Ci + C), "weights": pairs}
    if kind == "danet":
        pairs = N * N + C * C
        return {"pairs": pairs, "macs": N * N * (Ci + C) + 2 * C * C * N, "weights": pairs}
    if kind == "axial":
        pairs = N * (W + H)
        return {"pairs": pairs, "macs": pairs * (Ci + C), "weights": pairs}
    raise ValueError(f"kind must be 'nonlocal', 'criss_cross', 'danet' or 'axial'; got {kind!r}")
