"""Mask helpers."""

from __future__ import annotations

import pytest
import torch

from attnkit import causal_mask, combine_masks, key_mask, padding_mask


def test_causal_mask_matches_sdpa_convention() -> None:
    m = causal_mask(3, 4)
    assert m.tolist() == [[True, False, False, False], [True, True, False, False], [True, True, True, False]]
    assert torch.equal(causal_mask(5), torch.ones(5, 5, dtype=torch.bool).tril())


def test_padding_and_key_masks() -> None:
    pad = padding_mask([2, 0, 3], max_len=4)
    assert pad.tolist() == [[True, True, False, False], [False] * 4, [True, True, True, False]]
    assert key_mask(pad).shape == (3, 1, 4) and key_mask(pad, heads=True).shape == (3, 1, 1, 4)
    assert padding_mask(torch.tensor([1, 3])).shape == (2, 3)


def test_combine_masks() -> None:
    a, b = causal_mask(3), torch.tensor([True, False, True])
    assert torch.equal(combine_masks(a, None, b), a & b)
    assert combine_masks(None, None) is None
    with pytest.raises(TypeError, match="bool masks"):
        combine_masks(a, torch.ones(3))


def test_mask_errors() -> None:
    with pytest.raises(ValueError, match="Lq must be a non-negative int; got -1"):
        causal_mask(-1)
    with pytest.raises(ValueError, match="lengths must be non-negative"):
        padding_mask([2, -1])
    with pytest.raises(ValueError, match="max_len=2 is shorter than the longest of lengths, 3"):
        padding_mask([3, 1], max_len=2)
    with pytest.raises(ValueError, match=r"pad must be \(B, Lk\)"):
        key_mask(torch.ones(3, dtype=torch.bool))
