"""Tests for attnkit.exercises.filters: the checkers pass correct answers and catch the usual mistakes."""

from __future__ import annotations

import torch

from attnkit.exercises.filters import check_bilateral_weights, check_nadaraya_watson


def good_bilateral_weights(window, sigma_space, sigma_range):
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


def good_nw(x_query, x_train, y_train, bandwidth):
    s = -((x_query[:, None] - x_train[None, :]) ** 2) / (2 * bandwidth**2)
    return torch.softmax(s, dim=1) @ y_train


def naive_nw(x_query, x_train, y_train, bandwidth):
    k = torch.exp(-((x_query[:, None] - x_train[None, :]) ** 2) / (2 * bandwidth**2))
    return (k @ y_train) / k.sum(1)


def test_bilateral_checker(capsys):
    assert check_bilateral_weights(good_bilateral_weights)
    assert "all 5 cases passed" in capsys.readouterr().out
    res = check_bilateral_weights(blur_weights)
    assert not res and res.n_passed == 0 and "range" in capsys.readouterr().out
    assert not check_bilateral_weights(unnormalised_weights, quiet=True)
    assert not check_bilateral_weights(lambda *a: 1 / 0, quiet=True)


def test_nadaraya_watson_checker(capsys):
    assert check_nadaraya_watson(good_nw)
    res = check_nadaraya_watson(naive_nw)
    out = capsys.readouterr().out
    assert not res and res.failed_case == "queries far outside the data" and "NaN" in out
    assert not check_nadaraya_watson(lambda xq, xt, yt, b: good_nw(xq, xt, yt, 2 * b), quiet=True)
