"""Training, GQA by mean-pooling, streaming evaluation and the attention on the first tokens."""

from __future__ import annotations

import pytest
import torch
from llm_helpers import random_gpt

from attnkit.llm.gpt import GPT, GPTConfig, nll_per_position
from attnkit.llm.train import (
    attention_by_offset,
    attention_to_first,
    pool_kv_heads,
    receptive_field,
    streaming_nll,
    train_gpt,
)


def test_a_few_steps_of_training_lower_the_loss() -> None:
    r = train_gpt(GPTConfig(n_layer=1, d_model=32, n_head=4, block_size=32), steps=30, eval_every=30,
                  eval_n=8, batch_size=8)
    assert len(r["train"]) == 30 and r["eval_steps"] == [0, 30]
    assert r["val"][-1] < r["val"][0] - 0.5


def test_pooling_is_the_mean_of_the_heads() -> None:
    m = random_gpt()
    p = pool_kv_heads(m, 2)
    for a, b in zip(m.blocks, p.blocks, strict=True):
        wk = a.attn.wk.weight.view(8, 8, 64)  # (H, Dh, E)
        torch.testing.assert_close(b.attn.wk.weight.view(2, 8, 64), wk.view(2, 4, 8, 64).mean(1))
        assert torch.equal(a.attn.wq.weight, b.attn.wq.weight)
    x = torch.randint(65, (1, 10))
    torch.testing.assert_close(pool_kv_heads(m, 8).double()(x), m(x))


def test_pooling_identical_heads_changes_nothing() -> None:
    m = random_gpt()
    for b in m.blocks:
        for w in (b.attn.wk, b.attn.wv):
            head = w.weight.data[:8].clone()
            w.weight.data.copy_(head.repeat(8, 1))
    x = torch.randint(65, (2, 12))
    torch.testing.assert_close(pool_kv_heads(m, 1).double()(x), m(x))
    with pytest.raises(ValueError, match="must divide"):
        pool_kv_heads(m, 3)
    with pytest.raises(ValueError, match="multi-head"):
        pool_kv_heads(pool_kv_heads(m, 2), 1)


def test_streaming_with_a_long_window_is_full_attention() -> None:
    m = random_gpt(positions="rotary")
    x = torch.randint(65, (2, 20))
    y = torch.randint(65, (2, 20))
    full = nll_per_position(m, x, y)
    torch.testing.assert_close(streaming_nll(m, x, y), full)
    torch.testing.assert_close(streaming_nll(m, x, y, window=40, sinks=2), full)
    assert not torch.allclose(streaming_nll(m, x, y, window=4), full)


def test_attention_to_first_tokens() -> None:
    m = random_gpt(positions="none")
    a = attention_to_first(m, torch.randint(65, (2, 16)), n_first=4)
    assert a.shape == (2, 16)
    assert torch.allclose(a[:, :4], torch.ones(2, 4, dtype=a.dtype))  # only the first four exist yet
    assert (a <= 1 + 1e-12).all() and (a >= 0).all()


def test_receptive_field_grows_by_window_minus_one_per_layer() -> None:
    torch.manual_seed(0)
    m = GPT(GPTConfig(n_layer=3, positions="none", window=4)).double()
    x = torch.randint(65, (1, 30))
    for layer in (1, 2, 3):
        g = receptive_field(m, x, 25, layer=layer)
        reach = torch.nonzero(g > 1e-12).flatten()
        assert reach.max().item() == 25 and reach.min().item() == 25 - layer * 3
    full = receptive_field(m, x, 25)
    assert torch.nonzero(full > 1e-12).min().item() == 25 - 9
    with pytest.raises(ValueError, match="position"):
        receptive_field(m, x, 30)


def test_attention_by_offset_of_uniform_attention() -> None:
    m = random_gpt(positions="none")
    for b in m.blocks:  # zero queries: every key gets the same weight 1 / (i + 1)
        b.attn.wq.weight.data.zero_()
    x = torch.randint(65, (2, 8))
    a = attention_by_offset(m, x)
    expect = torch.tensor([sum(1 / (i + 1) for i in range(d, 8)) / (8 - d) for d in range(8)],
                          dtype=a.dtype)
    torch.testing.assert_close(a, expect.expand(2, 8))
