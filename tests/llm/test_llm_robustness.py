"""Bad input to every public callable of ``attnkit.llm``: clear errors or documented results.

The machinery and the accepted outcomes are in ``tests/robustness_kit.py``; this file is the table of
how to call each function with small valid inputs (a one-layer decoder of width 8, vocabulary 65, so
that the Tiny Shakespeare ids fit it). The cache specs append to a cache that already holds tokens,
so a bad append must not be lost or silently mixed in.
"""

from __future__ import annotations

import importlib

import matplotlib.pyplot as plt
import pytest
import torch
from robustness_kit import (
    C,
    Idx,
    Int,
    Keep,
    P,
    Spec,
    T,
    Text,
    fresh,
    heavy,
    public_callables,
    table_tests,
)

cache, corpus, diagrams, gpt, mla, records, train = (
    importlib.import_module(f"attnkit.llm.{m}") for m in ("cache", "corpus", "diagrams", "gpt", "mla", "records",
                                                           "train"))

NOT_TABLED: dict[str, str] = {
    "records.record_kv_heads": "trains 4 x seeds decoders for minutes (the recorded JSON is tested in test_train)",
    "records.record_positions": "trains 5 x seeds decoders for minutes (as record_kv_heads)",
    "records.main": "the command line of the records (argparse refuses a bad name or number)",
}

V = 65
CFG = gpt.GPTConfig(vocab_size=V, block_size=8, n_layer=1, n_head=2, d_model=8)


def tiny(**kw) -> gpt.GPT:
    torch.manual_seed(0)
    return gpt.GPT(gpt.GPTConfig(**{**CFG.__dict__, **kw})).eval()


def ids(*shape: int, seed: int = 0, **kw) -> Idx:
    return Idx(*shape, high=V, seed=seed, **kw)


def kv(T_: int = 3, seed: int = 0, **kw) -> dict:
    """New keys and values ``(B=1, Hkv=2, T, Dh=4)``."""
    return {"k": T(1, 2, T_, 4, dtype=torch.float32, seed=seed, **kw),
            "v": T(1, 2, T_, 4, dtype=torch.float32, seed=seed + 1, **kw)}


def _kv_append(layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    c = cache.KVCache()
    c.update(0, torch.zeros(1, 2, 2, 4), torch.zeros(1, 2, 2, 4))
    return c.update(layer, k, v)


def _stream_append(window: int, sinks: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    c = cache.StreamingCache(window, sinks)
    for _ in range(4):
        c.update(0, torch.zeros(1, 2, 1, 4), torch.zeros(1, 2, 1, 4))
    return c.update(0, k, v)


def _paged(n_layer: int = 2, n_blocks: int = 4, block_size: int = 2, n_kv_head: int = 2,
           d_head: int = 4) -> cache.PagedKVCache:
    p = cache.PagedKVCache(n_layer, n_blocks, block_size, n_kv_head, d_head)
    p.sequence(0).update(0, torch.ones(1, 2, 3, 4), torch.ones(1, 2, 3, 4))  # 2 of the 4 blocks
    return p


def _paged_append(layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return _paged().sequence(1).update(layer, k, v)


def _corpus() -> corpus.Corpus:
    return corpus.Corpus("abc\n", torch.tensor([0, 1, 2, 3] * 8), torch.tensor([1, 2, 3, 0] * 4))


def _draw(fn, **kw) -> None:
    plt.close(fn(**kw).figure)


W = mla.mla_weights(8, 2, 4, 3, dtype=torch.float64)
MLA = {"x": T(2, 3, 8), "w": Keep(W)}
POS = C("learned", gpt.POSITIONS)

SPECS = [
    # ---- caches
    Spec("cache.KVCache", _kv_append, {"layer": Int(0, 0), **kv()}),
    Spec("cache.KVCache[new layer]", lambda layer, k, v: cache.KVCache().update(layer, k, v),
         {"layer": Int(1, 0), **kv()}),
    Spec("cache.StreamingCache", _stream_append, {"window": Int(2), "sinks": Int(1, 0), **kv(1)}),
    Spec("cache.PagedKVCache", _paged, {"n_layer": Int(2), "n_blocks": Int(4), "block_size": Int(2),
                                         "n_kv_head": Int(2), "d_head": Int(4)}),
    Spec("cache.PagedKVCache[append]", _paged_append, {"layer": Int(1, 0), **kv(2)}),
    Spec("cache.PagedKVCache[gather]", lambda seq, layer: _paged().gather(seq, layer),
         {"seq": Int(0, 0), "layer": Int(0, 0)}),
    Spec("cache.PagedKVCache[release]", lambda seq: _paged().release(seq), {"seq": Int(0, 0)}),
    Spec("cache.PagedKVCache[sequence]", lambda seq: _paged().sequence(seq), {"seq": Int(1, 0)}),
    Spec("cache.PagedKVCache[blocks_in_use]", lambda: _paged().blocks_in_use(), {}),
    Spec("cache.allocation_waste", cache.allocation_waste,
         {"lengths": Keep([3, 5, 8]), "max_len": Int(8), "block_size": Int(4)}),
    Spec("cache.cache_bytes", cache.cache_bytes,
         {"n_layer": Int(2), "n_kv_head": Int(2), "d_head": Int(4), "length": Int(5, 0), "batch": Int(1),
          "itemsize": Int(4)}),
    # ---- corpus
    Spec("corpus.Corpus", lambda text: _corpus().encode(text), {"text": Text("abc")}),
    Spec("corpus.Corpus[decode]", lambda i: _corpus().decode(i), {"i": Idx(5, high=4, aliases=("ids",))},
         skip={"i:list": "a list of ints is documented input"}),
    Spec("corpus.baselines", lambda: corpus.baselines(_corpus()), {}),
    Spec("corpus.get_batch", corpus.get_batch,
         {"data": Idx(40, high=V, empty=False), "batch_size": Int(2), "block_size": Int(8)},
         skip={"data:range": "any integer is an id: get_batch knows no vocabulary"}),
    Spec("corpus.eval_windows", corpus.eval_windows,
         {"data": Idx(40, high=V, empty=False), "n": Int(2), "length": Int(8), "seed": Keep(3)},
         skip={"data:range": "any integer is an id: eval_windows knows no vocabulary"}),
    Spec("corpus.load_corpus", corpus.load_corpus, {}),
    Spec("corpus.load_text", corpus.load_text, {}),
    # ---- the decoder
    Spec("gpt.GPTConfig", gpt.GPTConfig,
         {"vocab_size": Int(V), "block_size": Int(8), "n_layer": Int(1), "n_head": Int(2), "n_kv_head": Int(1),
          "d_model": Int(8), "positions": POS, "window": Int(4), "rope_base": P(10000.0)}),
    Spec("gpt.GPT", lambda idx: tiny()(idx), {"idx": ids(2, 5)}),
    Spec("gpt.GPT[rotary, gqa, window]", lambda idx: tiny(positions="rotary", n_kv_head=1, window=3)(idx),
         {"idx": ids(2, 5)}),
    Spec("gpt.GPT[cache]", lambda idx: _decode(idx), {"idx": ids(2, 1, seed=1)}),
    Spec("gpt.alibi_slopes", gpt.alibi_slopes, {"n_head": Int(4)}),
    Spec("gpt.decoder_mask", gpt.decoder_mask,
         {"q_pos": Idx(3, high=10), "k_pos": Idx(5, high=10), "window": Int(3)},
         skip={"range": "any integer is a position (only differences count)"}),
    Spec("gpt.sample_next", gpt.sample_next,
         {"logits": T(2, V, dtype=torch.float32, nan="any"), "temperature": P(0.8, allow_zero=True), "top_k": Int(5),
          "generator": Keep(None)}),
    Spec("gpt.sample_next[greedy]", gpt.sample_next,
         {"logits": T(2, V, dtype=torch.float32, nan="any"), "temperature": P(0.0, allow_zero=True)}),
    heavy(Spec("gpt.generate", gpt.generate,
               {"model": fresh(tiny), "prompt": ids(1, 3), "n_new": Int(3, 0), "temperature": P(1.0, allow_zero=True),
                "top_k": Int(5), "seed": Keep(0), "use_cache": Keep(True)})),
    Spec("gpt.loss_fn", gpt.loss_fn, {"model": fresh(tiny), "x": ids(2, 5), "y": ids(2, 5, seed=1)}),
    Spec("gpt.nll_per_position", gpt.nll_per_position,
         {"model": fresh(tiny), "x": ids(2, 5), "y": ids(2, 5, seed=1)}),
    # ---- MLA
    Spec("mla.mla_weights", mla.mla_weights,
         {"d_model": Int(8), "n_head": Int(2), "d_head": Int(4), "d_latent": Int(3), "seed": Keep(0)}),
    Spec("mla.mla_latents", mla.mla_latents, dict(MLA)),
    Spec("mla.mla_attention", mla.mla_attention, {**MLA, "absorbed": Keep(True)}),
    Spec("mla.mla_attention[latents]", mla.mla_attention,
         {"x": T(2, 1, 8), "w": Keep(W), "latents": T(2, 4, 3, seed=1)}),
    Spec("mla.kv_cache_elements", mla.kv_cache_elements,
         {"kind": C("gqa", ("mha", "gqa", "mqa", "mla")), "n_head": Int(8), "d_head": Int(4), "n_kv_head": Int(2),
          "d_latent": Int(3), "d_rope": Int(0, 0)}),
    # ---- training and evaluation
    heavy(Spec("train.evaluate", train.evaluate,
               {"model": fresh(tiny), "data": ids(40, empty=False), "n": Int(2), "length": Int(8)},
               skip={"data:range": "ids beyond the model's vocabulary are refused by GPT (gpt.GPT)"})),
    heavy(Spec("train.train_gpt", train.train_gpt,
               {"cfg": Keep(CFG), "steps": Int(2, 0), "batch_size": Int(2), "lr": P(1e-2), "warmup": Int(1, 0),
                "eval_every": Int(2), "eval_n": Int(2)})),
    Spec("train.pool_kv_heads", train.pool_kv_heads, {"model": fresh(tiny), "n_kv_head": Int(1)}),
    Spec("train.streaming_nll", train.streaming_nll,
         {"model": fresh(tiny), "x": ids(2, 5), "y": ids(2, 5, seed=1), "window": Int(2), "sinks": Int(1, 0)}),
    Spec("train.attention_to_first", train.attention_to_first,
         {"model": fresh(tiny), "x": ids(2, 5), "n_first": Int(2)}),
    Spec("train.attention_by_offset", train.attention_by_offset, {"model": fresh(tiny), "x": ids(2, 5)}),
    Spec("train.receptive_field", train.receptive_field,
         {"model": fresh(tiny), "x": ids(1, 5), "position": Int(3, 0), "layer": Int(1)}),
    # ---- records and drawings
    Spec("records.load_record", records.load_record, {"name": C("kv-heads", ("kv-heads", "positions"))}),
    heavy(Spec("diagrams.decode_step_diagram", lambda: _draw(diagrams.decode_step_diagram), {})),
    heavy(Spec("diagrams.gqa_mla_diagram", lambda: _draw(diagrams.gqa_mla_diagram), {})),
    heavy(Spec("diagrams.streaming_diagram", lambda window, sinks: _draw(diagrams.streaming_diagram, window=window,
                                                                          sinks=sinks),
               {"window": Int(4), "sinks": Int(2, 0)})),
]


def _decode(idx: torch.Tensor) -> torch.Tensor:
    """One decoding step of a batch of 2 after a prefill of 3 tokens."""
    m, c = tiny(), cache.KVCache()
    m(torch.tensor([[1, 2, 3], [4, 5, 6]]), c)
    return m(idx, c)


(test_every_public_callable_has_a_spec, test_the_valid_call_works,
 test_bad_input_is_refused_by_name_or_documented, test_table_summary) = table_tests(
    SPECS, public_callables("attnkit.llm"), NOT_TABLED, test_file="tests/llm/test_llm_robustness.py")


# ---- bad input the corruptions above do not make: each once failed silently or deep inside torch

def test_a_cache_refuses_keys_that_do_not_continue_it() -> None:
    for c in (cache.KVCache(), cache.StreamingCache(4, 1)):
        c.update(0, torch.zeros(1, 2, 1, 4), torch.zeros(1, 2, 1, 4))
        with pytest.raises(TypeError, match=r"\bk\b.*float32"):  # was silently promoted to float64
            c.update(0, torch.zeros(1, 2, 1, 4, dtype=torch.float64), torch.zeros(1, 2, 1, 4, dtype=torch.float64))
        with pytest.raises(ValueError, match=r"\bk\b must match"):  # was a RuntimeError of torch.cat
            c.update(0, torch.zeros(1, 2, 1, 8), torch.zeros(1, 2, 1, 8))
        assert c.k[0].shape == (1, 2, 1, 4)  # nothing appended


def test_a_paged_cache_refuses_keys_of_another_shape_or_layer() -> None:
    p = _paged()
    with pytest.raises(ValueError, match=r"\bk\b must match the pool"):  # was a RuntimeError of the copy
        p.sequence(1).update(0, torch.ones(1, 1, 2, 4), torch.ones(1, 1, 2, 4))
    with pytest.raises(ValueError, match=r"\blayer\b must be < n_layer=2"):  # was an IndexError
        p.sequence(1).update(2, torch.ones(1, 2, 1, 4), torch.ones(1, 2, 1, 4))
    with pytest.raises(ValueError, match=r"\bseq\b 5 holds no tokens"):  # was a KeyError
        p.gather(5, 0)
    assert p.tables == {0: [0, 1]} and p.free == [2, 3]


def test_sampling_refuses_top_k_beyond_the_vocabulary_and_rows_with_no_choice() -> None:
    logits = torch.randn(2, 5)
    with pytest.raises(ValueError, match=r"\btop_k\b must be at most 5"):  # was clamped silently
        gpt.sample_next(logits, top_k=6)
    with pytest.raises(ValueError, match=r"\btop_k\b"):
        gpt.generate(tiny(), torch.zeros(1, 2, dtype=torch.long), 0, top_k=V + 1)
    dead = logits.clone()
    dead[1] = float("-inf")
    with pytest.raises(ValueError, match=r"\blogits\b"):  # was torch.multinomial's RuntimeError
        gpt.sample_next(dead)


def test_latents_shorter_than_the_queries_and_a_zero_length_are_refused() -> None:
    with pytest.raises(ValueError, match=r"\blatents\b must be.*S >= T"):  # every row was fully masked
        mla.mla_attention(torch.randn(2, 4, 8, dtype=torch.float64), W, latents=torch.randn(2, 3, 3,
                                                                                         dtype=torch.float64))
    with pytest.raises(ValueError, match=r"\blength\b"):  # length=0 used to mean block_size
        train.evaluate(tiny(), torch.zeros(40, dtype=torch.long), n=2, length=0)


def test_empty_batches_single_sequences_and_inf_logits_are_refused() -> None:
    m, z = tiny(), (lambda *s: torch.zeros(*s, dtype=torch.long))
    for fn in (gpt.loss_fn, gpt.nll_per_position, train.streaming_nll):  # NaN (B = 0) or a torch.stack error
        for shape in ((0, 5), (2, 0)):
            with pytest.raises(ValueError, match=r"\bx\b must hold at least one token"):
                fn(m, z(*shape), z(*shape))
    with pytest.raises(ValueError, match=r"\bidx\b must be one sequence"):  # named the paged cache's k
        m(z(2, 3), cache.PagedKVCache(1, 4, 2, 2, 4).sequence(0))
    with pytest.raises(ValueError, match=r"\bx\b must be one sequence"):  # read sequence 0 only
        train.receptive_field(m, z(2, 5), 3)
    with pytest.raises(ValueError, match=r"\blogits\b"):  # was torch.multinomial's RuntimeError
        gpt.sample_next(torch.tensor([[float("inf"), 0.0]]))
    with pytest.raises(ValueError, match=r"\blengths\b"):  # named an internal n_blocks
        cache.allocation_waste([], 8, 4)
