"""Bad input to every public function of ``attnkit.efficient``: clear errors or documented results.

The machinery and the accepted outcomes are in ``tests/robustness_kit.py``; this file is the table of
how to call each function with small valid inputs.
"""

from __future__ import annotations

import importlib

import pytest
import torch
from robustness_kit import (
    B,
    C,
    Idx,
    Int,
    Keep,
    P,
    Spec,
    T,
    U,
    module,
    public_callables,
    table_tests,
)

from attnkit import attend, causal_mask

chunked, data, linformer, local, performer, reformer, reversible = (
    importlib.import_module(f"attnkit.efficient.{m}")
    for m in ("chunked", "data", "linformer", "local", "performer", "reformer", "reversible"))

NOT_TABLED: dict[str, str] = {
    "reversible.saved_tensor_bytes": "a context manager that measures saved activations (no input to break "
                                     "but the tensors to exclude)",
}


def _block() -> object:
    torch.manual_seed(0)
    return reversible.ReversibleBlock(torch.nn.Linear(4, 4).double(), torch.nn.Linear(4, 4).double())


def qkv(L: int = 8, N: int = 8, d: int = 4, dv: int = 3, batch: tuple[int, ...] = (2,)) -> dict:
    return {"q": T(*batch, L, d, seed=1, rank=(2, None)), "k": T(*batch, N, d, seed=2, rank=(2, None)),
            "v": T(*batch, N, dv, seed=3, rank=(2, None))}


SPECS = [
    Spec("chunked.chunked_attention", chunked.chunked_attention,
         {**qkv(), "key_chunk": Int(3, huge=True), "query_chunk": Int(2, huge=True)}),
    Spec("chunked.exact_attention_bytes", chunked.exact_attention_bytes,
         {"L": Int(8, 0), "N": Int(8, 0), "d": Int(4, 0), "dv": Int(3, 0), "itemsize": Int(4)}),
    Spec("chunked.chunked_attention_bytes", chunked.chunked_attention_bytes,
         {"L": Int(8, 0), "N": Int(8, 0), "d": Int(4, 0), "dv": Int(3, 0), "key_chunk": Int(3, huge=True),
          "query_chunk": Int(2, huge=True), "itemsize": Int(4)}),
    Spec("data.random_qkv", data.random_qkv, {"n": Int(5), "d": Int(4)}),
    Spec("data.smooth_sequence", data.smooth_sequence, {"n": Int(5), "d": Int(4), "sharpness": P(3.0)}),
    Spec("linformer.linformer_projection", linformer.linformer_projection,
         {"n": Int(8), "r": Int(3), "kind": C("pool", ("gaussian", "pool"))}),
    Spec("linformer.linformer_attention", linformer.linformer_attention,
         {**qkv(), "r": Int(3, huge=True), "kind": C("pool", ("gaussian", "pool"))}),
    Spec("linformer.linformer_attention[E]", linformer.linformer_attention,
         {**qkv(), "E": T(3, 8, seed=4), "F": T(3, 8, seed=5)}),
    Spec("linformer.attention_singular_values", linformer.attention_singular_values,
         {"q": T(2, 5, 4, rank=(2, None)), "k": T(2, 6, 4, seed=1, rank=(2, None))}),
    Spec("local.sliding_window_mask", local.sliding_window_mask, {"L": Int(6), "window": Int(2, 0, huge=True)}),
    Spec("local.fixed_sparse_mask", local.fixed_sparse_mask, {"L": Int(6), "block": Int(3, huge=True),
                                                              "n_summary": Int(1, 0)}),
    Spec("local.local_attention", local.local_attention, {**qkv(), "window": Int(3, huge=True)}),
    Spec("performer.orthogonal_gaussian", performer.orthogonal_gaussian, {"m": Int(6), "d": Int(4)}),
    Spec("performer.favor_features", performer.favor_features,
         {"x": T(2, 5, 4, rank=(1, None)), "omega": T(6, 4, seed=1),
          "stabilizer": C("row", ("row", "all"), optional=True)}),
    Spec("performer.row_sum_normalize", performer.row_sum_normalize,
         {"scores": U(2, 3, 5, rank=(0, None), nan="any"),
          "mask": B(lambda: torch.rand(3, 5, generator=torch.Generator().manual_seed(1)) > 0.3, rank=(0, 3))},
         skip={"mask:dtype": "a float mask is valid (added to the scores)"}),
    Spec("performer.row_sum_normalize[unmasked]", performer.row_sum_normalize, {"scores": U(2, 3, 5, rank=(0, None))}),
    Spec("performer.linear_attention", performer.linear_attention,
         {"phi_q": U(2, 8, 6, rank=(2, None)), "phi_k": U(2, 8, 6, seed=1, rank=(2, None)),
          "v": T(2, 8, 3, seed=2, rank=(2, None)), "chunk": Int(3, huge=True)}),
    Spec("performer.linear_attention_step", performer.linear_attention_step,
         {"state": Keep(None), "phi_q_t": U(2, 6, rank=(1, None)), "phi_k_t": U(2, 6, seed=1, rank=(1, None)),
          "v_t": T(2, 3, seed=2, rank=(1, None))}),
    Spec("performer.linear_attention_step[state]", performer.linear_attention_step,
         {"state": Keep(lambda: (torch.ones(2, 6, 3, dtype=torch.float64), torch.ones(2, 6, dtype=torch.float64))),
          "phi_q_t": U(2, 6, rank=(1, None)), "phi_k_t": U(2, 6, seed=1, rank=(1, None)),
          "v_t": T(2, 3, seed=2, rank=(1, None))}),
    Spec("performer.linear_attention_recurrent", performer.linear_attention_recurrent,
         {"phi_q": U(2, 8, 6, rank=(2, None)), "phi_k": U(2, 8, 6, seed=1, rank=(2, None)),
          "v": T(2, 8, 3, seed=2, rank=(2, None))}),
    Spec("performer.performer_attention", performer.performer_attention,
         {**qkv(), "n_features": Int(6), "chunk": Int(3, huge=True)}),
    Spec("reformer.random_rotations", reformer.random_rotations,
         {"d": Int(4), "n_buckets": Int(4), "n_rounds": Int(2)}),
    Spec("reformer.lsh_buckets", reformer.lsh_buckets,
         {"x": T(2, 8, 4, rank=(2, None), nan="any"), "rotations": T(2, 4, 2, seed=1, nan="any"),
          "n_buckets": Int(4)}),
    Spec("reformer.shared_keys", reformer.shared_keys, {"qk": T(2, 8, 4, rank=(1, None))}),
    Spec("reformer.lsh_attention_mask", reformer.lsh_attention_mask,
         {"buckets": Idx(2, 3, 8, high=4, rank=(2, None)), "chunk_size": Int(4, huge=True)},
         skip={"buckets:range": "any integer ids sort into buckets"}),
    Spec("reformer.lsh_attention", reformer.lsh_attention,
         {"qk": T(2, 8, 4, rank=(2, None)), "v": T(2, 8, 3, seed=1, rank=(2, None)), "n_buckets": Int(4),
          "n_rounds": Int(2), "chunk_size": Int(4, huge=True)}),
]
SPECS += [
    Spec("reversible.chunked_feed_forward", reversible.chunked_feed_forward,
         {"ff": Keep(lambda: (lambda t: 2 * t.relu())), "x": T(2, 5, 4, rank=(2, None)),
          "chunk": Int(2, huge=True)}),
    module(reversible.FeedForward, {"d": Int(4), "d_ff": Int(6), "chunk": Int(2, huge=True)},
           {"x": T(2, 5, 4, dtype=torch.float32, rank=(1, None))}, name="reversible.FeedForward",
           positional=("x",)),
    Spec("reversible.ReversibleBlock", lambda x1, x2: _block()(x1, x2),
         {"x1": T(2, 5, 4, rank=(1, None)), "x2": T(2, 5, 4, seed=1, rank=(1, None))}),
    module(reversible.ReversibleStack, {"chunk": Int(2, huge=True)},
           {"x1": T(2, 5, 4, rank=(2, None)), "x2": T(2, 5, 4, seed=1, rank=(2, None))},
           name="reversible.ReversibleStack", positional=("x1", "x2"),
           build=lambda kw: reversible.ReversibleStack([_block(), _block()], **kw)),
]


(test_every_public_callable_has_a_spec, test_the_valid_call_works,
 test_bad_input_is_refused_by_name_or_documented, test_table_summary) = table_tests(
    SPECS, public_callables("attnkit.efficient"), NOT_TABLED, test_file="tests/efficient/test_efficient_robustness.py")


# ---- the cases of issue #17, one by one ------------------------------------------------------------

@pytest.mark.parametrize("causal", [False, True])
def test_a_window_far_beyond_the_sequence_is_full_attention(causal: bool) -> None:
    q, k, v = (torch.randn(2, 4, 8, dtype=torch.float64) for _ in range(3))
    out = local.local_attention(q, k, v, window=10**6, causal=causal)  # once tried to allocate 24 TB
    ref = attend(q, k, v, mask=causal_mask(4) if causal else None)[0]
    torch.testing.assert_close(out, ref)
    sdpa = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=causal)
    torch.testing.assert_close(out, sdpa)


def test_zero_keys_and_empty_sequences() -> None:
    q, v = torch.randn(2, 0, 4), torch.randn(2, 0, 3)
    assert local.local_attention(q, q, v, window=3).shape == (2, 0, 3)
    out = chunked.chunked_attention(torch.randn(2, 5, 4), torch.randn(2, 0, 4), torch.randn(2, 0, 3), causal=True)
    assert torch.equal(out, torch.zeros(2, 5, 3))
