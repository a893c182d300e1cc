"""Checkers for the exercises of the bilateral filter and non-local means chapters (Part I).

Every case also checks the dtype of the answer (``attnkit.exercises._typed.typed_case``):
float64, float32 and float16 inputs must come back in their own dtype.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from attnkit.classic.bilateral import bilateral_weights
from attnkit.classic.nonlocal_means import nadaraya_watson
from attnkit.exercises._harness import Case, CheckResult, run_cases
from attnkit.exercises._typed import typed_case


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _window_weights(window: torch.Tensor, sigma_space: float, sigma_range: float) -> torch.Tensor:
    r = (window.shape[0] - 1) // 2
    return bilateral_weights(window, r, r, r, sigma_space, sigma_range)


def bilateral_weights_cases(seed: int = 0) -> list[Case]:
    """The hidden cases of ``check_bilateral_weights``."""
    g = _gen(seed)
    w3 = torch.rand(3, 3, generator=g, dtype=torch.float64)
    w5 = torch.rand(5, 5, generator=g, dtype=torch.float64)
    step = torch.zeros(7, 7, dtype=torch.float64)
    step[:, 4:] = 1.0  # a vertical edge just right of the centre pixel
    w7 = torch.rand(7, 7, generator=g, dtype=torch.float64)
    w5f = torch.rand(5, 5, generator=g)
    w5h = torch.rand(5, 5, generator=g).half()
    cases = []
    for name, window, ss, sr, hint, tol in (
        ("3x3 random window", w3, 1.0, 0.2,
         "the weight of neighbour j is exp(-|p_i - p_j|^2 / (2 sigma_space^2) - (x_i - x_j)^2 / (2 sigma_range^2)), "
         "divided by the sum over the window", 1e-6),
        ("5x5 random window", w5, 1.5, 0.1, "the centre pixel of a (2r+1) x (2r+1) window is at index (r, r)", 1e-6),
        ("a step edge beside the centre", step, 2.0, 0.1,
         "pixels across the edge differ by 1 >> sigma_range: they must get (almost) no weight", 1e-6),
        ("7x7 window, very small sigma_range", w7, 2.0, 0.01,
         "weights must still sum to 1 (the centre pixel always has range distance 0)", 1e-6),
        ("float32 window", w5f, 1.0, 0.3, "return the dtype you were given (float32 in, float32 out)", 1e-6),
        ("float16 window", w5h, 1.5, 0.3, "return the dtype you were given (float16 in, float16 out)", 2e-3),
    ):
        expected = _window_weights(window.double(), ss, sr).to(window.dtype)
        cases.append(typed_case(name, (window, ss, sr), expected, hint=hint, atol=tol,
                                rtol=1e-4 if tol < 1e-3 else 1e-2))
    return cases


def check_bilateral_weights(fn: Callable[[torch.Tensor, float, float], torch.Tensor], *,
                            quiet: bool = False) -> CheckResult:
    """Check a reader's ``fn(window, sigma_space, sigma_range) -> weights``.

    ``window: (2r+1, 2r+1)`` float intensities around a centre pixel ``window[r, r]``; the
    result ``(2r+1, 2r+1)`` holds the bilateral-filter weights of that centre pixel over the
    window (spatial Gaussian times range Gaussian, normalised to sum to 1).
    """
    return run_cases(fn, bilateral_weights_cases(), checker="check_bilateral_weights", quiet=quiet)


def nadaraya_watson_cases(seed: int = 0) -> list[Case]:
    """The hidden cases of ``check_nadaraya_watson``."""
    g = _gen(seed)
    x_train = torch.sort(torch.rand(50, generator=g, dtype=torch.float64) * 5).values
    y_train = 2 * torch.sin(x_train) + x_train**0.8 + 0.5 * torch.randn(50, generator=g, dtype=torch.float64)
    x_query = torch.linspace(0, 5, 17, dtype=torch.float64)
    far = torch.tensor([-40.0, 2.5, 60.0], dtype=torch.float64)
    cases = []
    for name, xq, bw, dtype, hint in (
        ("sine data, bandwidth 1", x_query, 1.0, torch.float64,
         "use the Gaussian kernel exp(-(x - x_j)^2 / (2 bandwidth^2)) and divide by the sum of the weights "
         "over the training points (axis 1 of the (queries, keys) matrix)"),
        ("a narrow bandwidth 0.1", x_query, 0.1, torch.float64,
         "a narrow kernel averages only the nearest training points"),
        ("queries far outside the data", far, 0.5, torch.float64,
         "exp(-(x - x_j)^2 / 2h^2) underflows to 0 for every j when x is far away, and 0 / 0 is NaN: "
         "subtract the largest score before exponentiating (a softmax), as attend does"),
        ("a tiny bandwidth 1e-3", x_query, 1e-3, torch.float64,
         "with a tiny bandwidth every kernel value underflows: normalise in log space (softmax)"),
        ("float32 inputs", x_query, 0.5, torch.float32, "return the dtype you were given (float32 in, float32 out)"),
        ("float16 inputs", x_query, 0.5, torch.float16, "return the dtype you were given (float16 in, float16 out)"),
    ):
        half = dtype == torch.float16
        args = (xq.to(dtype), x_train.to(dtype), y_train.to(dtype))
        expected = nadaraya_watson(*(a.double() for a in args), bw)[0].to(dtype)  # from the rounded inputs
        cases.append(typed_case(name, (*args, bw), expected,
                                hint=hint, atol=2e-2 if half else 1e-5 if dtype == torch.float32 else 1e-6,
                                rtol=1e-2 if half else 1e-4))
    return cases


def check_nadaraya_watson(fn: Callable[..., torch.Tensor], *, quiet: bool = False) -> CheckResult:
    """Check a reader's ``fn(x_query, x_train, y_train, bandwidth) -> y_query``.

    ``x_query: (Lq,)``, ``x_train: (Lk,)``, ``y_train: (Lk,)`` float; the result ``(Lq,)`` is
    the Nadaraya-Watson estimate with a Gaussian kernel of standard deviation ``bandwidth``.
    It must stay finite for queries far from every training point.
    """
    return run_cases(fn, nadaraya_watson_cases(), checker="check_nadaraya_watson", quiet=quiet)
