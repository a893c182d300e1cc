"""attnkit.transformers.blocks: scaling, blocks (against torch.nn's layers), masks, equivariance, training."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from attnkit import MultiHeadAttention, attend
from attnkit.datasets.sequences import reversal_task
from attnkit.exercises.transformer import check_causal_attention, check_rotary, check_sinusoidal_positions
from attnkit.transformers.blocks import (
    DecoderBlock,
    EncoderBlock,
    TinyTransformer,
    TransformerEncoder,
    scaling_experiment,
    seq2seq_accuracy,
    seq2seq_loss,
    train_steps,
)
from attnkit.transformers.positions import apply_rotary, sinusoidal_positions

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


# ---- 1/sqrt(d) --------------------------------------------------------------------------------


def test_scaling_experiment_shows_variance_d_and_saturation() -> None:
    dims = [4, 64, 512]
    st_ = scaling_experiment(dims, n_samples=400)
    torch.testing.assert_close(st_["var_dot"] / torch.tensor(dims, dtype=torch.float32),
                               torch.ones(3), atol=0.15, rtol=0)
    torch.testing.assert_close(st_["var_scaled"], torch.ones(3), atol=0.15, rtol=0)
    assert st_["max_weight_dot"][-1] > 0.9 > st_["max_weight_scaled"][-1]  # saturated vs not
    assert st_["grad_dot"][-1] < 0.3 * st_["grad_scaled"][-1]  # the gradient vanishes without scaling
    assert st_["saturated_dot"][-1] > 0.5 and st_["saturated_scaled"][-1] < 0.05
    # the typical (median) row gets almost nothing at the query; the mean is misleading
    assert st_["grad_q_median_dot"][-1] < 0.1 * st_["grad_q_median_scaled"][-1]
    assert st_["grad_q_dot"][-1] > 10 * st_["grad_q_median_dot"][-1]
    with pytest.raises(ValueError, match="dims is empty"):
        scaling_experiment([])


# ---- blocks vs torch.nn -----------------------------------------------------------------------


def _copy_mha(ours: MultiHeadAttention, theirs: nn.MultiheadAttention) -> None:
    with torch.no_grad():
        theirs.in_proj_weight.copy_(torch.cat([ours.q_proj.weight, ours.k_proj.weight, ours.v_proj.weight]))
        theirs.in_proj_bias.copy_(torch.cat([ours.q_proj.bias, ours.k_proj.bias, ours.v_proj.bias]))
        theirs.out_proj.weight.copy_(ours.out_proj.weight)
        theirs.out_proj.bias.copy_(ours.out_proj.bias)


def _copy_ff_ln(ours: nn.Module, theirs: nn.Module, lns: list[tuple[str, str]]) -> None:
    with torch.no_grad():
        theirs.linear1.load_state_dict(ours.ff[0].state_dict())
        theirs.linear2.load_state_dict(ours.ff[3].state_dict())
        for a, b in lns:
            getattr(theirs, b).load_state_dict(getattr(ours, a).state_dict())


@pytest.mark.parametrize("norm", ["pre", "post"])
def test_encoder_block_matches_torch_layer(norm: str) -> None:
    ours = EncoderBlock(16, 4, 32, norm=norm).double()
    theirs = nn.TransformerEncoderLayer(16, 4, 32, dropout=0.0, batch_first=True, norm_first=norm == "pre").double()
    _copy_mha(ours.attn, theirs.self_attn)
    _copy_ff_ln(ours, theirs, [("ln1", "norm1"), ("ln2", "norm2")])
    x = torch.randn(3, 7, 16, dtype=torch.float64)
    pad = torch.ones(3, 7, dtype=torch.bool)
    pad[1, 5:] = False
    theirs.eval()
    ref = theirs(x, src_key_padding_mask=~pad)  # torch: True = ignore
    got = ours(x, pad)
    torch.testing.assert_close(got[pad], ref[pad])
    assert ours.weights.shape == (3, 4, 7, 7)


@pytest.mark.parametrize("norm", ["pre", "post"])
def test_decoder_block_matches_torch_layer(norm: str) -> None:
    ours = DecoderBlock(16, 2, 32, norm=norm).double()
    theirs = nn.TransformerDecoderLayer(16, 2, 32, dropout=0.0, batch_first=True, norm_first=norm == "pre").double()
    _copy_mha(ours.self_attn, theirs.self_attn)
    _copy_mha(ours.cross_attn, theirs.multihead_attn)
    _copy_ff_ln(ours, theirs, [("ln1", "norm1"), ("ln2", "norm2"), ("ln3", "norm3")])
    y, mem = torch.randn(2, 5, 16, dtype=torch.float64), torch.randn(2, 6, 16, dtype=torch.float64)
    pad = torch.tensor([[True] * 6, [True] * 4 + [False] * 2])
    theirs.eval()
    causal = nn.Transformer.generate_square_subsequent_mask(5, dtype=torch.float64)
    ref = theirs(y, mem, tgt_mask=causal, memory_key_padding_mask=~pad)
    torch.testing.assert_close(ours(y, mem, pad), ref)
    assert ours.self_weights.shape == (2, 2, 5, 5) and ours.cross_weights.shape == (2, 2, 5, 6)
    assert (ours.self_weights.triu(1) == 0).all()  # causal: no weight on the future
    assert (ours.cross_weights[1, :, :, 4:] == 0).all()  # padding: no weight on padded keys


@pytest.mark.parametrize("norm", ["pre", "post"])
def test_encoder_stack_matches_torch_transformer_encoder(norm: str) -> None:
    ours = TransformerEncoder(16, 4, 32, n_layers=3, norm=norm).double()
    layer = nn.TransformerEncoderLayer(16, 4, 32, dropout=0.0, batch_first=True, norm_first=norm == "pre")
    final = nn.LayerNorm(16) if norm == "pre" else None  # ours adds a final LayerNorm to a pre-norm stack
    theirs = nn.TransformerEncoder(layer, 3, norm=final, enable_nested_tensor=False).double()
    for mine, torch_layer in zip(ours.layers, theirs.layers, strict=True):
        _copy_mha(mine.attn, torch_layer.self_attn)
        _copy_ff_ln(mine, torch_layer, [("ln1", "norm1"), ("ln2", "norm2")])
    if final is not None:
        theirs.norm.load_state_dict(ours.final.state_dict())
    theirs.eval()
    x = torch.randn(2, 6, 16, dtype=torch.float64)
    pad = torch.tensor([[True] * 6, [True] * 4 + [False] * 2])
    torch.testing.assert_close(ours(x, pad)[pad], theirs(x, src_key_padding_mask=~pad)[pad])


def test_train_steps_schedule_multiplies_the_rate() -> None:
    model = nn.Linear(3, 1)
    before = [p.detach().clone() for p in model.parameters()]
    train_steps(model, lambda s: torch.randn(4, 3), lambda m, b: m(b).pow(2).mean(), steps=3,
                schedule=lambda step: 0.0)
    assert all(torch.equal(a, p) for a, p in zip(before, model.parameters(), strict=True))
    train_steps(model, lambda s: torch.randn(4, 3), lambda m, b: m(b).pow(2).mean(), steps=3,
                schedule=lambda step: 1.0, clip=None, betas=(0.9, 0.98))
    assert not all(torch.equal(a, p) for a, p in zip(before, model.parameters(), strict=True))


def test_blocks_reject_bad_input() -> None:
    with pytest.raises(ValueError, match="norm must be 'pre'"):
        EncoderBlock(8, 2, 16, norm="middle")
    with pytest.raises(ValueError, match=r"x must be \(B, L, 8\); got shape \(2, 5, 6\)"):
        EncoderBlock(8, 2, 16)(torch.randn(2, 5, 6))
    with pytest.raises(ValueError, match=r"memory must have shape \(B, L, 8\)"):
        DecoderBlock(8, 2, 16)(torch.randn(2, 5, 8), torch.randn(2, 5))


# ---- equivariance and masks -------------------------------------------------------------------


@given(seed=st.integers(0, 10_000), norm=st.sampled_from(["pre", "post"]))
def test_self_attention_without_positions_is_permutation_equivariant(seed: int, norm: str) -> None:
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    enc = TransformerEncoder(8, 2, 16, 2, norm=norm).double()
    x = torch.randn(2, 6, 8, generator=g, dtype=torch.float64)
    perm = torch.randperm(6, generator=g)
    torch.testing.assert_close(enc(x[:, perm]), enc(x)[:, perm])


def test_positions_break_permutation_equivariance() -> None:
    model = TinyTransformer(10, positions="sinusoidal")
    src = torch.tensor([[1, 2, 3, 4, 5]])
    perm = torch.tensor([4, 3, 2, 1, 0])
    assert not torch.allclose(model.encode(src[:, perm]), model.encode(src)[:, perm], atol=1e-4)
    plain = TinyTransformer(10, positions="none")
    torch.testing.assert_close(plain.encode(src[:, perm]), plain.encode(src)[:, perm])


def test_padding_hides_padded_tokens() -> None:
    model = TinyTransformer(10, n_layers=2)
    pad = torch.tensor([[True] * 4 + [False] * 2])
    a = torch.tensor([[1, 2, 3, 4, 0, 0]])
    b = torch.tensor([[1, 2, 3, 4, 9, 7]])
    tgt_in = torch.tensor([[10, 3, 2]])
    torch.testing.assert_close(model(a, tgt_in, pad), model(b, tgt_in, pad))


@pytest.mark.parametrize("positions", ["sinusoidal", "learned", "rotary", "none"])
def test_decoder_is_causal(positions: str) -> None:
    model = TinyTransformer(10, positions=positions, n_layers=2)
    src = torch.tensor([[1, 2, 3, 4]])
    a = model(src, torch.tensor([[10, 1, 2, 3]]))
    b = model(src, torch.tensor([[10, 1, 7, 8]]))  # differs from position 2 on
    torch.testing.assert_close(a[:, :2], b[:, :2])
    assert not torch.allclose(a[:, 2:], b[:, 2:])


# ---- the model --------------------------------------------------------------------------------


def test_tiny_transformer_shapes_and_maps() -> None:
    model = TinyTransformer(12, d_model=16, n_heads=4, n_layers=2)
    src, tgt = torch.randint(0, 12, (3, 7)), torch.randint(0, 12, (3, 5))
    logits = model(src, model.shift_right(tgt))
    assert logits.shape == (3, 5, 12)
    maps = model.attention_maps()
    assert [w.shape for w in maps["encoder"]] == [(3, 4, 7, 7)] * 2
    assert [w.shape for w in maps["decoder_self"]] == [(3, 4, 5, 5)] * 2
    assert [w.shape for w in maps["decoder_cross"]] == [(3, 4, 5, 7)] * 2
    for ws in maps.values():
        for w in ws:
            torch.testing.assert_close(w.sum(-1), torch.ones(w.shape[:-1]))
    assert model.generate(src, 4).shape == (3, 4)
    assert model.shift_right(tgt)[:, 0].eq(12).all()


def test_tiny_transformer_errors() -> None:
    with pytest.raises(ValueError, match="positions must be one of"):
        TinyTransformer(10, positions="absolute")
    with pytest.raises(RuntimeError, match="run the model forward once"):
        TinyTransformer(10).attention_maps()
    model = TinyTransformer(10, max_len=6)
    with pytest.raises(TypeError, match=r"src must be a \(B, L\) tensor of token ids"):
        model(torch.randn(2, 3), torch.zeros(2, 3, dtype=torch.long))
    with pytest.raises(ValueError, match=r"ids must lie in 0 \.\. 10"):
        model(torch.tensor([[1, 11]]), torch.tensor([[10]]))
    with pytest.raises(ValueError, match="length 7 > max_len=6"):
        model(torch.zeros(1, 7, dtype=torch.long), torch.tensor([[10]]))


def test_short_training_run_reduces_the_loss() -> None:
    model = TinyTransformer(6, d_model=16, n_heads=2, d_ff=32)
    src, tgt = reversal_task(200, 5, 6, seed=1)
    before = seq2seq_loss(model, (src, tgt)).item()
    losses = train_steps(model, lambda s: reversal_task(32, 5, 6, seed=100 + s), seq2seq_loss, steps=60, lr=1e-2)
    assert len(losses) == 60
    after = seq2seq_loss(model, (src, tgt)).item()
    assert after < 0.8 * before
    tok_acc, seq_acc = seq2seq_accuracy(model, src, tgt)
    assert 0.0 <= seq_acc <= tok_acc <= 1.0 and tok_acc > 1 / 6


def test_train_steps_rejects_bad_arguments() -> None:
    model = nn.Linear(2, 1)
    with pytest.raises(ValueError, match="steps must be a positive int; got 0"):
        train_steps(model, lambda s: None, lambda m, b: torch.zeros(()), steps=0)
    with pytest.raises(ValueError, match="loss_fn must return a scalar"):
        train_steps(model, lambda s: torch.randn(3, 2), lambda m, b: m(b), steps=1)


# ---- exercises --------------------------------------------------------------------------------


def test_checkers_accept_the_reference_and_reject_naive_attempts() -> None:
    assert check_sinusoidal_positions(sinusoidal_positions, quiet=True)

    def halves(L: int, d: int) -> torch.Tensor:  # all sines first: a common slip
        a = torch.arange(L)[:, None] / 10000 ** (torch.arange(0, d, 2) / d)
        return torch.cat([a.sin(), a.cos()], dim=-1)

    assert not check_sinusoidal_positions(halves, quiet=True)
    assert check_rotary(apply_rotary, quiet=True)
    assert not check_rotary(lambda x: x, quiet=True)
    assert check_causal_attention(lambda q, k, v: attend(q, k, v, mask=torch.ones(q.shape[-2], q.shape[-2],
                                                                                  dtype=torch.bool).tril())[0],
                                  quiet=True)
    assert not check_causal_attention(lambda q, k, v: attend(q, k, v)[0], quiet=True)
