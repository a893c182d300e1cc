"""The generated datasets: shapes, determinism, labels, periodicity and bad input."""

from __future__ import annotations

import pytest
import torch

from attnkit.datasets.patterns import (
    QUADRANTS,
    SHAPES,
    cells,
    corrupt,
    digit_glyphs,
    repeated_patches,
    shapes_dataset,
    tiled_textures,
    uncells,
)


def test_tiled_textures_are_periodic_and_seeded() -> None:
    noisy, clean = tiled_textures(8, 12, periods=(4,), noise=0.3, seed=2)
    assert noisy.shape == clean.shape == (8, 1, 12, 12)
    torch.testing.assert_close(clean[..., 4:, :], clean[..., :-4, :])  # period 4 down the rows
    torch.testing.assert_close(clean[..., :, 4:], clean[..., :, :-4])  # and along the columns
    assert 0.2 < (noisy - clean).std() < 0.4
    torch.testing.assert_close(tiled_textures(8, 12, periods=(4,), noise=0.3, seed=2)[0], noisy)
    assert not torch.equal(tiled_textures(8, 12, periods=(4,), noise=0.3, seed=3)[0], noisy)


def test_shapes_dataset_puts_the_shape_in_its_quadrant() -> None:
    images, shape, quad = shapes_dataset(40, size=16, noise=0.0, seed=0)
    assert images.shape == (40, 1, 16, 16) and shape.dtype == torch.long
    assert set(shape.tolist()) <= set(range(len(SHAPES))) and set(quad.tolist()) <= set(range(len(QUADRANTS)))
    for img, q in zip(images, quad, strict=True):
        qy, qx = divmod(int(q), 2)
        inside = img[0, 8 * qy:8 * qy + 8, 8 * qx:8 * qx + 8].sum()
        assert inside > 0 and inside == img.sum()
    crops = {}
    for img, s in zip(images, shape, strict=True):
        ys, xs = (img[0] != 0).nonzero(as_tuple=True)
        crops.setdefault(int(s), img[0, ys.min():ys.min() + 6, xs.min():xs.min() + 6].flatten().tolist())
    assert len({tuple(c) for c in crops.values()}) == len(crops) == 4  # four different stamps


def test_digit_glyphs() -> None:
    g = digit_glyphs(3)
    assert g.shape == (10, 15, 9)
    assert set(g.unique().tolist()) == {-1.0, 1.0}
    assert len({tuple(x.flatten().tolist()) for x in g}) == 10
    assert (g[1][:, :3] == g[1][:, 0:1]).all()  # upscaling repeats each font pixel 3 x 3


def test_corrupt() -> None:
    p = torch.ones(1000)
    flipped = corrupt(p, 0.2, seed=0)
    assert 0.15 < (flipped < 0).float().mean() < 0.25
    masked = corrupt(torch.ones(2, 10, 6), 0.4, mode="mask")
    assert (masked[:, :6] == 1).all() and (masked[:, 6:] == 0).all()
    torch.testing.assert_close(corrupt(p, 0.0), p)


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="periods"):
        tiled_textures(2, 8, periods=(9,))
    with pytest.raises(TypeError, match="n must be a positive int; got float"):
        tiled_textures(2.0)
    with pytest.raises(ValueError, match="size must be an int >= 12"):
        shapes_dataset(4, size=10, stamp=6)
    with pytest.raises(ValueError, match="noise"):
        shapes_dataset(4, noise=-1.0)
    with pytest.raises(ValueError, match="mode"):
        corrupt(torch.ones(3), 0.1, mode="blur")
    with pytest.raises(TypeError, match="patterns"):
        corrupt(torch.ones(3, dtype=torch.long), 0.1)


def test_repeated_patches_data() -> None:
    noisy, clean, groups = repeated_patches(5, grid=4, patch=3, motifs=2, noise=0.0, seed=5)
    assert clean.shape == (5, 1, 12, 12) and groups.shape == (5, 16) and torch.equal(noisy, clean)
    assert (torch.bincount(groups[0], minlength=2) == 8).all()
    x = cells(clean, 3)
    for i in range(16):
        for j in range(16):
            assert torch.equal(x[0, i], x[0, j]) == bool(groups[0, i] == groups[0, j])
    torch.testing.assert_close(repeated_patches(5, seed=5)[0], repeated_patches(5, seed=5)[0])
    assert not torch.equal(repeated_patches(5, seed=6)[0], repeated_patches(5, seed=5)[0])
    torch.testing.assert_close(uncells(cells(noisy, 3), 3), noisy)  # cells is a reshape, inverted
    with pytest.raises(ValueError, match="must divide"):
        repeated_patches(2, grid=3, motifs=2)
