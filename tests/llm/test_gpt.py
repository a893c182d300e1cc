"""The Part V decoder against plain references: attention, positions, GQA, caching, sampling."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from llm_helpers import random_gpt

from attnkit.efficient.local import sliding_window_mask
from attnkit.llm.cache import KVCache
from attnkit.llm.gpt import GPT, POSITIONS, GPTConfig, alibi_slopes, decoder_mask, generate, sample_next
from attnkit.transformers.positions import apply_rotary


def _reference_attention(attn, x: torch.Tensor) -> torch.Tensor:
    """The layer by hand: heads repeated, SDPA with the model's mask or bias."""
    cfg = attn.cfg
    B, T, _ = x.shape
    H, Hkv, Dh = cfg.n_head, cfg.kv_heads, cfg.d_head
    q = (x @ attn.wq.weight.T).view(B, T, H, Dh).transpose(1, 2)  # (B, H, T, Dh)
    k = (x @ attn.wk.weight.T).view(B, T, Hkv, Dh).transpose(1, 2).repeat_interleave(H // Hkv, 1)
    v = (x @ attn.wv.weight.T).view(B, T, Hkv, Dh).transpose(1, 2).repeat_interleave(H // Hkv, 1)
    if cfg.positions == "rotary":
        q, k = apply_rotary(q), apply_rotary(k)
    keep = torch.ones(T, T, dtype=torch.bool).tril()
    if cfg.window is not None:
        keep &= sliding_window_mask(T, cfg.window - 1, causal=True)
    bias = torch.zeros(H, T, T, dtype=x.dtype).masked_fill(~keep, float("-inf"))
    if cfg.positions == "alibi":
        i = torch.arange(T)
        slopes = torch.tensor([2 ** (-8 * (h + 1) / H) for h in range(H)], dtype=x.dtype)
        bias = bias - slopes[:, None, None] * (i[:, None] - i[None, :])
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)  # (B, H, T, Dh)
    return out.transpose(1, 2).reshape(B, T, H * Dh) @ attn.wo.weight.T


@pytest.mark.parametrize("positions", ["learned", "rotary", "alibi", "none"])
@pytest.mark.parametrize("n_kv_head,window", [(8, None), (2, None), (1, 5)])
def test_attention_layer_matches_sdpa(positions, n_kv_head, window) -> None:
    m = random_gpt(positions=positions, n_kv_head=n_kv_head, window=window)
    x = torch.randn(2, 12, 64, dtype=torch.float64)
    attn = m.blocks[0].attn
    torch.testing.assert_close(attn(x), _reference_attention(attn, x))


def test_alibi_slopes_and_mask() -> None:
    assert torch.allclose(alibi_slopes(8), torch.tensor([2.0 ** -(h + 1) for h in range(8)], dtype=torch.float64))
    m = decoder_mask(torch.arange(4), torch.arange(4), window=2)
    assert m.tolist() == [[1, 0, 0, 0], [1, 1, 0, 0], [0, 1, 1, 0], [0, 0, 1, 1]]


@pytest.mark.parametrize("positions", POSITIONS)
@pytest.mark.parametrize("n_kv_head", [8, 2, 1])
def test_cache_gives_the_logits_of_recomputing_the_prefix(positions, n_kv_head) -> None:
    m = random_gpt(positions=positions, n_kv_head=n_kv_head)
    x = torch.randint(65, (2, 30))
    full = m(x)
    cache = KVCache()
    parts = [m(x[:, :9], cache)] + [m(x[:, t:t + 1], cache) for t in range(9, 30)]
    assert cache.seen == 30
    assert (torch.cat(parts, 1) - full).abs().max() < 1e-12  # exact up to float64 rounding


def test_decoder_predicts_from_the_past_only() -> None:
    m = random_gpt(positions="rotary")
    x = torch.randint(65, (1, 20))
    y = x.clone()
    y[0, 12:] = (y[0, 12:] + 1) % 65
    torch.testing.assert_close(m(x)[:, :12], m(y)[:, :12])


def test_learned_positions_cannot_go_past_the_table_and_bad_configs() -> None:
    m = random_gpt(positions="learned", block_size=16)
    with pytest.raises(ValueError, match="block_size=16"):
        m(torch.zeros(1, 17, dtype=torch.long))
    with pytest.raises(TypeError, match="idx must be a long tensor"):
        m(torch.zeros(1, 4))
    with pytest.raises(ValueError, match="positions must be one of"):
        GPTConfig(positions="xpos")
    with pytest.raises(ValueError, match="n_kv_head must divide"):
        GPTConfig(n_kv_head=3)
    with pytest.raises(ValueError, match="multiple of n_head"):
        GPTConfig(d_model=60)


def test_sampling_temperature_and_top_k() -> None:
    logits = torch.tensor([[0.0, 3.0, 1.0, 2.0]])
    assert sample_next(logits, temperature=0).item() == 1
    g = torch.Generator().manual_seed(0)
    assert all(sample_next(logits, top_k=1, generator=g).item() == 1 for _ in range(20))
    draws = torch.stack([sample_next(logits, top_k=2, generator=g) for _ in range(300)])
    assert set(draws.flatten().tolist()) == {1, 3}
    # frequencies follow softmax(logits / T) over the kept two
    p = torch.softmax(torch.tensor([3.0, 2.0]), 0)[0].item()
    assert abs((draws == 1).float().mean().item() - p) < 0.08
    with pytest.raises(ValueError, match="temperature"):
        sample_next(logits, temperature=-1)


def test_generate_with_and_without_cache_agree() -> None:
    m = random_gpt(positions="rotary")
    prompt = torch.randint(65, (2, 5))
    a = generate(m, prompt, 12, temperature=1.0, top_k=10, seed=3, use_cache=True)
    b = generate(m, prompt, 12, temperature=1.0, top_k=10, seed=3, use_cache=False)
    assert a.shape == (2, 17) and torch.equal(a, b) and torch.equal(a[:, :5], prompt)


def test_generate_past_a_learned_table_slides_the_context() -> None:
    m = random_gpt(positions="learned", block_size=16)
    prompt = torch.randint(65, (1, 4))
    a = generate(m, prompt, 30, seed=2, use_cache=True)
    b = generate(m, prompt, 30, seed=2, use_cache=False)
    assert a.shape == (1, 34) and torch.equal(a, b)


def test_untrained_model_predicts_about_uniformly() -> None:
    torch.manual_seed(0)
    m = GPT(GPTConfig())
    x = torch.randint(65, (4, 64))
    loss = F.cross_entropy(m(x).reshape(-1, 65), x.roll(-1, 1).reshape(-1))
    assert abs(loss.item() - math.log(65)) < 0.1


def test_sinusoidal_positions_scale_the_embeddings_by_sqrt_d_as_in_vaswani() -> None:
    """Vaswani et al. (2017, sec. 3.4): the first block reads sqrt(E) * embedding + sinusoid
    (the sinusoid by hand from the formula); the tied unembedding uses the unscaled table."""
    m = random_gpt(positions="sinusoidal", d_model=16, n_head=2)
    E, idx = m.cfg.d_model, torch.tensor([[3, 1, 4, 1, 5]])
    seen = {}
    m.blocks[0].register_forward_pre_hook(lambda mod, args: seen.setdefault("x", args[0]))
    logits = m(idx)
    pos = torch.arange(5, dtype=torch.float64)[:, None]               # (T, 1)
    angle = pos / 10000 ** (torch.arange(0, E, 2, dtype=torch.float64) / E)  # (T, E/2)
    pe = torch.stack([torch.sin(angle), torch.cos(angle)], dim=-1).reshape(5, E)  # (T, E) interleaved
    torch.testing.assert_close(seen["x"], math.sqrt(E) * m.tok.weight[idx] + pe)
    h = seen["x"]
    for block in m.blocks:
        h = block(h)
    torch.testing.assert_close(logits, m.ln_f(h) @ m.tok.weight.T)
