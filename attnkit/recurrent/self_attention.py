r"""Self-attention arrives (2016): attention *within* a sentence, before the Transformer.

Four sentence-pair models for natural language inference, all attention through
:func:`attnkit.attend`:

- :class:`BagOfWords`: the baseline, mean word vectors of each sentence, no attention.
- :class:`DecomposableAttention` (Parikh et al., 2016): *attend* (soft-align every hypothesis
  word with the premise and vice versa, ``score="dot"`` on $F(a_i)$, $F(b_j)$), *compare*
  (an MLP on each word and its aligned phrase) and *aggregate* (sum, then classify); with
  optional intra-sentence attention that adds a learned distance bias $d_{i-j}$ as a float mask.
- :class:`LSTMN` (Cheng et al., 2016): an LSTM whose recurrence reads an attention-weighted
  summary of *all* its previous states instead of the last one: ``score="additive"`` with a
  strictly causal mask.
- :class:`StructuredSelfAttention` (Lin et al., 2017): $r$ attention heads
  $A = \operatorname{softmax}(W_{s2} \tanh(W_{s1} H^\top))$ pool a BiLSTM's states into a matrix
  embedding $M = A H$; the penalty $\lVert A A^\top - I \rVert_F^2$ makes the heads differ.

Shapes: ``B`` batch, ``L``/``Lp``/``Lh`` sentence/premise/hypothesis length, ``E`` embedding,
``H`` hidden width, ``r`` heads. Word id 0 is padding; ``lengths: (B,)`` count real words.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from attnkit._checks import (
    check_int,
    check_positive,
    check_same_dtype_device,
    check_sizes,
    check_tensor,
    check_values,
)
from attnkit.core import attend
from attnkit.masks import key_mask, padding_mask


def _check_ids(name: str, ids: object, lengths: object = None, vocab: int | None = None) -> torch.Tensor:
    if not isinstance(ids, torch.Tensor) or ids.dtype != torch.long or ids.dim() != 2:
        got = f"dtype {ids.dtype}, shape {tuple(ids.shape)}" if isinstance(ids, torch.Tensor) else type(ids).__name__
        raise TypeError(f"{name} must be a (B, L) long tensor of word ids; got {got}")
    check_values(name, ids)
    if ids.shape[0] < 1 or ids.shape[1] < 1:
        raise ValueError(f"{name} must hold at least one sentence of at least one word; got shape {tuple(ids.shape)}")
    if vocab is not None and (int(ids.min()) < 0 or int(ids.max()) >= vocab):
        raise ValueError(f"{name} must hold word ids in [0, {vocab}); got values in [{int(ids.min())}, "
                         f"{int(ids.max())}]")
    if lengths is not None:
        if not isinstance(lengths, torch.Tensor) or lengths.shape != ids.shape[:1]:
            got = tuple(lengths.shape) if isinstance(lengths, torch.Tensor) else type(lengths).__name__
            raise ValueError(f"{name}_lengths must be a ({ids.shape[0]},) tensor; got {got}")
        if lengths.is_floating_point() or lengths.is_complex() or lengths.dtype == torch.bool:
            raise TypeError(f"{name}_lengths must be integer lengths; got dtype {lengths.dtype}")
        check_values(f"{name}_lengths", lengths)
        if lengths.device != ids.device:
            raise ValueError(f"{name}_lengths must be on {name}'s device ({ids.device}); got {lengths.device}")
        if int(lengths.min()) < 1 or int(lengths.max()) > ids.shape[1]:
            raise ValueError(f"{name}_lengths must lie in [1, {ids.shape[1]}]; got {lengths.tolist()}")
    return ids


def _pad(lengths: torch.Tensor, L: int) -> torch.Tensor:
    return padding_mask(lengths, L)  # (B, L), True = real word


def _mlp(d_in: int, d_hidden: int, d_out: int | None = None) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Linear(d_in, d_hidden), nn.ReLU()]
    if d_out is not None:
        layers.append(nn.Linear(d_hidden, d_out))
    return nn.Sequential(*layers)


def perturb_weights(w: torch.Tensor, pad: torch.Tensor, how: str, *,
                    generator: torch.Generator | None = None) -> torch.Tensor:
    """Replace attention rows ``w: (B, Lq, Lk)`` by a perturbed version (for the interpretation test).

    ``pad: (B, Lk)`` marks the real keys (right-padded). ``how="permute"`` shuffles each row's
    weights among its real keys (Jain and Wallace, 2019); ``how="uniform"`` spreads each row
    evenly over them (Wiegreffe and Pinter, 2019). Rows still sum to 1; padding keeps 0.
    """
    check_tensor("w", w, min_rank=3, shape="(B, Lq, Lk)")
    check_tensor("pad", pad, floating=False, shape="(B, Lk)")
    if w.dim() != 3 or pad.dtype != torch.bool or pad.shape != (w.shape[0], w.shape[2]) or pad.device != w.device:
        raise ValueError(f"need w: (B, Lq, Lk) and a bool pad: (B, Lk) on w's device; got w: {tuple(w.shape)}, "
                         f"pad: {tuple(pad.shape)} {pad.dtype} on {pad.device}")
    keep = pad[:, None, :].expand_as(w)  # (B, Lq, Lk)
    if how == "uniform":
        u = keep.to(w.dtype)
        return u / u.sum(-1, keepdim=True).clamp_min(1)
    if how != "permute":
        raise ValueError(f"how must be 'permute' or 'uniform'; got {how!r}")
    r = torch.rand(w.shape, generator=generator).to(w.device)
    r = r.masked_fill(~keep, 2.0)  # padding sorts last, so perm[:n] is a shuffle of 0..n-1
    perm = r.argsort(-1)  # (B, Lq, Lk)
    return w.gather(-1, perm)  # w'_j = w_perm(j): the real weights, shuffled


def pair_features(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``[u, v, |u - v|, u * v]``: the usual way to compare two sentence vectors ``(B, d)`` -> ``(B, 4d)``."""
    check_tensor("u", u, min_rank=1, shape="(B, d)")
    check_tensor("v", v, min_rank=1, shape="(B, d)")
    if u.shape != v.shape:
        raise ValueError(f"u and v must have one shape; got u: {tuple(u.shape)}, v: {tuple(v.shape)}")
    check_same_dtype_device(u=u, v=v)
    return torch.cat([u, v, (u - v).abs(), u * v], -1)


class BagOfWords(nn.Module):
    """Mean of word vectors per sentence, compared by :func:`pair_features` and an MLP."""

    def __init__(self, vocab_size: int, *, embed: int = 32, hidden: int = 64, classes: int = 3) -> None:
        super().__init__()
        check_sizes(vocab_size=vocab_size, embed=embed, hidden=hidden, classes=classes)
        self.embed = nn.Embedding(vocab_size, embed, padding_idx=0)
        self.head = _mlp(4 * embed, hidden, classes)

    def encode(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        pad = _pad(lengths, ids.shape[1]).to(torch.float32)  # (B, L)
        return (self.embed(ids) * pad[..., None]).sum(1) / pad.sum(1, keepdim=True)  # (B, E)

    def forward(self, premise: torch.Tensor, premise_lengths: torch.Tensor, hypothesis: torch.Tensor,
                hypothesis_lengths: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, classes)``."""
        _check_ids("premise", premise, premise_lengths, self.embed.num_embeddings)
        _check_ids("hypothesis", hypothesis, hypothesis_lengths, self.embed.num_embeddings)
        return self.head(pair_features(self.encode(premise, premise_lengths),
                                       self.encode(hypothesis, hypothesis_lengths)))


def distance_bias_mask(bias: torch.Tensor, lengths: torch.Tensor, L: int) -> torch.Tensor:
    """Float mask ``(B, L, L)``: ``bias[clip(i - j, -m, m) + m]`` for real words, ``-inf`` for padding.

    ``bias: (2m + 1,)``. Added to the scores by :func:`attnkit.attend`, it is Parikh et al.'s
    distance-sensitive bias $d_{i-j}$ (offsets of ``m`` words or more share one bucket per side).
    """
    check_tensor("bias", bias, min_rank=1, shape="(2m + 1,)")
    if bias.dim() != 1 or bias.shape[0] % 2 == 0:
        raise ValueError(f"bias must be (2m + 1,), one entry per clipped offset; got shape {tuple(bias.shape)}")
    check_int("L", L, minimum=1)
    if not isinstance(lengths, torch.Tensor) or lengths.device != bias.device or lengths.dim() != 1:
        raise ValueError("lengths must be a 1-D tensor of sentence lengths on bias's device")
    check_values("lengths", lengths)
    if lengths.numel() and (int(lengths.min()) < 1 or int(lengths.max()) > L):
        raise ValueError(f"lengths must lie in [1, L = {L}]; got {lengths.tolist()}")
    m = (bias.shape[0] - 1) // 2
    pos = torch.arange(L, device=bias.device)
    offset = (pos[:, None] - pos[None, :]).clamp(-m, m) + m  # (L, L): i - j, clipped and shifted
    d = bias[offset]  # (L, L)
    keep = key_mask(_pad(lengths, L))  # (B, 1, L)
    return torch.where(keep, d, torch.full_like(d, float("-inf")))  # (B, L, L)


class DecomposableAttention(nn.Module):
    r"""Attend, compare, aggregate (Parikh et al., 2016).

    With premise words $a_i$ and hypothesis words $b_j$ (embeddings, optionally concatenated
    with their intra-sentence context):

    $$ e_{ij} = F(a_i)^\top F(b_j), \quad \beta_i = \sum_j \operatorname{softmax}_j(e_{ij})\, b_j, \quad
       \alpha_j = \sum_i \operatorname{softmax}_i(e_{ij})\, a_i, $$
    $$ v_{1,i} = G([a_i; \beta_i]), \quad v_{2,j} = G([b_j; \alpha_j]), \quad
       \hat y = H\big(\big[\textstyle\sum_i v_{1,i}; \sum_j v_{2,j}\big]\big). $$

    ``intra=True`` first replaces each word $a_i$ by $[a_i; a'_i]$ with
    $a'_i = \sum_j \operatorname{softmax}_j(f_{ij} + d_{i-j})\, a_j$, where
    $f_{ij} = F_{\text{intra}}(a_i)^\top F_{\text{intra}}(a_j) / \sqrt{d}$ is the *scaled* dot score
    (``score="scaled_dot"``; Parikh et al. use the plain dot product) and $d_{i-j}$ a learned
    bias per offset, clipped at ``max_distance``.
    """

    def __init__(self, vocab_size: int, *, embed: int = 32, hidden: int = 64, classes: int = 3,
                 intra: bool = False, max_distance: int = 6) -> None:
        super().__init__()
        check_sizes(vocab_size=vocab_size, embed=embed, hidden=hidden, classes=classes)
        check_int("max_distance", max_distance, minimum=0)
        self.embed = nn.Embedding(vocab_size, embed, padding_idx=0)
        self.intra = intra
        width = 2 * embed if intra else embed
        if intra:
            self.F_intra = _mlp(embed, hidden)
            # d_{i-j} starts as a locality prior, -|i - j| / 2: nearby words first (then learned)
            self.distance_bias = nn.Parameter(-0.5 * torch.arange(-max_distance, max_distance + 1.0).abs())
        self.F = _mlp(width, hidden)
        self.G = _mlp(2 * width, hidden)
        self.H = _mlp(2 * hidden, hidden, classes)

    def represent(self, ids: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Word vectors ``(B, L, E)`` (or ``(B, L, 2E)`` with intra-attention) and the intra weights."""
        x = self.embed(ids)  # (B, L, E)
        if not self.intra:
            return x, None
        f = self.F_intra(x)  # (B, L, hidden)
        mask = distance_bias_mask(self.distance_bias, lengths, ids.shape[1])  # (B, L, L) float
        ctx, w = attend(f, f, x, score="scaled_dot", mask=mask)  # a'_i = sum_j softmax(f_ij + d_ij) a_j
        return torch.cat([x, ctx], -1), w

    def forward(self, premise: torch.Tensor, premise_lengths: torch.Tensor, hypothesis: torch.Tensor,
                hypothesis_lengths: torch.Tensor, *, return_weights: bool = False, perturb: str | None = None,
                generator: torch.Generator | None = None
                ) -> torch.Tensor | tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Logits ``(B, classes)``; with ``return_weights`` also a dict of the weights:
        ``"beta": (B, Lp, Lh)`` (premise word -> hypothesis), ``"alpha": (B, Lh, Lp)`` and, with
        intra-attention, ``"intra_premise"``, ``"intra_hypothesis"``. ``perturb`` (``"permute"``
        or ``"uniform"``) replaces the alignment weights by :func:`perturb_weights`."""
        _check_ids("premise", premise, premise_lengths, self.embed.num_embeddings)
        _check_ids("hypothesis", hypothesis, hypothesis_lengths, self.embed.num_embeddings)
        a, wa = self.represent(premise, premise_lengths)  # (B, Lp, w)
        b, wb = self.represent(hypothesis, hypothesis_lengths)  # (B, Lh, w)
        pad_a, pad_b = _pad(premise_lengths, a.shape[1]), _pad(hypothesis_lengths, b.shape[1])  # (B, L)
        fa, fb = self.F(a), self.F(b)  # (B, L, hidden)
        # attend: beta_i = sum_j softmax_j(e_ij) b_j and alpha_j = sum_i softmax_i(e_ij) a_i
        beta, w_beta = attend(fa, fb, b, score="dot", mask=key_mask(pad_b))  # (B, Lp, w), (B, Lp, Lh)
        alpha, w_alpha = attend(fb, fa, a, score="dot", mask=key_mask(pad_a))  # (B, Lh, w), (B, Lh, Lp)
        if perturb is not None:
            w_beta = perturb_weights(w_beta, pad_b, perturb, generator=generator)
            w_alpha = perturb_weights(w_alpha, pad_a, perturb, generator=generator)
            beta, alpha = w_beta @ b, w_alpha @ a  # the same weighted sums, with the perturbed weights
        # compare: v1_i = G([a_i; beta_i]), v2_j = G([b_j; alpha_j]); aggregate: sums over real words
        v1 = (self.G(torch.cat([a, beta], -1)) * pad_a[..., None]).sum(1)  # (B, hidden)
        v2 = (self.G(torch.cat([b, alpha], -1)) * pad_b[..., None]).sum(1)  # (B, hidden)
        logits = self.H(torch.cat([v1, v2], -1))
        if not return_weights:
            return logits
        weights = {"beta": w_beta, "alpha": w_alpha}
        if self.intra:
            weights.update(intra_premise=wa, intra_hypothesis=wb)
        return logits, weights


class LSTMN(nn.Module):
    r"""Long short-term memory-network (Cheng et al., 2016): an LSTM with intra-attention.

    At step $t$ the cell attends over its own previous hidden states $h_1 .. h_{t-1}$:

    $$ s_{t,i} = w^\top \tanh(W_h h_i + W_x x_t + W_{\tilde h} \tilde h_{t-1}), \quad
       a_t = \operatorname{softmax}(s_t), \quad
       [\tilde h_t; \tilde c_t] = \sum_{i<t} a_{t,i} [h_i; c_i], $$

    i.e. ``attend([x_t; h~_{t-1}], H_{<t}, [H; C]_{<t}, score="additive")`` with a strictly causal
    mask, and then runs the LSTM update from $(\tilde h_t, \tilde c_t)$ instead of
    $(h_{t-1}, c_{t-1})$. At $t = 1$ the memory is empty: the masked row gives zero weights,
    so the cell starts from zeros.
    """

    def __init__(self, input_size: int, hidden: int, *, att: int | None = None) -> None:
        super().__init__()
        check_sizes(input_size=input_size, hidden=hidden)
        if att is not None:
            check_sizes(att=att)
        att = att or hidden
        self.hidden = hidden
        self.W_q = nn.Parameter(torch.randn(att, input_size + hidden) / (input_size + hidden) ** 0.5)
        self.W_k = nn.Parameter(torch.randn(att, hidden) / hidden**0.5)
        self.w = nn.Parameter(torch.randn(att) / att**0.5)
        self.gates = nn.Linear(input_size + hidden, 4 * hidden)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``x: (B, L, E)`` -> hidden states ``(B, L, H)`` and intra-attention ``(B, L, L)``.

        Row ``t`` of the weights is over the positions ``i < t`` (zero elsewhere); with
        ``lengths``, padded positions are never attended to.
        """
        if not isinstance(x, torch.Tensor) or x.dim() != 3:
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"x must be (B, L, E); got {got}")
        w = self.gates.weight
        E = w.shape[1] - self.hidden
        if not x.is_floating_point() or x.shape[-1] != E or x.dtype != w.dtype or x.device != w.device:
            raise TypeError(f"x must be (B, L, {E}) of the module's dtype and device ({w.dtype} on {w.device}); got "
                            f"shape {tuple(x.shape)}, {x.dtype} on {x.device}")
        if x.shape[0] < 1 or x.shape[1] < 1:
            raise ValueError(f"x must hold at least one sequence of at least one step; got shape {tuple(x.shape)}")
        if lengths is not None:
            if not isinstance(lengths, torch.Tensor) or lengths.device != x.device or lengths.shape != x.shape[:1]:
                got = f"shape {tuple(lengths.shape)}" if isinstance(lengths, torch.Tensor) else type(lengths).__name__
                raise TypeError(f"lengths must be a (B,) = ({x.shape[0]},) tensor on x's device ({x.device}); "
                                f"got {got}")
            check_values("lengths", lengths)
            if int(lengths.min()) < 1 or int(lengths.max()) > x.shape[1]:
                raise ValueError(f"lengths must lie in [1, L = {x.shape[1]}]; got {lengths.tolist()}")
        B, L, _ = x.shape
        pad = torch.ones(B, L, dtype=torch.bool, device=x.device) if lengths is None else _pad(lengths, L)  # (B, L)
        params = {"W_q": self.W_q, "W_k": self.W_k, "w": self.w}
        hs: list[torch.Tensor] = []
        cs: list[torch.Tensor] = []
        rows = []
        h_tilde = x.new_zeros(B, self.hidden)
        for t in range(L):
            q = torch.cat([x[:, t], h_tilde], -1)[:, None, :]  # (B, 1, E + H)
            if t == 0:
                h_tilde, c_tilde = x.new_zeros(B, self.hidden), x.new_zeros(B, self.hidden)
                w = x.new_zeros(B, 1, 0)
            else:
                mem_h = torch.stack(hs, 1)  # (B, t, H)
                mem = torch.cat([mem_h, torch.stack(cs, 1)], -1)  # (B, t, 2H)
                summary, w = attend(q, mem_h, mem, score="additive", score_params=params,
                                    mask=key_mask(pad[:, :t]))  # (B, 1, 2H), (B, 1, t)
                h_tilde, c_tilde = summary[:, 0].split(self.hidden, -1)
            i, f, o, g = self.gates(torch.cat([x[:, t], h_tilde], -1)).chunk(4, -1)
            c = torch.sigmoid(f) * c_tilde + torch.sigmoid(i) * torch.tanh(g)  # c_t = f c~_t + i c^_t
            h = torch.sigmoid(o) * torch.tanh(c)  # h_t = o tanh(c_t)
            hs.append(h)
            cs.append(c)
            rows.append(F.pad(w[:, 0], (0, L - t)))  # (B, L)
        return torch.stack(hs, 1), torch.stack(rows, 1)


class LSTMNClassifier(nn.Module):
    """Encode premise and hypothesis with one :class:`LSTMN`, mean-pool, compare with an MLP."""

    def __init__(self, vocab_size: int, *, embed: int = 32, hidden: int = 48, classes: int = 3) -> None:
        super().__init__()
        check_sizes(vocab_size=vocab_size, embed=embed, hidden=hidden, classes=classes)
        self.embed = nn.Embedding(vocab_size, embed, padding_idx=0)
        self.reader = LSTMN(embed, hidden)
        self.head = _mlp(4 * hidden, hidden, classes)

    def encode(self, ids: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Sentence vectors ``(B, H)`` and the reader's intra-attention ``(B, L, L)``."""
        h, w = self.reader(self.embed(ids), lengths)  # (B, L, H), (B, L, L)
        pad = _pad(lengths, ids.shape[1]).to(h.dtype)[..., None]  # (B, L, 1)
        return (h * pad).sum(1) / pad.sum(1), w

    def forward(self, premise: torch.Tensor, premise_lengths: torch.Tensor, hypothesis: torch.Tensor,
                hypothesis_lengths: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, classes)``."""
        _check_ids("premise", premise, premise_lengths, self.embed.num_embeddings)
        _check_ids("hypothesis", hypothesis, hypothesis_lengths, self.embed.num_embeddings)
        u, _ = self.encode(premise, premise_lengths)
        v, _ = self.encode(hypothesis, hypothesis_lengths)
        return self.head(pair_features(u, v))


def attention_penalty(A: torch.Tensor) -> torch.Tensor:
    r"""Lin et al.'s penalty $P = \lVert A A^\top - I \rVert_F^2$ for ``A: (..., r, L)`` -> ``(...)``.

    Zero exactly when the $r$ rows of $A$ are one-hot on distinct positions (each row of a
    softmax has $\lVert a \rVert_2 \le 1$, so the diagonal pushes rows to be peaked and the
    off-diagonal pushes different rows apart).
    """
    if not isinstance(A, torch.Tensor) or A.dim() < 2 or not A.is_floating_point():
        got = f"shape {tuple(A.shape)}, dtype {A.dtype}" if isinstance(A, torch.Tensor) else type(A).__name__
        raise ValueError(f"A must be a floating-point (..., r, L) tensor; got {got}")
    r = A.shape[-2]
    gram = A @ A.transpose(-2, -1)  # (..., r, r): A A^T
    eye = torch.eye(r, dtype=A.dtype, device=A.device)
    return ((gram - eye) ** 2).sum((-2, -1))  # squared Frobenius norm


class StructuredSelfAttention(nn.Module):
    r"""A structured self-attentive sentence embedding (Lin et al., 2017).

    A BiLSTM gives states $H \in \mathbb{R}^{L \times 2u}$; $r$ heads score every state,
    $A = \operatorname{softmax}(W_{s2} \tanh(W_{s1} H^\top)) \in \mathbb{R}^{r \times L}$, and the
    embedding is $M = A H \in \mathbb{R}^{r \times 2u}$. The queries are the rows of $W_{s2}$ and
    the keys $\tanh(H W_{s1}^\top)$: ``attend(W_s2, tanh(H W_s1^T), H, score="dot")``.
    """

    def __init__(self, vocab_size: int, *, embed: int = 32, hidden: int = 32, att: int = 32, heads: int = 4,
                 classes: int = 3) -> None:
        super().__init__()
        check_sizes(vocab_size=vocab_size, embed=embed, hidden=hidden, att=att, heads=heads, classes=classes)
        self.embed = nn.Embedding(vocab_size, embed, padding_idx=0)
        self.lstm = nn.LSTM(embed, hidden, batch_first=True, bidirectional=True)
        self.W_s1 = nn.Linear(2 * hidden, att, bias=False)
        self.W_s2 = nn.Parameter(torch.randn(heads, att) / att**0.5)
        self.heads = heads
        self.head = _mlp(4 * heads * 2 * hidden, 64, classes)

    def encode(self, ids: torch.Tensor, lengths: torch.Tensor, *, perturb: str | None = None,
               generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Matrix embedding ``M: (B, r, 2u)`` and the heads' weights ``A: (B, r, L)``.

        ``perturb`` (``"permute"`` or ``"uniform"``) pools with :func:`perturb_weights` of ``A``.
        """
        _check_ids("ids", ids, lengths)
        packed = nn.utils.rnn.pack_padded_sequence(self.embed(ids), lengths.cpu(), batch_first=True,
                                                   enforce_sorted=False)
        H, _ = nn.utils.rnn.pad_packed_sequence(self.lstm(packed)[0], batch_first=True,
                                                total_length=ids.shape[1])  # (B, L, 2u)
        keys = torch.tanh(self.W_s1(H))  # (B, L, att): tanh(W_s1 H^T)^T
        pad = _pad(lengths, ids.shape[1])  # (B, L)
        M, A = attend(self.W_s2, keys, H, score="dot", mask=key_mask(pad))  # M = A H: (B, r, 2u), A: (B, r, L)
        if perturb is not None:
            A = perturb_weights(A, pad, perturb, generator=generator)
            M = A @ H
        return M, A

    def forward(self, premise: torch.Tensor, premise_lengths: torch.Tensor, hypothesis: torch.Tensor,
                hypothesis_lengths: torch.Tensor, *, return_weights: bool = False, perturb: str | None = None,
                generator: torch.Generator | None = None
                ) -> torch.Tensor | tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """Logits ``(B, classes)``; with ``return_weights`` also ``(A_premise, A_hypothesis)``."""
        _check_ids("premise", premise, premise_lengths, self.embed.num_embeddings)
        _check_ids("hypothesis", hypothesis, hypothesis_lengths, self.embed.num_embeddings)
        Mp, Ap = self.encode(premise, premise_lengths, perturb=perturb, generator=generator)
        Mh, Ah = self.encode(hypothesis, hypothesis_lengths, perturb=perturb, generator=generator)
        logits = self.head(pair_features(Mp.flatten(1), Mh.flatten(1)))  # (B, 4 r 2u) -> (B, classes)
        return (logits, (Ap, Ah)) if return_weights else logits


def train_nli(model: nn.Module, data, *, epochs: int = 10, batch_size: int = 64, lr: float = 3e-3,
              penalty: float = 0.0, seed: int = 0, progress: bool = True, desc: str = "training") -> list[float]:
    """Train any of the models on an :class:`attnkit.datasets.nli.NLIData` with Adam.

    ``penalty`` adds ``penalty * mean(attention_penalty(A))`` over both sentences' heads (only
    for :class:`StructuredSelfAttention`). Returns the cross-entropy of every step.
    """
    check_int("epochs", epochs, minimum=1)
    check_int("batch_size", batch_size, minimum=1)
    check_positive("lr", lr)
    check_positive("penalty", penalty, allow_zero=True)
    if penalty and not isinstance(model, StructuredSelfAttention):
        raise ValueError(f"penalty needs a StructuredSelfAttention model; got {type(model).__name__}")
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    n = len(data)
    losses: list[float] = []
    bar = tqdm(total=epochs * -(-n // batch_size), desc=desc, disable=not progress)
    model.train()
    for _ in range(epochs):
        perm = torch.randperm(n, generator=g)
        for i in range(0, n, batch_size):
            idx = perm[i:i + batch_size]
            args = (data.premise[idx], data.premise_lengths[idx], data.hypothesis[idx], data.hypothesis_lengths[idx])
            if penalty:
                logits, (Ap, Ah) = model(*args, return_weights=True)
                ce = F.cross_entropy(logits, data.labels[idx])
                loss = ce + penalty * (attention_penalty(Ap).mean() + attention_penalty(Ah).mean()) / 2
            else:
                ce = F.cross_entropy(model(*args), data.labels[idx])
                loss = ce
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(ce.item())
            bar.update()
            bar.set_postfix(loss=f"{ce.item():.3f}")
    bar.close()
    model.eval()
    return losses


@torch.no_grad()
def nli_accuracy(model: nn.Module, data, **kwargs: object) -> float:
    """Share of pairs in ``data`` whose argmax label is right (``kwargs`` go to the model)."""
    logits = model(data.premise, data.premise_lengths, data.hypothesis, data.hypothesis_lengths, **kwargs)
    return (logits.argmax(-1) == data.labels).float().mean().item()


@torch.no_grad()
def perturbation_effect(model: nn.Module, data, how: str = "permute", *, seed: int = 0) -> dict[str, float]:
    """How much the output moves when the attention weights are perturbed (Jain and Wallace, 2019).

    For a :class:`DecomposableAttention` or :class:`StructuredSelfAttention` model, returns the
    accuracy before and after, the share of predictions that change, and the mean total
    variation distance $\\tfrac12 \\lVert p - p' \\rVert_1$ between the output distributions.
    """
    if how not in ("permute", "uniform"):
        raise ValueError(f"how must be 'permute' or 'uniform'; got {how!r}")
    args = (data.premise, data.premise_lengths, data.hypothesis, data.hypothesis_lengths)
    p = torch.softmax(model(*args), -1)
    g = torch.Generator().manual_seed(seed)
    q = torch.softmax(model(*args, perturb=how, generator=g), -1)
    return {"accuracy": (p.argmax(-1) == data.labels).float().mean().item(),
            "accuracy_perturbed": (q.argmax(-1) == data.labels).float().mean().item(),
            "changed": (p.argmax(-1) != q.argmax(-1)).float().mean().item(),
            "tvd": 0.5 * (p - q).abs().sum(-1).mean().item()}
