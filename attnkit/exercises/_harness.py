"""The checking machinery behind every ``attnkit.exercises.check_*`` function.

A checker builds a list of :class:`Case` objects (hidden inputs and the expected answer,
computed by attnkit's own reference) and hands the reader's function to :func:`run_cases`,
which tries them in order, stops at the first failure and prints a friendly verdict. Nothing
is raised for a wrong answer (a reader's notebook keeps running); the returned
:class:`CheckResult` is truthy only when every case passed.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch


@dataclass
class Case:
    """One hidden test: ``fn(*args)`` should be close to ``expected``.

    ``check`` may replace the closeness test: ``check(got) -> str | None`` returns a problem
    description or ``None``. ``hint`` is shown when the case fails.

    ``exact_dtype``: must the answer have ``expected``'s dtype? ``None`` (the default) decides
    from the inputs: yes when a floating-point tensor is among them (a float16 input must come
    back float16), else only the kind (a floating-point answer for a floating-point expected
    one, as when the inputs are sizes and the reader picks the precision).
    """

    name: str
    args: tuple
    expected: torch.Tensor | None = None
    hint: str = ""
    atol: float = 1e-5
    rtol: float = 1e-4
    check: Callable[[object], str | None] | None = None
    kwargs: dict = field(default_factory=dict)
    exact_dtype: bool | None = None

    def wants_exact_dtype(self) -> bool:
        if self.exact_dtype is not None:
            return self.exact_dtype
        inputs = (*self.args, *self.kwargs.values())
        return any(isinstance(a, torch.Tensor) and a.is_floating_point() for a in inputs)


@dataclass
class CheckResult:
    """Outcome of a checker: ``passed``, how many cases ran, and the first failure (if any)."""

    checker: str
    passed: bool
    n_passed: int
    n_cases: int
    failed_case: str | None = None
    message: str = ""

    def __bool__(self) -> bool:
        return self.passed

    def _ipython_display_(self) -> None:
        # the verdict was already printed; show nothing more in a notebook
        return None


def _short(x: object, limit: int = 300) -> str:
    if isinstance(x, torch.Tensor):
        text = f"tensor of shape {tuple(x.shape)}, dtype {x.dtype}:\n{x.detach()}"
    else:
        text = repr(x)
    return text if len(text) <= limit else text[:limit] + " ..."


def _kind(dtype: torch.dtype) -> str:
    if dtype == torch.bool:
        return "bool"
    if dtype.is_floating_point:
        return "floating-point"
    return "complex" if dtype.is_complex else "integer"


def compare(got: object, expected: torch.Tensor, atol: float, rtol: float, *,
            exact_dtype: bool = True) -> str | None:
    """``None`` if ``got`` matches ``expected``; otherwise what is wrong, in words.

    Compared in order: type, shape, dtype (a float16 input must come back float16; with
    ``exact_dtype=False`` only its kind: float, integer, bool), device, NaN, matching
    infinities, then values within ``atol + rtol * |expected|``.
    """
    if not isinstance(got, torch.Tensor):
        return f"expected a torch.Tensor, got {type(got).__name__}"
    if got.shape != expected.shape:
        return f"shape {tuple(got.shape)}, expected {tuple(expected.shape)}"
    if exact_dtype and got.dtype != expected.dtype:
        return (f"dtype {got.dtype}, expected {expected.dtype} (the answer should keep the input's "
                f"precision: compute in float32 if you like, then cast back with .to(dtype))")
    if _kind(got.dtype) != _kind(expected.dtype):
        return f"dtype {got.dtype}, expected a {_kind(expected.dtype)} tensor like {expected.dtype}"
    if got.device != expected.device:
        return f"device {got.device}, expected {expected.device}"
    g = got.detach().to(torch.float64)
    e = expected.detach().to(torch.float64)
    if torch.isnan(g).any():
        return f"the output contains NaN at {torch.isnan(g).nonzero()[0].tolist()}"
    if not torch.equal(torch.where(torch.isinf(g), g, 0), torch.where(torch.isinf(e), e, 0)):
        return "the output has inf where the expected answer does not (or the other way round)"
    g, e = torch.where(torch.isinf(g), 0, g), torch.where(torch.isinf(e), 0, e)  # equal infs: compare the rest
    if not torch.allclose(g, e, atol=atol, rtol=rtol):
        err = (g - e).abs()
        idx = err.argmax()
        where = list(torch.unravel_index(idx, err.shape)) if err.dim() else []
        where = [int(i) for i in where]
        return (f"values differ: largest error {err.max().item():.3g} at index {where} "
                f"(got {g.flatten()[idx].item():.6g}, expected {e.flatten()[idx].item():.6g})")
    return None


def run_cases(fn: Callable, cases: Sequence[Case], *, checker: str, quiet: bool = False) -> CheckResult:
    """Run ``fn`` on every case, print a verdict, return a :class:`CheckResult`."""
    if not callable(fn):
        raise TypeError(f"{checker} needs your function as its argument; got {type(fn).__name__}")
    n = len(cases)
    for i, case in enumerate(cases, start=1):
        args = tuple(a.clone() if isinstance(a, torch.Tensor) else a for a in case.args)
        try:
            got = fn(*args, **case.kwargs)
            problem = (case.check(got) if case.check else
                       compare(got, case.expected, case.atol, case.rtol, exact_dtype=case.wants_exact_dtype()))
        except Exception as err:  # a reader's bug is reported, not raised
            tb = traceback.format_exception_only(type(err), err)[-1].strip()
            problem = f"your function raised {tb}"
        if problem is not None:
            lines = [f"✗ {checker}: case {i} of {n} ({case.name!r}) failed: {problem}"]
            for j, a in enumerate(case.args):
                lines.append(f"  argument {j}: {_short(a)}")
            if case.expected is not None:
                lines.append(f"  expected: {_short(case.expected)}")
            if case.hint:
                lines.append(f"  hint: {case.hint}")
            lines.append(f"  ({i - 1} of {n} cases passed before this one.)")
            msg = "\n".join(lines)
            if not quiet:
                print(msg)
            return CheckResult(checker, False, i - 1, n, case.name, msg)
    msg = f"✓ {checker}: all {n} cases passed. Well done!"
    if not quiet:
        print(msg)
    return CheckResult(checker, True, n, n, None, msg)
