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

Conventions (the book's page *Conventions* has the full table against PyTorch, Hugging Face,
PyG, OpenCV and scikit-image): a bool mask is ``True`` where a pair takes part and a float
mask is added to the scores, as in ``torch.nn.functional.scaled_dot_product_attention``
(Hugging Face's ``attention_mask`` has the same polarity, 1 = attend, but for keys only;
``nn.MultiheadAttention``'s bool ``attn_mask`` and ``key_padding_mask`` have the opposite,
``True`` = masked out); causal masks are aligned top-left like SDPA's ``is_causal``.
Float16/bfloat16 inputs are computed as SDPA computes them: scores, softmax and the weighted
sum in float32, the results cast back.
"""

from __future__ import annotations

import torch

from attnkit._checks import (
    arg_name,
    broadcast_batch,
    check_dim_match,
    check_mask,
    check_positive,
    check_same_dtype_device,
    check_tensor,
    compute_dtype,
)
from attnkit.normalize import NORMALIZERS, Normalizer
from attnkit.scores import SAME_WIDTH_SCORES, SCORES, ScoreFn, check_qk


def _resolve(kind: str, value: object, table: dict) -> object:
    if callable(value):
        return value
    if isinstance(value, str):
        if value not in table:
            raise ValueError(f"unknown {kind} {value!r}; choose one of {sorted(table)} or pass a callable")
        return table[value]
    raise TypeError(f"{kind} must be a name ({sorted(table)}) or a callable; got {type(value).__name__}")


def _upcast(t: object, half: torch.dtype) -> object:
    return t.float() if isinstance(t, torch.Tensor) and t.dtype == half else t


def _scores(q: torch.Tensor, k: torch.Tensor, score: str | ScoreFn, score_params: dict | None) -> torch.Tensor:
    """The score matrix ``(..., Lq, Lk)`` in the compute dtype (float32 for half inputs)."""
    fn = _resolve("score", score, SCORES)
    if score_params is not None and not isinstance(score_params, dict):
        raise TypeError(f"score_params must be a dict of keyword arguments or None; got {type(score_params).__name__}")
    check_qk(q, k, same_width=isinstance(score, str) and score in SAME_WIDTH_SCORES,
             what=f"score {score!r}")
    params = dict(score_params or {})
    ct = compute_dtype(q.dtype)
    if isinstance(score, str) and ct != q.dtype:
        # built-in scores on float32 copies: products accumulated and scaled in float32
        half = q.dtype
        q, k = q.float(), k.float()
        params = {n: _upcast(t, half) for n, t in params.items()}
    try:
        s = fn(q, k, **params)
    except TypeError as err:
        if isinstance(score, str) and "argument" in str(err):
            raise TypeError(f"score {score!r}: wrong score_params ({err})") from None
        raise
    if not isinstance(s, torch.Tensor) or s.shape[-2:] != (q.shape[-2], k.shape[-2]):
        got = tuple(s.shape) if isinstance(s, torch.Tensor) else type(s).__name__
        raise ValueError(f"score must return scores (..., Lq, Lk) = (..., {q.shape[-2]}, {k.shape[-2]}); got {got}")
    return s.to(ct) if s.is_floating_point() else s


def attention_scores(q: torch.Tensor, k: torch.Tensor, *, score: str | ScoreFn = "scaled_dot",
                     score_params: dict[str, object] | None = None) -> torch.Tensor:
    """Scores ``(..., Lq, Lk)`` of ``q: (..., Lq, d)`` against ``k: (..., Lk, d)``, in ``q``'s dtype.

    ``score`` is a name from ``attnkit.scores.SCORES`` or a callable
    ``score(q, k, **score_params)``; ``score_params`` holds e.g. ``W`` for ``general`` or
    ``W_q, W_k, w`` for ``additive``. Built-in scores of float16/bfloat16 inputs are computed
    in float32 (scale folded in before the product) and cast back; a callable gets the inputs
    as they are.
    """
    s = _scores(q, k, score, score_params)
    return s.to(q.dtype)


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, score: str | ScoreFn = "scaled_dot",
           mask: torch.Tensor | None = None, temperature: float = 1.0,
           normalize: str | Normalizer = "softmax",
           score_params: dict[str, object] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Attention of queries over key/value pairs; returns ``(output, weights)``.

    Equivalent to (for the default score and normaliser)::

        s = (q / math.sqrt(q.shape[-1])) @ k.transpose(-2, -1)   # (..., Lq, Lk)
        s = s.masked_fill(~mask, -inf)                           # bool mask, True = attend
        w = torch.softmax(s / temperature, dim=-1)               # rows sum to 1
        out = w @ v                                              # (..., Lq, dv)

    Args:
        q: queries ``(..., Lq, d)``.
        k: keys ``(..., Lk, d)`` (``(..., Lk, dk)`` for ``general``/``additive``).
        v: values ``(..., Lk, dv)``.
        score: ``"dot"``, ``"scaled_dot"``, ``"general"``, ``"additive"``, ``"cosine"``,
            ``"gaussian"`` (see :mod:`attnkit.scores`) or a callable ``score(q, k, **score_params)``
            returning ``(..., Lq, Lk)``.
        mask: bool (``True`` = takes part) or float of any float dtype (added to the scores),
            broadcastable to ``(..., Lq, Lk)``, as ``attn_mask`` of
            ``scaled_dot_product_attention``. Fully masked rows give zero weights and zero output.
        temperature: scores are divided by it before normalising; ``T -> 0`` makes softmax
            hard, large ``T`` makes it uniform.
        normalize: ``"softmax"``, ``"none"`` (fast weights, unnormalised linear attention), ``"sparsemax"``,
            ``"hard"`` (one-hot argmax) or a callable ``normalize(scores, mask, dim)``.
        score_params: keyword arguments for the score, e.g. ``{"W": W}`` for ``general``,
            ``{"W_q": Wq, "W_k": Wk, "w": w}`` for ``additive``.

    Returns:
        ``output: (..., Lq, dv)`` and ``weights: (..., Lq, Lk)``, both in the inputs' dtype.

    Edge cases, as in SDPA: no keys (``Lk = 0``) gives zero output; a NaN among a row's kept
    scores (or in a float mask) makes that row's weights and output NaN. Float16/bfloat16
    inputs are scored, normalised and summed in float32 (scale folded into ``q`` before the
    product), then cast back, so their error matches SDPA's; custom score callables receive the
    inputs as given, custom normalisers the float32 scores.

    Raises:
        TypeError: a non-tensor or non-float input, mixed dtypes, an unknown kind of score.
        ValueError: wrong ranks, mismatched ``d`` or ``Lk``, a mask that does not broadcast,
            mixed devices, an unknown score/normaliser name, a non-positive temperature.
    """
    qn, kn, vn = arg_name("q"), arg_name("k"), arg_name("v")
    check_tensor(qn, q, min_rank=2, shape="(..., Lq, d)")
    check_tensor(kn, k, min_rank=2, shape="(..., Lk, d)")
    check_tensor(vn, v, min_rank=2, shape="(..., Lk, dv)")
    check_same_dtype_device(**{qn: q, kn: k, vn: v})
    check_dim_match(kn, k, -2, vn, v, -2, f"{kn} and {vn} need one value per key (Lk)")
    batch = broadcast_batch(**{qn: q, kn: k, vn: v})
    temperature = check_positive(arg_name("temperature"), temperature)
    norm = _resolve("normalize", normalize, NORMALIZERS)
    if mask is not None:
        check_mask(mask, (*batch, q.shape[-2], k.shape[-2]), name=arg_name("mask"), device=q.device,
                   source=f"batch and Lq from {qn}: {tuple(q.shape)}, Lk from {kn}: {tuple(k.shape)}")
    s = _scores(q, k, score, score_params)  # (..., Lq, Lk), float32 for half inputs
    if temperature != 1.0:
        s = s / temperature  # s_ij / T
    w = norm(s, mask, -1)  # a_ij = normalize_j(s_ij)
    out = w @ v.to(w.dtype)  # o_i = sum_j a_ij v_j: (..., Lq, dv)
    return out.to(v.dtype), w.to(q.dtype)
