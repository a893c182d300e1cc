r"""The Transformer (Vaswani et al., 2017), small enough to train on a laptop CPU.

Everything here is :class:`attnkit.MultiHeadAttention`, i.e. :func:`attnkit.attend` with the
scaled dot-product score $q^\top k / \sqrt{d}$ and a softmax, plus what the paper adds around it:

- **positions** come from :mod:`attnkit.transformers.positions`;
- ``scaling_experiment``: why the score is divided by $\sqrt{d}$;
- **blocks**: ``EncoderBlock`` (self-attention + feed-forward) and ``DecoderBlock``
  (causal self-attention + cross-attention + feed-forward), each with post-norm
  $x \leftarrow \mathrm{LN}(x + f(x))$ as in the paper or pre-norm
  $x \leftarrow x + f(\mathrm{LN}(x))$ (Xiong et al., 2020);
- ``TinyTransformer``, an encoder-decoder with per-layer, per-head attention maps
  (``TinyTransformer.attention_maps``), and ``train_steps``, a small training loop.

Masks follow attnkit (bool ``True`` = takes part), the opposite of ``torch.nn``'s Transformer
layers and ``torch.nn.MultiheadAttention`` (``True`` = ignored).

Shapes: ``B`` batch, ``L`` source length, ``T`` target length, ``E`` model width
(``d_model``), ``H`` heads, ``Dh = E / H``, ``V`` vocabulary size.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn
from tqdm.auto import tqdm

from attnkit._checks import (
    arg_name,
    argument_names,
    check_ids,
    check_int,
    check_module_input,
    check_positive,
    check_probability,
    check_sizes,
    check_tensor,
    shape_str,
)
from attnkit.core import attend, attention_scores
from attnkit.masks import causal_mask
from attnkit.mha import MultiHeadAttention
from attnkit.normalize import masked_softmax
from attnkit.transformers.positions import POSITIONS, LearnedPositions, rotary_score, sinusoidal_positions

# ---- why 1/sqrt(d) ----------------------------------------------------------------------------

def scaling_experiment(dims: Sequence[int], *, n_keys: int = 16, n_samples: int = 512,
                       seed: int = 0, saturated: float = 0.99) -> dict[str, torch.Tensor]:
    r"""Why the Transformer divides by $\sqrt{d}$: statistics of dot-product attention vs ``d``.

    For each width ``d`` in ``dims`` it draws ``n_samples`` queries and ``n_keys`` keys and
    values with independent N(0, 1) entries, attends with ``score="dot"`` and with
    ``score="scaled_dot"``, and backpropagates a random linear loss of the output. Returns
    tensors of shape ``(len(dims),)``, with suffix ``_dot`` (unscaled) and ``_scaled``:

    - ``var_*``: variance of the scores (``d`` and ``1`` in theory);
    - ``max_weight_*``: mean largest weight of a row (1 = one-hot);
    - ``saturated_*``: fraction of rows whose largest weight exceeds ``saturated``;
    - ``grad_*`` and ``grad_median_*``: mean and median over rows of ``|dLoss/ds|`` (the norm
      of the gradient at one row of scores);
    - ``grad_q_*`` and ``grad_q_median_*``: mean and median of ``|dLoss/dq|``, the gradient
      that reaches the query (and so the projection that made it).

    The means mislead: without the scale the gradient reaching ``q`` carries a factor
    ``|k| ~ sqrt(d)`` that the scaled score divides away, so the few unsaturated rows get very
    large gradients and the many saturated ones almost none. The medians show the typical row.
    """
    if len(dims) == 0:
        raise ValueError("dims is empty: give at least one width d")
    check_sizes(n_keys=n_keys, n_samples=n_samples)
    for d in dims:
        check_int("every entry of dims", d, minimum=1)
    g = torch.Generator().manual_seed(seed)
    names = ("var", "max_weight", "saturated", "grad", "grad_median", "grad_q", "grad_q_median")
    stats: dict[str, list[float]] = {f"{m}_{s}": [] for m in names for s in ("dot", "scaled")}
    for d in dims:
        q0 = torch.randn(n_samples, 1, d, generator=g, dtype=torch.float64)  # (N, 1, d)
        k = torch.randn(n_samples, n_keys, d, generator=g, dtype=torch.float64)  # (N, Lk, d)
        v = torch.randn(n_samples, n_keys, 4, generator=g, dtype=torch.float64)  # (N, Lk, 4)
        upstream = torch.randn(n_samples, 1, 4, generator=g, dtype=torch.float64)  # dLoss/dOutput
        for name, score in (("dot", "dot"), ("scaled", "scaled_dot")):
            q = q0.clone().requires_grad_(True)
            s = attention_scores(q, k, score=score)  # (N, 1, Lk)
            s.retain_grad()
            w = masked_softmax(s)  # a_ij = softmax_j(s_ij)
            out = w @ v  # (N, 1, 4)
            (out * upstream).sum().backward()
            top = w.detach().amax(-1).flatten()  # (N,) largest weight per row
            ds, dq = s.grad.norm(dim=-1).flatten(), q.grad.norm(dim=-1).flatten()  # (N,), (N,)
            stats[f"var_{name}"].append(float(s.detach().var()))
            stats[f"max_weight_{name}"].append(float(top.mean()))
            stats[f"saturated_{name}"].append(float((top > saturated).double().mean()))
            stats[f"grad_{name}"].append(float(ds.mean()))
            stats[f"grad_median_{name}"].append(float(ds.median()))
            stats[f"grad_q_{name}"].append(float(dq.mean()))
            stats[f"grad_q_median_{name}"].append(float(dq.median()))
    return {key: torch.tensor(val) for key, val in stats.items()}


# ---- blocks -----------------------------------------------------------------------------------

class FeedForward(nn.Sequential):
    """The position-wise feed-forward network ``Linear(E, F) -> ReLU -> Linear(F, E)``."""

    def __init__(self, d_model: int, d_ff: int, dropout: float = 0.0) -> None:
        check_sizes(d_model=d_model, d_ff=d_ff)
        check_probability("dropout", dropout)
        super().__init__(nn.Linear(d_model, d_ff), nn.ReLU(), nn.Dropout(dropout), nn.Linear(d_ff, d_model))

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        w = self[0].weight
        check_module_input(arg_name("input"), input, w, width=w.shape[1], shape=f"(..., {w.shape[1]})")
        return super().forward(input)


def _check_norm(norm: str) -> str:
    if norm not in ("pre", "post"):
        raise ValueError(f"norm must be 'pre' (x + f(LN(x))) or 'post' (LN(x + f(x))); got {norm!r}")
    return norm


def _check_input(name: str, x: object, d_model: int, weight: torch.Tensor | None = None) -> torch.Tensor:
    name = arg_name(name)  # the caller's name for it (TinyTransformer passes "src", "tgt_in")
    check_tensor(name, x, min_rank=3, shape=f"(B, L, {d_model})")
    if x.dim() != 3 or x.shape[-1] != d_model:
        raise ValueError(f"{name} must be (B, L, {d_model}); got shape {shape_str(x)}")
    if weight is not None:
        check_module_input(name, x, weight, rank=3, shape=f"(B, L, {d_model})")
    return x


def _check_block(d_model: int, n_heads: int, d_ff: int, dropout: float) -> None:
    check_sizes(d_model=d_model, n_heads=n_heads, d_ff=d_ff)
    check_probability("dropout", dropout)


class EncoderBlock(nn.Module):
    r"""Self-attention and a feed-forward network, each in a residual branch.

    ``norm="post"`` (Vaswani et al., 2017): $x \leftarrow \mathrm{LN}(x + \mathrm{MHA}(x))$,
    $x \leftarrow \mathrm{LN}(x + \mathrm{FF}(x))$. ``norm="pre"`` (Xiong et al., 2020):
    $x \leftarrow x + \mathrm{MHA}(\mathrm{LN}(x))$, $x \leftarrow x + \mathrm{FF}(\mathrm{LN}(x))$.

    ``forward(x (B, L, E), key_padding (B, L) bool or None) -> (B, L, E)``; the attention
    weights ``(B, H, L, L)`` of the last call are kept in ``self.weights``. ``score`` is passed
    to :class:`attnkit.MultiHeadAttention` (e.g. ``rotary_score``).

    Matches ``torch.nn.TransformerEncoderLayer(E, H, F, dropout=0, batch_first=True,
    norm_first=(norm == "pre"))`` with the same weights (the tests check it), with one
    difference of convention: ``key_padding`` is ``True`` for **real** tokens here, while
    torch's ``src_key_padding_mask`` is ``True`` for **padding**: pass ``~key_padding`` to torch.
    """

    def __init__(self, d_model: int, n_heads: int, d_ff: int, *, norm: str = "pre", dropout: float = 0.0,
                 score: str | Callable = "scaled_dot") -> None:
        super().__init__()
        _check_block(d_model, n_heads, d_ff, dropout)
        self.norm = _check_norm(norm)
        self.attn = MultiHeadAttention(d_model, n_heads, score=score, dropout=dropout)
        self.ff = FeedForward(d_model, d_ff, dropout)
        self.ln1, self.ln2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.drop = nn.Dropout(dropout)
        self.weights: torch.Tensor | None = None

    def _attend(self, x: torch.Tensor, key_padding: torch.Tensor | None) -> torch.Tensor:
        x_name = arg_name("x")
        with argument_names(query=x_name, key=x_name, value=x_name, key_padding=arg_name("key_padding")):
            out, w = self.attn(x, key_padding=key_padding)
        self.weights = w.detach()
        return self.drop(out)

    def forward(self, x: torch.Tensor, key_padding: torch.Tensor | None = None) -> torch.Tensor:
        _check_input("x", x, self.attn.embed_dim, self.ln1.weight)
        if self.norm == "pre":
            x = x + self._attend(self.ln1(x), key_padding)  # x + MHA(LN(x))
            return x + self.drop(self.ff(self.ln2(x)))  # x + FF(LN(x))
        x = self.ln1(x + self._attend(x, key_padding))  # LN(x + MHA(x))
        return self.ln2(x + self.drop(self.ff(x)))  # LN(x + FF(x))


class DecoderBlock(nn.Module):
    r"""Causal self-attention, cross-attention over the encoder's output, and a feed-forward net.

    ``forward(y (B, T, E), memory (B, L, E), memory_padding (B, L) bool or None) -> (B, T, E)``.
    Query ``t`` of the self-attention sees targets ``0 .. t`` only (a causal mask); the
    cross-attention sees every real source position. The weights of the last call are kept in
    ``self.self_weights (B, H, T, T)`` and ``self.cross_weights (B, H, T, L)``. ``score``
    applies to the self-attention; the cross-attention always uses the scaled dot product.
    Matches ``torch.nn.TransformerDecoderLayer`` with the same weights, given torch's
    opposite mask polarity (``memory_key_padding_mask = ~memory_padding``, and a causal
    ``tgt_mask`` that torch builds with ``-inf`` above the diagonal).
    """

    def __init__(self, d_model: int, n_heads: int, d_ff: int, *, norm: str = "pre", dropout: float = 0.0,
                 score: str | Callable = "scaled_dot") -> None:
        super().__init__()
        _check_block(d_model, n_heads, d_ff, dropout)
        self.norm = _check_norm(norm)
        self.self_attn = MultiHeadAttention(d_model, n_heads, score=score, dropout=dropout)
        self.cross_attn = MultiHeadAttention(d_model, n_heads, dropout=dropout)
        self.ff = FeedForward(d_model, d_ff, dropout)
        self.ln1, self.ln2, self.ln3 = (nn.LayerNorm(d_model) for _ in range(3))
        self.drop = nn.Dropout(dropout)
        self.self_weights: torch.Tensor | None = None
        self.cross_weights: torch.Tensor | None = None

    def _self(self, y: torch.Tensor) -> torch.Tensor:
        y_name = arg_name("y")
        with argument_names(query=y_name, key=y_name, value=y_name):
            out, w = self.self_attn(y, mask=causal_mask(y.shape[1], device=y.device))  # (T, T) mask
        self.self_weights = w.detach()
        return self.drop(out)

    def _cross(self, y: torch.Tensor, memory: torch.Tensor, memory_padding: torch.Tensor | None) -> torch.Tensor:
        with argument_names(query=arg_name("y"), key=arg_name("memory"), value=arg_name("memory"),
                            key_padding=arg_name("memory_padding")):
            out, w = self.cross_attn(y, memory, memory, key_padding=memory_padding)
        self.cross_weights = w.detach()
        return self.drop(out)

    def forward(self, y: torch.Tensor, memory: torch.Tensor,
                memory_padding: torch.Tensor | None = None) -> torch.Tensor:
        _check_input("y", y, self.self_attn.embed_dim, self.ln1.weight)
        _check_input("memory", memory, self.self_attn.embed_dim, self.ln1.weight)
        if self.norm == "pre":
            y = y + self._self(self.ln1(y))
            y = y + self._cross(self.ln2(y), memory, memory_padding)
            return y + self.drop(self.ff(self.ln3(y)))
        y = self.ln1(y + self._self(y))
        y = self.ln2(y + self._cross(y, memory, memory_padding))
        return self.ln3(y + self.drop(self.ff(y)))


class TransformerEncoder(nn.Module):
    """A stack of ``EncoderBlock`` (plus a final LayerNorm when ``norm="pre"``).

    ``forward(x (B, L, E), key_padding (B, L) or None) -> (B, L, E)``. Without position
    information it is permutation-equivariant: permuting the rows of ``x`` permutes the output.
    """

    def __init__(self, d_model: int, n_heads: int, d_ff: int, n_layers: int = 1, *, norm: str = "pre",
                 dropout: float = 0.0, score: str | Callable = "scaled_dot") -> None:
        super().__init__()
        _check_block(d_model, n_heads, d_ff, dropout)
        check_int("n_layers", n_layers, minimum=1)
        self.layers = nn.ModuleList(EncoderBlock(d_model, n_heads, d_ff, norm=norm, dropout=dropout, score=score)
                                    for _ in range(n_layers))
        self.final = nn.LayerNorm(d_model) if norm == "pre" else nn.Identity()

    def forward(self, x: torch.Tensor, key_padding: torch.Tensor | None = None) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x, key_padding)
        return self.final(x)


class TinyTransformer(nn.Module):
    """An encoder-decoder Transformer for sequence-to-sequence tasks on token ids.

    Args:
        vocab_size: ``V`` tokens ``0 .. V-1``; the model adds a begin-of-sequence token ``V``
            for the decoder's input and predicts logits over the ``V`` tokens.
        d_model, n_heads, d_ff, n_layers: ``E``, ``H``, the feed-forward width, and the number
            of encoder and of decoder blocks.
        positions: ``"sinusoidal"``, ``"learned"``, ``"rotary"`` (in the self-attentions) or
            ``"none"``.
        norm: ``"pre"`` or ``"post"``. max_len: longest sequence (learned positions).

    ``forward(src (B, L) long, tgt_in (B, T) long, src_padding (B, L) bool or None)`` returns
    logits ``(B, T, V)``; ``generate`` decodes greedily; ``attention_maps`` returns the
    weights of the last forward pass per layer and head.

    Differences from Vaswani et al. (2017): pre-norm by default (the paper: post-norm) with a
    final layer norm; no dropout by default; no label smoothing; embeddings not multiplied by
    ``sqrt(d_model)``; the output projection not tied to the embeddings; greedy decoding
    instead of beam search; trained in the book with constant-rate Adam and clipping
    (``train_steps``) rather than the warm-up schedule of :mod:`attnkit.transformers.warmup`.
    """

    def __init__(self, vocab_size: int, *, d_model: int = 32, n_heads: int = 2, d_ff: int = 64, n_layers: int = 1,
                 positions: str = "sinusoidal", norm: str = "pre", max_len: int = 64, dropout: float = 0.0) -> None:
        super().__init__()
        check_int("vocab_size", vocab_size, minimum=1)
        _check_block(d_model, n_heads, d_ff, dropout)
        check_sizes(n_layers=n_layers, max_len=max_len)
        if positions not in POSITIONS:
            raise ValueError(f"positions must be one of {POSITIONS}; got {positions!r}")
        self.vocab_size, self.bos, self.positions, self.max_len = vocab_size, vocab_size, positions, max_len
        self.embed = nn.Embedding(vocab_size + 1, d_model)  # shared by source and target, + BOS
        self.learned = LearnedPositions(max_len, d_model) if positions == "learned" else None
        self.register_buffer("sinusoid", sinusoidal_positions(max_len, d_model), persistent=False)
        score = rotary_score if positions == "rotary" else "scaled_dot"
        self.encoder = TransformerEncoder(d_model, n_heads, d_ff, n_layers, norm=norm, dropout=dropout, score=score)
        self.decoder = nn.ModuleList(DecoderBlock(d_model, n_heads, d_ff, norm=norm, dropout=dropout, score=score)
                                     for _ in range(n_layers))
        self.final = nn.LayerNorm(d_model) if norm == "pre" else nn.Identity()
        self.head = nn.Linear(d_model, vocab_size)

    def _embed(self, tokens: torch.Tensor, name: str) -> torch.Tensor:
        if isinstance(tokens, torch.Tensor) and tokens.device != self.embed.weight.device:
            raise ValueError(f"{name} must be on the model's device ({self.embed.weight.device}); got {tokens.device}")
        if not isinstance(tokens, torch.Tensor) or tokens.dtype != torch.long or tokens.dim() != 2:
            is_t = isinstance(tokens, torch.Tensor)
            got = f"shape {tuple(tokens.shape)}, dtype {tokens.dtype}" if is_t else type(tokens).__name__
            raise TypeError(f"{name} must be a (B, L) tensor of token ids (torch.long); got {got}")
        if tokens.shape[1] > self.max_len:
            raise ValueError(f"{name} has length {tokens.shape[1]} > max_len={self.max_len}")
        if tokens.numel() and (tokens.min() < 0 or tokens.max() > self.vocab_size):
            raise ValueError(f"{name} ids must lie in 0 .. {self.vocab_size} (the last one is BOS); "
                             f"got min {int(tokens.min())}, max {int(tokens.max())}")
        x = self.embed(tokens)  # (B, L, E)
        L = tokens.shape[1]
        if self.positions == "sinusoidal":
            x = x + self.sinusoid[:L]
        elif self.positions == "learned":
            x = x + self.learned(L)
        return x

    def encode(self, src: torch.Tensor, src_padding: torch.Tensor | None = None) -> torch.Tensor:
        """The encoder's output ``(B, L, E)`` for ``src (B, L)``."""
        x = self._embed(src, "src")
        with argument_names(x="src", key_padding="src_padding"):
            return self.encoder(x, src_padding)

    def decode(self, tgt_in: torch.Tensor, memory: torch.Tensor,
               src_padding: torch.Tensor | None = None) -> torch.Tensor:
        """Logits ``(B, T, V)`` for decoder inputs ``tgt_in (B, T)`` given ``memory (B, L, E)``."""
        y = self._embed(tgt_in, "tgt_in")
        if memory.shape[0] != y.shape[0]:
            raise ValueError(f"tgt_in and the source need one batch size; got tgt_in: {tuple(tgt_in.shape)}, "
                             f"memory: {tuple(memory.shape)}")
        with argument_names(y="tgt_in", memory="memory (from src)", memory_padding="src_padding"):
            for layer in self.decoder:
                y = layer(y, memory, src_padding)
        return self.head(self.final(y))

    def forward(self, src: torch.Tensor, tgt_in: torch.Tensor, src_padding: torch.Tensor | None = None) -> torch.Tensor:
        return self.decode(tgt_in, self.encode(src, src_padding), src_padding)

    def shift_right(self, tgt: torch.Tensor) -> torch.Tensor:
        """Teacher forcing input: ``[BOS, tgt[:, :-1]]``, ``(B, T)``."""
        bos = torch.full_like(tgt[:, :1], self.bos)
        return torch.cat([bos, tgt[:, :-1]], dim=1)  # (B, T)

    @torch.no_grad()
    def generate(self, src: torch.Tensor, length: int, src_padding: torch.Tensor | None = None) -> torch.Tensor:
        """Greedy decoding of ``length`` tokens: ``(B, length)`` long."""
        memory = self.encode(src, src_padding)
        out = torch.full((src.shape[0], 1), self.bos, dtype=torch.long, device=src.device)
        for _ in range(length):
            logits = self.decode(out, memory, src_padding)  # (B, t, V)
            out = torch.cat([out, logits[:, -1].argmax(-1, keepdim=True)], dim=1)
        return out[:, 1:]

    def attention_maps(self) -> dict[str, list[torch.Tensor]]:
        """Weights of the last forward pass: ``{"encoder": [(B, H, L, L) per layer],
        "decoder_self": [(B, H, T, T)], "decoder_cross": [(B, H, T, L)]}``."""
        maps = {"encoder": [blk.weights for blk in self.encoder.layers],
                "decoder_self": [blk.self_weights for blk in self.decoder],
                "decoder_cross": [blk.cross_weights for blk in self.decoder]}
        if any(w is None for ws in maps.values() for w in ws):
            raise RuntimeError("no attention maps yet: run the model forward once first")
        return maps


# ---- training ---------------------------------------------------------------------------------

def train_steps(model: nn.Module, make_batch: Callable[[int], tuple],
                loss_fn: Callable[[nn.Module, tuple], torch.Tensor], *, steps: int, lr: float = 3e-3,
                seed: int = 0, desc: str = "training", clip: float | None = 1.0,
                schedule: Callable[[int], float] | None = None,
                betas: tuple[float, float] = (0.9, 0.999)) -> list[float]:
    """A minimal training loop: Adam, gradient clipping, a tqdm.auto progress bar.

    Equivalent to::

        for step in range(steps):
            loss = loss_fn(model, make_batch(step))
            opt.zero_grad(); loss.backward(); opt.step()

    ``make_batch(step)`` returns a batch (any tuple), ``loss_fn(model, batch)`` a scalar
    tensor. ``clip`` is the largest gradient norm (``None``: no clipping). ``schedule(step)``,
    if given, multiplies ``lr`` at step ``step = 0, 1, ...`` (e.g. a warm-up, see
    :func:`attnkit.transformers.warmup.noam_lr`). Returns the loss of every step.
    """
    check_int("steps", steps, minimum=1)
    check_positive("lr", lr)
    if clip is not None:
        check_positive("clip", clip)
    torch.manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr, betas=betas, foreach=True)  # foreach: ~20% faster on CPU
    sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule) if schedule is not None else None
    model.train()
    losses = []
    bar = tqdm(range(steps), desc=desc, mininterval=1.0)
    for step in bar:
        loss = loss_fn(model, make_batch(step))
        if loss.dim() != 0:
            raise ValueError(f"loss_fn must return a scalar; got shape {tuple(loss.shape)}")
        opt.zero_grad()
        loss.backward()
        if clip is not None:
            nn.utils.clip_grad_norm_(model.parameters(), clip)
        opt.step()
        if sched is not None:
            sched.step()
        losses.append(loss.item())
        if step % 50 == 0:
            bar.set_postfix(loss=f"{losses[-1]:.3f}")
    model.eval()
    return losses


def seq2seq_loss(model: TinyTransformer, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """Cross-entropy of teacher-forced predictions for ``batch = (src (B, L), tgt (B, T))``."""
    if not isinstance(batch, (tuple, list)) or len(batch) != 2:
        raise TypeError(f"batch must be a pair (src, tgt); got {type(batch).__name__}")
    src, tgt = batch
    check_ids("tgt (batch[1])", tgt, model.vocab_size, rank=2, shape="(B, T)")
    if tgt.shape[1] < 1:
        raise ValueError(f"tgt (batch[1]) must have at least one target token; got shape {tuple(tgt.shape)}")
    logits = model(src, model.shift_right(tgt))  # (B, T, V)
    return nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt.reshape(-1))  # (B*T, V)


@torch.no_grad()
def seq2seq_accuracy(model: TinyTransformer, src: torch.Tensor, tgt: torch.Tensor) -> tuple[float, float]:
    """Greedy-decoding accuracy: ``(token accuracy, whole-sequence accuracy)``."""
    check_ids("tgt", tgt, model.vocab_size, rank=2, shape="(B, T)")
    check_ids("src", src, model.vocab_size + 1, rank=2, shape="(B, L)")
    if src.shape[0] != tgt.shape[0] or tgt.numel() == 0:
        raise ValueError(f"src and tgt need one batch size and tgt at least one token; got src: {tuple(src.shape)}, "
                         f"tgt: {tuple(tgt.shape)}")
    pred = model.generate(src, tgt.shape[1])
    right = pred == tgt  # (B, T)
    return float(right.float().mean()), float(right.all(-1).float().mean())


def self_attention(x: torch.Tensor, *, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Parameter-free self-attention ``attend(x, x, x)`` of ``x: (..., L, d)``: ``(out, weights)``."""
    with argument_names(q="x", k="x", v="x"):
        return attend(x, x, x, mask=mask)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


__all__ = [
    "DecoderBlock",
    "EncoderBlock",
    "FeedForward",
    "TinyTransformer",
    "TransformerEncoder",
    "count_parameters",
    "scaling_experiment",
    "self_attention",
    "seq2seq_accuracy",
    "seq2seq_loss",
    "train_steps",
]
