r"""Reformer: LSH attention (Kitaev, Kaiser & Levskaya, 2020).

Softmax weights are dominated by the few keys most similar to the query, so it is enough to
find those. Reformer finds them with **locality-sensitive hashing**: a random rotation $R$
($d \times b/2$) sends a vector $x$ to the bucket

$$
h(x) = \arg\max\,[\,xR\,;\,-xR\,] \in \{0, \dots, b - 1\},
$$

and nearby directions tend to share a bucket. Queries and keys are shared
($k_j = q_j / \lVert q_j \rVert$, so $q_i$ and $k_i$ land in the same bucket) and the score is
$s_{ij} = q_i^\top k_j = \lVert q_i \rVert \cos\theta_{ij}$, with no further $1/\sqrt d$: this is
the convention of the authors' code (trax's ``attend``: ``k = length_normalized(k)`` divides by
the root mean square, ``k = k / sqrt(d)`` then makes it unit length, the query is left as it is)
and of Hugging Face's ``LSHSelfAttention`` (``_len_and_dim_norm``). The query's norm acts as
the inverse temperature, which a trained model learns. The sequence is
**sorted** by (bucket, position), cut into **chunks** of $c$ positions, and each chunk attends to
itself and the chunk before: ``attend`` on ``(n, c, 2c)`` blocks, $O(N c)$ memory. A token
attends to itself only when nothing else is there (its score gets $-10^5$). Hashing is
repeated for ``n_rounds`` independent rotations; the rounds are merged by their log-sum-exp,
and a key found in several rounds is counted once (its score gets $-\log(\text{count})$), so

$$
o_i = \sum_{j \in P_i} \frac{e^{s_{ij}}}{\sum_{j' \in P_i} e^{s_{ij'}}}\, v_j, \qquad
P_i = \bigcup_{r} \{ j : \text{chunk}_r(j) \in \{\text{chunk}_r(i), \text{chunk}_r(i) - 1\} \},
$$

exact softmax attention restricted to the keys that shared a chunk with $q_i$ in some round
(:func:`lsh_attention_mask` builds $P$ for checks and pictures).
"""

from __future__ import annotations

import torch

from attnkit._checks import argument_names, check_int, check_tensor
from attnkit.core import attention_scores
from attnkit.efficient._common import check_qkv, make_generator

SELF_SCORE = -1e5
"""Added to a token's score for itself (Reformer lets a token attend to itself only as a last resort)."""


def random_rotations(d: int, n_buckets: int, n_rounds: int = 1, *, seed: int | None = None,
                     generator: torch.Generator | None = None, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Gaussian random rotations ``(n_rounds, d, n_buckets // 2)`` for :func:`lsh_buckets`."""
    check_int("d", d, minimum=1)
    _check_buckets(n_buckets)
    check_int("n_rounds", n_rounds, minimum=1)
    g = make_generator(seed, generator)
    return torch.randn(n_rounds, d, max(n_buckets // 2, 1), generator=g, dtype=torch.float64).to(dtype)


def _check_buckets(n_buckets: int) -> None:
    check_int("n_buckets", n_buckets, minimum=1)
    if n_buckets > 1 and n_buckets % 2:
        raise ValueError(f"n_buckets must be 1 or even (h(x) = argmax [xR; -xR]); got {n_buckets}")


def lsh_buckets(x: torch.Tensor, rotations: torch.Tensor, n_buckets: int) -> torch.Tensor:
    r"""Angular LSH buckets $h(x) = \arg\max [xR; -xR]$ of every row of ``x``.

    Equivalent to::

        proj = x @ R                              # (..., L, b/2) for each round's R
        h = torch.cat([proj, -proj], -1).argmax(-1)

    ``x: (..., L, d)``, ``rotations: (R, d, b/2)`` -> ``(R, ..., L)`` long in ``[0, n_buckets)``.
    """
    check_tensor("x", x, min_rank=2, shape="(..., L, d)")
    check_tensor("rotations", rotations, min_rank=3, shape="(n_rounds, d, n_buckets // 2)")
    _check_buckets(n_buckets)
    bad_width = n_buckets > 1 and rotations.shape[-1] != n_buckets // 2
    if rotations.dim() != 3 or rotations.shape[1] != x.shape[-1] or bad_width:
        raise ValueError(f"rotations must be (n_rounds, d, n_buckets // 2) = (R, {x.shape[-1]}, "
                         f"{max(n_buckets // 2, 1)}) for x: {tuple(x.shape)}; got {tuple(rotations.shape)}")
    n_rounds = rotations.shape[0]
    if n_buckets == 1:
        return torch.zeros(n_rounds, *x.shape[:-1], dtype=torch.long, device=x.device)
    xr = x.reshape(-1, x.shape[-1])  # (B L, d)
    proj = torch.einsum("nd,rdh->rnh", xr, rotations.to(x.dtype))  # (R, B L, b/2)
    h = torch.cat([proj, -proj], dim=-1).argmax(-1)  # (R, B L)
    return h.reshape(n_rounds, *x.shape[:-1])  # (R, ..., L)


def shared_keys(qk: torch.Tensor) -> torch.Tensor:
    r"""Reformer's shared-QK keys $k_j = q_j / \lVert q_j \rVert$: ``(..., L, d)``."""
    check_tensor("qk", qk, min_rank=1, shape="(..., L, d)")
    return qk / qk.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def _sort_chunks(buckets: torch.Tensor, chunk_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Sort order ``(R, B, L)`` by (bucket, position) and the chunk of every position ``(R, B, L)``."""
    L = buckets.shape[-1]
    pos = torch.arange(L, device=buckets.device)
    perm = torch.argsort(buckets * L + pos, dim=-1)  # (R, B, L): sorted slot -> position
    rank = torch.argsort(perm, dim=-1)  # (R, B, L): position -> sorted slot
    return perm, rank // chunk_size


def lsh_attention_mask(buckets: torch.Tensor, chunk_size: int, *, causal: bool = False) -> torch.Tensor:
    """Bool ``(..., L, L)``: ``True`` where key ``j`` is in query ``i``'s set ``P_i`` (see module doc).

    ``buckets: (R, ..., L)`` from :func:`lsh_buckets`. Quadratic memory: for checks and figures.
    """
    check_tensor("buckets", buckets, min_rank=2, floating=False, shape="(R, ..., L)")
    if buckets.is_floating_point() or buckets.is_complex() or buckets.dtype == torch.bool:
        raise TypeError(f"buckets must be an integer tensor (bucket ids); got dtype {buckets.dtype}")
    if buckets.numel() == 0:
        raise ValueError(f"buckets must have at least one round and one position; got shape {tuple(buckets.shape)}")
    R, L = buckets.shape[0], buckets.shape[-1]
    check_int("chunk_size", chunk_size, minimum=1)
    batch = buckets.shape[1:-1]
    _, chunk = _sort_chunks(buckets.reshape(R, -1, L), chunk_size)  # (R, B, L)
    n = -(-L // chunk_size)
    ci, cj = chunk[..., :, None], chunk[..., None, :]  # (R, B, L, 1), (R, B, 1, L)
    seen = (ci == cj) | ((ci - 1) % n == cj) if n > 1 else torch.ones_like(ci == cj)
    mask = seen.any(0)  # (B, L, L): union over rounds
    if causal:
        mask &= torch.ones(L, L, dtype=torch.bool, device=buckets.device).tril()
    return mask.reshape(*batch, L, L)


def lsh_attention(qk: torch.Tensor, v: torch.Tensor, *, n_buckets: int = 8, n_rounds: int = 2,
                  chunk_size: int = 64, causal: bool = False, exclude_self: bool = True,
                  rotations: torch.Tensor | None = None, seed: int | None = None,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    r"""Reformer LSH self-attention with shared queries and keys.

    Equivalent to (but in ``O(N c)`` memory)::

        k = shared_keys(qk)                                            # unit keys
        P = lsh_attention_mask(lsh_buckets(k, R, n_buckets), chunk_size, causal=causal)
        bias = torch.zeros(L, L).masked_fill(~P, -inf) + SELF_SCORE * torch.eye(L)
        out, _ = attend(qk, k, v, score="dot", mask=bias)              # softmax over P_i

    Args:
        qk: shared queries/keys ``(..., L, d)``.
        v: values ``(..., L, dv)``.
        n_buckets: ``b``, 1 or even.
        n_rounds: independent hashings; more rounds, fewer missed neighbours.
        chunk_size: ``c``, must divide ``L``; each chunk attends to itself and the previous one.
        causal: only keys ``j <= i``.
        exclude_self: add ``SELF_SCORE`` to a token's score for itself (Reformer's rule).
        rotations: explicit ``(n_rounds, d, n_buckets // 2)`` rotations (else drawn from
            ``seed``/``generator``).

    Returns:
        ``(..., L, dv)``.
    """
    with argument_names(q="qk", k="qk"):
        check_qkv(qk, qk, v)
    _check_buckets(n_buckets)
    check_int("n_rounds", n_rounds, minimum=1)
    check_int("chunk_size", chunk_size, minimum=1)
    L, d, dv = qk.shape[-2], qk.shape[-1], v.shape[-1]
    if d < 1:
        raise ValueError(f"qk must have a width d >= 1 to be hashed; got shape {tuple(qk.shape)}")
    if qk.numel() == 0 or v.numel() == 0:
        return v.new_zeros(*qk.shape[:-1], dv)  # no positions (or no value channels): an empty output
    if L % chunk_size:
        raise ValueError(f"chunk_size must divide the sequence length; got chunk_size={chunk_size}, L={L} "
                         f"(qk: {tuple(qk.shape)})")
    if rotations is None:
        rotations = random_rotations(d, n_buckets, n_rounds, seed=seed, generator=generator, dtype=qk.dtype)
    rotations = rotations.to(qk.device)
    batch = qk.shape[:-2]
    q = qk.reshape(-1, L, d)  # (B, L, d)
    vv = v.reshape(-1, L, dv)  # (B, L, dv)
    k = shared_keys(q)  # (B, L, d)
    buckets = lsh_buckets(k, rotations, n_buckets)  # (R, B, L)
    R, B, n, c = buckets.shape[0], q.shape[0], L // chunk_size, chunk_size
    perm, chunk = _sort_chunks(buckets, c)  # (R, B, L) each
    look = (lambda t: torch.cat([t.roll(1, dims=1), t], dim=2)) if n > 1 else (lambda t: t)  # chunk b-1 and b
    lse_acc = q.new_full((B, L, 1), float("-inf"))
    out = q.new_zeros(B, L, dv)
    for r in range(R):
        idx = perm[r]  # (B, L)
        pos_q = idx.reshape(B, n, c)  # (B, n, c): original position of each sorted slot
        pos_k = look(pos_q)  # (B, n, kc) with kc = 2c (or c when n = 1)
        take = lambda t, p: t.gather(1, p.reshape(B, -1, 1).expand(-1, -1, t.shape[-1])).reshape(*p.shape, -1)  # noqa: E731
        qs, ks, vs = take(q, pos_q), take(k, pos_k), take(vv, pos_k)  # (B, n, c, d), (B, n, kc, d), (B, n, kc, dv)
        # s_ij = q_i . k_j with unit keys (trax's and HF's convention) in each chunk pair: (B, n, c, kc)
        s = attention_scores(qs, ks, score="dot")
        same = pos_q[..., :, None] == pos_k[..., None, :]  # (B, n, c, kc)
        if exclude_self:
            s = s + SELF_SCORE * same
        if causal:
            s = s.masked_fill(pos_k[..., None, :] > pos_q[..., :, None], float("-inf"))
        if R > 1:  # count each key once: s_ij -= log(number of rounds in which j is in P_i)
            count = torch.zeros_like(s)
            for r2 in range(R):
                ci = chunk[r2].gather(1, pos_q.reshape(B, -1)).reshape(B, n, c, 1)
                cj = chunk[r2].gather(1, pos_k.reshape(B, -1)).reshape(B, n, 1, -1)
                count += ((ci == cj) | ((ci - 1) % n == cj)) if n > 1 else torch.ones_like(same)
            s = s - torch.log(count)
        lse = torch.logsumexp(s, dim=-1, keepdim=True)  # (B, n, c, 1)
        o = torch.exp(s - lse) @ vs  # softmax over the chunk pair, times values: (B, n, c, dv)
        # back to the original order and merge with earlier rounds by log-sum-exp
        o_r = torch.empty_like(out).scatter_(1, idx[..., None].expand(-1, -1, dv), o.reshape(B, L, dv))
        lse_r = torch.empty_like(lse_acc).scatter_(1, idx[..., None], lse.reshape(B, L, 1))
        lse_new = torch.logaddexp(lse_acc, lse_r)
        out = out * torch.exp(lse_acc - lse_new) + o_r * torch.exp(lse_r - lse_new)
        lse_acc = lse_new
    return out.reshape(*batch, L, dv)
