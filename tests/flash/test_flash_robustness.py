"""Bad input to every public function of ``attnkit.flash``: clear errors or documented results.

The machinery and the accepted outcomes are in ``tests/robustness_kit.py``; this file is the table of
how to call each function with small valid inputs. The NumPy references take arrays (:func:`A`).
"""

from __future__ import annotations

import importlib
import pkgutil

import numpy as np
import torch
from robustness_kit import A, C, Int, Keep, P, Spec, T, Text, table_tests

import attnkit.flash

api, autotune, osm = (importlib.import_module(f"attnkit.flash.{m}") for m in ("api", "autotune", "online_softmax"))

# the Triton modules: kernels and their launchers, run on a GPU or by Triton's interpreter
TRITON_MODULES = {
    "forward": "the forward kernel (triton.jit code, launched by triton_kernel)",
    "backward": "the backward kernels (triton.jit code, launched by triton_kernel)",
    "triton_kernel": "the launchers: called by flash_attention after its checks (tests/flash/test_flash_triton.py)",
    "aot": "ahead-of-time compiles for a GPU architecture (tests/flash/test_flash_triton.py)",
}
NOT_TABLED: dict[str, str] = {
    "api.FlashAttentionFunction": "the autograd Function behind flash_attention, which checks its input",
    "autotune.sweep": "the compile sweep: needs Triton's CUDA compiler and ptxas (a GPU toolchain)",
    "autotune.main": "the command line of the sweep",
    "autotune.spill_free": "reads the dict a sweep returned (the recorded JSON in the tests)",
}


def qkv(L: int = 6, N: int = 7, d: int = 4, dv: int = 3) -> dict:
    return {"q": A(2, L, d, seed=1, rank=(2, None)), "k": A(2, N, d, seed=2, rank=(2, None)),
            "v": A(2, N, dv, seed=3, rank=(2, None))}


def flash_qkv(L: int = 8, N: int = 8, d: int = 16) -> dict:
    return {"q": T(1, 2, L, d, dtype=torch.float32, seed=1), "k": T(1, 2, N, d, dtype=torch.float32, seed=2),
            "v": T(1, 2, N, d, dtype=torch.float32, seed=3)}


SIZES = {"n": Int(64, 0), "d": Int(16), "block_m": Int(16, huge=True), "block_n": Int(16, huge=True),
         "bytes_per_element": Int(2)}

SPECS = [
    Spec("online_softmax.online_softmax_stats",
         lambda x: osm.online_softmax_stats([x[..., :2], x[..., 2:]] if np.ndim(x) else [x]),
         {"x": A(3, 5, rank=(1, None), aliases=("blocks", "blocks[0]", "blocks[1]"))}),
    Spec("online_softmax.online_softmax", osm.online_softmax,
         {"x": A(3, 5, rank=(1, None)), "block_size": Int(2, huge=True)}),
    Spec("online_softmax.attention_np", osm.attention_np, {**qkv(), "softmax_scale": P(0.5)}),
    Spec("online_softmax.attention_np[causal]", osm.attention_np, {**qkv(N=6), "causal": Keep(True)}),
    Spec("online_softmax.flash_forward_np", osm.flash_forward_np,
         {**qkv(), "block_m": Int(4, huge=True), "block_n": Int(3, huge=True), "softmax_scale": P(0.5)}),
    Spec("online_softmax.flash_forward_np[causal]", osm.flash_forward_np,
         {**qkv(N=6), "causal": Keep(True), "block_m": Int(4, huge=True), "block_n": Int(3, huge=True)}),
    Spec("online_softmax.flash_forward_kv_outer_np", osm.flash_forward_kv_outer_np,
         {**qkv(), "block_r": Int(4, huge=True), "block_c": Int(3, huge=True), "softmax_scale": P(0.5)}),
    Spec("online_softmax.flash_backward_np", osm.flash_backward_np,
         {**qkv(), "o": A(2, 6, 3, seed=4, rank=(2, None)), "lse": A(2, 6, seed=5, rank=(1, None)),
          "do": A(2, 6, 3, seed=6, rank=(2, None)), "block_m": Int(4, huge=True), "block_n": Int(3, huge=True)}),
    Spec("online_softmax.hbm_traffic", osm.hbm_traffic,
         {**SIZES, "order": C("q_outer", ("q_outer", "kv_outer"))}),
    Spec("online_softmax.hbm_traffic_backward", osm.hbm_traffic_backward, dict(SIZES)),
    Spec("online_softmax.flash1_block_sizes", osm.flash1_block_sizes, {"sram_elements": Int(1024), "d": Int(16)}),
    Spec("online_softmax.sram_bytes", osm.sram_bytes,
         {"block_m": Int(64), "block_n": Int(64), "d": Int(64), "bytes_per_element": Int(2), "num_stages": Int(2)}),
    Spec("online_softmax.register_bytes", osm.register_bytes, {"block_m": Int(64), "block_n": Int(64), "d": Int(64)}),
    Spec("online_softmax.ByteCounter", lambda bytes_per_element, block: osm.ByteCounter(bytes_per_element)
         .read("Q", block), {"bytes_per_element": Int(2), "block": A(3, 4, rank=(0, None))},
         skip={"block:dtype": "the bytes of any array are counted"}),
    Spec("api.flash_attention", api.flash_attention,
         {**flash_qkv(), "softmax_scale": P(0.25), "backend": C("reference", api.BACKENDS)}),
    Spec("api.flash_attention[causal]", api.flash_attention,
         {**flash_qkv(L=5, N=9), "causal": Keep(True), "return_lse": Keep(True), "backend": Keep("reference")}),
    Spec("api.flash_attention_forward", api.flash_attention_forward,
         {**flash_qkv(N=11), "backend": C("reference", api.BACKENDS)}),
    Spec("api.triton_available", api.triton_available, {}),
    Spec("api.triton_version", api.triton_version, {}),
    Spec("api.interpreter_available", api.interpreter_available, {}),
    Spec("autotune.bucket", autotune.bucket, {"n": Int(100, 0)}),
    Spec("autotune.block_d", autotune.block_d, {"d": Int(80)}),
    Spec("autotune.d_class", autotune.d_class, {"d": Int(80)}),
    Spec("autotune.uses_tma", autotune.uses_tma, {"name": C("bwd", ("fwd", "bwd")), "d": Int(200)}),
    Spec("autotune.shared_bytes", autotune.shared_bytes,
         {"name": C("fwd", ("fwd", "bwd")), "entry": Keep((128, 64, 4, 3)), "d": Int(64), "elem_bytes": Int(2)}),
    Spec("autotune.prune", autotune.prune,
         {"name": C("fwd", ("fwd", "bwd")), "d": Int(128), "dtype": Keep(torch.bfloat16),
          "max_shared": Int(100 * 1024, 0)}),
    Spec("autotune.load_sweep", autotune.load_sweep, {"path": Text(str(autotune.RECORDED))}),
]


def _public() -> list[str]:
    """``module.name`` of every public callable of the modules that need no Triton."""
    import inspect

    found = []
    for info in pkgutil.iter_modules(attnkit.flash.__path__):
        if info.name.startswith("_") or info.name in TRITON_MODULES:
            continue
        mod = importlib.import_module(f"attnkit.flash.{info.name}")
        found += [f"{info.name}.{n}" for n in mod.__all__
                  if inspect.isfunction(getattr(mod, n)) or inspect.isclass(getattr(mod, n))]
    return found


(test_every_public_callable_has_a_spec, test_the_valid_call_works,
 test_bad_input_is_refused_by_name_or_documented, test_table_summary) = table_tests(
    SPECS, _public(), NOT_TABLED, test_file="tests/flash/test_flash_robustness.py")


def test_every_triton_free_flash_module_is_tabled() -> None:
    modules = {i.name for i in pkgutil.iter_modules(attnkit.flash.__path__) if not i.name.startswith("_")}
    assert modules - set(TRITON_MODULES) == {"api", "autotune", "online_softmax"}
