r"""Learning-rate warm-up and the place of the layer norm (Vaswani et al., 2017; Xiong et al., 2020).

Vaswani et al. trained the Transformer with Adam and the schedule

.. math::

    \mathrm{lr}(t) = d_\text{model}^{-0.5} \min\big(t^{-0.5},\; t \cdot t_\text{warmup}^{-1.5}\big),
    \qquad t = 1, 2, \dots

(``noam_lr``): a linear **warm-up** for ``t_warmup`` steps, then an inverse-square-root decay.
Xiong et al. explained why the original **post-norm** block needs the warm-up: at
initialisation the gradients of the parameters near the output are large (they grow with the
layer index), so large early steps wreck the top layers; with **pre-norm** the gradient norms
are about the same in every layer and the warm-up can be dropped.

- ``noam_lr``: the schedule above (``scale`` multiplies it);
- ``EncoderTagger``: token embeddings + sinusoidal positions + a ``TransformerEncoder`` stack +
  a linear read-out per position, for deep post- and pre-norm stacks on sequence tasks;
- ``ffn_gradient_norms``: the gradient norm of each block's feed-forward output weights
  $W_2$ (the quantity of Xiong et al.'s Figure 3);
- ``warmup_run``: one training run of an ``EncoderTagger`` on the reversal task with a constant
  rate, Vaswani's schedule, or the same decay without the warm-up.

Shapes: ``B`` batch, ``L`` length, ``E`` width, ``V`` vocabulary.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from attnkit._checks import check_ids, check_int, check_positive, check_sizes
from attnkit.transformers.blocks import TransformerEncoder, train_steps
from attnkit.transformers.positions import sinusoidal_positions

SCHEDULES = ("constant", "noam", "decay")
"""``warmup_run`` schedules: constant rate; Vaswani's warm-up + decay; the decay alone."""


def noam_lr(step: int, d_model: int, warmup: int, *, scale: float = 1.0) -> float:
    r"""Vaswani et al.'s rate $\mathrm{scale} \cdot d^{-0.5} \min(t^{-0.5}, t\, w^{-1.5})$ at step ``t >= 1``.

    It rises linearly for ``warmup`` steps to its peak $d^{-0.5} w^{-0.5}$ (times ``scale``),
    then decays as $t^{-0.5}$. The paper used ``d_model = 512``, ``warmup = 4000``, ``scale = 1``
    (peak about 7e-4).
    """
    check_int("step", step, minimum=1)
    check_int("d_model", d_model, minimum=1)
    check_int("warmup", warmup, minimum=1)
    check_positive("scale", scale)
    return scale * d_model**-0.5 * min(step**-0.5, step * warmup**-1.5)


def schedule_factor(kind: str, warmup: int) -> Callable[[int], float]:
    """A multiplier of the peak rate at step ``0, 1, ...`` (as ``torch.optim.lr_scheduler.LambdaLR`` counts).

    ``"constant"``: 1. ``"noam"``: ``noam_lr`` divided by its peak, so its largest value is 1.
    ``"decay"``: the same inverse-square-root decay, ``min(1, sqrt(warmup / t))``, with no warm-up.
    """
    if kind not in SCHEDULES:
        raise ValueError(f"schedule must be one of {SCHEDULES}; got kind = {kind!r}")
    check_int("warmup", warmup, minimum=1)
    if kind == "constant":
        return lambda step: 1.0
    if kind == "noam":
        peak = noam_lr(warmup, 1, warmup)
        return lambda step: noam_lr(step + 1, 1, warmup) / peak
    return lambda step: min(1.0, (warmup / (step + 1)) ** 0.5)


class EncoderTagger(nn.Module):
    """Embeddings + sinusoidal positions -> ``n_layers`` encoder blocks -> logits per position.

    ``forward(tokens (B, L) long) -> (B, L, V)``. ``norm="post"`` is the paper's block,
    ``"pre"`` the pre-norm one (with a final layer norm, as ``TransformerEncoder`` adds).
    """

    def __init__(self, vocab_size: int, *, d_model: int = 32, n_heads: int = 2, d_ff: int = 64,
                 n_layers: int = 12, norm: str = "post", max_len: int = 64) -> None:
        super().__init__()
        check_int("vocab_size", vocab_size, minimum=2)
        check_sizes(d_model=d_model, n_heads=n_heads, d_ff=d_ff, n_layers=n_layers, max_len=max_len)
        self.embed = nn.Embedding(vocab_size, d_model)
        self.register_buffer("pe", sinusoidal_positions(max_len, d_model), persistent=False)
        self.encoder = TransformerEncoder(d_model, n_heads, d_ff, n_layers, norm=norm)
        self.head = nn.Linear(d_model, vocab_size)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        if not isinstance(tokens, torch.Tensor) or tokens.dtype != torch.long or tokens.dim() != 2:
            raise TypeError(f"tokens must be a (B, L) tensor of token ids (torch.long); got {tokens!r:.80}")
        check_ids("tokens", tokens, self.embed.num_embeddings, rank=2, device=self.embed.weight.device)
        if tokens.shape[1] > self.pe.shape[0]:
            raise ValueError(f"tokens has length {tokens.shape[1]} > max_len={self.pe.shape[0]}")
        return self.head(self.encoder(self.embed(tokens) + self.pe[: tokens.shape[1]]))  # (B, L, V)


def tagging_loss(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """Cross-entropy of ``model(src) (B, L, V)`` against ``tgt (B, L)`` for ``batch = (src, tgt)``."""
    if not isinstance(batch, (tuple, list)) or len(batch) != 2:
        raise TypeError(f"batch must be a pair (src, tgt); got {type(batch).__name__}")
    src, tgt = batch
    logits = model(src)  # (B, L, V)
    check_ids("tgt (batch[1])", tgt, logits.shape[-1], rank=2, device=logits.device)
    if tgt.shape != src.shape:
        raise ValueError(f"tgt (batch[1]) must have src's shape {tuple(src.shape)}, one tag per token; got "
                         f"{tuple(tgt.shape)}")
    return nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt.reshape(-1))  # (B*L, V)


def ffn_gradient_norms(blocks: Sequence[nn.Module]) -> list[float]:
    """``|dLoss/dW_2|`` of each block's feed-forward output layer, after ``loss.backward()``.

    ``blocks`` are ``EncoderBlock``/``DecoderBlock``s (their ``ff[-1]`` is ``W_2``); a block
    without a gradient raises a ``RuntimeError``.
    """
    norms = []
    for i, blk in enumerate(blocks):
        grad = blk.ff[-1].weight.grad
        if grad is None:
            raise RuntimeError(f"block {i} has no gradient: call loss.backward() first")
        norms.append(float(grad.norm()))
    return norms


def warmup_run(norm: str, *, n_layers: int = 12, lr: float = 1e-2, schedule: str = "constant",
               warmup: int = 50, steps: int = 200, seed: int = 0, d_model: int = 32, length: int = 8,
               vocab_size: int = 10, batch_size: int = 64) -> dict[str, object]:
    """Train an ``EncoderTagger`` to reverse ``length`` digits; returns losses and test accuracy.

    Adam with Vaswani's ``betas = (0.9, 0.98)``, peak rate ``lr``, the given ``schedule``
    (``SCHEDULES``), no gradient clipping; batches ``reversal_task(batch_size, seed=1000 + step)``;
    the test set is 500 sequences of seed 123. Returns ``{"losses", "final_loss"`` (mean of the
    last 20 steps), ``"token_accuracy"}``.
    """
    from attnkit.datasets.sequences import reversal_task

    factor = schedule_factor(schedule, warmup)
    torch.manual_seed(seed)
    model = EncoderTagger(vocab_size, d_model=d_model, d_ff=2 * d_model, n_layers=n_layers, norm=norm)
    losses = train_steps(model, lambda step: reversal_task(batch_size, length, vocab_size, seed=1000 + step),
                         tagging_loss, steps=steps, lr=lr, seed=seed, clip=None, schedule=factor,
                         betas=(0.9, 0.98), desc=f"{norm}-norm, {schedule}")
    src, tgt = reversal_task(500, length, vocab_size, seed=123)
    with torch.no_grad():
        acc = float((model(src).argmax(-1) == tgt).float().mean())
    final = sum(losses[-20:]) / len(losses[-20:])
    return {"losses": losses, "final_loss": final, "token_accuracy": acc}


__all__ = ["SCHEDULES", "EncoderTagger", "ffn_gradient_norms", "noam_lr", "schedule_factor", "tagging_loss",
           "warmup_run"]
