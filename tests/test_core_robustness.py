"""Bad input to every public name of the core (``attnkit.__all__``): clear errors or documented results.

The machinery and the accepted outcomes are in ``tests/robustness_kit.py``; this file is the table of
how to call each function with small valid inputs.
"""

from __future__ import annotations

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
    module,
    table_tests,
)

import attnkit
from attnkit import (
    MultiHeadAttention,
    additive_score,
    attend,
    attention_scores,
    causal_mask,
    combine_masks,
    cosine_score,
    dot_score,
    gaussian_score,
    general_score,
    hardmax,
    key_mask,
    masked_softmax,
    no_normalize,
    padding_mask,
    scaled_dot_score,
    softmax_with_temperature,
    sparsemax,
)
from attnkit.normalize import NORMALIZERS
from attnkit.scores import SCORES

NOT_HERE = {"flash_attention": "attnkit.flash (tests/flash, issue #18)"}


def qkv(*, lq: int = 3, lk: int = 5, d: int = 4, dv: int = 2, batch: tuple[int, ...] = (2,)) -> dict:
    return {"q": T(*batch, lq, d, seed=1, rank=(2, None)), "k": T(*batch, lk, d, seed=2, rank=(2, None)),
            "v": T(*batch, lk, dv, seed=3, rank=(2, None))}


def _mask() -> torch.Tensor:
    m = torch.rand(3, 5, generator=torch.Generator().manual_seed(4)) > 0.3
    m[:, 0] = True
    return m


def _norm_spec(fn, *, masked: bool = True) -> Spec:
    if not masked:  # every entry takes part, so a NaN anywhere must reach the output
        return Spec(f"{fn.__name__}[unmasked]", fn, {"scores": T(2, 3, 5, rank=(0, None)), "dim": Keep(-1)})
    # a NaN score that the mask removes changes nothing (tests/test_core_numerics.py): any result
    return Spec(fn.__name__, fn, {"scores": T(2, 3, 5, rank=(0, None), nan="any"), "mask": B(_mask, rank=(0, 3)),
                                  "dim": Keep(-1)}, skip={"mask:dtype": "a float mask is valid (added to the scores)"})


def _score_spec(fn, **params) -> Spec:
    return Spec(fn.__name__, fn, {"q": T(2, 3, 4, seed=1, rank=(2, None)), "k": T(2, 5, 4, seed=2, rank=(2, None)),
                                  **params})


SPECS = [
    Spec("attend", attend, {**qkv(), "mask": B(_mask, rank=(0, 3)), "temperature": P(0.7),
                            "score": C("scaled_dot", tuple(SCORES)), "normalize": C("softmax", tuple(NORMALIZERS))},
         skip={"mask:dtype": "a float mask is valid (added to the scores)"}),
    Spec("attention_scores", attention_scores,
         {"q": T(2, 3, 4, rank=(2, None)), "k": T(2, 5, 4, seed=2, rank=(2, None)), "score": C("dot", tuple(SCORES))}),
    _norm_spec(masked_softmax),
    _norm_spec(sparsemax),
    _norm_spec(hardmax),
    _norm_spec(masked_softmax, masked=False),
    _norm_spec(sparsemax, masked=False),
    _norm_spec(hardmax, masked=False),
    Spec("no_normalize", no_normalize, {"scores": T(2, 3, 5, rank=(0, None)), "mask": B(_mask, rank=(0, 3)),
                                        "dim": Keep(-1)}, skip={"mask:dtype": "a float mask is valid",
                                                             "scores:nan": "elementwise: NaN stays where it is"}),
    Spec("softmax_with_temperature", softmax_with_temperature,
         {"scores": T(2, 3, 5, rank=(0, None), nan="any"), "temperature": P(2.0), "mask": B(_mask, rank=(0, 3))},
         skip={"mask:dtype": "a float mask is valid"}),
    _score_spec(dot_score),
    _score_spec(scaled_dot_score),
    _score_spec(cosine_score),
    _score_spec(gaussian_score),
    Spec("general_score", general_score, {"q": T(2, 3, 4, rank=(2, None)), "k": T(2, 5, 6, seed=2, rank=(2, None)),
                                          "W": T(4, 6, seed=3, rank=(2, None))}),
    Spec("additive_score", additive_score, {"q": T(2, 3, 4, rank=(2, None)), "k": T(2, 5, 6, seed=2, rank=(2, None)),
                                            "W_q": T(7, 4, seed=3), "W_k": T(7, 6, seed=4), "w": T(7, seed=5)}),
    Spec("causal_mask", causal_mask, {"Lq": Int(4, 0), "Lk": Int(6, 0)}),
    Spec("padding_mask", padding_mask, {"lengths": Idx(3, high=7, rank=(1, 1)), "max_len": Int(6, 0)},
         skip={"lengths:numpy": "array-likes of ints are accepted", "lengths:list": "a list of ints is accepted",
               "lengths:meta": "documented: meta lengths are refused", "max_len:huge": "a size asked for"}),
    Spec("key_mask", key_mask, {"pad": B(lambda: torch.ones(2, 5, dtype=torch.bool), rank=(2, 2))}),
    Spec("combine_masks", lambda a, b: combine_masks(a, b),
         {"a": B(lambda: causal_mask(4), rank=(0, None), aliases=("combine_masks",)),
          "b": B(lambda: torch.ones(2, 1, 4, dtype=torch.bool), rank=(0, None), aliases=("combine_masks",))},
         skip={"a:rank": "any rank broadcasts", "b:rank": "any rank broadcasts"}),
    module(MultiHeadAttention, {"embed_dim": Int(8), "num_heads": Int(2), "dropout": P(0.0, allow_zero=True),
                                "score": C("scaled_dot", tuple(SCORES)), "normalize": C("softmax", tuple(NORMALIZERS))},
           {"query": T(2, 5, 8, dtype=torch.float32), "key": T(2, 6, 8, seed=2, dtype=torch.float32),
            "mask": B(lambda: torch.ones(5, 6, dtype=torch.bool), rank=(0, 4)),
            "key_padding": B(lambda: torch.ones(2, 6, dtype=torch.bool), rank=(2, 2))},
           skip={"query:empty": "tested below", "key:empty": "tested below"}),
]


(test_every_public_callable_has_a_spec, test_the_valid_call_works,
 test_bad_input_is_refused_by_name_or_documented, test_table_summary) = table_tests(
    SPECS, attnkit.__all__, NOT_HERE, test_file="tests/test_core_robustness.py")


# ---- the documented results that the property test accepts ------------------------------------------

@pytest.mark.parametrize("norm", [masked_softmax, sparsemax, hardmax, no_normalize])
def test_empty_rows_give_empty_weights(norm) -> None:
    assert norm(torch.randn(3, 0)).shape == (3, 0)
    assert norm(torch.randn(0, 4)).shape == (0, 4)


def test_multihead_attention_on_empty_sequences() -> None:
    mha = MultiHeadAttention(8, 2)
    out, w = mha(torch.randn(2, 0, 8), torch.randn(2, 6, 8))
    assert out.shape == (2, 0, 8) and w.shape == (2, 2, 0, 6)
    out, w = mha(torch.randn(2, 5, 8), torch.randn(2, 0, 8))
    ref = torch.nn.functional.linear(torch.zeros(2, 5, 8), mha.out_proj.weight, mha.out_proj.bias)
    torch.testing.assert_close(out, ref)  # no keys: every head gives zeros, the output is the bias


def test_meta_tensors_compute_shapes() -> None:
    q, k, v = (torch.empty(2, n, 4, device="meta") for n in (3, 5, 5))
    out, w = attend(q, k, v)
    assert out.device.type == "meta" and out.shape == (2, 3, 4) and w.shape == (2, 3, 5)


def test_a_tensor_on_another_device_is_named() -> None:
    q, k, v = torch.randn(3, 4), torch.randn(5, 4), torch.randn(5, 2)
    with pytest.raises(ValueError, match="mask must be on the device of the scores"):
        attend(q, k, v, mask=torch.ones(3, 5, dtype=torch.bool, device="meta"))
    with pytest.raises(ValueError, match="k and W must be on the same device|q and W must be on the same device"):
        general_score(q, k, torch.randn(4, 4, device="meta"))


# ---- the mask check imports no sympy (torch.broadcast_shapes did: ~0.7 s on the first masked attend) ----

def test_a_masked_attend_imports_no_sympy() -> None:
    import subprocess
    import sys

    code = ("import sys, torch\n"
            "from attnkit import attend, causal_mask\n"
            "from attnkit.masks import combine_masks\n"
            "q = torch.randn(2, 4, 8)\n"
            "attend(q, q, q, mask=causal_mask(4)); attend(q, q, q, mask=torch.zeros(4, 4))\n"
            "combine_masks(causal_mask(4), causal_mask(4)[None])\n"
            "print('sympy' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", out.stdout + out.stderr


@pytest.mark.parametrize("shapes", [((2, 1, 4), (3, 1)), ((0,), (1,)), ((1, 0), (3, 1)), ((), (2, 3)),
                                    ((2, 3), (3, 2)), ((0,), (2,)), ((4, 1, 2), (1, 5, 1), (5, 2))])
def test_broadcast_shape_follows_torch(shapes) -> None:
    from attnkit._checks import broadcast_shape

    try:
        want = torch.broadcast_shapes(*shapes)
    except RuntimeError:
        want = None
    assert broadcast_shape(*shapes) == want
