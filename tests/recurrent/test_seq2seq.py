"""Seq2seq with attention: shapes, padding masks, the attention step against a loop, local windows,
decoding, errors, a short training run, and the exercise checkers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from attnkit.core import attend
from attnkit.datasets.translation import build_vocabs, load_corpus, make_batch
from attnkit.exercises.seq2seq import check_bahdanau_step, check_local_mask
from attnkit.masks import padding_mask
from attnkit.recurrent.seq2seq import Seq2Seq, evaluate, local_mask, token_accuracy, train_seq2seq, translate

PAIRS = load_corpus()
SRC_V, TGT_V = build_vocabs(PAIRS)
CONFIGS = [
    {"attention": "bahdanau"},
    {"attention": None},
    {"attention": "bahdanau", "score": "dot"},
    {"attention": "luong", "score": "dot"},
    {"attention": "luong", "score": "general"},
    {"attention": "luong", "score": "concat"},
    {"attention": "luong", "score": "general", "window": 2},
    {"attention": "luong", "score": "general", "window": 2, "position": "monotonic"},
]


def _model(**cfg) -> Seq2Seq:
    torch.manual_seed(0)
    return Seq2Seq(len(SRC_V), len(TGT_V), E=8, H=12, A=6, **cfg).eval()


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: "-".join(str(v) for v in c.values()))
def test_shapes_and_padding_mask(cfg: dict) -> None:
    model = _model(**cfg)
    pairs = [PAIRS[0], PAIRS[5], PAIRS[1]]  # lengths differ: padding in src and tgt
    b = make_batch(pairs, SRC_V, TGT_V)
    B, S, T = b.src.shape[0], b.src.shape[1], b.tgt_in.shape[1]
    logits, w = model(b.src, b.src_len, b.tgt_in)
    assert logits.shape == (B, T, len(TGT_V)) and w.shape == (B, T, S)
    pad = padding_mask(b.src_len, S)[:, None, :].expand(B, T, S)  # (B, T, S)
    assert (w[~pad] == 0).all()  # padded source words get no weight
    if cfg["attention"] is not None:
        torch.testing.assert_close(w.sum(-1), torch.ones(B, T))
    # each sentence decodes the same alone and inside the padded batch
    for i, pair in enumerate(pairs):
        one = make_batch([pair], SRC_V, TGT_V)
        lg1, w1 = model(one.src, one.src_len, one.tgt_in)
        Si, Ti = one.src.shape[1], one.tgt_in.shape[1]
        torch.testing.assert_close(logits[i, :Ti], lg1[0], atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(w[i, :Ti, :Si], w1[0], atol=1e-5, rtol=1e-4)


def test_bahdanau_step_against_explicit_loop() -> None:
    """The decoder's weights at step 1 equal a float64 loop over w . tanh(W_q s_0 + W_k h_j)."""
    model = _model(attention="bahdanau").double()
    b = make_batch([PAIRS[2], PAIRS[0]], SRC_V, TGT_V)
    enc = model.encoder(b.src, b.src_len)
    s0 = model.decoder.init_state(enc)
    _, _, a = model.decoder.step(b.tgt_in[:, 0], s0, enc, 0)
    sc = model.decoder.score
    Wq, Wk, wv = (t.detach().numpy() for t in (sc.W_q, sc.W_k, sc.w))
    h, s0 = enc.h.detach().numpy(), s0.detach().numpy()
    for bi, n in enumerate(b.src_len.tolist()):
        e = np.array([wv @ np.tanh(Wq @ s0[bi] + Wk @ h[bi, j]) for j in range(n)])
        ref = np.exp(e - e.max()) / np.exp(e - e.max()).sum()
        np.testing.assert_allclose(a[bi, :n].detach().numpy(), ref, rtol=1e-10, atol=1e-12)
        assert (a[bi, n:] == 0).all()


def test_local_mask_against_loop_and_gradient() -> None:
    p = torch.tensor([[0.3, 2.6, 4.2], [1.1, 1.7, 0.4]], dtype=torch.float64)
    src_len = torch.tensor([6, 3])
    S, D = 6, 2
    m = local_mask(p, src_len, S, D)
    for b in range(2):
        for t in range(3):
            for j in range(S):
                d = j - p[b, t].item()
                want = -d * d / (2 * (D / 2) ** 2) if abs(d) <= D and j < src_len[b] else -math.inf
                assert m[b, t, j].item() == pytest.approx(want)
    # the window's position is learned through the mask: gradcheck d(output)/dp
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, n, 4, generator=g, dtype=torch.float64) for n in (3, S, S))

    def out(p: torch.Tensor) -> torch.Tensor:
        return attend(q, k, v, score="dot", mask=local_mask(p, src_len, S, D))[0]

    assert torch.autograd.gradcheck(out, (p.clone().requires_grad_(),))


def test_greedy_decoding_and_translate() -> None:
    model = _model(attention="bahdanau")
    b = make_batch(PAIRS[:4], SRC_V, TGT_V)
    ids, w = model.greedy(b.src, b.src_len, max_len=7)
    assert ids.shape[0] == 4 and ids.shape[1] <= 7 and w.shape == (4, ids.shape[1], b.src.shape[1])
    for row, wr in zip(ids, w, strict=True):  # after </s>: padding ids and zero weights
        ends = (row == 2).nonzero()
        if len(ends):
            e = int(ends[0])
            assert (row[e + 1 :] == 0).all() and (wr[e + 1 :] == 0).all()
    src_words, out_words, weights = translate(model, "i love you", SRC_V, TGT_V, max_len=5)
    assert src_words == ["i", "love", "you", "</s>"]
    assert weights.shape == (len(out_words), 4)
    res = evaluate(model, PAIRS[:10], SRC_V, TGT_V, max_len=5)
    assert 0 <= res["exact"] <= res["token"] <= 1 and len(res["outputs"]) == 10


def test_token_accuracy() -> None:
    assert token_accuracy(["a", "b"], ["a", "b"]) == 1.0
    assert token_accuracy(["a"], ["a", "b"]) == 0.5
    assert token_accuracy(["a", "x", "c", "d"], ["a", "b", "c"]) == 0.5


def test_bad_input_errors() -> None:
    model = _model(attention="bahdanau")
    b = make_batch(PAIRS[:2], SRC_V, TGT_V)
    with pytest.raises(TypeError, match="src must hold token ids"):
        model(b.src.float(), b.src_len, b.tgt_in)
    with pytest.raises(TypeError, match="src must be a torch.Tensor"):
        model([[1, 2]], b.src_len, b.tgt_in)
    with pytest.raises(ValueError, match="src_len needs one length per sentence"):
        model(b.src, b.src_len[:1], b.tgt_in)
    with pytest.raises(ValueError, match=r"src_len must be in \[1, S"):
        model(b.src, b.src_len + 100, b.tgt_in)
    with pytest.raises(ValueError, match="same batch size"):
        model(b.src, b.src_len, b.tgt_in[:1])
    with pytest.raises(ValueError, match="src must have 2 dimensions"):
        model(b.src[0], b.src_len, b.tgt_in)
    with pytest.raises(ValueError, match="attention must be one of"):
        Seq2Seq(10, 10, attention="transformer")
    with pytest.raises(ValueError, match="needs attention='luong'"):
        Seq2Seq(10, 10, attention="bahdanau", window=2)
    with pytest.raises(ValueError, match="score must be one of"):
        Seq2Seq(10, 10, score="cosine")
    with pytest.raises(ValueError, match="H must be even"):
        Seq2Seq(10, 10, H=7)
    with pytest.raises(ValueError, match="window must be None"):
        Seq2Seq(10, 10, attention="luong", window=0)
    with pytest.raises(ValueError, match="D .half-width"):
        local_mask(torch.zeros(1, 2), torch.tensor([3]), 3, 0)
    with pytest.raises(ValueError, match="epochs must be"):
        train_seq2seq(model, PAIRS[:4], SRC_V, TGT_V, epochs=0)
    with pytest.raises(ValueError, match="unknown word"):
        translate(model, "i love zebras", SRC_V, TGT_V)


@pytest.mark.parametrize("cfg", [{"attention": "bahdanau"}, {"attention": "luong", "score": "general", "window": 2}])
def test_short_training_reduces_the_loss(cfg: dict, one_thread: None) -> None:
    torch.manual_seed(0)
    model = Seq2Seq(len(SRC_V), len(TGT_V), E=16, H=32, A=16, **cfg)
    data = PAIRS[:48]
    b = make_batch(data, SRC_V, TGT_V)
    model.eval()
    with torch.no_grad():
        before = model.loss(b.src, b.src_len, b.tgt_in, b.tgt_out).item()
    hist = train_seq2seq(model, data, SRC_V, TGT_V, epochs=6, batch_size=16, lr=1e-2, progress=False)
    with torch.no_grad():
        after = model.loss(b.src, b.src_len, b.tgt_in, b.tgt_out).item()
    assert len(hist) == 6 and hist[-1] < hist[0]
    assert after < 0.9 * before


def test_exercise_checkers() -> None:
    def step(s_prev, h, pad, W_q, W_k, w):
        c, a = attend(s_prev[:, None], h, h, score="additive", mask=pad[:, None],
                      score_params={"W_q": W_q, "W_k": W_k, "w": w})
        return c[:, 0], a[:, 0]

    def step_no_mask(s_prev, h, pad, W_q, W_k, w):
        return step(s_prev, h, torch.ones_like(pad), W_q, W_k, w)

    assert check_bahdanau_step(step, quiet=True)
    res = check_bahdanau_step(step_no_mask, quiet=True)
    assert not res and res.failed_case == "a padded batch of three sentences"
    assert check_local_mask(local_mask, quiet=True)

    def no_padding(p, src_len, S, D):
        return local_mask(p, torch.full_like(src_len, S), S, D)

    res = check_local_mask(no_padding, quiet=True)
    assert not res and res.failed_case == "a padded batch"


def test_no_attention_teacher_forcing_matches_the_step_loop() -> None:
    """The fused pass of the no-attention decoder is the GRUCell recurrence of ``step``."""
    torch.manual_seed(0)
    m = Seq2Seq(12, 14, attention=None, E=8, H=16).double().eval()
    src, lengths = torch.randint(3, 12, (3, 5)), torch.tensor([5, 3, 4])
    tgt = torch.randint(1, 14, (3, 6))
    enc = m.encoder(src, lengths)
    fast, w = m.decoder(tgt, enc)
    s, slow = m.decoder.init_state(enc), []
    for t in range(tgt.shape[1]):
        logits, s, _ = m.decoder.step(tgt[:, t], s, enc, t)
        slow.append(logits)
    torch.testing.assert_close(fast, torch.stack(slow, 1))
    assert w.shape == (3, 6, 5) and not w.any()


def test_edit_accuracy_counts_one_dropped_word_once() -> None:
    from attnkit.recurrent.seq2seq import edit_accuracy

    ref = "je ne le vois pas".split()
    hyp = "je le vois pas".split()  # one word dropped
    assert edit_accuracy(hyp, ref) == pytest.approx(1 - 1 / 5)
    assert token_accuracy(hyp, ref) == pytest.approx(1 / 5)
    assert edit_accuracy(ref, ref) == 1.0 and edit_accuracy([], []) == 1.0
    assert edit_accuracy(["a"], ["b", "c"]) == 0.0
