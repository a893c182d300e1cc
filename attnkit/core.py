r"""The one idea of the book: ``attend(q, k, v)``.

Every mechanism from Broadbent's filter to FlashAttention computes

$$
\operatorname{attend}(Q, K, V) = \operatorname{normalize}\!\left(\frac{\operatorname{score}(Q, K)}{T} \odot M\right) V,
$$

a score for every (query, key) pair, a row-wise normalisation into weights, and a weighted
sum of values. Chapters differ only in the score (dot, bilinear, additive, Gaussian, ...) and
the normaliser (softmax, none, sparsemax, hard). The score functions live in
:mod:`attnkit.scores`, the normalisers in :mod:`attnkit.normalize`.

Shape legend: ``...`` batch dims (broadcast), ``Lq`` queries, ``Lk`` keys/values, ``d``
query/key width, ``dv`` value width.
"""

from __future__ import annotations

import torch

from attnkit._checks import (
    broadcast_batch,
    check_dim_match,
    check_mask,
    check_positive,
    check_same_dtype_device,
    check_tensor,
)
from attnkit.normalize import NORMALIZERS, Normalizer
from attnkit.scores import SAME_WIDTH_SCORES, SCORES, ScoreFn


def _resolve(kind: str, value: object, table: dict) -> object:
    if callable(value):
        return value
    if isinstance(value, str):
        if value not in table:
            raise ValueError(f"unknown {kind} {value!r}; choose one of {sorted(table)} or pass a callable")
        return table[value]
    raise TypeError(f"{kind} must be a name ({sorted(table)}) or a callable; got {type(value).__name__}")


def attention_scores(q: torch.Tensor, k: torch.Tensor, *, score: str | ScoreFn = "scaled_dot",
                     score_params: dict[str, object] | None = None) -> torch.Tensor:
    """Scores ``(..., Lq, Lk)`` of ``q: (..., Lq, d)`` against ``k: (..., Lk, d)``.

    ``score`` is a name from ``attnkit.scores.SCORES`` or a callable
    ``score(q, k, **score_params)``; ``score_params`` holds e.g. ``W`` for ``general`` or
    ``W_q, W_k, w`` for ``additive``.
    """
    fn = _resolve("score", score, SCORES)
    if isinstance(score, str) and score in SAME_WIDTH_SCORES:
        check_dim_match("q", q, -1, "k", k, -1, f"score {score!r} compares q and k entrywise")
    try:
        return fn(q, k, **(score_params or {}))
    except TypeError as err:
        if isinstance(score, str) and "argument" in str(err):
            raise TypeError(f"score {score!r}: wrong score_params ({err})") from None
        raise


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, score: str | ScoreFn = "scaled_dot",
           mask: torch.Tensor | None = None, temperature: float = 1.0,
           normalize: str | Normalizer = "softmax",
           score_params: dict[str, object] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Attention of queries over key/value pairs; returns ``(output, weights)``.

    Equivalent to (for the default score and normaliser)::

        s = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])   # (..., Lq, Lk)
        s = s.masked_fill(~mask, -inf)                         # bool mask, True = attend
        w = torch.softmax(s / temperature, dim=-1)             # rows sum to 1
        out = w @ v                                            # (..., Lq, dv)

    Args:
        q: queries ``(..., Lq, d)``.
        k: keys ``(..., Lk, d)`` (``(..., Lk, dk)`` for ``general``/``additive``).
        v: values ``(..., Lk, dv)``.
        score: ``"dot"``, ``"scaled_dot"``, ``"general"``, ``"additive"``, ``"cosine"``,
            ``"gaussian"`` (see :mod:`attnkit.scores`) or a callable ``score(q, k, **score_params)``
            returning ``(..., Lq, Lk)``.
        mask: bool (``True`` = takes part) or float (added to the scores), broadcastable to
            ``(..., Lq, Lk)``. Fully masked rows give zero weights and zero output.
        temperature: scores are divided by it before normalising; ``T -> 0`` makes softmax
            hard, large ``T`` makes it uniform.
        normalize: ``"softmax"``, ``"none"`` (fast weights, unnormalised linear attention), ``"sparsemax"``,
            ``"hard"`` (one-hot argmax) or a callable ``normalize(scores, mask, dim)``.
        score_params: keyword arguments for the score, e.g. ``{"W": W}`` for ``general``,
            ``{"W_q": Wq, "W_k": Wk, "w": w}`` for ``additive``.

    Returns:
        ``output: (..., Lq, dv)`` and ``weights: (..., Lq, Lk)``.

    Raises:
        TypeError: a non-tensor or non-float input, mixed dtypes, an unknown kind of score.
        ValueError: wrong ranks, mismatched ``d`` or ``Lk``, a mask that does not broadcast,
            mixed devices, an unknown score/normaliser name, a non-positive temperature.
    """
    check_tensor("q", q, min_rank=2, shape="(..., Lq, d)")
    check_tensor("k", k, min_rank=2, shape="(..., Lk, d)")
    check_tensor("v", v, min_rank=2, shape="(..., Lk, dv)")
    check_same_dtype_device(q=q, k=k, v=v)
    check_dim_match("k", k, -2, "v", v, -2, "k and v need one value per key (Lk)")
    batch = broadcast_batch(q=q, k=k, v=v)
    check_positive("temperature", temperature)
    norm = _resolve("normalize", normalize, NORMALIZERS)
    if mask is not None:
        check_mask(mask, (*batch, q.shape[-2], k.shape[-2]))
    s = attention_scores(q, k, score=score, score_params=score_params)  # (..., Lq, Lk)
    if temperature != 1.0:
        s = s / temperature  # s_ij / T
    w = norm(s, mask, -1)  # a_ij = normalize_j(s_ij)
    return w @ v, w  # o_i = sum_j a_ij v_j: (..., Lq, dv)
