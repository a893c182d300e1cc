r"""Sequence to sequence with attention: Bahdanau (2014) and Luong (2015), on a GRU encoder-decoder.

An encoder reads the source $x_1..x_S$ into annotations $h_1..h_S$ (a bidirectional GRU, so
$h_j$ sees the whole sentence). A decoder writes the target one word at a time. Without
attention (Cho et al., 2014; Sutskever et al., 2014) the decoder sees the source only through
one fixed vector $c$. With attention it computes a fresh context for every target word $i$:

$$
s_{ij} = \operatorname{score}(q_i, h_j), \qquad a_{ij} = \operatorname{softmax}_j(s_{ij}), \qquad
c_i = \sum_j a_{ij} h_j ,
$$

i.e. ``c, a = attend(q, h, h, score=..., mask=pad)`` with the annotations as keys and values.

- **Bahdanau** (additive): the query is the previous decoder state $q_i = s_{i-1}$, the score
  is $w^\top \tanh(W_q s_{i-1} + W_k h_j)$ and $c_i$ is fed *into* the recurrent step.
- **Luong**: the query is the current state $q_i = s_i$ (the RNN runs first, so teacher-forced
  training runs the whole target through ``nn.GRU`` at once); scores ``dot`` $s_i^\top h_j$,
  ``general`` $s_i^\top W h_j$ or ``concat`` $w^\top \tanh(W [s_i; h_j])$ (the additive form);
  the output is $\tilde s_i = \tanh(W_c [c_i; s_i])$. **Local** attention keeps a window of
  $2D+1$ source words around a predicted position $p_i = (S-1)\,\sigma(v_p^\top \tanh(W_p s_i))$
  with a Gaussian preference $\exp(-(j-p_i)^2 / 2\sigma^2)$, $\sigma = D/2$: a float mask for
  ``attend`` (:func:`local_mask`).

Shape legend: ``B`` batch, ``S`` source length, ``T`` target length, ``V`` vocabulary, ``E``
embedding width, ``H`` hidden width (encoder annotations and decoder state), ``A`` width of
the additive score. Token id 0 is padding, 1 is ``<s>``, 2 is ``</s>``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
from tqdm.auto import tqdm

from attnkit._checks import (
    check_int,
    check_positive,
    check_probability,
    check_sizes,
    check_tensor,
    check_values,
)
from attnkit.core import attend
from attnkit.datasets.translation import EOS, Vocab, make_batch
from attnkit.masks import key_mask, padding_mask

ATTENTIONS = ("bahdanau", "luong", None)
"""Kinds of decoder: Bahdanau (attend, then step), Luong (step, then attend) or no attention."""

SEQ2SEQ_SCORES = ("additive", "dot", "general", "concat")
"""Score names a decoder accepts (``concat`` is Luong's name for the additive form)."""


def _check_ids(name: str, x: object, rank: int = 2, vocab: int | None = None,
               device: torch.device | None = None, device_of: str = "the model") -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of token ids; got {type(x).__name__}")
    if x.dtype != torch.long:
        raise TypeError(f"{name} must hold token ids (dtype torch.long); got dtype {x.dtype}")
    if x.dim() != rank:
        raise ValueError(f"{name} must have {rank} dimensions ({'(B, L)' if rank == 2 else '(B,)'}); "
                         f"got shape {tuple(x.shape)}")
    if rank == 2 and (x.shape[0] < 1 or x.shape[1] < 1):
        raise ValueError(f"{name} must hold at least one sentence of at least one token; got shape {tuple(x.shape)}")
    check_values(name, x)
    if device is not None and x.device != device:
        raise ValueError(f"{name} must be on the device of {device_of} ({device}); got {x.device}")
    if vocab is not None and x.numel() and (int(x.min()) < 0 or int(x.max()) >= vocab):
        raise ValueError(f"{name} must hold ids in [0, {vocab}); got values in [{int(x.min())}, {int(x.max())}]")
    return x


def _check_lengths(src: torch.Tensor, src_len: object) -> torch.Tensor:
    src_len = _check_ids("src_len", src_len, rank=1, device=src.device, device_of="src")
    if src_len.shape[0] != src.shape[0]:
        raise ValueError(f"src_len needs one length per sentence: src has B = {src.shape[0]} rows, "
                         f"src_len has {src_len.shape[0]} entries")
    if (src_len < 1).any() or (src_len > src.shape[1]).any():
        raise ValueError(f"src_len must be in [1, S = {src.shape[1]}]; got {src_len.tolist()}")
    return src_len


def local_mask(p: torch.Tensor, src_len: torch.Tensor, S: int, D: int) -> torch.Tensor:
    r"""Float mask ``(B, T, S)`` of Luong's local attention around positions ``p: (B, T)``.

    Equivalent to::

        j = torch.arange(S)                                  # source positions
        m = -(j - p[..., None]) ** 2 / (2 * (D / 2) ** 2)  # log Gaussian, sigma = D/2
        m[|j - p| > D or j >= src_len] = -inf              # outside the window or padding

    Added to the scores by ``attend``, it keeps the window $[p_i - D, p_i + D]$ and multiplies
    the softmax's numerator by $\exp(-(j - p_i)^2 / 2\sigma^2)$ (Luong multiplies after
    normalising; here the window's weights are renormalised to sum to 1). Differentiable in
    ``p``, so the position predictor learns through it.
    """
    check_tensor("p", p, min_rank=2, shape="(B, T)")
    if p.dim() != 2:
        raise ValueError(f"p must be window centres (B, T); got shape {tuple(p.shape)}")
    src_len = _check_ids("src_len", src_len, rank=1, device=p.device, device_of="p")
    if src_len.shape[0] != p.shape[0]:
        raise ValueError(f"p and src_len need one batch size; got p: {tuple(p.shape)}, src_len: {tuple(src_len.shape)}")
    check_int("S", S, minimum=1)
    if int(src_len.min()) < 1 or int(src_len.max()) > S:
        raise ValueError(f"src_len must be in [1, S = {S}]; got {src_len.tolist()}")
    if isinstance(D, bool) or not isinstance(D, int) or D < 1:
        raise ValueError(f"D (half-width of the window) must be an int >= 1; got {D!r}")
    j = torch.arange(S, device=p.device, dtype=p.dtype)  # (S,)
    dist = j - p.unsqueeze(-1)  # j - p_i: (B, T, S)
    sigma = D / 2
    m = -dist.square() / (2 * sigma**2)  # log exp(-(j - p)^2 / 2 sigma^2)
    keep = (dist.abs() <= D) & (j < src_len[:, None, None])  # (B, T, S)
    return m.masked_fill(~keep & ~torch.isnan(dist), float("-inf"))  # a NaN centre stays NaN


def _check_decoder_input(tgt_in: object, enc: object, emb: nn.Embedding) -> None:
    _check_ids("tgt_in", tgt_in, vocab=emb.num_embeddings, device=emb.weight.device)
    if not isinstance(enc, Encoded):
        raise TypeError(f"enc must be the Encoded output of an Encoder; got {type(enc).__name__}")
    if enc.h.shape[0] != tgt_in.shape[0]:
        raise ValueError(f"tgt_in and enc need one batch size; got tgt_in: {tuple(tgt_in.shape)}, "
                         f"enc.h: {tuple(enc.h.shape)}")


class Score(nn.Module):
    r"""The parameters of one score, handed to :func:`attnkit.attend` as ``score_params``.

    ``dot``: none; ``general``: ``W (H, H)``; ``additive`` / ``concat``: ``W_q (A, H)``,
    ``W_k (A, H)``, ``w (A,)`` (Luong's $w^\top \tanh(W[s; h])$ is $W = [W_q, W_k]$).
    """

    def __init__(self, kind: str, H: int, A: int) -> None:
        super().__init__()
        if kind not in SEQ2SEQ_SCORES:
            raise ValueError(f"score must be one of {SEQ2SEQ_SCORES}; got kind = {kind!r}")
        check_sizes(H=H, A=A)
        self.kind = kind
        if kind == "general":
            self.W = nn.Parameter(torch.randn(H, H) / math.sqrt(H))
        elif kind in ("additive", "concat"):
            self.W_q = nn.Parameter(torch.randn(A, H) / math.sqrt(H))
            self.W_k = nn.Parameter(torch.randn(A, H) / math.sqrt(H))
            self.w = nn.Parameter(torch.randn(A) / math.sqrt(A))

    def attend(self, q: torch.Tensor, h: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``q: (B, T, H)`` over annotations ``h: (B, S, H)`` -> context ``(B, T, H)``, weights ``(B, T, S)``."""
        if self.kind == "dot":
            return attend(q, h, h, score="dot", mask=mask)
        if self.kind == "general":
            return attend(q, h, h, score="general", score_params={"W": self.W}, mask=mask)
        return attend(q, h, h, score="additive", mask=mask,
                      score_params={"W_q": self.W_q, "W_k": self.W_k, "w": self.w})


@dataclass
class Encoded:
    """Encoder output: annotations ``h (B, S, H)``, summary ``final (B, H)``, ``pad (B, S)`` bool, ``src_len (B,)``."""

    h: torch.Tensor
    final: torch.Tensor
    pad: torch.Tensor
    src_len: torch.Tensor


class Encoder(nn.Module):
    """Embedding + bidirectional GRU (``H // 2`` per direction); padding is packed away."""

    def __init__(self, V: int, E: int, H: int, dropout: float = 0.0) -> None:
        super().__init__()
        check_sizes(V=V, E=E, H=H)
        check_probability("dropout", dropout)
        self.drop = nn.Dropout(dropout)
        if H % 2:
            raise ValueError(f"hidden width H must be even (two directions of H // 2); got {H}")
        self.emb = nn.Embedding(V, E, padding_idx=0)
        self.rnn = nn.GRU(E, H // 2, batch_first=True, bidirectional=True)

    def forward(self, src: torch.Tensor, src_len: torch.Tensor) -> Encoded:
        _check_ids("src", src, vocab=self.emb.num_embeddings, device=self.emb.weight.device)
        src_len = _check_lengths(src, src_len)
        packed = pack_padded_sequence(self.drop(self.emb(src)), src_len.cpu(), batch_first=True, enforce_sorted=False)
        out, last = self.rnn(packed)  # last: (2, B, H/2)
        h, _ = pad_packed_sequence(out, batch_first=True, total_length=src.shape[1])  # (B, S, H)
        final = torch.cat([last[0], last[1]], dim=-1)  # forward end, backward start: (B, H)
        return Encoded(h, final, padding_mask(src_len, src.shape[1]), src_len)


class BahdanauDecoder(nn.Module):
    r"""Attend with the previous state, then step: $s_i = \mathrm{GRU}([y_{i-1}; c_i], s_{i-1})$.

    With ``attention=False`` the context is the encoder summary at every step (Cho et al., 2014),
    the baseline: the same model, with one fixed vector instead of attention.
    """

    def __init__(self, V: int, E: int, H: int, *, score: str = "additive", A: int = 32,
                 attention: bool = True, dropout: float = 0.0) -> None:
        super().__init__()
        check_sizes(V=V, E=E, H=H, A=A)
        check_probability("dropout", dropout)
        self.drop = nn.Dropout(dropout)
        self.emb = nn.Embedding(V, E, padding_idx=0)
        self.init = nn.Linear(H, H)
        self.cell = nn.GRUCell(E + H, H)
        self.out = nn.Linear(2 * H + E, V)
        self.score = Score(score, H, A) if attention else None

    def init_state(self, enc: Encoded) -> torch.Tensor:
        return torch.tanh(self.init(enc.final))  # s_0 = tanh(W_init [h_fwd_S; h_bwd_1]): (B, H)

    def step(self, y_prev: torch.Tensor, s_prev: torch.Tensor, enc: Encoded,
             t: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One word: ``y_prev (B,)``, ``s_prev (B, H)`` -> logits ``(B, V)``, ``s (B, H)``, weights ``(B, S)``."""
        e = self.drop(self.emb(y_prev))  # (B, E)
        if self.score is None:
            c, a = enc.final, torch.zeros_like(enc.pad, dtype=e.dtype)
        else:
            # c_i = sum_j a_ij h_j, a_i = softmax_j(w . tanh(W_q s_{i-1} + W_k h_j)) over real words
            c, a = self.score.attend(s_prev.unsqueeze(1), enc.h, key_mask(enc.pad))  # (B, 1, H), (B, 1, S)
            c, a = c.squeeze(1), a.squeeze(1)
        s = self.cell(torch.cat([e, c], -1), s_prev)  # s_i = GRU([y_{i-1}; c_i], s_{i-1})
        return self.out(self.drop(torch.cat([s, c, e], -1))), s, a  # logits from [s_i; c_i; y_{i-1}]

    def forward(self, tgt_in: torch.Tensor, enc: Encoded) -> tuple[torch.Tensor, torch.Tensor]:
        """Teacher forcing: ``tgt_in (B, T)`` -> logits ``(B, T, V)``, weights ``(B, T, S)``.

        Without attention every step's input $[y_{i-1}; c]$ is known in advance, so the same
        GRU cell runs over the whole target in one ``nn.GRU`` call (``_run_fixed_context``,
        through ``torch.func.functional_call`` with the cell's weights): the recurrence and the
        weights are those of :meth:`step`.
        """
        _check_decoder_input(tgt_in, enc, self.emb)
        if self.score is None:
            return self._run_fixed_context(tgt_in, enc)
        s = self.init_state(enc)
        logits, weights = [], []
        for t in range(tgt_in.shape[1]):
            lg, s, a = self.step(tgt_in[:, t], s, enc, t)
            logits.append(lg)
            weights.append(a)
        return torch.stack(logits, 1), torch.stack(weights, 1)


    def _gru_template(self) -> nn.GRU:
        """An ``nn.GRU`` of the cell's sizes, unregistered (no parameters of the model's own)."""
        gru = self.__dict__.get("_gru")
        if gru is None:
            with torch.random.fork_rng(devices=[]):  # building it must not move the global RNG
                gru = nn.GRU(self.cell.input_size, self.cell.hidden_size, batch_first=True)
            object.__setattr__(self, "_gru", gru)
        return gru

    def _run_fixed_context(self, tgt_in: torch.Tensor, enc: Encoded) -> tuple[torch.Tensor, torch.Tensor]:
        """The no-attention decoder over all steps: ``nn.GRU`` run with the ``GRUCell``'s weights."""
        e = self.drop(self.emb(tgt_in))  # (B, T, E)
        c = enc.final[:, None, :].expand(-1, tgt_in.shape[1], -1)  # the fixed context c: (B, T, H)
        cell = self.cell
        weights = {"weight_ih_l0": cell.weight_ih, "weight_hh_l0": cell.weight_hh,
                   "bias_ih_l0": cell.bias_ih, "bias_hh_l0": cell.bias_hh}
        # s_i = GRU([y_{i-1}; c], s_{i-1}) for all i at once (same gate order and weights as GRUCell)
        s, _ = torch.func.functional_call(self._gru_template(), weights,  # s: (B, T, H)
                                          (torch.cat([e, c], -1), self.init_state(enc)[None]))
        logits = self.out(self.drop(torch.cat([s, c, e], -1)))  # (B, T, V)
        return logits, torch.zeros(*tgt_in.shape, enc.h.shape[1], dtype=e.dtype, device=e.device)


class LuongDecoder(nn.Module):
    r"""Step, then attend with the new state: $\tilde s_i = \tanh(W_c [c_i; s_i])$ (no input feeding).

    ``window=None`` is global attention; ``window=D`` is local attention over ``2D + 1`` words
    around a predicted position (``position="predictive"``, local-p) or around ``i`` itself
    (``position="monotonic"``, local-m).
    """

    def __init__(self, V: int, E: int, H: int, *, score: str = "general", A: int = 32,
                 window: int | None = None, position: str = "predictive", dropout: float = 0.0) -> None:
        super().__init__()
        check_sizes(V=V, E=E, H=H, A=A)
        check_probability("dropout", dropout)
        self.drop = nn.Dropout(dropout)
        if window is not None and (isinstance(window, bool) or not isinstance(window, int) or window < 1):
            raise ValueError(f"window must be None (global) or an int D >= 1 (local); got {window!r}")
        if position not in ("predictive", "monotonic"):
            raise ValueError(f"position must be 'predictive' or 'monotonic'; got {position!r}")
        self.emb = nn.Embedding(V, E, padding_idx=0)
        self.init = nn.Linear(H, H)
        self.rnn = nn.GRU(E, H, batch_first=True)
        self.score = Score(score, H, A)
        self.combine = nn.Linear(2 * H, H)
        self.out = nn.Linear(H, V)
        self.window, self.position = window, position
        if window is not None and position == "predictive":
            self.W_p = nn.Linear(H, A)
            self.v_p = nn.Linear(A, 1, bias=False)

    def init_state(self, enc: Encoded) -> torch.Tensor:
        return torch.tanh(self.init(enc.final))  # (B, H)

    def _mask(self, s: torch.Tensor, enc: Encoded, t0: int) -> torch.Tensor:
        if self.window is None:
            return key_mask(enc.pad)  # (B, 1, S)
        last = (enc.src_len - 1).to(s.dtype)[:, None]  # (B, 1)
        if self.position == "predictive":
            # p_i = (S_b - 1) sigmoid(v_p . tanh(W_p s_i))
            p = last * torch.sigmoid(self.v_p(torch.tanh(self.W_p(s)))).squeeze(-1)  # (B, T)
        else:
            p = torch.arange(t0, t0 + s.shape[1], dtype=s.dtype).expand(s.shape[0], -1).minimum(last)  # (B, T)
        return local_mask(p, enc.src_len, enc.h.shape[1], self.window)

    def _attend(self, s: torch.Tensor, enc: Encoded, t0: int) -> tuple[torch.Tensor, torch.Tensor]:
        c, a = self.score.attend(s, enc.h, self._mask(s, enc, t0))  # (B, T, H), (B, T, S)
        return self.out(self.drop(torch.tanh(self.combine(torch.cat([c, s], -1))))), a  # W_s tanh(W_c [c_i; s_i])

    def step(self, y_prev: torch.Tensor, s_prev: torch.Tensor, enc: Encoded,
             t: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One word: ``y_prev (B,)``, ``s_prev (B, H)`` -> logits ``(B, V)``, ``s (B, H)``, weights ``(B, S)``."""
        out, s = self.rnn(self.drop(self.emb(y_prev)).unsqueeze(1), s_prev.unsqueeze(0))  # (B, 1, H), (1, B, H)
        logits, a = self._attend(out, enc, t)
        return logits.squeeze(1), s.squeeze(0), a.squeeze(1)

    def forward(self, tgt_in: torch.Tensor, enc: Encoded) -> tuple[torch.Tensor, torch.Tensor]:
        """Teacher forcing, all steps at once: ``tgt_in (B, T)`` -> logits ``(B, T, V)``, weights ``(B, T, S)``."""
        _check_decoder_input(tgt_in, enc, self.emb)
        s, _ = self.rnn(self.drop(self.emb(tgt_in)), self.init_state(enc).unsqueeze(0))  # s_1..s_T: (B, T, H)
        return self._attend(s, enc, 0)


class Seq2Seq(nn.Module):
    """GRU encoder-decoder with ``attention="bahdanau"`` (default), ``"luong"`` or ``None``.

    Args:
        src_vocab, tgt_vocab: vocabulary sizes ``V``.
        attention: where the decoder attends (see the module docstring); ``None``: no attention.
        score: ``"additive"``, ``"dot"``, ``"general"`` or ``"concat"``.
        window: Luong's local attention half-width ``D`` (``None``: global).
        position: ``"predictive"`` (local-p) or ``"monotonic"`` (local-m) window centre.
        E, H, A: embedding, hidden and additive-score widths.
        dropout: dropout rate on the embeddings and before the output layer (training only).
    """

    def __init__(self, src_vocab: int, tgt_vocab: int, *, attention: str | None = "bahdanau",
                 score: str = "additive", window: int | None = None, position: str = "predictive",
                 E: int = 32, H: int = 64, A: int = 32, dropout: float = 0.0) -> None:
        super().__init__()
        if attention not in ATTENTIONS:
            raise ValueError(f"attention must be one of {ATTENTIONS}; got {attention!r}")
        if window is not None and attention != "luong":
            raise ValueError(f"local attention (window={window}) needs attention='luong'; got {attention!r}")
        check_sizes(src_vocab=src_vocab, tgt_vocab=tgt_vocab, E=E, H=H, A=A)
        self.attention = attention
        self.encoder = Encoder(src_vocab, E, H, dropout)
        if attention == "luong":
            self.decoder: nn.Module = LuongDecoder(tgt_vocab, E, H, score=score, A=A, window=window,
                                                   position=position, dropout=dropout)
        else:
            self.decoder = BahdanauDecoder(tgt_vocab, E, H, score=score, A=A, attention=attention is not None,
                                           dropout=dropout)

    def forward(self, src: torch.Tensor, src_len: torch.Tensor,
                tgt_in: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``src (B, S)``, ``src_len (B,)``, ``tgt_in (B, T)`` -> logits ``(B, T, V)``, weights ``(B, T, S)``.

        Padded source positions get weight exactly 0 (the no-attention model returns zeros).
        """
        _check_ids("src", src)
        _check_ids("tgt_in", tgt_in)
        src_len = _check_lengths(src, src_len)
        if tgt_in.shape[0] != src.shape[0]:
            raise ValueError(f"src and tgt_in need the same batch size; got src: {tuple(src.shape)}, "
                             f"tgt_in: {tuple(tgt_in.shape)}")
        return self.decoder(tgt_in, self.encoder(src, src_len))

    def loss(self, src: torch.Tensor, src_len: torch.Tensor, tgt_in: torch.Tensor,
             tgt_out: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy per target token, padding ignored."""
        logits, _ = self(src, src_len, tgt_in)
        return nn.functional.cross_entropy(logits.flatten(0, 1), tgt_out.flatten(), ignore_index=0)

    @torch.no_grad()
    def greedy(self, src: torch.Tensor, src_len: torch.Tensor,
               max_len: int = 40) -> tuple[torch.Tensor, torch.Tensor]:
        """Greedy decoding: ids ``(B, T')`` and the attention rows ``(B, T', S)`` of each step.

        Each step feeds back the most likely word; a sentence is finished at ``</s>`` (id 2),
        after which its ids are padding. Stops when every sentence is finished or at ``max_len``.
        """
        _check_ids("src", src)
        src_len = _check_lengths(src, src_len)
        enc = self.encoder(src, src_len)
        dec = self.decoder
        s = dec.init_state(enc)
        y = torch.full((src.shape[0],), 1, dtype=torch.long)  # <s>
        done = torch.zeros(src.shape[0], dtype=torch.bool)
        ids, rows = [], []
        for t in range(max_len):
            logits, s, a = dec.step(y, s, enc, t)
            y = logits.argmax(-1).masked_fill(done, 0)  # (B,)
            ids.append(y)
            rows.append(a * (~done)[:, None])
            done = done | (y == 2)
            if done.all():
                break
        return torch.stack(ids, 1), torch.stack(rows, 1)


def train_seq2seq(model: Seq2Seq, pairs: Sequence[tuple[str, str]], src_vocab: Vocab, tgt_vocab: Vocab, *,
                  epochs: int = 10, batch_size: int = 32, lr: float = 3e-3, clip: float = 1.0, seed: int = 0,
                  progress: bool = True, desc: str = "training") -> list[float]:
    """Adam on mini-batches of ``pairs`` for ``epochs``; returns the mean loss of every epoch.

    The learning rate starts at ``lr`` and decays to 0 along a half cosine.

    Batches hold sentences of similar length (fewer padded steps) and come in an order
    shuffled with ``seed``; gradients are clipped to norm ``clip``. A ``tqdm.auto``
    progress bar counts the epochs (``progress=False`` hides it).
    """
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be an int >= 1; got {epochs!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1; got {batch_size!r}")
    if len(pairs) == 0:
        raise ValueError("pairs is empty: nothing to train on")
    check_positive("lr", lr)
    check_positive("clip", clip)
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    steps = epochs * -(-len(pairs) // batch_size)
    # the learning rate decays from lr to 0 along a half cosine
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: 0.5 * (1 + math.cos(math.pi * k / steps)))
    model.train()
    history = []
    bar = tqdm(range(epochs), desc=desc, disable=not progress)
    for _ in bar:
        # length buckets: shuffle, sort by target length (ties stay shuffled), shuffle the batches
        order = sorted(torch.randperm(len(pairs), generator=g).tolist(), key=lambda j: len(pairs[j][1].split()))
        batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
        total, n = 0.0, 0
        for k in torch.randperm(len(batches), generator=g).tolist():
            b = make_batch([pairs[j] for j in batches[k]], src_vocab, tgt_vocab)
            loss = model.loss(b.src, b.src_len, b.tgt_in, b.tgt_out)
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), clip)
            opt.step()
            sched.step()
            total, n = total + loss.item() * len(b.src), n + len(b.src)
        history.append(total / n)
        bar.set_postfix(loss=f"{history[-1]:.3f}")
    model.eval()
    return history


def translate(model: Seq2Seq, sentence: str, src_vocab: Vocab, tgt_vocab: Vocab,
              max_len: int = 40) -> tuple[list[str], list[str], torch.Tensor]:
    """Greedy translation of one sentence: ``(source words, output words, weights (T', S))``.

    The source words end with ``</s>`` (the encoder reads it too); the output words end with
    ``</s>`` when the decoder emitted it. Row ``i`` of the weights is the attention of step ``i``.
    """
    check_int("max_len", max_len, minimum=1)
    src = torch.tensor([src_vocab.encode(sentence)])  # (1, S)
    ids, w = model.greedy(src, torch.tensor([src.shape[1]]), max_len)
    words = [tgt_vocab.words[int(i)] for i in ids[0]]
    if EOS in words:
        words = words[: words.index(EOS) + 1]
    return [*sentence.split(), EOS], words, w[0, : len(words)]


def token_accuracy(hyp: Sequence[str], ref: Sequence[str]) -> float:
    """Fraction of positions where ``hyp`` and ``ref`` agree, over the longer of the two."""
    n = max(len(hyp), len(ref))
    return sum(h == r for h, r in zip(hyp, ref, strict=False)) / n if n else 1.0


def edit_accuracy(hyp: Sequence[str], ref: Sequence[str]) -> float:
    """``1 - Levenshtein(hyp, ref) / max(len)``: one dropped word costs one edit, not the rest.

    Unlike :func:`token_accuracy` (position by position), a single missing or extra word
    does not count every later word as wrong.
    """
    n = max(len(hyp), len(ref))
    if n == 0:
        return 1.0
    prev = list(range(len(ref) + 1))  # distances from hyp[:0] to ref[:j]
    for i, h in enumerate(hyp, 1):
        cur = [i]
        for j, r in enumerate(ref, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (h != r)))
        prev = cur
    return 1.0 - prev[-1] / n


def evaluate(model: Seq2Seq, pairs: Sequence[tuple[str, str]], src_vocab: Vocab, tgt_vocab: Vocab, *,
             batch_size: int = 256, max_len: int = 40) -> dict[str, object]:
    """Greedy-decode ``pairs``: exact-match and token accuracy, and per sentence results.

    Returns ``{"exact": float, "token": float, "edit": float, "lengths": [...],
    "exact_each": [...], "token_each": [...], "edit_each": [...], "outputs": [...]}`` (lengths
    are English words; ``edit`` is :func:`edit_accuracy`).
    """
    check_int("batch_size", batch_size, minimum=1)
    check_int("max_len", max_len, minimum=1)
    if len(pairs) == 0:
        raise ValueError("pairs is empty: nothing to evaluate")
    outputs = []
    for i in range(0, len(pairs), batch_size):
        b = make_batch(pairs[i : i + batch_size], src_vocab, tgt_vocab)
        ids, _ = model.greedy(b.src, b.src_len, max_len)
        outputs += [" ".join(tgt_vocab.decode(row.tolist())) for row in ids]
    exact = [o == fr for o, (_, fr) in zip(outputs, pairs, strict=True)]
    tok = [token_accuracy(o.split(), fr.split()) for o, (_, fr) in zip(outputs, pairs, strict=True)]
    edit = [edit_accuracy(o.split(), fr.split()) for o, (_, fr) in zip(outputs, pairs, strict=True)]
    return {"exact": sum(exact) / len(pairs), "token": sum(tok) / len(pairs), "edit": sum(edit) / len(pairs),
            "lengths": [len(en.split()) for en, _ in pairs], "exact_each": exact, "token_each": tok,
            "edit_each": edit, "outputs": outputs}


__all__ = [
    "ATTENTIONS", "SEQ2SEQ_SCORES", "BahdanauDecoder", "Encoded", "Encoder", "LuongDecoder", "Score",
    "Seq2Seq", "edit_accuracy", "evaluate", "local_mask", "token_accuracy", "train_seq2seq", "translate",
]
