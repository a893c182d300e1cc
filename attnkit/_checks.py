"""Input checks shared by every attnkit module.

Each helper raises a ``TypeError`` or ``ValueError`` whose message names the argument and
says what it got (shape, dtype, device), so a reader sees at once which tensor is wrong.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar

import torch

HALF_DTYPES = (torch.float16, torch.bfloat16)

_ARGUMENT_NAMES: ContextVar[dict[str, str] | None] = ContextVar("attnkit_argument_names", default=None)


@contextmanager
def argument_names(**names: str) -> Iterator[None]:
    """Inside the block, errors of the core's checks name the caller's arguments.

    A function that hands its inputs to :func:`attnkit.attend` under other names wraps the call
    in ``with argument_names(q="queries", k="patterns", v="patterns", temperature="1 / beta"):``
    so that a wrong input is reported as ``queries``, not as ``attend``'s internal ``q``.
    """
    token = _ARGUMENT_NAMES.set({**(_ARGUMENT_NAMES.get() or {}), **names})
    try:
        yield
    finally:
        _ARGUMENT_NAMES.reset(token)


def arg_name(name: str) -> str:
    """The name the caller knows ``name`` by (see :func:`argument_names`)."""
    return (_ARGUMENT_NAMES.get() or {}).get(name, name)


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """float32 for float16/bfloat16 (scores, exponentials and sums are accumulated in it), else ``dtype``."""
    return torch.float32 if dtype in HALF_DTYPES else dtype


def shape_str(x: torch.Tensor) -> str:
    """``(2, 3, 4)`` style string of a tensor's shape."""
    return str(tuple(x.shape))


def check_tensor(name: str, x: object, *, min_rank: int = 0, floating: bool = True,
                 shape: str | None = None) -> torch.Tensor:
    """Check that ``x`` is a tensor of rank >= ``min_rank`` (and floating point if asked).

    ``shape`` is the expected layout in words, e.g. ``"(..., Lq, d)"``, quoted in the error.
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor; got {type(x).__name__}")
    if x.dim() < min_rank:
        want = f"shape {shape} (at least {min_rank} dimensions)" if shape else f"at least {min_rank} dimensions"
        raise ValueError(f"{name} must have {want}; got shape {shape_str(x)}")
    if floating and not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor; got dtype {x.dtype}")
    return x


def check_values(name: str, x: torch.Tensor) -> torch.Tensor:
    """A tensor that holds values: not on the ``meta`` device (for results that read values)."""
    if x.device.type == "meta":
        raise ValueError(f"{name} is on the meta device, which holds no values; this function reads them")
    return x


def check_dim(name: str, dim: object, ndim: int) -> int:
    """An axis index valid for a tensor of ``ndim`` dimensions (negative counts from the end)."""
    if isinstance(dim, bool) or not isinstance(dim, int):
        raise TypeError(f"{name} must be an int axis; got {type(dim).__name__}")
    if not -max(ndim, 1) <= dim < max(ndim, 1):
        raise ValueError(f"{name} must be an axis in [{-ndim}, {ndim}) for a {ndim}-D tensor; got {dim}")
    return dim


def check_finite_float(name: str, value: object) -> float:
    """A finite real number (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number; got {type(value).__name__}")
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(f"{name} must be a finite number; got {value}")
    return float(value)


def check_size_fits(name: str, value: int, limit: int, what: str) -> int:
    """``value <= limit``: a size (window, radius) that may not dwarf the input it works on."""
    if value > limit:
        raise ValueError(f"{name} must be at most {limit} ({what}); got {value}")
    return value


def check_same_dtype_device(**tensors: torch.Tensor) -> None:
    """All tensors share one dtype and one device."""
    names = list(tensors)
    first = tensors[names[0]]
    for name in names[1:]:
        t = tensors[name]
        if t.device != first.device:
            got = ", ".join(f"{n} on {tensors[n].device}" for n in names)
            raise ValueError(f"{names[0]} and {name} must be on the same device; got {got}")
        if t.dtype != first.dtype:
            got = ", ".join(f"{n}: {tensors[n].dtype}" for n in names)
            raise TypeError(f"{names[0]} and {name} must have the same dtype; got {got}")


def check_same_device(**tensors: torch.Tensor) -> None:
    """All tensors on one device (their dtypes may differ: for functions that promote or convert)."""
    names = list(tensors)
    first = tensors[names[0]]
    for name in names[1:]:
        if tensors[name].device != first.device:
            got = ", ".join(f"{n} on {tensors[n].device}" for n in names)
            raise ValueError(f"{names[0]} and {name} must be on the same device; got {got}")


def check_dim_match(name_a: str, a: torch.Tensor, dim_a: int, name_b: str, b: torch.Tensor,
                    dim_b: int, what: str) -> None:
    """``a.shape[dim_a] == b.shape[dim_b]``, else a ValueError naming both shapes."""
    if a.shape[dim_a] != b.shape[dim_b]:
        raise ValueError(
            f"{what}: {name_a}.shape[{dim_a}] = {a.shape[dim_a]} but "
            f"{name_b}.shape[{dim_b}] = {b.shape[dim_b]} "
            f"({name_a}: {shape_str(a)}, {name_b}: {shape_str(b)})"
        )


def broadcast_shape(*shapes: Sequence[int]) -> torch.Size | None:
    """The shape ``shapes`` broadcast to (NumPy's rule), or ``None`` if they do not broadcast.

    Equivalent to ``torch.broadcast_shapes(*shapes)`` (which raises instead of returning
    ``None``), written out because that function imports sympy (about 0.7 s) the first time it
    runs: from the right, each dimension is the same in every shape or 1.
    """
    ndim = max((len(s) for s in shapes), default=0)
    out = [1] * ndim
    for s in shapes:
        for i, n in enumerate(s, start=ndim - len(s)):
            n = int(n)
            if n == out[i] or n == 1:
                continue
            if out[i] != 1:
                return None
            out[i] = n
    return torch.Size(out)


def broadcast_batch(**tensors: torch.Tensor) -> torch.Size:
    """Broadcast the leading (batch) dims of tensors whose last two dims are matrices."""
    out = broadcast_shape(*(t.shape[:-2] for t in tensors.values()))
    if out is None:
        got = ", ".join(f"{n}: {shape_str(t)}" for n, t in tensors.items())
        raise ValueError(f"batch dimensions of {', '.join(tensors)} do not broadcast; got {got}")
    return out


def check_mask(mask: object, target: Sequence[int], *, name: str = "mask",
               device: torch.device | None = None, source: str = "") -> torch.Tensor:
    """A bool or float mask that broadcasts to ``target`` (e.g. ``(..., Lq, Lk)``), on ``device`` if given.

    ``source`` says where ``target`` comes from (e.g. ``"batch and Lq of q: (2, 3, 4), Lk of k: ..."``).
    """
    if not isinstance(mask, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor (bool or float) or None; got {type(mask).__name__}")
    if mask.dtype != torch.bool and not mask.is_floating_point():
        raise TypeError(f"{name} must be bool (True = takes part) or float (added to scores); got dtype {mask.dtype}")
    target = torch.Size(target)
    if broadcast_shape(mask.shape, target) != target:
        raise ValueError(
            f"{name} of shape {shape_str(mask)} does not broadcast to the scores' shape "
            f"({', '.join(map(str, target))})" + (f" ({source})" if source else "")
        )
    if device is not None and mask.device != device:
        raise ValueError(f"{name} must be on the device of the scores ({device}" + (f"; {source}" if source else "")
                         + f"); got {mask.device}")
    return mask


def check_positive(name: str, value: float, *, allow_zero: bool = False) -> float:
    """A positive (or non-negative) finite number."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number; got {type(value).__name__}")
    ok = value >= 0 if allow_zero else value > 0
    if not ok or value != value or value == float("inf"):
        kind = "non-negative" if allow_zero else "positive"
        raise ValueError(f"{name} must be a finite {kind} number; got {value}")
    return float(value)


def check_int(name: str, value: object, *, minimum: int = 0) -> int:
    """An int (not a bool) ``>= minimum``; the message says "non-negative" or "positive" for 0 and 1."""
    kind = {0: "a non-negative int", 1: "a positive int"}.get(minimum, f"an int >= {minimum}")
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be {kind}; got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be {kind}; got {value}")
    return value


def check_positive_scalar(name: str, value: object) -> float | torch.Tensor:
    """A finite positive number, or a one-element float tensor holding one (e.g. a learned temperature)."""
    if isinstance(value, torch.Tensor):
        if value.numel() != 1 or not value.is_floating_point():
            raise ValueError(f"{name} must be a positive number or a one-element float tensor; "
                             f"got a tensor of shape {shape_str(value)}, dtype {value.dtype}")
        if value.device.type != "meta":
            v = float(value.detach())
            # a learned temperature that went NaN (NaN inputs, diverged training) propagates NaN
            if not (v > 0 and v != float("inf")) and v == v:
                raise ValueError(f"{name} must be a finite positive number; got {v}")
        return value
    return check_positive(name, value)


def check_index_tensor(name: str, x: object, *, low: int, high: int, rank: int | None = None) -> torch.Tensor:
    """An integer tensor with every entry in ``[low, high)`` (and exactly ``rank`` dims if given)."""
    check_tensor(name, x, floating=False)
    if x.dtype == torch.bool or x.is_floating_point() or x.is_complex():
        raise TypeError(f"{name} must be an integer tensor; got dtype {x.dtype}")
    if rank is not None and x.dim() != rank:
        raise ValueError(f"{name} must have {rank} dimension(s); got shape {shape_str(x)}")
    check_values(name, x)
    if x.numel() and (int(x.min()) < low or int(x.max()) >= high):
        raise ValueError(f"{name} must hold integers in [{low}, {high}); got values in "
                         f"[{int(x.min())}, {int(x.max())}]")
    return x


def check_sizes(**sizes: object) -> None:
    """Every keyword is a positive int (the widths and counts of a model's constructor)."""
    for name, n in sizes.items():
        check_int(name, n, minimum=1)


def check_probability(name: str, p: object) -> float:
    """A dropout probability: a number in ``[0, 1)``."""
    check_positive(name, p, allow_zero=True)
    if p >= 1:
        raise ValueError(f"{name} must be a probability in [0, 1); got {p}")
    return float(p)


def check_module_input(name: str, x: object, weight: torch.Tensor, *, rank: int | None = None, min_rank: int = 1,
                       width: int | None = None, shape: str = "") -> torch.Tensor:
    """A floating-point input of a module: ``rank`` dims (or at least ``min_rank``), last dim ``width``,
    and the dtype and device of the module's ``weight``."""
    check_tensor(name, x, min_rank=rank if rank is not None else min_rank, shape=shape or None)
    if (rank is not None and x.dim() != rank) or (width is not None and x.shape[-1] != width):
        raise ValueError(f"{name} must have shape {shape or '(..., ' + str(width) + ')'}; got shape {shape_str(x)}")
    if x.dtype != weight.dtype or x.device != weight.device:
        raise TypeError(f"{name} must have the module's dtype and device ({weight.dtype} on {weight.device}; use "
                        f".to(...) on one or the other); got {x.dtype} on {x.device}")
    return x


def check_cells(name: str, images: object, patch: object) -> torch.Tensor:
    """A non-empty batch of images ``(n, C, H, W)`` whose sides are multiples of ``patch`` (an int >= 1)."""
    check_tensor(name, images, min_rank=4, floating=False, shape="(n, C, H, W)")
    check_int("patch", patch, minimum=1)
    if images.dim() != 4 or images.numel() == 0 or images.shape[-1] % patch or images.shape[-2] % patch:
        raise ValueError(f"{name} must be a non-empty (n, C, H, W) batch with H and W multiples of patch={patch}; got "
                         f"shape {shape_str(images)}")
    return images


def check_ids(name: str, x: object, vocab: int, *, rank: int | None = None, device: torch.device | None = None,
              shape: str = "") -> torch.Tensor:
    """Token ids: an integer tensor (``rank`` dims if given) with entries in ``[0, vocab)``, on ``device``."""
    check_tensor(name, x, floating=False)
    if x.dtype == torch.bool or x.is_floating_point() or x.is_complex():
        raise TypeError(f"{name} must be integer token ids{' ' + shape if shape else ''}; got dtype {x.dtype}")
    if rank is not None and x.dim() != rank:
        raise ValueError(f"{name} must be token ids {shape or f'with {rank} dims'}; got shape {shape_str(x)}")
    if device is not None and x.device != device:
        raise ValueError(f"{name} must be on the model's device ({device}); got {x.device}")
    check_values(name, x)
    if x.numel() and (int(x.min()) < 0 or int(x.max()) >= vocab):
        raise ValueError(f"{name} must hold ids in [0, {vocab}); got values in [{int(x.min())}, {int(x.max())}]")
    return x
