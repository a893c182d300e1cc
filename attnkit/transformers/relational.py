r"""Relation networks (Santoro et al., 2017) and two baselines, for scenes of objects.

A relation network scores **every pair** of objects with one shared network $g$, sums, and
reads out with $f$:

$$
\mathrm{RN}(O, q) = f\Big(\sum_{i,j} g(o_i, o_j, q)\Big).
$$

Self-attention also looks at every pair, but it *weights* the pairs (a softmax over $j$ of
$q_i^\top k_j$) and mixes values; a relation network gives every pair the same weight and
lets $g$ compute an arbitrary function of the pair. ``AttentionReasoner`` is the
attention alternative (a Transformer encoder over the objects and a question token),
``MLPReasoner`` the pair-blind baseline.

Shapes: ``B`` batch, ``N`` objects, ``Do`` object features, ``Dq`` question features,
``A`` answers.
"""

from __future__ import annotations

import torch
from torch import nn

from attnkit._checks import (
    check_int,
    check_module_input,
    check_same_device,
    check_same_dtype_device,
    check_sizes,
    check_tensor,
    shape_str,
)
from attnkit.datasets.sequences import relational_task
from attnkit.transformers.blocks import TransformerEncoder, train_steps


def _mlp(d_in: int, hidden: int, d_out: int, layers: int = 2) -> nn.Sequential:
    mods: list[nn.Module] = []
    for i in range(layers):
        mods += [nn.Linear(d_in if i == 0 else hidden, hidden), nn.ReLU()]
    return nn.Sequential(*mods, nn.Linear(hidden, d_out))


def _check_scene(objects: object, questions: object, d_obj: int, d_question: int,
                 weight: torch.Tensor | None = None) -> None:
    check_tensor("objects", objects, min_rank=3, shape=f"(B, N, {d_obj})")
    check_tensor("questions", questions, min_rank=2, shape=f"(B, {d_question})")
    if objects.dim() != 3 or objects.shape[-1] != d_obj:
        raise ValueError(f"objects must be (B, N, {d_obj}); got shape {shape_str(objects)}")
    if questions.dim() != 2 or questions.shape != (objects.shape[0], d_question):
        raise ValueError(f"questions must be (B, Dq) = ({objects.shape[0]}, {d_question}); got shape "
                         f"{shape_str(questions)} (B from objects: {shape_str(objects)})")
    check_same_dtype_device(objects=objects, questions=questions)
    if weight is not None:
        check_module_input("objects", objects, weight, rank=3)


def object_pairs(objects: torch.Tensor, questions: torch.Tensor) -> torch.Tensor:
    """All ordered pairs with the question: ``(B, N, N, 2 Do + Dq)``, entry ``[b, i, j] = [o_i, o_j, q]``.

    Equivalent to ``torch.stack([torch.stack([torch.cat([o[i], o[j], q]) for j in range(N)])
    for i in range(N)])`` for each scene.
    """
    check_tensor("objects", objects, min_rank=3, shape="(B, N, Do)")
    check_tensor("questions", questions, min_rank=2, shape="(B, Dq)")
    if objects.dim() != 3 or questions.dim() != 2 or questions.shape[0] != objects.shape[0]:
        raise ValueError(f"need objects: (B, N, Do) and questions: (B, Dq); got objects: {shape_str(objects)}, "
                         f"questions: {shape_str(questions)}")
    check_same_device(objects=objects, questions=questions)
    B, N, Do = objects.shape
    oi = objects[:, :, None, :].expand(B, N, N, Do)  # (B, N, N, Do): o_i along rows
    oj = objects[:, None, :, :].expand(B, N, N, Do)  # (B, N, N, Do): o_j along columns
    q = questions[:, None, None, :].expand(B, N, N, questions.shape[-1])  # (B, N, N, Dq)
    return torch.cat([oi, oj, q], dim=-1)


class RelationNetwork(nn.Module):
    r"""$f(\sum_{i,j} g(o_i, o_j, q))$ with MLPs $g$ and $f$.

    ``forward(objects (B, N, Do), questions (B, Dq)) -> logits (B, A)``. Invariant to the
    order of the objects. ``self.pair_activations`` keeps ``|g(o_i, o_j, q)|`` of the last
    call, ``(B, N, N)``.
    """

    def __init__(self, d_obj: int, d_question: int, n_answers: int, *, hidden: int = 64) -> None:
        super().__init__()
        check_sizes(d_obj=d_obj, d_question=d_question, n_answers=n_answers, hidden=hidden)
        self.d_obj, self.d_question = d_obj, d_question
        self.g = _mlp(2 * d_obj + d_question, hidden, hidden, layers=2)
        self.f = _mlp(hidden, hidden, n_answers, layers=1)
        self.pair_activations: torch.Tensor | None = None

    def forward(self, objects: torch.Tensor, questions: torch.Tensor) -> torch.Tensor:
        _check_scene(objects, questions, self.d_obj, self.d_question, self.f[0].weight)
        g = torch.relu(self.g(object_pairs(objects, questions)))  # g(o_i, o_j, q): (B, N, N, hidden)
        self.pair_activations = g.detach().norm(dim=-1)  # (B, N, N)
        return self.f(g.sum(dim=(1, 2)))  # f(sum_ij g_ij): (B, A)


class MLPReasoner(nn.Module):
    """Baseline: an MLP on the flattened scene and the question, ``(B, N, Do), (B, Dq) -> (B, A)``."""

    def __init__(self, d_obj: int, d_question: int, n_answers: int, *, n_objects: int, hidden: int = 128) -> None:
        super().__init__()
        check_sizes(d_obj=d_obj, d_question=d_question, n_answers=n_answers, n_objects=n_objects, hidden=hidden)
        self.d_obj, self.d_question, self.n_objects = d_obj, d_question, n_objects
        self.net = _mlp(n_objects * d_obj + d_question, hidden, n_answers, layers=2)

    def forward(self, objects: torch.Tensor, questions: torch.Tensor) -> torch.Tensor:
        _check_scene(objects, questions, self.d_obj, self.d_question, self.net[0].weight)
        if objects.shape[1] != self.n_objects:
            raise ValueError(f"objects must have N = {self.n_objects} objects; got shape {shape_str(objects)}")
        return self.net(torch.cat([objects.flatten(1), questions], dim=-1))  # (B, N*Do + Dq) -> (B, A)


class AttentionReasoner(nn.Module):
    """Self-attention over the objects plus a question token; the answer is read at that token.

    ``forward(objects (B, N, Do), questions (B, Dq)) -> logits (B, A)``: a
    ``attnkit.transformers.blocks.TransformerEncoder`` without positions, so it is invariant to
    the order of the objects. ``self.encoder.layers[l].weights`` holds the maps ``(B, H, N+1, N+1)``.
    """

    def __init__(self, d_obj: int, d_question: int, n_answers: int, *, d_model: int = 32, n_heads: int = 2,
                 n_layers: int = 2) -> None:
        super().__init__()
        check_sizes(d_obj=d_obj, d_question=d_question, n_answers=n_answers, d_model=d_model, n_heads=n_heads,
                    n_layers=n_layers)
        self.d_obj, self.d_question = d_obj, d_question
        self.obj_in, self.q_in = nn.Linear(d_obj, d_model), nn.Linear(d_question, d_model)
        self.encoder = TransformerEncoder(d_model, n_heads, 2 * d_model, n_layers, norm="pre")
        self.out = nn.Linear(d_model, n_answers)

    def forward(self, objects: torch.Tensor, questions: torch.Tensor) -> torch.Tensor:
        _check_scene(objects, questions, self.d_obj, self.d_question, self.obj_in.weight)
        tokens = torch.cat([self.q_in(questions)[:, None], self.obj_in(objects)], dim=1)  # (B, 1 + N, E)
        return self.out(self.encoder(tokens)[:, 0])  # read out at the question token: (B, A)


def reasoning_loss(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Cross-entropy of ``model(objects, questions)`` against ``answers`` for a ``relational_task`` batch."""
    return nn.functional.cross_entropy(model(batch["objects"], batch["questions"]), batch["answers"])


@torch.no_grad()
def accuracy_by_question(model: nn.Module, batch: dict[str, torch.Tensor], n_types: int = 3) -> torch.Tensor:
    """Accuracy per question type, ``(n_types,)`` (NaN for a type absent from the batch)."""
    check_int("n_types", n_types, minimum=1)
    right = (model(batch["objects"], batch["questions"]).argmax(-1) == batch["answers"]).float()  # (B,)
    return torch.stack([right[batch["qtype"] == t].mean() if (batch["qtype"] == t).any() else torch.tensor(float("nan"))
                        for t in range(n_types)])


# ---- the experiment of the Transformer chapter ------------------------------------------------

REASONERS = {
    "relation network": lambda: RelationNetwork(10, 9, 6, hidden=64),
    "MLP on all objects": lambda: MLPReasoner(10, 9, 6, n_objects=6),
    "self-attention": lambda: AttentionReasoner(10, 9, 6, d_model=32, n_heads=2, n_layers=2),
}
"""The three models of the Transformer chapter's relational task: name -> constructor."""


def relational_run(name: str, *, steps: int = 800, seed: int = 0) -> dict[str, object]:
    """Train ``REASONERS[name]`` on ``relational_task``; returns losses, per-question accuracy, the model.

    Batches ``relational_task(64, seed=1000 (seed + 1) + step)``, Adam lr 3e-3, clip 1.0; the test
    set is ``relational_task(2000, seed=99)``. ``accuracy`` is a list of 3 floats (question types).
    """
    if name not in REASONERS:
        raise ValueError(f"name must be one of {list(REASONERS)}; got {name!r}")
    torch.manual_seed(seed)
    model = REASONERS[name]()
    losses = train_steps(model, lambda step: relational_task(64, seed=1000 * (seed + 1) + step), reasoning_loss,
                         steps=steps, lr=3e-3, seed=seed, desc=name)
    acc = accuracy_by_question(model, relational_task(2000, seed=99)).tolist()
    return {"losses": losses, "accuracy": acc, "model": model}


__all__ = ["REASONERS", "AttentionReasoner", "MLPReasoner", "RelationNetwork", "accuracy_by_question", "object_pairs",
           "reasoning_loss", "relational_run"]
