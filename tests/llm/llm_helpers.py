"""Shared by the tests of attnkit.llm."""

from __future__ import annotations

import torch

from attnkit.llm.gpt import GPT, GPTConfig


def random_gpt(**kw) -> GPT:
    """A float64 GPT in eval mode, seed 0, with weights N(0, 0.3): larger than the init, so the
    tests see attention that is far from uniform."""
    torch.manual_seed(0)
    m = GPT(GPTConfig(**kw)).double().eval()
    for p in m.parameters():
        p.data.normal_(0, 0.3)
    return m
