"""The mini-batch training loop shared by the small models of the book's chapters."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
from torch import nn


def minibatches(n: int, batch_size: int, epochs: int, seed: int) -> Iterator[torch.Tensor]:
    """The index batches of ``minibatch_adam``: ``epochs`` shuffled passes over ``range(n)``.

    Each pass is ``torch.randperm(n)`` from a generator seeded with ``seed``, split into
    batches of ``batch_size`` (the last one may be shorter).
    """
    g = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        yield from torch.randperm(n, generator=g).split(batch_size)


def minibatch_adam(model: nn.Module, n: int, batch_loss: Callable[[torch.Tensor], torch.Tensor], *,
                   epochs: int, batch_size: int, lr: float, seed: int, progress: bool,
                   desc: str) -> list[float]:
    """Train ``model`` with Adam on ``epochs`` shuffled passes over ``n`` examples.

    ``batch_loss(idx)`` returns the loss of the examples ``idx`` (a 1-D index tensor). The
    shuffling uses its own generator seeded with ``seed``. Returns the loss of every step and
    leaves the model in eval mode.
    """
    from tqdm.auto import tqdm

    from attnkit._checks import check_int, check_positive

    check_int("epochs", epochs, minimum=1)
    check_int("batch_size", batch_size, minimum=1)
    check_positive("lr", lr)
    if n < 1:
        raise ValueError("there is nothing to train on: the training set is empty")
    opt = torch.optim.Adam(model.parameters(), lr=lr, foreach=True)
    losses = []
    bar = tqdm(total=epochs * (-(-n // batch_size)), desc=desc, disable=not progress)
    model.train()
    for idx in minibatches(n, batch_size, epochs, seed):
        loss = batch_loss(idx)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
        bar.update()
    bar.close()
    model.eval()
    return losses
