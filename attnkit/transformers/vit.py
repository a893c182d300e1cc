r"""A tiny Vision Transformer (Dosovitskiy et al., 2021) and attention rollout (Abnar & Zuidema, 2020).

An image is cut into $P \times P$ patches, each flattened and projected to a token; a learned
``[CLS]`` token and learned position embeddings are added, and a stack of pre-norm Transformer
blocks (self-attention through ``attnkit.mha.MultiHeadAttention``, i.e. ``attend``) mixes
the tokens. The class is read from the ``[CLS]`` token.

**Attention rollout** estimates how much each input token flows into each output token through
all the layers: average the heads, add the identity for the residual path, renormalise the rows,
and multiply the layers' matrices:

.. math::

    \tilde A_\ell = \tfrac12 (\bar A_\ell + I), \qquad R = \tilde A_L \cdots \tilde A_1 .

Row 0 of ``R``
(the ``[CLS]`` token) over the patch tokens is a saliency map of the image.

Shapes: ``B`` batch, ``C`` channels, ``H x W`` image, ``P`` patch side, ``Np = HW / P^2``
patches, ``L = Np + 1`` tokens, ``E`` width, ``Hh`` heads.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from attnkit._checks import (
    argument_names,
    check_index_tensor,
    check_module_input,
    check_sizes,
    check_tensor,
    shape_str,
)
from attnkit.mha import MultiHeadAttention
from attnkit.transformers._train import minibatch_adam


def patchify(images: torch.Tensor, patch: int) -> torch.Tensor:
    """``(B, C, H, W)`` -> ``(B, Np, C P P)``: non-overlapping patches in row-major order."""
    check_tensor("images", images, min_rank=4, shape="(B, C, H, W)")
    if images.dim() != 4:
        raise ValueError(f"images must be (B, C, H, W); got shape {shape_str(images)}")
    B, C, H, W = images.shape
    if isinstance(patch, bool) or not isinstance(patch, int) or patch < 1 or H % patch or W % patch:
        raise ValueError(f"patch must be a positive int dividing H={H} and W={W}; got {patch!r}")
    x = images.reshape(B, C, H // patch, patch, W // patch, patch)  # (B, C, H/P, P, W/P, P)
    x = x.permute(0, 2, 4, 1, 3, 5)  # (B, H/P, W/P, C, P, P)
    return x.reshape(B, (H // patch) * (W // patch), C * patch * patch)  # (B, Np, C P P)


class PatchEmbedding(nn.Module):
    """Patches -> tokens: ``(B, C, H, W)`` -> ``(B, 1 + Np, E)`` with ``[CLS]`` first and positions added."""

    def __init__(self, image_size: int, patch: int, channels: int, dim: int) -> None:
        super().__init__()
        check_sizes(image_size=image_size, patch=patch, channels=channels, dim=dim)
        if image_size % patch:
            raise ValueError(f"patch={patch} must divide image_size={image_size}")
        self.image_size, self.channels = image_size, channels
        self.patch, self.n_patches = patch, (image_size // patch) ** 2
        self.proj = nn.Linear(channels * patch * patch, dim)
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos = nn.Parameter(0.02 * torch.randn(1, 1 + self.n_patches, dim))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        S, C = self.image_size, self.channels
        check_module_input("images", images, self.proj.weight, rank=4, shape=f"(B, {C}, {S}, {S})")
        if images.shape[1:] != (C, S, S):
            raise ValueError(f"images must be (B, {C}, {S}, {S}); got shape {shape_str(images)}")
        tokens = self.proj(patchify(images, self.patch))  # (B, Np, E)
        if tokens.shape[1] != self.n_patches:
            raise ValueError(f"expected {self.n_patches} patches; got images of shape {shape_str(images)}")
        cls = self.cls.expand(tokens.shape[0], -1, -1)  # (B, 1, E)
        return torch.cat([cls, tokens], dim=1) + self.pos  # (B, L, E)


class Block(nn.Module):
    """Pre-norm Transformer block: ``x + MHA(LN(x))`` then ``x + MLP(LN(x))``; keeps its weights."""

    def __init__(self, dim: int, heads: int, mlp_ratio: int = 2) -> None:
        super().__init__()
        check_sizes(dim=dim, heads=heads, mlp_ratio=mlp_ratio)
        self.ln1, self.ln2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = MultiHeadAttention(dim, heads)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_ratio * dim), nn.GELU(), nn.Linear(mlp_ratio * dim, dim))
        self.last_weights: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_module_input("x", x, self.ln1.weight, rank=3, shape=f"(B, L, {self.ln1.normalized_shape[0]})")
        if x.shape[-1] != self.ln1.normalized_shape[0]:
            raise ValueError(f"x must be (B, L, {self.ln1.normalized_shape[0]}); got shape {shape_str(x)}")
        with argument_names(query="x", key="x", value="x"):
            a, w = self.attn(self.ln1(x))  # (B, L, E), (B, Hh, L, L)
        self.last_weights = w.detach()
        x = x + a
        return x + self.mlp(self.ln2(x))


class TinyViT(nn.Module):
    """A Vision Transformer small enough to train on a CPU in seconds.

    ``forward(images (B, C, H, W)) -> logits (B, classes)``; after a forward pass
    ``attentions`` returns each layer's weights ``(B, Hh, L, L)``.
    """

    def __init__(self, image_size: int = 16, patch: int = 4, channels: int = 1, dim: int = 32, depth: int = 2,
                 heads: int = 2, classes: int = 4) -> None:
        super().__init__()
        check_sizes(depth=depth, heads=heads, classes=classes)
        self.embed = PatchEmbedding(image_size, patch, channels, dim)
        self.blocks = nn.ModuleList(Block(dim, heads) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.embed(images)  # (B, L, E)
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x[:, 0]))  # the [CLS] token -> (B, classes)

    def attentions(self) -> list[torch.Tensor]:
        """The last forward pass's weights, one ``(B, Hh, L, L)`` tensor per layer."""
        if any(b.last_weights is None for b in self.blocks):
            raise RuntimeError("run the model on some images before asking for its attention weights")
        return [b.last_weights for b in self.blocks]


def attention_rollout(attentions: list[torch.Tensor], *, residual: bool = True) -> torch.Tensor:
    r"""Attention rollout: ``[(B, Hh, L, L)] * layers`` -> ``(B, L, L)``.

    Equivalent to::

        R = I
        for A in attentions:                         # first layer first
            A = A.mean(1)                            # average the heads: (B, L, L)
            A = 0.5 * (A + I)                        # the residual connection
            A = A / A.sum(-1, keepdim=True)          # rows sum to 1 again
            R = A @ R                                # flow from the inputs to this layer
    """
    if not attentions:
        raise ValueError("attentions is empty: pass one (B, Hh, L, L) tensor per layer")
    R = None
    for i, A in enumerate(attentions):
        check_tensor(f"attentions[{i}]", A, min_rank=4, shape="(B, Hh, L, L)")
        if A.dim() != 4 or A.shape[-1] != A.shape[-2] or A.shape[1] < 1:
            raise ValueError(f"attentions[{i}] must be (B, Hh, L, L) with Hh >= 1; got shape {shape_str(A)}")
        A = A.mean(1)  # (B, L, L)
        if residual:
            eye = torch.eye(A.shape[-1], dtype=A.dtype, device=A.device)
            A = 0.5 * (A + eye)  # half the signal takes the skip connection
            A = A / A.sum(-1, keepdim=True)
        if R is not None and R.shape != A.shape:
            raise ValueError(f"attentions[{i}] has shape {shape_str(A)} after head averaging; "
                             f"expected {tuple(R.shape)}")
        R = A if R is None else A @ R  # (B, L, L)
    return R


def cls_rollout_map(model: TinyViT, images: torch.Tensor) -> torch.Tensor:
    """Rollout of the ``[CLS]`` token over the patches, as maps ``(B, H/P, W/P)`` summing to at most 1."""
    with torch.no_grad():
        model(images)
    R = attention_rollout(model.attentions())  # (B, L, L)
    side = round(model.embed.n_patches**0.5)
    return R[:, 0, 1:].reshape(-1, side, side)  # (B, H/P, W/P)


def _check_labelled(images: object, labels: object) -> None:
    check_tensor("images", images, min_rank=2)
    check_index_tensor("labels", labels, low=0, high=2**62, rank=1)
    if labels.shape != images.shape[:1] or labels.device != images.device:
        raise ValueError(f"labels must be (n,) = ({images.shape[0]},) on {images.device}, one per image of images: "
                         f"{shape_str(images)} on {images.device}; got shape {shape_str(labels)} on {labels.device}")
    if len(images) == 0:
        raise ValueError("images is empty: there is nothing to classify")


def train_classifier(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, *, epochs: int = 5,
                     batch_size: int = 64, lr: float = 3e-3, seed: int = 0, progress: bool = True) -> list[float]:
    """Mini-batch Adam on the cross-entropy; returns the loss of every step."""
    _check_labelled(images, labels)

    def batch_loss(idx: torch.Tensor) -> torch.Tensor:
        logits = model(images[idx])
        if int(labels.max()) >= logits.shape[-1]:
            raise ValueError(f"labels must be class ids below the model's {logits.shape[-1]} classes; got "
                             f"max {int(labels.max())}")
        return F.cross_entropy(logits, labels[idx])

    return minibatch_adam(model, len(images), batch_loss,
                          epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, progress=progress,
                          desc=type(model).__name__)


def accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Fraction of ``images`` whose arg-max logit is the label."""
    _check_labelled(images, labels)
    with torch.no_grad():
        logits = model(images)
        if int(labels.max()) >= logits.shape[-1]:
            raise ValueError(f"labels must be class ids below the model's {logits.shape[-1]} classes; got "
                             f"max {int(labels.max())}")
        return (logits.argmax(-1) == labels).float().mean().item()
