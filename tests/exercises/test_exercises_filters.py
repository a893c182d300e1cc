"""Tests for attnkit.exercises.filters: the checkers pass correct answers and catch the usual mistakes."""

from __future__ import annotations

import torch

from attnkit.exercises.filters import check_bilateral_weights, check_nadaraya_watson


def good_bilateral_weights(window, sigma_space, sigma_range):  # the chapter's solution
    r = (window.shape[0] - 1) // 2
    t = torch.arange(-r, r + 1, dtype=window.dtype)
    d2 = t[:, None] ** 2 + t[None, :] ** 2
    s = -d2 / (2 * sigma_space**2) - (window - window[r, r]) ** 2 / (2 * sigma_range**2)
    return torch.softmax(s.flatten(), 0).view_as(window)


def blur_weights(window, sigma_space, sigma_range):  # forgets the range term
    r = (window.shape[0] - 1) // 2
    t = torch.arange(-r, r + 1, dtype=window.dtype)
    w = torch.exp(-(t[:, None] ** 2 + t[None, :] ** 2) / (2 * sigma_space**2))
    return w / w.sum()


def unnormalised_weights(window, sigma_space, sigma_range):
    return good_bilateral_weights(window, sigma_space, sigma_range) * 3.0


def corner_centre(window, sigma_space, sigma_range):  # takes window[0, 0] as the centre pixel
    r = (window.shape[0] - 1) // 2
    t = torch.arange(-r, r + 1, dtype=window.dtype)
    s = -(t[:, None] ** 2 + t[None, :] ** 2) / (2 * sigma_space**2) - (window - window[0, 0]) ** 2 / (
        2 * sigma_range**2)
    return torch.softmax(s.flatten(), 0).view_as(window)


def unsquared_sigma(window, sigma_space, sigma_range):  # divides by 2 sigma instead of 2 sigma^2
    r = (window.shape[0] - 1) // 2
    t = torch.arange(-r, r + 1, dtype=window.dtype)
    s = -(t[:, None] ** 2 + t[None, :] ** 2) / (2 * sigma_space) - (window - window[r, r]) ** 2 / (2 * sigma_range)
    return torch.softmax(s.flatten(), 0).view_as(window)


def float64_weights(window, sigma_space, sigma_range):  # right values, wrong dtype
    return good_bilateral_weights(window.double(), sigma_space, sigma_range)


def good_nw(x_query, x_train, y_train, bandwidth):  # the chapter's solution
    s = -((x_query[:, None] - x_train[None, :]) ** 2) / (2 * bandwidth**2)
    return torch.softmax(s, dim=1) @ y_train


def naive_nw(x_query, x_train, y_train, bandwidth):
    k = torch.exp(-((x_query[:, None] - x_train[None, :]) ** 2) / (2 * bandwidth**2))
    return (k @ y_train) / k.sum(1)


def test_bilateral_checker(capsys):
    assert check_bilateral_weights(good_bilateral_weights)
    assert "all 6 cases passed" in capsys.readouterr().out
    res = check_bilateral_weights(blur_weights)
    assert not res and res.n_passed == 0 and "range" in capsys.readouterr().out
    assert not check_bilateral_weights(unnormalised_weights, quiet=True)
    assert not check_bilateral_weights(lambda *a: 1 / 0, quiet=True)
    assert check_bilateral_weights(corner_centre, quiet=True).failed_case == "3x3 random window"
    assert check_bilateral_weights(unsquared_sigma, quiet=True).failed_case == "3x3 random window"
    res = check_bilateral_weights(float64_weights, quiet=True)
    assert not res and res.failed_case == "float32 window" and "dtype torch.float64" in res.message

    def float32_only(window, ss, sr):  # float16 in, float32 out
        return good_bilateral_weights(window.float(), ss, sr).to(torch.float64 if window.dtype == torch.float64
                                                                   else torch.float32)

    res = check_bilateral_weights(float32_only, quiet=True)
    assert not res and res.failed_case == "float16 window"


def test_nadaraya_watson_checker(capsys):
    assert check_nadaraya_watson(good_nw)
    res = check_nadaraya_watson(naive_nw)
    out = capsys.readouterr().out
    assert not res and res.failed_case == "queries far outside the data" and "NaN" in out
    assert not check_nadaraya_watson(lambda xq, xt, yt, b: good_nw(xq, xt, yt, 2 * b), quiet=True)

    def wrong_axis(xq, xt, yt, b):  # normalises over the queries instead of the training points
        s = -((xq[:, None] - xt[None, :]) ** 2) / (2 * b**2)
        return torch.softmax(s, dim=0) @ yt

    res = check_nadaraya_watson(wrong_axis, quiet=True)
    assert not res and res.failed_case == "sine data, bandwidth 1"

    def b_not_squared(xq, xt, yt, b):  # temperature 2b instead of 2b^2: right only for b = 1
        s = -((xq[:, None] - xt[None, :]) ** 2) / (2 * b)
        return torch.softmax(s, dim=1) @ yt

    assert check_nadaraya_watson(b_not_squared, quiet=True).failed_case == "a narrow bandwidth 0.1"

    def float64_answer(xq, xt, yt, b):
        return good_nw(xq.double(), xt.double(), yt.double(), b)

    res = check_nadaraya_watson(float64_answer, quiet=True)
    assert not res and res.failed_case == "float32 inputs" and "dtype torch.float64" in res.message

    def float32_for_half(xq, xt, yt, b):  # right, except that float16 inputs come back float32
        return good_nw(xq.float(), xt.float(), yt.float(), b) if xq.dtype == torch.float16 else good_nw(xq, xt, yt, b)

    assert check_nadaraya_watson(float32_for_half, quiet=True).failed_case == "float16 inputs"
