"""Cases that also check the dtype of the answer: a float16 input must come back float16.

The harness's :func:`~attnkit.exercises._harness.compare` compares values (in float64); the
checkers of the first chapters wrap it with :func:`typed_case` so that an answer computed in
the wrong precision (``.double()``, a float64 constant that promotes the result) fails with a
clear message, whatever the harness does.
"""

from __future__ import annotations

import torch

from attnkit.exercises._harness import Case, compare


def dtype_problem(got: object, expected: torch.Tensor) -> str | None:
    """``None`` if ``got`` is a tensor of ``expected``'s dtype (or not a tensor: ``compare`` says so)."""
    if isinstance(got, torch.Tensor) and got.dtype != expected.dtype:
        return (f"dtype {got.dtype}, expected {expected.dtype}: return the dtype of the inputs "
                f"(compute in higher precision if you like, then cast back)")
    return None


def typed_case(name: str, args: tuple, expected: torch.Tensor, *, hint: str = "", atol: float = 1e-5,
               rtol: float = 1e-4, kwargs: dict | None = None) -> Case:
    """A :class:`Case` that fails on a wrong dtype first, then compares values like ``compare``."""

    def check(got: object) -> str | None:
        return dtype_problem(got, expected) or compare(got, expected, atol, rtol)

    return Case(name, args, expected, hint=hint, atol=atol, rtol=rtol, check=check, kwargs=dict(kwargs or {}))
