r"""Show, attend and tell in miniature (Xu et al., 2015): a captioner that looks where it speaks.

A small CNN turns the image into a grid of $G = g \times g$ feature vectors $k_1, \dots, k_G$
(the *annotation vectors*; two coordinate channels are appended so each knows where it is).
An LSTM writes the caption one word at a time; before word $t$ it attends over the grid with
the additive score of Bahdanau et al.:

$$
s_{t,j} = w^\top \tanh(W_q h_{t-1} + W_k k_j), \qquad a_t = \operatorname{softmax}(s_t), \qquad
z_t = \sum_j a_{t,j} k_j ,
$$

that is ``attend(h, K, K, score="additive")``. *Soft* attention feeds the expectation $z_t$
and trains by backpropagation. *Hard* attention samples one location $l_t \sim a_t$ and feeds
$k_{l_t}$; the sample has no gradient, so the attention parameters are trained by REINFORCE
(Williams, 1992), as in Mnih et al. (2014) and Xu et al. (2015).

Shapes: ``B`` batch, ``T`` caption length, ``G`` grid locations, ``D`` feature width,
``H`` LSTM width, ``V`` vocabulary.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from attnkit._checks import (
    check_index_tensor,
    check_int,
    check_module_input,
    check_positive,
    check_probability,
    check_same_dtype_device,
    check_sizes,
    check_tensor,
    check_values,
    shape_str,
)
from attnkit.core import attend


def coordinate_channels(B: int, H: int, W: int, *, device: torch.device | str | None = None) -> torch.Tensor:
    """``(B, 2, H, W)`` maps of the column (x) and row (y) position, each in ``[-1, 1]``."""
    check_sizes(B=B, H=H, W=W)
    ys = torch.linspace(-1, 1, H, device=device)
    xs = torch.linspace(-1, 1, W, device=device)
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")  # (H, W) each
    return torch.stack([xx, yy]).expand(B, 2, H, W)


class GridEncoder(nn.Module):
    """Three small conv layers and two poolings: ``(B, 3, S, S)`` -> features ``(B, G, D)``.

    ``G = (S / 4)^2`` locations (8 x 8 for 32-pixel images) and ``D = channels + 2``: the input
    and the output grid both carry x/y coordinate channels ("CoordConv"), so the features say
    *where* as well as *what*. ``coords=False`` feeds zeros in their place (same shapes and
    parameter count), so the features carry position only through the zero padding.
    """

    def __init__(self, channels: int = 32, *, coords: bool = True) -> None:
        super().__init__()
        check_sizes(channels=channels)
        if not isinstance(coords, bool):
            raise TypeError(f"coords must be a bool; got {type(coords).__name__}")
        self.coords = coords
        self.net = nn.Sequential(
            nn.Conv2d(5, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, channels, 3, padding=1), nn.BatchNorm2d(channels), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(),
        )
        self.dim = channels + 2

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        check_tensor("images", images, min_rank=4, shape="(B, 3, S, S)")
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be (B, 3, S, S); got shape {tuple(images.shape)}")
        if images.shape[-1] % 4 or images.shape[-2] % 4 or min(images.shape[-2:]) < 4 or images.shape[0] < 1:
            raise ValueError(f"images' height and width must be multiples of 4 (and the batch not empty); got shape "
                             f"{tuple(images.shape)}")
        check_module_input("images", images, self.net[0].weight, rank=4, shape="(B, 3, S, S)")
        B, _, S1, S2 = images.shape
        xy = coordinate_channels(B, S1, S2, device=images.device)  # (B, 2, S, S)
        x = torch.cat([images, xy if self.coords else torch.zeros_like(xy)], 1)  # (B, 5, S, S)
        f = self.net(x)  # (B, C, g, g)
        g1, g2 = f.shape[-2:]
        xy = coordinate_channels(B, g1, g2, device=f.device)  # (B, 2, g, g)
        f = torch.cat([f, xy if self.coords else torch.zeros_like(xy)], 1)  # (B, D, g, g)
        return f.flatten(2).transpose(1, 2)  # (B, G, D)


@dataclass
class DecodeOutput:
    """What a decoding pass returns.

    ``logits: (B, T, V)``, ``weights: (B, T, G)`` (the attention of every step; one-hot rows for
    hard attention), ``log_prob_locations: (B, T)`` (log-probability of the sampled locations,
    hard attention only), ``entropy: (B, T)`` of each attention row and ``sampled: (B,)`` bool,
    the captions that used the sampled locations (all of them unless ``semi_sampling_p > 0``;
    hard attention only).
    """

    logits: torch.Tensor
    weights: torch.Tensor
    entropy: torch.Tensor
    log_prob_locations: torch.Tensor | None = None
    sampled: torch.Tensor | None = None


class ShowAttendTell(nn.Module):
    """CNN grid encoder + attention LSTM decoder.

    Args:
        vocab_size: ``V``. embed: word-embedding width. hidden: LSTM width ``H``.
        att: width of the additive score's hidden layer. channels: CNN channels.
        coords: give the grid x/y coordinate channels (``False``: zeros, see :class:`GridEncoder`).
    """

    def __init__(self, vocab_size: int, *, embed: int = 16, hidden: int = 64, att: int = 32,
                 channels: int = 32, coords: bool = True) -> None:
        super().__init__()
        check_sizes(vocab_size=vocab_size, embed=embed, hidden=hidden, att=att, channels=channels)
        self.encoder = GridEncoder(channels, coords=coords)
        D = self.encoder.dim
        self.embed = nn.Embedding(vocab_size, embed)
        self.init_h, self.init_c = nn.Linear(D, hidden), nn.Linear(D, hidden)
        self.W_q = nn.Parameter(torch.randn(att, hidden) / hidden**0.5)
        self.W_k = nn.Parameter(torch.randn(att, D) / D**0.5)
        self.w = nn.Parameter(torch.randn(att) / att**0.5)
        self.cell = nn.LSTMCell(embed + D, hidden)
        self.out = nn.Linear(hidden + D + embed, vocab_size)
        self.vocab_size = vocab_size

    def _start(self, feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean = feats.mean(1)  # (B, D): h_0, c_0 from the mean annotation, as in Xu et al.
        return torch.tanh(self.init_h(mean)), torch.tanh(self.init_c(mean))

    def attention(self, h: torch.Tensor, feats: torch.Tensor, *,
                  normalize: str = "softmax") -> tuple[torch.Tensor, torch.Tensor]:
        """One look at the grid: ``h: (B, H)``, ``feats: (B, G, D)`` -> ``z: (B, D)``, ``a: (B, G)``."""
        params = {"W_q": self.W_q, "W_k": self.W_k, "w": self.w}
        # s_j = w . tanh(W_q h + W_k k_j); a = normalize(s); z = sum_j a_j k_j
        z, a = attend(h[:, None, :], feats, feats, score="additive", score_params=params, normalize=normalize)
        return z[:, 0], a[:, 0]

    def _step(self, word: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor], z: torch.Tensor
              ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        e = self.embed(word)  # (B, E)
        h, c = self.cell(torch.cat([e, z], -1), state)
        # p(y_t | y_<t, image) from the new state, the context and the previous word (a "deep output")
        return self.out(torch.cat([h, z, e], -1)), (h, c)

    def forward(self, images: torch.Tensor, tokens: torch.Tensor, *, attention: str = "soft",
                generator: torch.Generator | None = None, semi_sampling_p: float = 0.0) -> DecodeOutput:
        """Teacher-forced pass: ``images: (B, 3, S, S)``, ``tokens: (B, T + 1)`` starting with ``<bos>``.

        Predicts ``tokens[:, 1:]`` from ``tokens[:, :-1]``. ``attention="soft"`` feeds the
        expected feature; ``"hard"`` samples one location per step from the weights (with
        ``generator``); ``"argmax"`` takes the most likely location (hard attention at test time).
        With ``attention="hard"`` and ``semi_sampling_p = p``, each caption uses the expected
        context (soft attention) instead of the sample with probability ``p`` (Xu et al. use
        0.5, Sec. 4.1); the sampled locations' log-probabilities are still returned, and the
        rows of soft captions are the soft weights.
        """
        check_probability("semi_sampling_p", semi_sampling_p)
        if attention not in ("soft", "hard", "argmax"):
            raise ValueError(f"attention must be 'soft', 'hard' or 'argmax'; got {attention!r}")
        if not isinstance(tokens, torch.Tensor) or tokens.dtype != torch.long or tokens.dim() != 2:
            got = f"dtype {tokens.dtype}, shape {tuple(tokens.shape)}" if isinstance(tokens, torch.Tensor) \
                else type(tokens).__name__
            raise TypeError(f"tokens must be a (B, T) long tensor of word ids; got {got}")
        check_tensor("images", images, min_rank=4, shape="(B, 3, S, S)")
        check_values("tokens", tokens)
        if tokens.shape[0] != images.shape[0] or tokens.device != images.device:
            raise ValueError(f"images and tokens need the same batch size and device; got images: "
                             f"{tuple(images.shape)} on {images.device}, tokens: {tuple(tokens.shape)} on "
                             f"{tokens.device}")
        if tokens.shape[1] < 2:
            raise ValueError(f"tokens need <bos> and at least one word; got shape {tuple(tokens.shape)}")
        if int(tokens.max()) >= self.vocab_size or int(tokens.min()) < 0:
            raise ValueError(f"tokens: token ids must lie in [0, {self.vocab_size}); got range "
                             f"[{int(tokens.min())}, {int(tokens.max())}]")
        feats = self.encoder(images)  # (B, G, D)
        state = self._start(feats)
        logits, weights, ent, logp = [], [], [], []
        soft_rows = None  # (B, 1): captions that use the expected context this pass
        if attention == "hard" and semi_sampling_p > 0:
            u = torch.rand(images.shape[0], 1, generator=generator, device=images.device)
            soft_rows = u < semi_sampling_p
        for t in range(tokens.shape[1] - 1):
            z, a = self.attention(state[0], feats)  # (B, D), (B, G)
            ent.append(-(a * a.clamp_min(1e-12).log()).sum(-1))
            if attention != "soft":
                if attention == "hard":
                    loc = torch.multinomial(a.detach(), 1, generator=generator)  # l_t ~ a_t: (B, 1)
                    logp.append(a.gather(1, loc).clamp_min(1e-12).log()[:, 0])  # log p(l_t)
                    one_hot = torch.zeros_like(a).scatter(1, loc, 1.0)
                    z_hard = (one_hot[:, None, :] @ feats)[:, 0]  # z_t = k_{l_t}: (B, D)
                    if soft_rows is None:
                        a, z = one_hot, z_hard
                    else:  # semi-sampling: the expected context for the chosen captions
                        a, z = torch.where(soft_rows, a, one_hot), torch.where(soft_rows, z, z_hard)
                else:
                    z, a = self.attention(state[0], feats, normalize="hard")
            out, state = self._step(tokens[:, t], state, z)
            logits.append(out)
            weights.append(a)
        sampled = None
        if attention == "hard":
            sampled = torch.ones(images.shape[0], dtype=torch.bool, device=images.device)
            if soft_rows is not None:
                sampled = ~soft_rows[:, 0]
        return DecodeOutput(torch.stack(logits, 1), torch.stack(weights, 1), torch.stack(ent, 1),
                            torch.stack(logp, 1) if logp else None, sampled)

    @torch.no_grad()
    def generate(self, images: torch.Tensor, *, max_len: int = 8, bos: int = 1, eos: int = 2,
                 attention: str = "soft") -> tuple[torch.Tensor, torch.Tensor]:
        """Greedy captions: ``images: (B, 3, S, S)`` -> ``tokens: (B, max_len)``, ``weights: (B, max_len, G)``.

        Positions after ``<eos>`` hold ``<eos>`` again; ``attention`` is ``"soft"`` or ``"argmax"``.
        """
        if attention not in ("soft", "argmax"):
            raise ValueError(f"generate takes attention='soft' or 'argmax'; got {attention!r}")
        feats = self.encoder(images)
        state = self._start(feats)
        word = torch.full((images.shape[0],), bos, dtype=torch.long, device=images.device)
        done = torch.zeros_like(word, dtype=torch.bool)
        words, weights = [], []
        for _ in range(max_len):
            z, a = self.attention(state[0], feats, normalize="softmax" if attention == "soft" else "hard")
            out, state = self._step(word, state, z)
            word = torch.where(done, torch.full_like(word, eos), out.argmax(-1))
            done = done | (word == eos)
            words.append(word)
            weights.append(a)
        return torch.stack(words, 1), torch.stack(weights, 1)


def caption_loss(logits: torch.Tensor, targets: torch.Tensor, *, pad_id: int = 0,
                 reduction: str = "mean") -> torch.Tensor:
    """Cross-entropy of ``logits: (B, T, V)`` against ``targets: (B, T)``, ignoring ``pad_id``.

    ``reduction="mean"`` averages over real tokens; ``"sum_per_caption"`` returns ``(B,)``,
    the negative log-likelihood of each caption.
    """
    check_tensor("logits", logits, min_rank=3, shape="(B, T, V)")
    if logits.dim() != 3 or logits.shape[-1] < 1:
        raise ValueError(f"logits must be (B, T, V) with V >= 1; got shape {shape_str(logits)}")
    check_index_tensor("targets", targets, low=0, high=logits.shape[-1], rank=2)
    if targets.shape != logits.shape[:2] or targets.device != logits.device:
        raise ValueError(f"targets must be (B, T) = {tuple(logits.shape[:2])} on {logits.device} (logits: "
                         f"{shape_str(logits)}); got shape {tuple(targets.shape)} on {targets.device}")
    check_int("pad_id", pad_id, minimum=0)
    nll = F.cross_entropy(logits.transpose(1, 2), targets, reduction="none")  # (B, T)
    keep = (targets != pad_id).to(nll.dtype)
    if reduction == "sum_per_caption":
        return (nll * keep).sum(1)
    if reduction == "mean":
        return (nll * keep).sum() / keep.sum().clamp_min(1)
    raise ValueError(f"reduction must be 'mean' or 'sum_per_caption'; got {reduction!r}")


@dataclass
class TrainLog:
    """Loss per step and, for hard attention, the REINFORCE baseline per step."""

    loss: list[float] = field(default_factory=list)
    baseline: list[float] = field(default_factory=list)


def train_captioner(model: ShowAttendTell, images: torch.Tensor, tokens: torch.Tensor, *, epochs: int = 10,
                    batch_size: int = 64, lr: float = 3e-3, attention: str = "soft", doubly_stochastic: float = 0.0,
                    reinforce_weight: float = 1.0, entropy_weight: float = 0.01, semi_sampling_p: float = 0.0,
                    seed: int = 0,
                    progress: bool = True, optimizer: torch.optim.Optimizer | None = None) -> TrainLog:
    r"""Train with Adam; return the log of the (per-token) caption loss.

    ``attention="soft"`` minimises the cross-entropy plus Xu et al.'s doubly stochastic
    penalty $\lambda \sum_j (1 - \sum_t a_{t,j})^2$ (weight ``doubly_stochastic``), which asks
    the caption to look at every location about once in total.

    ``attention="hard"`` samples the locations and adds the REINFORCE surrogate

    $$ -\lambda_r\,(\log p(y \mid l) - b) \sum_t \log p(l_t) - \lambda_e \sum_t H(a_t), $$

    with $b$ a moving average of $\log p(y \mid l)$ (the baseline that reduces the variance)
    and an entropy bonus, as in Xu et al. (2015), Sec. 4.1. ``semi_sampling_p`` is the share of
    captions trained with the expected context instead of a sample (Xu et al.: 0.5); the
    REINFORCE term covers only the sampled ones. Pass ``optimizer`` to continue a run where an
    earlier call stopped.
    """
    if attention not in ("soft", "hard"):
        raise ValueError(f"attention must be 'soft' or 'hard'; got {attention!r}")
    check_int("epochs", epochs, minimum=1)
    check_int("batch_size", batch_size, minimum=1)
    check_positive("lr", lr)
    for name, value in (("doubly_stochastic", doubly_stochastic), ("reinforce_weight", reinforce_weight),
                        ("entropy_weight", entropy_weight)):
        check_positive(name, value, allow_zero=True)
    check_tensor("images", images, min_rank=4, shape="(N, 3, S, S)")
    check_tensor("tokens", tokens, min_rank=2, floating=False, shape="(N, T)")
    if images.shape[0] != tokens.shape[0]:
        raise ValueError(f"images and tokens need the same number of examples; got {images.shape[0]} "
                         f"and {tokens.shape[0]}")
    g = torch.Generator().manual_seed(seed)
    opt = optimizer if optimizer is not None else torch.optim.Adam(model.parameters(), lr=lr)
    log = TrainLog()
    baseline = None
    n = images.shape[0]
    steps = epochs * -(-n // batch_size)
    bar = tqdm(total=steps, desc=f"training ({attention} attention)", disable=not progress)
    model.train()
    for _ in range(epochs):
        perm = torch.randperm(n, generator=g)
        for i in range(0, n, batch_size):
            idx = perm[i:i + batch_size]
            x, y = images[idx], tokens[idx]
            out = model(x, y, attention=attention, generator=g,
                        semi_sampling_p=semi_sampling_p if attention == "hard" else 0.0)
            targets = y[:, 1:]
            loss = caption_loss(out.logits, targets)
            total = loss
            real = (targets != 0).to(out.weights.dtype)  # (B, T): steps that emit a real word
            if attention == "soft" and doubly_stochastic > 0:
                coverage = (out.weights * real[..., None]).sum(1)  # (B, G): sum_t a_tj
                total = total + doubly_stochastic * ((1 - coverage) ** 2).sum(1).mean() / out.weights.shape[-1]
            if attention == "hard":
                loglik = -caption_loss(out.logits, targets, reduction="sum_per_caption").detach()  # (B,)
                baseline = loglik.mean() if baseline is None else 0.9 * baseline + 0.1 * loglik.mean()
                advantage = loglik - baseline  # (B,)
                sampled = out.sampled.to(real.dtype)[:, None]  # (B, 1): captions that used a sample
                surrogate = (advantage[:, None] * out.log_prob_locations * real * sampled).sum(1).mean()
                bonus = (out.entropy * real).sum(1).mean()
                total = total - reinforce_weight * surrogate / real.sum(1).mean() - entropy_weight * bonus
                log.baseline.append(float(baseline))
            opt.zero_grad()
            total.backward()
            opt.step()
            log.loss.append(loss.item())
            bar.update()
            bar.set_postfix(loss=f"{loss.item():.3f}")
    bar.close()
    model.eval()
    return log


def caption_accuracy(model: ShowAttendTell, images: torch.Tensor, tokens: torch.Tensor, *,
                     attention: str = "soft", batch_size: int = 256) -> tuple[float, float]:
    """Greedy-decoding accuracy: ``(exact caption match, word accuracy)`` against ``tokens: (N, T)``.

    Word accuracy compares position by position over the reference's words and ``<eos>``.
    """
    check_int("batch_size", batch_size, minimum=1)
    check_tensor("images", images, min_rank=4, shape="(N, 3, S, S)")
    check_tensor("tokens", tokens, min_rank=2, floating=False, shape="(N, T)")
    if tokens.dim() != 2 or tokens.shape[0] != images.shape[0] or tokens.shape[0] < 1 or tokens.shape[1] < 2:
        raise ValueError(f"tokens must be (N, T) with T >= 2 (<bos>, words), one caption per image of images: "
                         f"{shape_str(images)}; got shape {shape_str(tokens)}")
    check_index_tensor("tokens", tokens, low=0, high=model.vocab_size, rank=2)
    exact = words = total = 0
    for i in range(0, images.shape[0], batch_size):
        ref = tokens[i:i + batch_size, 1:]  # (B, T - 1): words and <eos>, then padding
        pred, _ = model.generate(images[i:i + batch_size], max_len=ref.shape[1], attention=attention)
        keep = ref != 0
        hit = (pred == ref) | ~keep
        exact += int(hit.all(1).sum())
        words += int(((pred == ref) & keep).sum())
        total += int(keep.sum())
    return exact / images.shape[0], words / total


def attention_on_object(weights: torch.Tensor, centers: torch.Tensor, image_size: int, *,
                        radius: float | None = None) -> torch.Tensor:
    """Share of each attention map that falls within ``radius`` pixels of each object.

    ``weights: (B, T, G)`` on a ``g x g`` grid over an ``image_size`` canvas, ``centers: (B, 2, 2)``
    ``(x, y)`` in pixels -> ``(B, T, 2)``: for every step, the mass on the first and on the
    second object (default radius: a quarter of the canvas).
    """
    check_tensor("weights", weights, min_rank=3, shape="(B, T, G)")
    check_tensor("centers", centers, min_rank=3, shape="(B, 2, 2)")
    if weights.dim() != 3 or centers.shape != (weights.shape[0], 2, 2) or weights.shape[-1] < 1:
        raise ValueError(f"need weights: (B, T, G) and centers: (B, 2, 2) of one B; got weights: "
                         f"{shape_str(weights)}, centers: {shape_str(centers)}")
    check_same_dtype_device(weights=weights, centers=centers.to(weights.dtype))
    check_int("image_size", image_size, minimum=1)
    if radius is not None:
        check_positive("radius", radius)
    G = weights.shape[-1]
    g = round(G**0.5)
    if g * g != G:
        raise ValueError(f"weights' last dimension must be a square grid g*g; got {G}")
    cell = image_size / g
    ys, xs = torch.meshgrid(torch.arange(g, device=weights.device), torch.arange(g, device=weights.device),
                            indexing="ij")
    pos = torch.stack([xs, ys], -1).reshape(G, 2).to(weights.dtype) * cell + (cell - 1) / 2  # (G, 2) pixels
    radius = image_size / 4 if radius is None else radius
    dist = (pos[None, None] - centers[:, :, None, :].to(weights.dtype)).norm(dim=-1)  # (B, 2, G)
    near = (dist <= radius).to(weights.dtype)
    return weights @ near.transpose(1, 2)  # (B, T, G) @ (B, G, 2) -> (B, T, 2)


def upsample_weights(weights: torch.Tensor, image_size: int) -> torch.Tensor:
    """Attention rows ``(..., G)`` on a ``g x g`` grid -> smooth maps ``(..., S, S)`` for overlays."""
    check_tensor("weights", weights, min_rank=1, shape="(..., G)")
    check_int("image_size", image_size, minimum=1)
    if weights.numel() == 0:
        raise ValueError(f"weights is empty; got shape {shape_str(weights)}")
    G = weights.shape[-1]
    g = round(G**0.5)
    if g * g != G:
        raise ValueError(f"weights' last dimension must be a square grid g*g; got {G}")
    lead = weights.shape[:-1]
    maps = weights.reshape(-1, 1, g, g)  # (N, 1, g, g)
    up = F.interpolate(maps, size=(image_size, image_size), mode="bilinear", align_corners=False)
    return up.reshape(*lead, image_size, image_size)
