"""Checker for the FlashAttention chapter's exercise "implement the online softmax"."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch

from attnkit.exercises._harness import Case, CheckResult, run_cases


class OnePassBlocks:
    """Column blocks ``(rows, Bc)`` of a score matrix that can be iterated over only once.

    A stand-in for keys streamed from HBM: a second pass raises ``RuntimeError``.
    """

    def __init__(self, x: torch.Tensor, sizes: list[int]) -> None:
        self.blocks = list(torch.split(x, sizes, dim=-1))
        self.used = False

    def __iter__(self) -> Iterator[torch.Tensor]:
        if self.used:
            raise RuntimeError("the blocks can be read only once: keep m and l as you go, in one pass")
        self.used = True
        return iter([b.clone() for b in self.blocks])

    def __repr__(self) -> str:
        widths = [b.shape[-1] for b in self.blocks]
        whole = torch.cat(self.blocks, -1)
        return f"OnePassBlocks({len(self.blocks)} blocks of widths {widths}; concatenated:\n{whole})"


def _expected(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    x = x.double()
    m = x.amax(-1)
    safe = torch.where(torch.isfinite(m), m, torch.zeros_like(m))
    return m, torch.exp(x - safe[..., None]).sum(-1)


def _checker(x: torch.Tensor) -> Callable[[object], str | None]:
    m_ref, l_ref = _expected(x)

    def check(got: object) -> str | None:
        if not (isinstance(got, tuple) and len(got) == 2 and all(isinstance(t, torch.Tensor) for t in got)):
            return f"return a tuple (m, l) of two tensors; got {type(got).__name__}"
        for name, g, e in (("m", got[0], m_ref), ("l", got[1], l_ref)):
            if g.shape != e.shape:
                return f"{name} has shape {tuple(g.shape)}, expected {tuple(e.shape)} (one value per row)"
            g = g.detach().double()
            if torch.isnan(g).any():
                return f"{name} contains NaN in row {torch.isnan(g).nonzero()[0].item()}"
            same_inf = torch.isinf(g) == torch.isinf(e)
            if not same_inf.all():
                row = (~same_inf).nonzero()[0].item()
                return f"{name}[{row}] = {g[row].item()}, expected {e[row].item()}"
            fin = torch.isfinite(e)
            if not torch.allclose(g[fin], e[fin], rtol=1e-4, atol=1e-6):
                err = ((g - e).abs() / e.abs().clamp_min(1e-6)).masked_fill(~fin, 0)
                row = err.argmax().item()
                return f"{name}[{row}] = {g[row].item():.6g}, expected {e[row].item():.6g}"
        return None
    return check


def online_softmax_cases(seed: int = 0) -> list[Case]:
    """The hidden cases of ``check_online_softmax``."""
    g = torch.Generator().manual_seed(seed)
    x1 = torch.randn(3, 8, generator=g)
    x2 = torch.randn(4, 12, generator=g) * 3
    x3 = torch.randn(2, 12, generator=g)
    big = torch.tensor([[1e4, 0.0, -1e4, 9999.0, 10.0, 5.0]])
    masked = torch.randn(2, 8, generator=g)
    masked[:, :4] = float("-inf")          # the first block is fully masked (keys not yet visible)
    empty = torch.randn(3, 6, generator=g)
    empty[1] = float("-inf")               # row 1 attends to nothing at all
    rising = torch.arange(12.0).repeat(2, 1)   # the max grows in every block
    specs = [
        ("one block", x1, [8], "with one block, m is the row max and l = sum exp(x - m)"),
        ("three blocks of 4", x2, [4, 4, 4],
         "when the max grows, the old sum must be rescaled: l = l * exp(m_old - m_new) + sum exp(x - m_new)"),
        ("a max that grows in every block", rising, [3, 3, 3, 3],
         "rescale l by exp(m_old - m_new) each time m changes"),
        ("ragged blocks 5, 5, 2", x3, [5, 5, 2], "blocks need not have the same width"),
        ("logits of 1e4", big, [2, 2, 2], "subtract the running max before exponentiating: exp(1e4) overflows"),
        ("a fully masked first block", masked, [4, 4],
         "while m is still -inf, exp(m_old - m_new) is exp(-inf - -inf) = NaN: treat an empty row as 0"),
        ("a fully masked row", empty, [3, 3], "a row of -inf has m = -inf and l = 0, not NaN"),
    ]
    return [Case(name, (OnePassBlocks(x, sizes),), check=_checker(x), hint=hint) for name, x, sizes, hint in specs]


def check_online_softmax(fn: Callable[[object], tuple[torch.Tensor, torch.Tensor]], *,
                         quiet: bool = False) -> CheckResult:
    """Check a reader's ``fn(blocks) -> (m, l)``: the online softmax statistics in one pass.

    ``blocks`` yields column blocks ``(rows, Bc)`` of a score matrix ``(rows, N)``, once. ``m``
    must be each row's maximum and ``l = sum_j exp(x_j - m)`` its normaliser, both ``(rows,)``;
    a row of ``-inf`` gives ``m = -inf``, ``l = 0``.
    """
    return run_cases(fn, online_softmax_cases(), checker="check_online_softmax", quiet=quiet)
