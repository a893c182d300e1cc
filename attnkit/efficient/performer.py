r"""Performer: softmax attention from positive orthogonal random features, FAVOR+ (Choromanski
et al., 2021).

The softmax kernel $\mathrm{SM}(x, y) = e^{x^\top y}$ is an expectation over Gaussian vectors
$\omega \sim \mathcal N(0, I_d)$:

$$
e^{x^\top y} = \mathbb{E}_{\omega}\!\left[e^{\omega^\top x - \lVert x\rVert^2/2}\,
e^{\omega^\top y - \lVert y\rVert^2/2}\right],
\qquad
\phi(x) = \frac{1}{\sqrt m}\left(e^{\omega_t^\top x - \lVert x\rVert^2/2}\right)_{t=1..m} ,
$$

so $\phi(x)^\top \phi(y)$ is an **unbiased** estimate of $e^{x^\top y}$ with positive terms
(trigonometric features, $\cos$ and $\sin$, are unbiased too but can go negative and blow up
the normaliser). With $x = q / d^{1/4}$ and $y = k / d^{1/4}$ the kernel is the Transformer's
$e^{q^\top k / \sqrt d}$. Drawing the $\omega_t$ in orthogonal blocks (Gram-Schmidt, lengths
drawn from the $\chi_d$ law, the law of the norm of a $d$-dimensional standard Gaussian vector)
keeps each one marginally Gaussian, hence keeps the estimate unbiased; for $m \le d$ (one
orthogonal block) the paper proves that it strictly lowers the mean squared error (its
Theorem 2). Attention is then *linear* attention with these features
(Katharopoulos et al., 2020): by associativity

$$
O = D^{-1} \phi(Q) \big(\phi(K)^\top V\big), \qquad D = \operatorname{diag}\big(\phi(Q)\, \phi(K)^\top \mathbf 1\big),
$$

$O(N m d)$ instead of $O(N^2 d)$. It is the quadratic
``attend(phi(q), phi(k), v, score="dot", normalize=row_sum_normalize)`` with the brackets
moved. The causal version replaces $\phi(K)^\top V$ by prefix sums
$S_i = \sum_{j \le i} \phi(k_j) v_j^\top$ and $z_i = \sum_{j \le i} \phi(k_j)$, which is a
recurrent network with the state $(S_i, z_i)$ (:func:`linear_attention_step`): the
"Transformers are RNNs" view of Katharopoulos et al. (2020).
"""

from __future__ import annotations

import math

import torch

from attnkit._checks import argument_names, check_int, check_same_device, check_tensor
from attnkit.efficient._common import check_qkv, make_generator
from attnkit.normalize import split_mask


def orthogonal_gaussian(m: int, d: int, *, orthogonal: bool = True, seed: int | None = None,
                        generator: torch.Generator | None = None, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    r"""``(m, d)`` random feature directions $\omega_t$, each marginally $\mathcal N(0, I_d)$.

    ``orthogonal``: rows come in blocks of ``d`` exactly orthogonal directions (QR of a Gaussian
    matrix), each row's length drawn independently as the norm of a fresh Gaussian vector
    ($\chi_d$); otherwise i.i.d. Gaussian rows.
    """
    check_int("m", m, minimum=1)
    check_int("d", d, minimum=1)
    g = make_generator(seed, generator)
    if not orthogonal:
        return torch.randn(m, d, generator=g, dtype=torch.float64).to(dtype)
    G = torch.randn(-(-m // d), d, d, generator=g, dtype=torch.float64)  # one Gaussian matrix per block
    Qm, R = torch.linalg.qr(G)
    Qm = Qm * torch.sign(torch.diagonal(R, dim1=-2, dim2=-1))[..., None, :]  # Haar-distributed rotations
    W = Qm.transpose(-2, -1).reshape(-1, d)[:m]  # (blocks * d, d) -> (m, d): d orthonormal rows per block
    lengths = torch.randn(m, d, generator=g, dtype=torch.float64).norm(dim=-1, keepdim=True)  # chi_d
    return (W * lengths).to(dtype)


def favor_features(x: torch.Tensor, omega: torch.Tensor, *, stabilizer: str | None = None) -> torch.Tensor:
    r"""Positive random features $\phi(x)_t = e^{\omega_t^\top x - \lVert x \rVert^2 / 2} / \sqrt m$.

    Equivalent to::

        torch.exp(x @ omega.T - (x * x).sum(-1, keepdim=True) / 2) / math.sqrt(m)

    Args:
        x: ``(..., L, d)`` (already scaled: pass ``q / d**0.25`` for the Transformer's kernel).
        omega: ``(m, d)`` directions from :func:`orthogonal_gaussian`.
        stabilizer: ``None``; ``"row"`` subtracts each row's largest exponent (for queries: the
            factor cancels in the row's normalisation); ``"all"`` subtracts the largest exponent
            of the whole tensor (for keys: one constant, cancels everywhere). Both leave
            attention outputs unchanged and avoid overflow.

    Returns:
        ``(..., L, m)``, all entries positive.
    """
    check_tensor("x", x, min_rank=1, shape="(..., L, d)")
    check_tensor("omega", omega, min_rank=2, shape="(m, d)")
    if omega.dim() != 2 or omega.shape[-1] != x.shape[-1] or omega.shape[0] < 1:
        raise ValueError(f"omega must be (m, d) with m >= 1 and d = x.shape[-1] = {x.shape[-1]}; "
                         f"got {tuple(omega.shape)}")
    if stabilizer not in (None, "row", "all"):
        raise ValueError(f"stabilizer must be None, 'row' or 'all'; got {stabilizer!r}")
    # exponent_t = omega_t . x - |x|^2 / 2: (..., L, m)
    z = x @ omega.to(x.dtype).T - (x * x).sum(-1, keepdim=True) / 2
    if stabilizer == "row":
        z = z - z.amax(-1, keepdim=True).detach()
    elif stabilizer == "all":
        z = z - z.amax().detach()
    return torch.exp(z) / math.sqrt(omega.shape[0])


def row_sum_normalize(scores: torch.Tensor, mask: torch.Tensor | None = None, dim: int = -1) -> torch.Tensor:
    r"""Normaliser $a_{ij} = s_{ij} / \sum_{j'} s_{ij'}$ for non-negative scores (masked -> 0).

    With ``score="dot"`` on random features this turns ``attend`` into (quadratic) Performer
    attention. A row whose sum is 0 gets zeros.
    """
    check_tensor("scores", scores)
    scores, keep = split_mask(scores, mask)
    if keep is not None:
        scores = scores.masked_fill(~keep, 0.0)
    z = scores.sum(dim, keepdim=True)
    return scores / torch.where(z != 0, z, torch.ones_like(z))


def linear_attention(phi_q: torch.Tensor, phi_k: torch.Tensor, v: torch.Tensor, *, causal: bool = False,
                     chunk: int = 256) -> torch.Tensor:
    r"""Normalised linear attention $D^{-1}\phi(Q)(\phi(K)^\top V)$ in ``O(N m dv)``.

    Equivalent to::

        attend(phi_q, phi_k, v, score="dot", normalize=row_sum_normalize,
               mask=causal_mask(L) if causal else None)[0]

    ``causal``: the prefix sums $S_i = \sum_{j \le i}\phi(k_j) v_j^\top$,
    $z_i = \sum_{j\le i}\phi(k_j)$ are carried from block to block of ``chunk`` positions (inside
    a block a small masked product), so memory stays ``O(chunk^2 + chunk m + m dv)``.

    ``phi_q: (..., L, m)``, ``phi_k: (..., N, m)``, ``v: (..., N, dv)`` -> ``(..., L, dv)``.
    """
    with argument_names(q="phi_q", k="phi_k"):
        check_qkv(phi_q, phi_k, v, same_length=causal)
    check_int("chunk", chunk, minimum=1)
    if not causal:
        kv = phi_k.transpose(-2, -1) @ v  # phi(K)^T V: (..., m, dv)
        z = phi_k.sum(-2, keepdim=True)  # 1^T phi(K): (..., 1, m)
        num = phi_q @ kv  # (..., L, dv)
        den = (phi_q * z).sum(-1, keepdim=True)  # D_ii = phi(q_i) . sum_j phi(k_j): (..., L, 1)
        return num / torch.where(den != 0, den, torch.ones_like(den))
    L = phi_q.shape[-2]
    S = phi_k.new_zeros(*phi_k.shape[:-2], phi_k.shape[-1], v.shape[-1])  # prefix sum of phi(k_j) v_j^T (..., m, dv)
    z = phi_k.new_zeros(*phi_k.shape[:-2], 1, phi_k.shape[-1])  # prefix sum of phi(k_j): (..., 1, m)
    out = torch.empty(*phi_q.shape[:-1], v.shape[-1], dtype=v.dtype, device=v.device)
    for s0 in range(0, L, chunk):
        qb, kb, vb = (t[..., s0:s0 + chunk, :] for t in (phi_q, phi_k, v))  # (..., c, m), (..., c, m), (..., c, dv)
        # within the block: A_ij = phi(q_i) . phi(k_j) for j <= i: (..., c, c)
        A = (qb @ kb.transpose(-2, -1)).tril()
        # o_i = phi(q_i) S_prev + sum_{j<=i in block} A_ij v_j
        num = qb @ S + A @ vb  # (..., c, dv)
        den = (qb * z).sum(-1, keepdim=True) + A.sum(-1, keepdim=True)  # (..., c, 1)
        out[..., s0:s0 + chunk, :] = num / torch.where(den != 0, den, torch.ones_like(den))
        S = S + kb.transpose(-2, -1) @ vb  # S += sum_{j in block} phi(k_j) v_j^T
        z = z + kb.sum(-2, keepdim=True)
    return out


def linear_attention_step(state: tuple[torch.Tensor, torch.Tensor] | None, phi_q_t: torch.Tensor,
                          phi_k_t: torch.Tensor, v_t: torch.Tensor,
                          ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
    r"""One step of causal linear attention as a recurrent network: ``(o_t, (S_t, z_t))``.

    Equivalent to::

        S_t = S_{t-1} + outer(phi(k_t), v_t)     # (..., m, dv): sum_{j<=t} phi(k_j) v_j^T
        z_t = z_{t-1} + phi(k_t)                 # (..., m):     sum_{j<=t} phi(k_j)
        o_t = phi(q_t) @ S_t / (phi(q_t) . z_t)  # (..., dv)

    The state has ``m dv + m`` numbers whatever ``t`` is: generating a token costs
    ``O(m dv)`` time and memory, against ``O(t d)`` for softmax attention with a cache of
    ``t`` keys and values. ``state=None`` starts from zeros. ``phi_q_t, phi_k_t: (..., m)``,
    ``v_t: (..., dv)``. A zero denominator (no key yet with weight) gives ``o_t = 0``.
    """
    check_tensor("phi_q_t", phi_q_t, min_rank=1, shape="(..., m)")
    check_tensor("phi_k_t", phi_k_t, min_rank=1, shape="(..., m)")
    check_tensor("v_t", v_t, min_rank=1, shape="(..., dv)")
    if phi_q_t.shape != phi_k_t.shape or phi_k_t.shape[:-1] != v_t.shape[:-1]:
        raise ValueError(f"phi_q_t and phi_k_t must be (..., m) and v_t (..., dv) with the same batch dims; got "
                         f"{tuple(phi_q_t.shape)}, {tuple(phi_k_t.shape)}, {tuple(v_t.shape)}")
    check_same_device(phi_q_t=phi_q_t, phi_k_t=phi_k_t, v_t=v_t)
    if state is None:
        S = phi_k_t.new_zeros(*phi_k_t.shape, v_t.shape[-1])  # (..., m, dv)
        z = phi_k_t.new_zeros(phi_k_t.shape)  # (..., m)
    else:
        if not (isinstance(state, tuple) and len(state) == 2 and all(isinstance(t, torch.Tensor) for t in state)
                and state[0].shape == (*phi_k_t.shape, v_t.shape[-1]) and state[1].shape == phi_k_t.shape):
            raise ValueError(f"state must be None or (S: (..., m, dv), z: (..., m)) = "
                             f"({(*phi_k_t.shape, v_t.shape[-1])}, {tuple(phi_k_t.shape)}) for phi_k_t: "
                             f"{tuple(phi_k_t.shape)} and v_t: {tuple(v_t.shape)}, as returned by the previous step")
        S, z = state
        check_same_device(phi_k_t=phi_k_t, S=S, z=z)
    # S_t = S_{t-1} + phi(k_t) v_t^T;  z_t = z_{t-1} + phi(k_t)
    S = S + phi_k_t[..., :, None] * v_t[..., None, :]
    z = z + phi_k_t
    # o_t = phi(q_t)^T S_t / phi(q_t)^T z_t
    num = (phi_q_t[..., None, :] @ S)[..., 0, :]  # (..., 1, m) @ (..., m, dv) -> (..., dv)
    den = (phi_q_t * z).sum(-1, keepdim=True)  # (..., 1)
    return num / torch.where(den != 0, den, torch.ones_like(den)), (S, z)


def linear_attention_recurrent(phi_q: torch.Tensor, phi_k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    r"""Causal linear attention token by token with :func:`linear_attention_step` (the RNN form).

    Equivalent to ``linear_attention(phi_q, phi_k, v, causal=True)`` and to the masked quadratic
    ``attend(phi_q, phi_k, v, score="dot", normalize=row_sum_normalize, mask=causal_mask(L))``
    (Katharopoulos et al., 2020, "Transformers are RNNs"). ``phi_q, phi_k: (..., L, m)``,
    ``v: (..., L, dv)`` -> ``(..., L, dv)``.
    """
    with argument_names(q="phi_q", k="phi_k"):
        check_qkv(phi_q, phi_k, v, same_length=True)
    if phi_q.shape[-2] == 0:
        return v.new_zeros(v.shape)  # no positions: an empty output
    state = None
    outs = []
    for t in range(phi_q.shape[-2]):
        o_t, state = linear_attention_step(state, phi_q[..., t, :], phi_k[..., t, :], v[..., t, :])
        outs.append(o_t)
    return torch.stack(outs, dim=-2)  # (..., L, dv)


def performer_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, n_features: int = 256,
                        causal: bool = False, orthogonal: bool = True, omega: torch.Tensor | None = None,
                        seed: int | None = None, generator: torch.Generator | None = None,
                        chunk: int = 256) -> torch.Tensor:
    r"""FAVOR+ approximation of ``attend(q, k, v)`` (softmax, scale ``1/sqrt(d)``).

    Equivalent to::

        omega = orthogonal_gaussian(n_features, d)                   # (m, d)
        phi_q = favor_features(q / d**0.25, omega)                   # (..., L, m)
        phi_k = favor_features(k / d**0.25, omega)                   # (..., N, m)
        out = phi_q @ (phi_k.mT @ v) / (phi_q @ phi_k.sum(-2)[..., None])   # (..., L, dv)

    with the causal prefix-sum variant if ``causal`` (see :func:`linear_attention`).

    Args:
        q: ``(..., L, d)``; k: ``(..., N, d)``; v: ``(..., N, dv)``.
        n_features: ``m``, the number of random features (ignored if ``omega`` is given).
        causal: query ``i`` sees keys ``j <= i`` (needs ``L = N``).
        orthogonal: orthogonal random features (FAVOR+) or i.i.d. ones.
        omega: explicit ``(m, d)`` feature directions (e.g. to reuse one draw).
        seed, generator: randomness of ``omega`` (same seed, same output).
        chunk: block length of the causal prefix sums.

    Returns:
        ``(..., L, dv)``.
    """
    check_qkv(q, k, v, same_length=causal)
    d = q.shape[-1]
    if omega is None:
        check_int("n_features = m", n_features, minimum=1)
        omega = orthogonal_gaussian(n_features, d, orthogonal=orthogonal, seed=seed, generator=generator,
                                    dtype=q.dtype).to(q.device)
    scale = d ** -0.25  # q.k / sqrt(d) = (q / d^1/4) . (k / d^1/4)
    phi_q = favor_features(q * scale, omega, stabilizer="row")  # (..., L, m)
    phi_k = favor_features(k * scale, omega, stabilizer="all")  # (..., N, m)
    return linear_attention(phi_q, phi_k, v, causal=causal, chunk=chunk)
