"""attnkit.datasets.sequences: targets recomputed by explicit loops, seeds, errors."""

from __future__ import annotations

import pytest
import torch

from attnkit.datasets.sequences import N_COLOURS, relational_task, reversal_task, set_max_task, sorting_task


def test_reversal_and_sorting_targets() -> None:
    src, tgt = reversal_task(20, 7, 5, seed=3)
    assert src.shape == tgt.shape == (20, 7) and src.dtype == torch.long
    assert 0 <= int(src.min()) and int(src.max()) < 5
    for s, t in zip(src.tolist(), tgt.tolist(), strict=True):
        assert t == s[::-1]
    src, tgt = sorting_task(20, 6, 9, seed=3)
    for s, t in zip(src.tolist(), tgt.tolist(), strict=True):
        assert t == sorted(s)


def test_seeds_reproduce_and_differ() -> None:
    assert torch.equal(reversal_task(5, seed=1)[0], reversal_task(5, seed=1)[0])
    assert not torch.equal(reversal_task(5, seed=1)[0], reversal_task(5, seed=2)[0])
    g1, g2 = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    assert torch.equal(set_max_task(4, seed=g1)[0], set_max_task(4, seed=g2)[0])


def test_set_max_task() -> None:
    x, lengths, y = set_max_task(50, 3, 8, seed=0)
    assert x.shape == (50, 8, 1) and lengths.shape == y.shape == (50,)
    assert int(lengths.min()) >= 3 and int(lengths.max()) <= 8
    for b in range(50):
        n = int(lengths[b])
        assert (x[b, n:] == 0).all()
        assert y[b].item() == max(x[b, :n, 0].tolist())


def test_relational_answers_by_explicit_loops() -> None:
    data = relational_task(200, seed=4)
    o, q, a, t = data["objects"], data["questions"], data["answers"], data["qtype"]
    assert o.shape == (200, N_COLOURS, 10) and q.shape == (200, 9)
    assert set(t.tolist()) == {0, 1, 2}
    for b in range(200):
        colours = o[b, :, :6].argmax(-1).tolist()
        assert sorted(colours) == list(range(6))  # one object per colour
        xs = o[b, :, 6].tolist()
        assert len(set(xs)) == 6  # distinct columns
        shapes = o[b, :, 8:].argmax(-1).tolist()
        qt, c = q[b, :3].argmax().item(), q[b, 3:].argmax().item()
        assert qt == t[b].item()
        me = colours.index(c)
        if qt == 0:
            want = shapes[me]
        elif qt == 1:
            want = sum(x < xs[me] for x in xs)
        else:
            want = sum(s == shapes[me] for s in shapes) - 1
        assert a[b].item() == want


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="n must be a positive int; got 0"):
        reversal_task(0)
    with pytest.raises(ValueError, match="vocab_size must be an int >= 2"):
        sorting_task(3, 4, 1)
    with pytest.raises(ValueError, match="max_size must be an int >= 5"):
        set_max_task(3, 5, 4)
    with pytest.raises(TypeError, match="seed must be an int or a torch.Generator"):
        reversal_task(3, seed="zero")
    with pytest.raises(ValueError, match="question_types must be"):
        relational_task(3, question_types=(3,))
