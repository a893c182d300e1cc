"""Bad input to every public function and class of ``attnkit.classic``: clear errors or documented results.

The machinery and the accepted outcomes are in ``tests/robustness_kit.py``; this file is the table of
how to call each callable with small valid inputs.
"""

from __future__ import annotations

import importlib

import pytest
import torch
from robustness_kit import (
    C,
    Fraction,
    Int,
    Keep,
    P,
    Spec,
    T,
    U,
    heavy,
    module,
    public_callables,
    table_tests,
)

from attnkit.normalize import NORMALIZERS

# modules by import_module: attnkit.classic re-exports a function sigma_pi that hides the module
bilateral, cocktail, fast_weights, images, nonlocal_means, sigma_pi = (
    importlib.import_module(f"attnkit.classic.{m}")
    for m in ("bilateral", "cocktail", "fast_weights", "images", "nonlocal_means", "sigma_pi"))

NOT_TABLED = {
    "sigma_pi.UnitFit": "a result container (dataclass) built by train_units",
}


def img(h: int = 6, w: int = 7, seed: int = 0, **kw):
    return U(h, w, seed=seed, **kw)


def voices():
    return cocktail.synthesize_voices(2, duration=0.05, sample_rate=4000)


SPECS = [
    # bilateral
    Spec("bilateral.spatial_log_weights", bilateral.spatial_log_weights, {"radius": Int(2, 0),
                                                                          "sigma_space": P(1.0)}),
    Spec("bilateral.bilateral_filter", bilateral.bilateral_filter,
         {"image": img(), "radius": Int(2, 0, huge=True), "sigma_space": P(1.5), "sigma_range": P(0.2),
          "chunk_rows": Int(3, huge=True)}),
    Spec("bilateral.bilateral_weights", bilateral.bilateral_weights,  # a NaN outside the window: no effect
         {"image": img(nan="any"), "row": Int(2, 0), "col": Int(3, 0), "radius": Int(2, 0, huge=True),
          "sigma_space": P(1.5), "sigma_range": P(0.2)}),
    # cocktail
    Spec("cocktail.voice_bands", cocktail.voice_bands, {"n_voices": Int(2)}),
    Spec("cocktail.synthesize_voices", cocktail.synthesize_voices,
         {"n_voices": Int(2), "duration": P(0.02), "sample_rate": P(4000)}),
    Spec("cocktail.mix", cocktail.mix, {"voices": T(2, 50), "gains": T(2, seed=1)},
         skip={"gains:numpy": "a sequence of gains is accepted", "gains:list": "a sequence of gains is accepted"}),
    Spec("cocktail.split_channels", cocktail.split_channels,
         {"mixture": T(64), "sample_rate": P(4000), "bands": Keep([(100.0, 500.0), (600.0, 1200.0)])}),
    Spec("cocktail.spectral_signature", cocktail.spectral_signature,
         {"x": T(2, 64, rank=(1, None)), "sample_rate": P(4000), "n_bins": Int(8, huge=True)}),
    Spec("cocktail.select_channel", cocktail.select_channel,
         {"query": T(8), "keys": T(3, 8, seed=1), "channels": T(3, 40, seed=2),
          "normalize": C("softmax", tuple(NORMALIZERS)), "temperature": P(0.5)}),
    Spec("cocktail.relative_error", cocktail.relative_error, {"estimate": T(3, 10, rank=(1, None)),
                                                              "target": T(3, 10, seed=1, rank=(1, None))}),
    Spec("cocktail.spectrogram", cocktail.spectrogram,
         {"x": T(300), "sample_rate": P(4000), "n_fft": Int(64, huge=True), "hop": Int(16, huge=True)}),
    Spec("cocktail.position_keys", cocktail.position_keys, {"rows": Int(3), "cols": Int(4)}),
    Spec("cocktail.partial_report", cocktail.partial_report,
         {"n_trials": Int(5), "delay": P(0.1, allow_zero=True), "rows": Int(2),
          "cols": Int(3), "capacity": Int(2, huge=True), "icon_decay": P(1.0), "read_rate": P(4.0),
          "noise": P(0.3, allow_zero=True), "temperature": P(0.25)}),
    # fast weights
    Spec("fast_weights.fast_weight_programmer", fast_weights.fast_weight_programmer,
         {"q": T(2, 5, 3, rank=(2, None)), "k": T(2, 5, 3, seed=1, rank=(2, None)),
          "v": T(2, 5, 4, seed=2, rank=(2, None)), "W0": T(2, 4, 3, seed=3, rank=(2, None))}),
    Spec("fast_weights.causal_linear_attention", fast_weights.causal_linear_attention,
         {"q": T(2, 5, 3, rank=(2, None)), "k": T(2, 5, 3, seed=1, rank=(2, None)),
          "v": T(2, 5, 4, seed=2, rank=(2, None))}),
    module(fast_weights.FastWeightProgrammer, {"in_dim": Int(6), "key_dim": Int(3), "value_dim": Int(4)},
           {"x": T(2, 5, 6, dtype=torch.float32, rank=(2, None))}, name="fast_weights.FastWeightProgrammer"),
    Spec("fast_weights.random_pairs", fast_weights.random_pairs,
         {"n_pairs": Int(4), "key_dim": Int(5), "value_dim": Int(3), "n_trials": Int(2)}),
    Spec("fast_weights.retrieval_error", fast_weights.retrieval_error,
         {"keys": T(2, 4, 5, rank=(2, None)), "values": T(2, 4, 3, seed=1, rank=(2, None))}),
    Spec("fast_weights.capacity_curve", fast_weights.capacity_curve,
         {"key_dims": Keep([4, 8]), "n_pairs": Keep([2, 6]), "value_dim": Int(3), "n_trials": Int(2)}),
    # images
    Spec("images.check_image", images.check_image,
         {"name": Keep("picture"), "image": img(rank=(2, 2), aliases=("picture",))},
         skip={"image:nan": "a check: returns its input"}),
    Spec("images.check_radius", images.check_radius, {"name": Keep("radius"), "radius": Int(3, 0)}),
    Spec("images.check_positive_int", images.check_positive_int, {"name": Keep("value"), "value": Int(3)}),
    Spec("images.load_sample_image", images.load_sample_image, {"scale": P(0.05)}),
    Spec("images.add_gaussian_noise", images.add_gaussian_noise, {"image": img(), "sigma": P(0.1, allow_zero=True)}),
    Spec("images.gaussian_kernel1d", images.gaussian_kernel1d, {"sigma": P(1.0), "radius": Int(3, 0)}),
    Spec("images.gaussian_blur", images.gaussian_blur,
         {"image": img(), "sigma": P(1.0), "radius": Int(2, 0, huge=True)}),
    Spec("images.psnr", images.psnr, {"estimate": img(), "reference": img(seed=1), "data_range": P(1.0)}),
    Spec("images.gradient_magnitude", images.gradient_magnitude, {"image": img()}),
    Spec("images.edge_mask", images.edge_mask, {"reference": img(nan="any"), "fraction": P(0.2)}),
    Spec("images.edge_preservation", images.edge_preservation,
         {"filtered": img(nan="any"), "reference": img(seed=1, nan="any"), "fraction": P(0.2)}),
    Spec("images.window_offsets", images.window_offsets, {"radius": Int(2, 0)}),
    Spec("images.sliding_windows", images.sliding_windows,
         {"x": U(2, 5, 6, rank=(3, 3)), "radius": Int(1, 0, huge=True), "start": Int(1, 0), "stop": Int(4, 0)}),
    # non-local means
    Spec("nonlocal_means.patch_vectors", nonlocal_means.patch_vectors, {"image": img(), "patch": Int(1, 0, huge=True)}),
    Spec("nonlocal_means.non_local_means", nonlocal_means.non_local_means,
         {"image": img(), "patch": Int(1, 0, huge=True), "search": Int(2, 0, huge=True), "h": P(0.5),
          "block": Int(3, huge=True), "chunk_tiles": Int(2, huge=True)}),
    Spec("nonlocal_means.nlm_weights", nonlocal_means.nlm_weights,
         {"image": img(), "row": Int(2, 0), "col": Int(3, 0), "patch": Int(1, 0, huge=True),
          "search": Int(2, 0, huge=True), "h": P(0.5)}),
    Spec("nonlocal_means.nadaraya_watson", nonlocal_means.nadaraya_watson,
         {"x_query": T(5), "x_train": T(8, seed=1), "y_train": T(8, seed=2), "bandwidth": P(0.5)}),
    # sigma-pi
    Spec("sigma_pi.sigma_pi", sigma_pi.sigma_pi,
         {"x": T(3, 4, rank=(1, None), nan="any"), "terms": Keep([(0, 1), (2,), ()]), "weights": T(3, seed=1)}),
    Spec("sigma_pi.bilinear_terms", sigma_pi.bilinear_terms, {"d": Int(2), "dk": Int(3)}),
    Spec("sigma_pi.sigma_pi_score", sigma_pi.sigma_pi_score,
         {"q": T(2, 3, 4, rank=(2, None)), "k": T(2, 5, 6, seed=1, rank=(2, None)),
          "W": T(4, 6, seed=2, rank=(2, None))}),
    Spec("sigma_pi.gated_sum", sigma_pi.gated_sum,
         {"q": T(2, 3, 4, rank=(2, None)), "k": T(2, 5, 6, seed=1, rank=(2, None)),
          "v": T(2, 5, 2, seed=3, rank=(2, None)), "W": T(4, 6, seed=2, rank=(2, None))}),
    Spec("sigma_pi.boolean_functions", sigma_pi.boolean_functions, {}),
    Spec("sigma_pi.sigma_pi_unit", sigma_pi.sigma_pi_unit, {"x": T(4, 2), "W": T(3, 2, 2, seed=1, rank=(2, None))}),
    Spec("sigma_pi.linear_threshold_unit", sigma_pi.linear_threshold_unit,
         {"x": T(4, 2), "w": T(3, 2, seed=1, rank=(1, None)), "b": T(3, seed=2, rank=(0, None))}),
    Spec("sigma_pi.unit_logits", sigma_pi.unit_logits,
         {"kind": C("linear", ("linear", "sigma_pi")), "x": T(4, 2), "params": Keep(lambda: {
             "w": torch.randn(3, 2, dtype=torch.float64), "b": torch.zeros(3, dtype=torch.float64)})}),
    Spec("sigma_pi.train_units", sigma_pi.train_units,
         {"targets": U(3, 4, nan="any"), "kind": C("linear", ("linear", "sigma_pi")), "steps": Int(2),
          "lr": P(0.1)}),
    Spec("sigma_pi.higher_order_terms", sigma_pi.higher_order_terms, {"n": Int(3), "order": Int(2, 0)}),
    Spec("sigma_pi.parity_data", sigma_pi.parity_data, {"n": Int(3)}),
    Spec("sigma_pi.fit_sigma_pi", sigma_pi.fit_sigma_pi,
         {"x": U(4, 2), "targets": U(4, seed=1, nan="any"), "terms": Keep([(), (0,), (1,), (0, 1)]), "steps": Int(2),
          "lr": P(0.1), "restarts": Int(2)}),
    # fast weights with decay, linear attention (Katharopoulos et al.)
    Spec("fast_weights.decay_mask", fast_weights.decay_mask, {"L": Int(4, 0), "decay": Fraction(0.9, closed=True)}),
    Spec("fast_weights.decayed_linear_attention", fast_weights.decayed_linear_attention,
         {"q": T(2, 5, 3, rank=(2, None)), "k": T(2, 5, 3, seed=1, rank=(2, None)),
          "v": T(2, 5, 4, seed=2, rank=(2, None)), "decay": Fraction(0.9, closed=True)}),
    Spec("fast_weights.elu_feature_map", fast_weights.elu_feature_map, {"x": T(2, 5, 3, rank=(0, None))}),
    Spec("fast_weights.linear_attention", fast_weights.linear_attention,
         {"q": T(2, 5, 3, rank=(2, None)), "k": T(2, 5, 3, seed=1, rank=(2, None)),
          "v": T(2, 5, 4, seed=2, rank=(2, None))}),
    Spec("fast_weights.linear_attention_recurrent", fast_weights.linear_attention_recurrent,
         {"q": T(2, 5, 3, rank=(2, None)), "k": T(2, 5, 3, seed=1, rank=(2, None)),
          "v": T(2, 5, 4, seed=2, rank=(2, None))}),
    # kernel regression, method noise
    Spec("nonlocal_means.log_kernel", nonlocal_means.log_kernel,
         {"u": T(5, rank=(0, None)), "kernel": C("epanechnikov", tuple(nonlocal_means.KERNELS))}),
    Spec("nonlocal_means.kernel_regression", nonlocal_means.kernel_regression,
         {"x_query": T(5), "x_train": T(8, seed=1), "y_train": T(8, seed=2), "bandwidth": P(0.5),
          "kernel": C("gaussian", tuple(nonlocal_means.KERNELS))}),
    Spec("nonlocal_means.fit_bandwidth", nonlocal_means.fit_bandwidth,
         {"x_train": T(8, seed=1), "y_train": T(8, seed=2), "init": P(1.0), "steps": Int(2), "lr": P(0.05)}),
    Spec("nonlocal_means.method_noise", nonlocal_means.method_noise, {"image": img(), "denoised": img(seed=1)}),
    Spec("sigma_pi.best_linear_accuracy", sigma_pi.best_linear_accuracy,
         {"targets": U(3, 4, nan="any"), "n_grid": Int(5), "limit": P(2.0)}),
]
# each call of these trains or runs a model: fewer examples
HEAVY_SPECS = (
    "nonlocal_means.non_local_means", "bilateral.bilateral_filter", "sigma_pi.train_units",
    "cocktail.partial_report", "fast_weights.capacity_curve", "images.load_sample_image",
)
for _spec in SPECS:
    if _spec.name in HEAVY_SPECS:
        heavy(_spec)


(test_every_public_callable_has_a_spec, test_the_valid_call_works,
 test_bad_input_is_refused_by_name_or_documented, test_table_summary) = table_tests(
    SPECS, public_callables("attnkit.classic"), NOT_TABLED, test_file="tests/classic/test_classic_robustness.py")


# ---- the cases of issue #17, one by one ------------------------------------------------------------

def test_huge_radius_of_the_bilateral_filter_is_clamped_exactly() -> None:
    image = torch.rand(8, 8, dtype=torch.float64)
    ref = bilateral.bilateral_filter(image, 7, 3.0, 0.3)  # the window already covers the image
    torch.testing.assert_close(bilateral.bilateral_filter(image, 10**4, 3.0, 0.3), ref, atol=0, rtol=0)
    w = bilateral.bilateral_weights(image, 2, 5, 20, 3.0, 0.3)
    assert w.shape == (41, 41) and w[13:28, 13:28].sum().item() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="radius must be at most 2047"):
        bilateral.bilateral_weights(image, 2, 5, 10**4, 3.0, 0.3)


def test_huge_search_window_of_non_local_means_is_clamped_exactly() -> None:
    image = torch.rand(8, 8, dtype=torch.float64)
    ref = nonlocal_means.non_local_means(image, 1, 7, 0.5)
    torch.testing.assert_close(nonlocal_means.non_local_means(image, 1, 10**4, 0.5), ref)
    torch.testing.assert_close(nonlocal_means.non_local_means(image, 1, 7, 0.5, block=10**6), ref)
    with pytest.raises(ValueError, match="search must be at most 2047"):
        nonlocal_means.nlm_weights(image, 2, 5, 1, 10**4, 0.5)


def test_nadaraya_watson_with_an_empty_training_set() -> None:
    y, w = nonlocal_means.nadaraya_watson(torch.zeros(3), torch.empty(0), torch.empty(0))
    assert torch.equal(y, torch.zeros(3)) and w.shape == (3, 0)


def test_wrappers_of_attend_name_their_own_arguments() -> None:
    with pytest.raises(ValueError, match="keys"):
        cocktail.select_channel(torch.randn(4), torch.randn(3, 5), torch.randn(3, 10))
    with pytest.raises(TypeError, match="temperature"):
        cocktail.select_channel(torch.randn(4), torch.randn(3, 4), torch.randn(3, 10), temperature="hot")
    with pytest.raises(ValueError, match="keys"):
        fast_weights.retrieval_error(torch.randn(4, 5), torch.randn(3, 2))
