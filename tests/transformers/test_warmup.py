"""attnkit.transformers.warmup: Vaswani's schedule, the encoder tagger, per-layer gradients, a short run."""

from __future__ import annotations

import math

import pytest
import torch

from attnkit.datasets.sequences import reversal_task
from attnkit.transformers.warmup import (
    EncoderTagger,
    ffn_gradient_norms,
    noam_lr,
    schedule_factor,
    tagging_loss,
    warmup_run,
)

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def test_noam_schedule_matches_the_paper() -> None:
    d, w = 512, 4000
    for t in (1, 10, 3999, 4000, 4001, 20000):
        assert noam_lr(t, d, w) == pytest.approx(d**-0.5 * min(t**-0.5, t * w**-1.5))
    peak = max(noam_lr(t, d, w) for t in range(1, 8001))
    assert peak == pytest.approx(noam_lr(w, d, w)) == pytest.approx((d * w) ** -0.5)
    assert noam_lr(2, d, w) == pytest.approx(2 * noam_lr(1, d, w))  # linear warm-up
    assert noam_lr(4 * w, d, w) == pytest.approx(noam_lr(w, d, w) / 2)  # then 1/sqrt(t)
    assert noam_lr(5, d, w, scale=3.0) == pytest.approx(3 * noam_lr(5, d, w))
    with pytest.raises(ValueError, match="step"):
        noam_lr(0, d, w)


def test_schedule_factors() -> None:
    noam, decay, const = (schedule_factor(k, 50) for k in ("noam", "decay", "constant"))
    assert noam(49) == pytest.approx(1.0) and noam(0) == pytest.approx(1 / 50)
    assert decay(0) == 1.0 and decay(199) == pytest.approx(math.sqrt(50 / 200))
    assert noam(199) == pytest.approx(decay(199))  # the same decay after the warm-up
    assert const(123) == 1.0
    with pytest.raises(ValueError, match="schedule must be one of"):
        schedule_factor("cosine", 10)


def test_tagger_and_gradient_norms() -> None:
    model = EncoderTagger(10, d_model=16, n_layers=3, norm="post")
    src, tgt = reversal_task(4, 6, 10, seed=0)
    assert model(src).shape == (4, 6, 10)
    with pytest.raises(RuntimeError, match="backward"):
        ffn_gradient_norms(model.encoder.layers)
    tagging_loss(model, (src, tgt)).backward()
    norms = ffn_gradient_norms(model.encoder.layers)
    assert len(norms) == 3 and all(n > 0 for n in norms)
    assert norms[1] == pytest.approx(model.encoder.layers[1].ff[-1].weight.grad.norm().item())
    with pytest.raises(TypeError, match="tokens must be"):
        model(src.float())


def test_post_norm_gradients_grow_toward_the_top_relative_to_pre_norm() -> None:
    batch = reversal_task(64, 8, 10, seed=7)
    ratio = {}
    for norm in ("post", "pre"):
        per_init = []
        for seed in range(3):
            torch.manual_seed(seed)
            model = EncoderTagger(10, d_model=32, n_layers=16, norm=norm)
            tagging_loss(model, batch).backward()
            per_init.append(ffn_gradient_norms(model.encoder.layers))
        g = torch.tensor(per_init).mean(0)
        ratio[norm] = (g[-1] / g[0]).item()  # last block over first block
    assert ratio["post"] > 1.0 > ratio["pre"]  # Xiong et al. (2020), Figure 3


def test_short_warmup_run() -> None:
    r = warmup_run("pre", n_layers=1, steps=30, schedule="noam", warmup=5, seed=0)
    assert len(r["losses"]) == 30 and r["final_loss"] < r["losses"][0]
    assert 0.0 <= r["token_accuracy"] <= 1.0
