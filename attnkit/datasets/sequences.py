"""Small tasks generated in code for the Transformer chapter: sequences, sets and relations.

Every generator takes ``n`` (the number of examples) and a ``seed`` (an int or a
``torch.Generator``), so the same call always returns the same data.

- ``reversal_task``, ``sorting_task``: token sequences ``(n, L)`` and their targets;
- ``set_max_task``: sets of numbers of varying size (padded) and their maximum;
- ``relational_task``: scenes of coloured objects with questions about their relations,
  a state-description version of Sort-of-CLEVR (Santoro et al., 2017).
"""

from __future__ import annotations

import torch

from attnkit._checks import check_int


def _generator(seed: int | torch.Generator) -> torch.Generator:
    if isinstance(seed, torch.Generator):
        return seed
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int or a torch.Generator; got {type(seed).__name__}")
    return torch.Generator().manual_seed(seed)


def reversal_task(n: int, length: int = 8, vocab_size: int = 10, *,
                  seed: int | torch.Generator = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random token sequences and their reversals: ``(src, tgt)``, both ``(n, length)`` long.

    ``tgt[b, t] = src[b, length - 1 - t]``: output position ``t`` must look at input position
    ``length - 1 - t``, so the task needs attention by position.
    """
    check_int("n", n, minimum=1)
    check_int("length", length, minimum=1)
    check_int("vocab_size", vocab_size, minimum=2)
    src = torch.randint(0, vocab_size, (n, length), generator=_generator(seed))  # (n, L)
    return src, src.flip(1)


def sorting_task(n: int, length: int = 8, vocab_size: int = 10, *,
                 seed: int | torch.Generator = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random token sequences and their sorted versions: ``(src, tgt)``, both ``(n, length)`` long."""
    check_int("n", n, minimum=1)
    check_int("length", length, minimum=1)
    check_int("vocab_size", vocab_size, minimum=2)
    src = torch.randint(0, vocab_size, (n, length), generator=_generator(seed))  # (n, L)
    return src, src.sort(dim=1).values


def set_max_task(n: int, min_size: int = 2, max_size: int = 10, *,
                 seed: int | torch.Generator = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Sets of numbers drawn uniformly from ``[0, 1)``, of random sizes, and their maxima.

    Returns ``x: (n, max_size, 1)`` float (padded with zeros after each set), ``lengths: (n,)``
    long (the set sizes, between ``min_size`` and ``max_size``) and ``y: (n,)`` the maximum of
    each set. Use ``attnkit.padding_mask(lengths, max_size)`` to mark the real elements.
    """
    check_int("n", n, minimum=1)
    check_int("min_size", min_size, minimum=1)
    check_int("max_size", max_size, minimum=min_size)
    g = _generator(seed)
    lengths = torch.randint(min_size, max_size + 1, (n,), generator=g)  # (n,)
    x = torch.rand(n, max_size, generator=g)  # (n, N)
    real = torch.arange(max_size) < lengths[:, None]  # (n, N)
    x = x * real
    y = x.amax(dim=1)  # the padding (0) never exceeds a real element (>= 0)
    return x[..., None], lengths, y  # (n, N, 1), (n,), (n,)


N_COLOURS = 6
"""Objects per scene in ``relational_task``: one per colour."""
N_COLUMNS = 10
"""Objects of a scene sit in distinct columns ``x = (col + 0.5) / 10`` of the unit square."""
QUESTIONS = ("shape of the object of colour c", "number of objects left of c", "number of other objects shaped like c")
"""The question types of ``relational_task``: one non-relational, two relational."""
N_ANSWERS = N_COLOURS
"""Answers are classes ``0 .. 5``: a shape (0 = square, 1 = circle) or a count (0 .. 5)."""


def relational_task(n: int, *, seed: int | torch.Generator = 0,
                    question_types: tuple[int, ...] = (0, 1, 2)) -> dict[str, torch.Tensor]:
    """Scenes of six objects and questions about them (a state-description Sort-of-CLEVR).

    Each scene has one object per colour ``0 .. 5`` in random order, with a position in the
    unit square (in distinct columns of a 10-column grid, ``y`` uniform) and a shape (square
    or circle). An object is the vector
    ``[one-hot colour (6), x, y, one-hot shape (2)]`` (10 numbers). A question is
    ``[one-hot type (3), one-hot colour c (6)]`` (9 numbers), asking (see ``QUESTIONS``):

    - type 0: the shape of the object of colour ``c`` (non-relational);
    - type 1: how many objects lie left of it (relational: compares ``x`` across pairs);
    - type 2: how many other objects share its shape (relational).

    Returns a dict with ``objects (n, 6, 10)``, ``questions (n, 9)``, ``answers (n,)`` long in
    ``0 .. 5`` and ``qtype (n,)`` long.
    """
    check_int("n", n, minimum=1)
    if not question_types or any(t not in (0, 1, 2) for t in question_types):
        raise ValueError(f"question_types must be a non-empty tuple of 0, 1, 2; got {question_types!r}")
    g = _generator(seed)
    N = N_COLOURS
    colour = torch.argsort(torch.rand(n, N, generator=g), dim=1)  # (n, N): a random order of colours
    # x on distinct columns of a 10-column grid (so "left of" is never a near tie), y uniform
    cols = torch.argsort(torch.rand(n, N_COLUMNS, generator=g), dim=1)[:, :N]  # (n, N)
    xy = torch.stack([(cols + 0.5) / N_COLUMNS, torch.rand(n, N, generator=g)], dim=-1)  # (n, N, 2)
    shape = torch.randint(0, 2, (n, N), generator=g)  # (n, N)
    objects = torch.cat([torch.nn.functional.one_hot(colour, N).float(), xy,
                         torch.nn.functional.one_hot(shape, 2).float()], dim=-1)  # (n, N, 10)
    types = torch.tensor(question_types)
    qtype = types[torch.randint(0, len(types), (n,), generator=g)]  # (n,)
    c = torch.randint(0, N, (n,), generator=g)  # (n,) the colour asked about
    target = (colour == c[:, None]).float().argmax(1)  # (n,) index of that object in the scene
    rows = torch.arange(n)
    x_c, shape_c = xy[rows, target, 0], shape[rows, target]  # (n,)
    left = (xy[..., 0] < x_c[:, None]).sum(1)  # (n,) objects with a smaller x
    same = (shape == shape_c[:, None]).sum(1) - 1  # (n,) others with the same shape
    answers = torch.where(qtype == 0, shape_c, torch.where(qtype == 1, left, same))
    questions = torch.cat([torch.nn.functional.one_hot(qtype, 3).float(),
                           torch.nn.functional.one_hot(c, N).float()], dim=-1)  # (n, 9)
    return {"objects": objects, "questions": questions, "answers": answers, "qtype": qtype}


__all__ = ["N_ANSWERS", "N_COLOURS", "QUESTIONS", "relational_task", "reversal_task", "set_max_task", "sorting_task"]
