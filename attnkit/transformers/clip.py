r"""CLIP in miniature (Radford et al., 2021): contrastive image-text training and zero-shot matching.

Two encoders map a batch of $B$ images and their $B$ captions to unit vectors $u_i$ and $t_j$.
The similarity matrix $S_{ij} = u_i^\top t_j / \tau$ is scored like attention, and the
symmetric InfoNCE loss asks each image to pick out its own caption among the $B$ (a softmax
over the row) and each caption its own image (a softmax over the column):

.. math::

    \mathcal{L} = \tfrac12 \Big( -\tfrac1B \sum_i \log \operatorname{softmax}_j(S_{ij})_{j=i}
    -\tfrac1B \sum_j \log \operatorname{softmax}_i(S_{ij})_{i=j} \Big).

The row softmax is the weight matrix of ``attend(u, t, v, score="cosine", temperature=tau)``:
an image *attends* over captions. **Zero-shot** classification writes one caption per class
("a ring in the top left") and takes the caption an image attends to most: no classifier
was trained for those classes.

**The loss floor.** With few distinct captions a batch holds several pairs with the same
caption; CLIP's loss counts the other copies as negatives. Identical captions have identical
embeddings, so the image-to-caption half of the loss cannot go below the mean of
$\log n_i$, $n_i$ the number of pairs in the batch with pair $i$'s caption
(``info_nce_floor``); at the optimum where the images of a caption share one embedding the
caption-to-image half sits there too.

**Prompt ensembles** (CLIP's way): a class gets several captions; their unit text embeddings
are averaged and re-normalised into one class embedding (``prompt_ensemble``), which the images
then attend to.

Captions here are three tokens, ``(shape, vertical, horizontal)``, e.g. ``ring top left``.
The text encoder (a mean of token and position embeddings, then a linear map) is *linear*
in the word vectors: ``text(ring, bottom, left) = text(ring, top, left) + text(cross,
bottom, left) - text(cross, top, left)`` before normalisation.
Shapes: ``B`` batch, ``D`` embedding width, ``K`` candidate captions, ``T = 3`` tokens.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from attnkit._checks import (
    arg_name,
    argument_names,
    check_ids,
    check_index_tensor,
    check_int,
    check_module_input,
    check_positive,
    check_positive_scalar,
    check_sizes,
    check_tensor,
    check_values,
    shape_str,
)
from attnkit.core import attend
from attnkit.datasets.patterns import QUADRANTS, SHAPES
from attnkit.transformers._train import minibatch_adam, minibatches

VOCAB = (*SHAPES, "top", "bottom", "left", "right")
"""The caption vocabulary: the four shape names and the four position words."""


def caption_tokens(shape: torch.Tensor, quadrant: torch.Tensor) -> torch.Tensor:
    """Token ids ``(B, 3)`` of the captions ``"<shape> <top|bottom> <left|right>"``.

    ``shape: (B,)`` integers in ``[0, 4)`` (an index into ``SHAPES``), ``quadrant: (B,)`` integers in
    ``[0, 4)`` (0 top left, 1 top right, 2 bottom left, 3 bottom right).
    """
    check_index_tensor("shape", shape, low=0, high=len(SHAPES))
    check_index_tensor("quadrant", quadrant, low=0, high=len(QUADRANTS))
    if shape.shape != quadrant.shape or shape.dim() != 1:
        raise ValueError(f"shape and quadrant must be 1-D of one length; got {shape_str(shape)} "
                         f"and {shape_str(quadrant)}")
    vertical = len(SHAPES) + quadrant // 2  # "top" or "bottom"
    horizontal = len(SHAPES) + 2 + quadrant % 2  # "left" or "right"
    return torch.stack([shape, vertical, horizontal], dim=-1)  # (B, 3)


def caption_text(tokens: torch.Tensor) -> list[str]:
    """The words of token ids ``(B, T)``."""
    check_ids("tokens", tokens, len(VOCAB), rank=2, shape="(B, T)")
    return [" ".join(VOCAB[int(t)] for t in row) for row in tokens]


def all_captions() -> tuple[torch.Tensor, list[str]]:
    """Every caption (16 = 4 shapes x 4 quadrants), class ``c = 4 * shape + quadrant``: ``(16, 3)`` and words."""
    shape = torch.arange(len(SHAPES)).repeat_interleave(len(QUADRANTS))
    quad = torch.arange(len(QUADRANTS)).repeat(len(SHAPES))
    tokens = caption_tokens(shape, quad)
    return tokens, caption_text(tokens)


class ImageEncoder(nn.Module):
    """Two strided 3x3 convolutions and a linear map: ``(B, 1, 16, 16)`` -> ``(B, D)``."""

    def __init__(self, dim: int = 32, image_size: int = 16, width: int = 16) -> None:
        super().__init__()
        check_sizes(dim=dim, image_size=image_size, width=width)
        if image_size % 4:
            raise ValueError(f"image_size must be a multiple of 4 (two stride-2 convolutions); got {image_size}")
        self.image_size = image_size
        self.net = nn.Sequential(nn.Conv2d(1, width, 3, stride=2, padding=1), nn.ReLU(),
                                 nn.Conv2d(width, width, 3, stride=2, padding=1), nn.ReLU(), nn.Flatten(),
                                 nn.Linear(width * (image_size // 4) ** 2, dim))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        S = self.image_size
        check_module_input(arg_name("images"), images, self.net[0].weight, rank=4, shape=f"(B, 1, {S}, {S})")
        if images.shape[1:] != (1, S, S):
            raise ValueError(f"{arg_name('images')} must be (B, 1, {S}, {S}); got shape {shape_str(images)}")
        return self.net(images)


class TextEncoder(nn.Module):
    """Token embeddings plus a position embedding, averaged, then a linear map: ``(B, T)`` -> ``(B, D)``."""

    def __init__(self, dim: int = 32, vocab: int = len(VOCAB), length: int = 3) -> None:
        super().__init__()
        check_sizes(dim=dim, vocab=vocab, length=length)
        self.tok = nn.Embedding(vocab, dim)
        self.pos = nn.Parameter(torch.zeros(length, dim))
        self.proj = nn.Linear(dim, dim)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        name, T = arg_name("tokens"), self.pos.shape[0]
        if isinstance(tokens, torch.Tensor) and tokens.dtype != torch.long:
            raise TypeError(f"{name} must be int64 ids (B, T); got dtype {tokens.dtype}, shape {shape_str(tokens)}")
        check_ids(name, tokens, self.tok.num_embeddings, rank=2, device=self.pos.device, shape=f"(B, {T})")
        if tokens.shape[1] != T:
            raise ValueError(f"{name} must be (B, {T}), one id per caption position; got shape {shape_str(tokens)}")
        return self.proj((self.tok(tokens) + self.pos).mean(1))  # (B, D)


class TinyCLIP(nn.Module):
    """An image encoder, a text encoder and a learned temperature ``tau = exp(-log_scale)``."""

    def __init__(self, dim: int = 32) -> None:
        super().__init__()
        check_sizes(dim=dim)
        self.image, self.text = ImageEncoder(dim), TextEncoder(dim)
        self.log_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))  # CLIP's initial 1 / tau

    @property
    def temperature(self) -> float:
        return math.exp(-self.log_scale.clamp(max=math.log(100)).item())

    def forward(self, images: torch.Tensor, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Unit embeddings ``(B, D)`` of the images and of the captions."""
        return F.normalize(self.image(images), dim=-1), F.normalize(self.text(tokens), dim=-1)


def similarity(image_emb: torch.Tensor, text_emb: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """The logits ``S = cos(u_i, t_j) / tau``: ``(B, D), (K, D) -> (B, K)``."""
    check_tensor("image_emb", image_emb, min_rank=2, shape="(B, D)")
    check_tensor("text_emb", text_emb, min_rank=2, shape="(K, D)")
    if image_emb.dim() != 2 or text_emb.dim() != 2 or image_emb.shape[-1] != text_emb.shape[-1]:
        raise ValueError(f"image_emb and text_emb need the same width D; got {shape_str(image_emb)} "
                         f"and {shape_str(text_emb)}")
    check_positive("temperature", temperature)
    return F.normalize(image_emb, dim=-1) @ F.normalize(text_emb, dim=-1).T / temperature  # (B, K)


def info_nce(image_emb: torch.Tensor, text_emb: torch.Tensor, temperature: float | torch.Tensor, *,
             halves: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Symmetric InfoNCE loss of matched pairs ``(B, D), (B, D)`` (pair ``i`` is row ``i`` of both).

    Equivalent to::

        S = normalize(u) @ normalize(t).T / tau                      # (B, B)
        loss = (cross_entropy(S, arange(B)) + cross_entropy(S.T, arange(B))) / 2

    ``halves=True`` returns the two halves ``(image -> caption, caption -> image)`` instead.
    """
    check_tensor("image_emb", image_emb, min_rank=2, shape="(B, D)")
    check_tensor("text_emb", text_emb, min_rank=2, shape="(B, D)")
    if image_emb.shape != text_emb.shape or image_emb.dim() != 2:
        raise ValueError(f"image_emb and text_emb must be matched pairs (B, D) of one shape; got "
                         f"{shape_str(image_emb)} and {shape_str(text_emb)}")
    temperature = check_positive_scalar("temperature", temperature)
    # S_ij = cos(u_i, t_j) / tau
    logits = F.normalize(image_emb, dim=-1) @ F.normalize(text_emb, dim=-1).T / temperature  # (B, B)
    target = torch.arange(len(logits), device=logits.device)
    # images pick their caption (rows), captions pick their image (columns)
    i2t, t2i = F.cross_entropy(logits, target), F.cross_entropy(logits.T, target)
    return (i2t, t2i) if halves else 0.5 * (i2t + t2i)


def info_nce_floor(classes: torch.Tensor) -> float:
    r"""The lowest image-to-caption InfoNCE of a batch whose captions are ``classes (B,)``: mean of $\log n_i$.

    $n_i$ counts the pairs of the batch with pair $i$'s caption (itself included): the
    copies get the same caption embedding, so the softmax over the row can at best split its
    weight equally among them. 0 when every caption is distinct.
    """
    if not isinstance(classes, torch.Tensor) or classes.dim() != 1 or classes.is_floating_point():
        raise TypeError(f"classes must be a 1-D integer tensor of caption ids (B,); got {classes!r:.60}")
    check_values("classes", classes)
    if classes.numel() == 0:
        raise ValueError("classes is empty: a batch needs at least one caption")
    counts = (classes[:, None] == classes[None, :]).sum(-1)  # (B,): n_i
    return float(counts.double().log().mean())


def training_floors(classes: torch.Tensor, *, epochs: int, batch_size: int, seed: int) -> list[float]:
    """``info_nce_floor`` of every batch ``train_clip`` draws with the same arguments (same order)."""
    if not isinstance(classes, torch.Tensor) or classes.dim() != 1 or classes.numel() == 0:
        raise ValueError("classes must be a non-empty 1-D tensor of caption ids")
    check_int("epochs", epochs, minimum=1)
    check_int("batch_size", batch_size, minimum=1)
    return [info_nce_floor(classes[idx]) for idx in minibatches(len(classes), batch_size, epochs, seed)]


def prompt_ensemble(model: TinyCLIP, prompts: torch.Tensor) -> torch.Tensor:
    """CLIP's prompt ensemble: ``prompts (K, P, T)`` token ids -> unit class embeddings ``(K, D)``.

    Equivalent to ``normalize(normalize(text(prompts[c])).mean(0))`` for each class ``c``:
    the average of the ``P`` unit caption embeddings, re-normalised.
    """
    if not isinstance(prompts, torch.Tensor) or prompts.dim() != 3:
        raise ValueError(f"prompts must be token ids (K classes, P prompts, T tokens); got {prompts!r:.60}")
    K, P, T = prompts.shape
    if prompts.numel() == 0:
        raise ValueError(f"prompts must hold at least one prompt of one token per class; got shape "
                         f"{tuple(prompts.shape)}")
    with torch.no_grad(), argument_names(tokens="prompts"):
        t = F.normalize(model.text(prompts.reshape(K * P, T)), dim=-1).reshape(K, P, -1)  # (K, P, D)
    return F.normalize(t.mean(1), dim=-1)  # (K, D)


def zero_shot(model: TinyCLIP, images: torch.Tensor, class_tokens: torch.Tensor | None = None, *,
              class_embeddings: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero-shot class probabilities ``(B, K)`` and predictions ``(B,)``: images attend over classes.

    Equivalent to ``softmax(cos(u_i, t_k) / tau)`` over the ``K`` classes, where ``t_k`` is the
    text embedding of caption ``class_tokens[k]`` (``(K, T)``) or the given
    ``class_embeddings[k]`` (``(K, D)``, e.g. from ``prompt_ensemble``); computed as
    ``attend(u, t, eye(K), score="cosine", temperature=tau)``, whose weights are the probabilities.
    """
    if (class_tokens is None) == (class_embeddings is None):
        raise ValueError("give exactly one of class_tokens (K, T) and class_embeddings (K, D)")
    if isinstance(class_tokens, torch.Tensor) and len(class_tokens) == 0:
        raise ValueError(f"class_tokens must hold at least one class caption; got shape {shape_str(class_tokens)}")
    with torch.no_grad(), argument_names(tokens="class_tokens"):
        u = model.image(images)  # (B, D)
        t = model.text(class_tokens) if class_tokens is not None else class_embeddings  # (K, D)
        onehot = torch.eye(len(t), dtype=u.dtype, device=u.device)  # (K, K): values = class indicators
        probs, _ = attend(u, t, onehot, score="cosine", temperature=model.temperature)  # (B, K)
    return probs, probs.argmax(-1)


def train_clip(model: TinyCLIP, images: torch.Tensor, tokens: torch.Tensor, *, epochs: int = 5,
               batch_size: int = 64, lr: float = 3e-3, seed: int = 0, progress: bool = True) -> list[float]:
    """Contrastive training on matched ``(images, tokens)`` pairs; returns the loss of every step."""
    check_tensor("images", images, min_rank=1)
    check_tensor("tokens", tokens, floating=False)
    if len(images) != len(tokens):
        raise ValueError(f"images and tokens must pair up; got {len(images)} images and {len(tokens)} captions")

    def batch_loss(idx: torch.Tensor) -> torch.Tensor:
        u, t = model(images[idx], tokens[idx])
        return info_nce(u, t, torch.exp(-model.log_scale.clamp(max=math.log(100))))

    return minibatch_adam(model, len(images), batch_loss, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed,
                          progress=progress, desc="TinyCLIP")
