r"""Top-down feature selection by cognitive feedback: Wang, Zhang, Song and Zhang (NIPS 2014), in miniature.

The *attentional neural network* (aNN) of Wang et al. combines a bottom-up feature extractor
with a top-down *cognitive bias* $b$, a guess of the class. The bias generates a gate
$g \in (0, 1)^K$ over the $K$ hidden features $h = \mathrm{ReLU}(W x)$; the gated features
are decoded back to the input space, $\hat x = W' (g \odot h)$, a "segmentation" that keeps
the part of the input the bias explains; a classifier then reads $\hat x$. At test time the
network guesses, feeds the guess back as the bias, segments the raw input again and decides.

Here the gate is one call of :func:`attnkit.attend`: the bias embedding is the query, one
learned key per hidden feature, a sigmoid normaliser (each feature is kept or dropped on its
own, the weights do not compete) and value $j$ = feature $j$ alone (``diag(h)``), so the
output is $g \odot h$::

    g = sigmoid(e_b @ F.T)   # (B, K): the gate the bias b asks for
    selected = g * h         # (B, K) = attend(e_b, F, diag(h), normalize=sigmoid)

Feedback at test time (our simplification of the paper's iterations): try every hypothesis
$k$, segment with bias $k$, and keep the $k$ whose segmentation best explains the raw input,
$\hat y = \arg\min_k \lVert x - \hat x_k \rVert^2$. (Asking the classifier whether $\hat x_k$
looks like $k$ fails: a segmentation under bias $k$ tends to *hallucinate* $k$, the failure
Wang et al. guard against by re-reading the raw input.)

Shape legend: ``B`` batch, ``D`` input features, ``K`` hidden features, ``C`` classes,
``d`` width of the bias embedding and the feature keys.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from attnkit._checks import (
    check_index_tensor,
    check_int,
    check_module_input,
    check_positive,
    check_probability,
    check_sizes,
    check_values,
)
from attnkit.core import attend


@dataclass
class FeedbackData:
    """``x: (N, D)`` inputs, ``clean: (N, D)`` the target pattern alone, ``y: (N,)`` labels,
    ``distractor: (N,)`` the overlaid class, ``prototypes: (C, D)`` the class patterns and
    ``contrast``, the distractor's strength."""

    x: torch.Tensor
    clean: torch.Tensor
    y: torch.Tensor
    distractor: torch.Tensor
    prototypes: torch.Tensor
    contrast: float

    def target(self, idx: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """What a segmentation under ``bias`` should return for examples ``idx``: ``(B, D)``.

        The target pattern for its own class, the distractor (at its contrast) for the
        distractor's class, nothing for a class that is not there.
        """
        y, d = self.y[idx], self.distractor[idx]
        out = torch.zeros(len(idx), self.x.shape[1])
        out[bias == y] = self.clean[idx][bias == y]
        out[bias == d] = self.contrast * self.prototypes[d[bias == d]]
        return out


def feedback_task(n: int, *, features: int = 64, classes: int = 10, active: int = 12, contrast: float = 0.8,
                  noise: float = 0.3, seed: int = 0, task_seed: int = 0) -> FeedbackData:
    """Overlaid patterns: the target class's binary pattern plus a weaker distractor plus noise.

    Each of ``classes`` prototypes switches on ``active`` of ``features`` inputs (fixed by
    ``task_seed``); an example is ``p_y + contrast * p_d + noise * N(0, 1)`` with a distractor
    class ``d != y`` (examples drawn with ``seed``), the label is ``y``: a small stand-in for
    Wang et al.'s digits on cluttered backgrounds and overlaid digits.
    """
    check_int("n", n, minimum=1)
    check_sizes(features=features, classes=classes, active=active)
    if classes < 2 or active > features:
        raise ValueError(f"need classes >= 2 and active <= features; got classes={classes}, active={active}, "
                         f"features={features}")
    check_probability("contrast", contrast)
    check_positive("noise", noise, allow_zero=True)
    gt = torch.Generator().manual_seed(task_seed)
    protos = torch.zeros(classes, features)
    for c in range(classes):
        protos[c, torch.randperm(features, generator=gt)[:active]] = 1.0  # (C, D)
    g = torch.Generator().manual_seed(10_000 + seed)
    y = torch.randint(classes, (n,), generator=g)
    d = (y + torch.randint(1, classes, (n,), generator=g)) % classes  # a distractor class != y
    clean = protos[y]  # (N, D)
    x = clean + contrast * protos[d] + noise * torch.randn(n, features, generator=g)
    return FeedbackData(x, clean, y, d, protos, float(contrast))


def _sigmoid_gate(scores: torch.Tensor, mask: torch.Tensor | None, dim: int) -> torch.Tensor:
    """A normaliser for ``attend``: each weight ``sigmoid(s_j)`` on its own (masked: 0)."""
    w = torch.sigmoid(scores)
    return w if mask is None else w.masked_fill(~mask, 0.0) if mask.dtype == torch.bool else w


class FeedbackClassifier(nn.Module):
    """Bottom-up features, a top-down gate from a class hypothesis, a decoder and a classifier.

    Args:
        features: ``D``. classes: ``C``. hidden: ``K`` features the gate selects from.
        embed: ``d``. classifier_hidden: width of the classifier's hidden layer.
    """

    def __init__(self, features: int = 64, classes: int = 10, *, hidden: int = 64, embed: int = 16,
                 classifier_hidden: int = 64) -> None:
        super().__init__()
        check_sizes(features=features, classes=classes, hidden=hidden, embed=embed,
                    classifier_hidden=classifier_hidden)
        self.encoder = nn.Linear(features, hidden)
        self.decoder = nn.Linear(hidden, features)
        self.bias_embed = nn.Embedding(classes, embed)  # e_b: the cognitive bias as a query
        self.keys = nn.Parameter(torch.randn(hidden, embed) / embed**0.5)  # F: one key per feature (K, d)
        self.classifier = nn.Sequential(nn.Linear(features, classifier_hidden), nn.ReLU(),
                                        nn.Linear(classifier_hidden, classes))
        self.classes = classes

    def gate(self, x: torch.Tensor, bias: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x: (B, D)``, ``bias: (B,)`` class ids -> selected features ``g * h (B, K)``, gate ``g (B, K)``."""
        check_module_input("x", x, self.encoder.weight, rank=2, width=self.encoder.in_features, shape="(B, D)")
        check_values("x", x)
        check_index_tensor("bias", bias, low=0, high=self.classes, rank=1)
        if bias.shape[0] != x.shape[0] or bias.device != x.device:
            raise ValueError(f"bias needs one class id per row of x, on x's device; got bias: {tuple(bias.shape)} "
                             f"on {bias.device}, x: {tuple(x.shape)} on {x.device}")
        h = torch.relu(self.encoder(x))  # bottom-up features h: (B, K)
        q = self.bias_embed(bias)[:, None, :]  # (B, 1, d)
        # g_j = sigmoid(e_b . F_j); selected = sum_j g_j (h_j e_j) = g * h
        sel, g = attend(q, self.keys, torch.diag_embed(h), score="dot", normalize=_sigmoid_gate)  # (B, 1, K) x2
        return sel[:, 0], g[:, 0]

    def segment(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """The input as the bias explains it: ``x_hat = W' (g * h)``, ``(B, D)``."""
        return self.decoder(self.gate(x, bias)[0])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Feedback decision scores ``(B, C)``: ``-||x - segment(x, k)||^2`` for every hypothesis ``k``."""
        check_module_input("x", x, self.encoder.weight, rank=2, width=self.encoder.in_features, shape="(B, D)")
        B = x.shape[0]
        ks = torch.arange(self.classes).repeat(B)  # every hypothesis for every example: (B C,)
        x_hat = self.segment(x.repeat_interleave(self.classes, 0), ks).view(B, self.classes, x.shape[1])  # (B, C, D)
        return -((x[:, None, :] - x_hat) ** 2).sum(-1)  # (B, C): how well bias k explains x

    def feedforward(self, x: torch.Tensor) -> torch.Tensor:
        """The bottom-up guess alone: the classifier on the raw input, logits ``(B, C)``."""
        return self.classifier(x)


def mlp_baseline(features: int = 64, classes: int = 10, hidden: int = 128) -> nn.Sequential:
    """A plain two-layer MLP on the raw input (the baseline the feedback has to beat)."""
    check_sizes(features=features, classes=classes, hidden=hidden)
    return nn.Sequential(nn.Linear(features, hidden), nn.ReLU(), nn.Linear(hidden, classes))


def train_feedback(model: nn.Module, data: FeedbackData, *, epochs: int = 12, batch_size: int = 128,
                   lr: float = 5e-3, seed: int = 0) -> list[float]:
    """Adam; returns the mean loss per epoch.

    A :class:`FeedbackClassifier` minimises the cross-entropy of its classifier on the raw input
    plus the squared error of two segmentations, under the true bias (target: the clean
    pattern) and under a random bias (the true class, the distractor's or another, each a third
    of the time; target: :meth:`FeedbackData.target`). Joint training; Wang et al. train in two
    steps. Any other module is trained as a classifier of the raw input.
    """
    check_int("epochs", epochs, minimum=1)
    check_int("batch_size", batch_size, minimum=1)
    check_positive("lr", lr)
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    ce = nn.functional.cross_entropy
    history = []
    model.train()
    for _ in range(epochs):
        perm = torch.randperm(len(data.y), generator=g)
        total = 0.0
        for i in range(0, len(perm), batch_size):
            idx = perm[i:i + batch_size]
            x, y, clean = data.x[idx], data.y[idx], data.clean[idx]
            if isinstance(model, FeedbackClassifier):
                mse = nn.functional.mse_loss
                other = torch.randint(model.classes, (len(idx),), generator=g)
                pick = torch.randint(3, (len(idx),), generator=g)  # 0: true class, 1: distractor, 2: any
                bias = torch.where(pick == 0, y, torch.where(pick == 1, data.distractor[idx], other))
                loss = ce(model.feedforward(x), y) + mse(model.segment(x, y), clean) \
                    + mse(model.segment(x, bias), data.target(idx, bias))
            else:
                loss = ce(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        history.append(total / len(perm))
    model.eval()
    return history


@torch.no_grad()
def feedback_accuracy(model: nn.Module, data: FeedbackData, *, feedback: bool = True) -> float:
    """Accuracy on ``data``; ``feedback=False`` uses a :class:`FeedbackClassifier`'s bottom-up guess only."""
    if isinstance(model, FeedbackClassifier) and not feedback:
        scores = model.feedforward(data.x)
    else:
        scores = model(data.x)
    return (scores.argmax(-1) == data.y).float().mean().item()


def feedback_run(*, seed: int = 0, n_train: int = 2000, n_test: int = 1000, epochs: int = 12) -> dict[str, object]:
    """Train the feedback classifier and a same-size MLP on the task of ``seed``; held-out accuracies.

    Returns ``{"accuracy": {name: float}, "parameters": {name: int}, "models": {name: module},
    "train": FeedbackData, "test": FeedbackData}``.
    """
    train, test = feedback_task(n_train, seed=seed), feedback_task(n_test, seed=1000 + seed)
    torch.manual_seed(seed)
    fb = FeedbackClassifier()
    train_feedback(fb, train, epochs=epochs, seed=seed)
    n_fb = sum(p.numel() for p in fb.parameters())
    torch.manual_seed(seed)
    mlp = mlp_baseline(hidden=(n_fb - 10) // 75)  # about as many parameters as the feedback model
    train_feedback(mlp, train, epochs=epochs, seed=seed)
    acc = {"feedback (Wang et al. 2014)": feedback_accuracy(fb, test),
           "its feed-forward half (no feedback)": feedback_accuracy(fb, test, feedback=False),
           "MLP, same parameter count": feedback_accuracy(mlp, test)}
    params = {"feedback (Wang et al. 2014)": n_fb, "its feed-forward half (no feedback)": n_fb,
              "MLP, same parameter count": sum(p.numel() for p in mlp.parameters())}
    return {"accuracy": acc, "parameters": params, "models": {"feedback": fb, "mlp": mlp}, "train": train,
            "test": test}


__all__ = ["FeedbackClassifier", "FeedbackData", "feedback_accuracy", "feedback_run", "feedback_task",
           "mlp_baseline", "train_feedback"]
