"""Training and evaluating the Part V decoder; GQA from MHA by mean-pooling; streaming evaluation.

- ``train_gpt``: AdamW with a linear warm-up and a cosine decay, gradient clipping,
  random windows of the training text; returns the model and its loss curves;
- ``evaluate``: mean validation cross-entropy on fixed windows;
- ``pool_kv_heads``: Ainslie et al. (2023)'s conversion of a multi-head checkpoint to
  grouped-query attention: each group's key and value projections are the mean of its heads';
- ``streaming_nll``: token-by-token decoding through a cache (contiguous, rolling window,
  window + sinks) and the loss at every position;
- ``attention_to_first``: the weight queries put on the first tokens (the "sinks").
"""

from __future__ import annotations

import copy
import math
from dataclasses import replace

import torch
import torch.nn.functional as F

from attnkit._checks import check_ids, check_int, check_positive
from attnkit.llm.cache import KVCache, StreamingCache
from attnkit.llm.corpus import eval_windows, get_batch, load_corpus
from attnkit.llm.gpt import GPT, GPTConfig, loss_fn, nll_per_position


def evaluate(model: GPT, data: torch.Tensor, *, n: int = 64, length: int | None = None, seed: int = 1234) -> float:
    """Mean cross-entropy (nats/char) on ``n`` fixed windows of ``length`` (default ``block_size``)."""
    if length is not None:  # 0 is refused, not read as "the default"
        check_int("length", length, minimum=1)
    x, y = eval_windows(data, n, model.cfg.block_size if length is None else length, seed)
    was = model.training
    model.eval()
    out = float(nll_per_position(model, x, y).mean())
    model.train(was)
    return out


def train_gpt(cfg: GPTConfig | GPT, *, steps: int = 300, batch_size: int = 32, lr: float = 1e-2,
              warmup: int = 20, seed: int = 0, eval_every: int = 50, eval_n: int = 64,
              progress: bool = False) -> dict[str, object]:
    """Train a ``GPT`` (a new one from ``cfg``, or continue a given model) on Tiny Shakespeare.

    Returns ``{"model", "steps", "train" (per-step loss), "eval_steps", "val", "train_eval",
    "val_loss"}``: ``val``/``train_eval`` are evaluated every ``eval_every`` steps on fixed windows.
    """
    check_int("steps", steps, minimum=0)
    check_int("batch_size", batch_size, minimum=1)
    check_positive("lr", lr)
    check_int("warmup", warmup, minimum=0)
    check_int("eval_every", eval_every, minimum=1)
    check_int("eval_n", eval_n, minimum=1)
    corpus = load_corpus()
    torch.manual_seed(seed)
    model = cfg if isinstance(cfg, GPT) else GPT(cfg)
    c = model.cfg
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.99), weight_decay=0.01)

    def rate(step: int) -> float:  # linear warm-up, cosine decay to 10%
        if step < warmup:
            return (step + 1) / warmup
        t = (step - warmup) / max(1, steps - warmup)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * t))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, rate)
    g = torch.Generator().manual_seed(seed)
    curve, eval_steps, val, train_eval = [], [], [], []
    it = range(steps)
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(it, desc="training", leave=False)
    model.train()
    for step in it:
        if step % eval_every == 0:
            eval_steps.append(step)
            val.append(evaluate(model, corpus.val, n=eval_n))
            train_eval.append(evaluate(model, corpus.train, n=eval_n))
        x, y = get_batch(corpus.train, batch_size, c.block_size, g)
        loss = loss_fn(model, x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        curve.append(loss.item())
    eval_steps.append(steps)
    val.append(evaluate(model, corpus.val, n=eval_n))
    train_eval.append(evaluate(model, corpus.train, n=eval_n))
    model.eval()
    return {"model": model, "steps": steps, "train": curve, "eval_steps": eval_steps, "val": val,
            "train_eval": train_eval, "val_loss": val[-1]}


def pool_kv_heads(model: GPT, n_kv_head: int) -> GPT:
    """A grouped-query copy of a multi-head ``model``: key/value heads mean-pooled in groups.

    Equivalent, per layer, to (``W_k: (H Dh, E)``, groups of ``G = H / n_kv_head`` heads)::

        W_k' = W_k.view(n_kv_head, G, Dh, E).mean(1).reshape(n_kv_head Dh, E)

    and the same for ``W_v``; queries, output projection and everything else are copied.
    """
    cfg = model.cfg
    if cfg.kv_heads != cfg.n_head:
        raise ValueError(f"pool_kv_heads needs a multi-head model (n_kv_head = n_head); got {cfg.kv_heads}")
    check_int("n_kv_head", n_kv_head, minimum=1)
    if cfg.n_head % n_kv_head:
        raise ValueError(f"n_kv_head must divide n_head={cfg.n_head}; got {n_kv_head}")
    new = GPT(replace(cfg, n_kv_head=n_kv_head)).to(next(model.parameters()).dtype)
    state = copy.deepcopy(model.state_dict())
    G, Dh, E = cfg.n_head // n_kv_head, cfg.d_head, cfg.d_model
    for i in range(cfg.n_layer):
        for name in ("wk", "wv"):
            key = f"blocks.{i}.attn.{name}.weight"
            w = state[key].view(n_kv_head, G, Dh, E)  # (Hkv, G, Dh, E)
            state[key] = w.mean(1).reshape(n_kv_head * Dh, E)  # (Hkv Dh, E)
    new.load_state_dict(state)
    new.eval()
    return new


@torch.no_grad()
def streaming_nll(model: GPT, x: torch.Tensor, y: torch.Tensor, *, window: int | None = None,
                  sinks: int = 0) -> torch.Tensor:
    """Loss at every position when decoding ``x: (B, L)`` token by token through a cache -> ``(L,)``.

    ``window=None``: the contiguous cache (the whole past); else a ``StreamingCache`` that
    keeps the first ``sinks`` tokens and the last ``window`` ones, positions within the cache.
    """
    _check_x(model, x, "(B, L)")
    check_ids("y", y, model.cfg.vocab_size, rank=2, shape="(B, L)")
    if x.shape != y.shape:
        raise ValueError(f"y must have the shape of x; got x: {tuple(x.shape)}, y: {tuple(y.shape)}")
    model.eval()
    cache = KVCache() if window is None else StreamingCache(window, sinks)
    nll = []
    for t in range(x.shape[1]):
        logits = model(x[:, t:t + 1], cache)[:, -1]  # (B, V)
        nll.append(F.cross_entropy(logits, y[:, t], reduction="none"))
    return torch.stack(nll, 1).mean(0)  # (L,)


def _check_x(model: GPT, x: torch.Tensor, shape: str = "(B, T)") -> None:
    """Ids ``x`` of the model's vocabulary, not empty (a mean over no query would be NaN)."""
    check_ids("x", x, model.cfg.vocab_size, rank=2, device=model.tok.weight.device, shape=shape)
    if x.numel() == 0:
        raise ValueError(f"x must hold at least one token; got shape {tuple(x.shape)}")


@torch.no_grad()
def attention_to_first(model: GPT, x: torch.Tensor, n_first: int = 4) -> torch.Tensor:
    """Mean weight on the first ``n_first`` keys, per layer and query position: ``(n_layer, T)``.

    Averaged over the batch and heads; compare with a uniform reader, ``min(1, n_first / (i + 1))``.
    """
    check_int("n_first", n_first, minimum=1)
    _check_x(model, x)
    model(x, keep_weights=True)
    ws = model.attention_weights()  # n_layer x (B, H, T, T)
    return torch.stack([w[..., :n_first].sum(-1).mean((0, 1)) for w in ws])  # (n_layer, T)


@torch.no_grad()
def attention_by_offset(model: GPT, x: torch.Tensor) -> torch.Tensor:
    """Mean attention weight at each offset ``i - j`` (0 = the token itself): ``(n_layer, T)``.

    Averaged over the batch, the heads and the queries that have a key at that offset.
    """
    _check_x(model, x)
    model(x, keep_weights=True)
    out = []
    for w in model.attention_weights():  # (B, H, T, T)
        m = w.mean((0, 1))  # (T, T)
        T = m.shape[0]
        out.append(torch.stack([m.diagonal(-d).mean() for d in range(T)]))  # offset d: (T - d,) -> mean
    return torch.stack(out)  # (n_layer, T)


def receptive_field(model: GPT, x: torch.Tensor, position: int, *, layer: int | None = None) -> torch.Tensor:
    """How much each input token moves the hidden state at ``position``: ``x: (1, T)`` -> ``(T,)``.

    The norm of the gradient of the state after block ``layer`` (default: the logits) at
    ``position`` with respect to the token embeddings; zero outside the receptive field. With
    a sliding window ``w`` it reaches back ``layer (w - 1)`` positions.
    """
    _check_x(model, x, "(1, T)")
    if x.shape[0] != 1:  # only the first sequence's gradient would be read
        raise ValueError(f"x must be one sequence (1, T); got shape {tuple(x.shape)}")
    check_int("position", position, minimum=0)
    if position >= x.shape[1]:
        raise ValueError(f"position must be < T={x.shape[1]}; got {position}")
    store: dict[str, torch.Tensor] = {}

    def keep_embedding(_m: object, _i: object, out: torch.Tensor) -> torch.Tensor:
        out.retain_grad()
        store["emb"] = out
        return out

    def keep_state(_m: object, _i: object, out: torch.Tensor) -> None:
        store["state"] = out

    hooks = [model.tok.register_forward_hook(keep_embedding)]
    if layer is not None:
        check_int("layer", layer, minimum=1)
        if layer > model.cfg.n_layer:
            raise ValueError(f"layer must be at most n_layer={model.cfg.n_layer}; got {layer}")
        hooks.append(model.blocks[layer - 1].register_forward_hook(keep_state))
    try:
        with torch.enable_grad():
            logits = model(x)
            target = logits if layer is None else store["state"]
            target[0, position].pow(2).sum().backward()
    finally:
        for h in hooks:
            h.remove()
    model.zero_grad(set_to_none=True)
    return store["emb"].grad[0].norm(dim=-1)  # (T,)


__all__ = ["attention_by_offset", "attention_to_first", "evaluate", "pool_kv_heads", "receptive_field",
           "streaming_nll", "train_gpt"]
