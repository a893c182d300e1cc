"""Key/value caches for decoding: contiguous, streaming (window + sinks) and paged.

A cache holds, for every layer, the keys and values of the tokens already seen, so that
decoding token ``t`` computes one new key/value pair per layer instead of ``t``. Every cache
here has the same two methods, which ``attnkit.llm.GPT`` calls:

- ``update(layer, k, v) -> (k_all, v_all)``: append the new ``k, v: (B, Hkv, T, Dh)`` of
  ``layer`` and return the keys and values to attend to, ``(B, Hkv, S, Dh)``;
- ``seen``: how many tokens have gone through the model (the absolute position of the next).

The keys are stored *before* rotary positions are applied: the model rotates them by their
slot in the cache (``0 .. S-1``), which for a contiguous cache is their absolute position and
for a streaming cache is StreamingLLM's "position within the cache".

- ``KVCache`` (contiguous): everything, in order; its bytes are
  ``2 * n_layer * B * Hkv * S * Dh * itemsize``.
- ``StreamingCache`` (Xiao et al., 2024): the first ``sinks`` tokens and the last
  ``window``; ``sinks=0`` is the rolling cache of sliding-window attention (Mistral 7B).
- ``PagedKVCache`` (Kwon et al., 2023): fixed-size blocks from a shared pool, a block
  table per sequence, blocks allocated on demand.
"""

from __future__ import annotations

import math

import torch

from attnkit._checks import check_int, check_same_dtype_device, check_tensor, shape_str


def _check_kv(k: torch.Tensor, v: torch.Tensor, layer: object) -> None:
    check_int("layer", layer, minimum=0)
    check_tensor("k", k, min_rank=4, shape="(B, Hkv, T, Dh)")
    check_tensor("v", v, min_rank=4, shape="(B, Hkv, T, Dh)")
    if k.ndim != 4 or k.shape != v.shape:
        raise ValueError(f"k and v must both be (B, Hkv, T, Dh); got k: {tuple(k.shape)}, v: {tuple(v.shape)}")
    check_same_dtype_device(k=k, v=v)


def _check_like(k: torch.Tensor, cached: torch.Tensor, what: str) -> None:
    """New keys ``k`` must match the cached ``(B, Hkv, S, Dh)`` in batch, heads, width, dtype and device."""
    if k.shape[:2] != cached.shape[:2] or k.shape[-1] != cached.shape[-1]:
        raise ValueError(f"k must match the {what} in B, Hkv and Dh; got k: {shape_str(k)}, "
                         f"cached: {shape_str(cached)}")
    if k.dtype != cached.dtype or k.device != cached.device:
        raise TypeError(f"k must have the dtype and device of the {what} ({cached.dtype} on {cached.device}); "
                        f"got {k.dtype} on {k.device}")


class KVCache:
    """The contiguous cache: per layer, all keys and values so far, ``(B, Hkv, S, Dh)``."""

    def __init__(self) -> None:
        self.k: dict[int, torch.Tensor] = {}
        self.v: dict[int, torch.Tensor] = {}
        self.seen = 0

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        _check_kv(k, v, layer)
        if layer in self.k:
            _check_like(k, self.k[layer], f"keys cached at layer {layer}")
            self.k[layer] = torch.cat([self.k[layer], k], dim=-2)  # (B, Hkv, S + T, Dh)
            self.v[layer] = torch.cat([self.v[layer], v], dim=-2)
        else:
            self.k[layer], self.v[layer] = k, v
        return self.k[layer], self.v[layer]

    def nbytes(self) -> int:
        """Bytes held by the cached tensors (measured on the tensors)."""
        return sum(t.numel() * t.element_size() for t in (*self.k.values(), *self.v.values()))


def cache_bytes(n_layer: int, n_kv_head: int, d_head: int, length: int, *, batch: int = 1,
                itemsize: int = 4) -> int:
    """The formula: ``2 (keys and values) * n_layer * batch * n_kv_head * length * d_head * itemsize``."""
    for name, val in (("n_layer", n_layer), ("n_kv_head", n_kv_head), ("d_head", d_head), ("batch", batch),
                      ("itemsize", itemsize)):
        check_int(name, val, minimum=1)
    check_int("length", length, minimum=0)
    return 2 * n_layer * batch * n_kv_head * length * d_head * itemsize


class StreamingCache(KVCache):
    """Keep the first ``sinks`` tokens and the last ``window`` (StreamingLLM; ``sinks=0``: a rolling window).

    Decodes one token at a time (``T = 1``): the new token is always kept, and after the
    attention of this step the cache holds at most ``sinks + window`` entries per layer.
    """

    def __init__(self, window: int, sinks: int = 0) -> None:
        super().__init__()
        self.window = check_int("window", window, minimum=1)
        self.sinks = check_int("sinks", sinks, minimum=0)

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        _check_kv(k, v, layer)
        if k.shape[-2] != 1:
            raise ValueError(f"StreamingCache decodes one token at a time; got k with T={k.shape[-2]}")
        k_all, v_all = super().update(layer, k, v)
        S = k_all.shape[-2]
        if S > self.sinks + self.window:  # evict the oldest non-sink token
            keep = torch.cat([torch.arange(self.sinks), torch.arange(S - self.window, S)])  # (sinks + window,)
            self.k[layer], self.v[layer] = k_all[..., keep, :], v_all[..., keep, :]
        return self.k[layer], self.v[layer]


class PagedKVCache:
    """A paged cache (vLLM): a shared pool of ``n_blocks`` blocks of ``block_size`` slots.

    ``pool_k, pool_v: (n_layer, n_blocks, Hkv, block_size, Dh)``. Each sequence owns a block
    table (the ids of its blocks, in order); a block is taken from the free list only when the
    previous one is full, so a sequence wastes at most ``block_size - 1`` slots; an append that
    needs more blocks than are free is refused (``ValueError``) before anything is written. Attention
    gathers the sequence's blocks (``pool[table]``) into ``(1, Hkv, S, Dh)``, identical to a
    contiguous cache. ``sequence(i)`` is the cache view of sequence ``i`` that ``GPT`` uses
    (batch 1 per sequence).
    """

    def __init__(self, n_layer: int, n_blocks: int, block_size: int, n_kv_head: int, d_head: int, *,
                 dtype: torch.dtype = torch.float32) -> None:
        self.n_layer = check_int("n_layer", n_layer, minimum=1)
        self.block_size = check_int("block_size", block_size, minimum=1)
        check_int("n_blocks", n_blocks, minimum=1)
        check_int("n_kv_head", n_kv_head, minimum=1)
        check_int("d_head", d_head, minimum=1)
        if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
            raise TypeError(f"dtype must be a floating-point torch.dtype; got {dtype}")
        shape = (n_layer, n_blocks, n_kv_head, block_size, d_head)
        self.pool_k = torch.zeros(shape, dtype=dtype)
        self.pool_v = torch.zeros(shape, dtype=dtype)
        self.free: list[int] = list(range(n_blocks))
        self.tables: dict[int, list[int]] = {}
        self.lengths: dict[int, list[int]] = {}  # per sequence, tokens stored per layer

    def _append(self, seq: int, layer: int, k: torch.Tensor, v: torch.Tensor) -> None:
        if layer >= self.n_layer:
            raise ValueError(f"layer must be < n_layer={self.n_layer}; got {layer}")
        _check_like(k, self.pool_k[layer, 0][None], "pool")  # (1, Hkv, block, Dh)
        if k.shape[0] != 1:
            raise ValueError(f"a paged sequence has batch 1; got k: {shape_str(k)}")
        table = self.tables.get(seq, [])
        lengths = self.lengths.get(seq, [0] * self.n_layer)
        need = -(-(lengths[layer] + k.shape[-2]) // self.block_size) - len(table)  # new blocks: ceil - held
        if need > len(self.free):  # refuse before writing anything: nothing half-appended
            raise ValueError(f"k holds {k.shape[-2]} new tokens, which need {need} more blocks of "
                             f"block_size={self.block_size}; the pool has {len(self.free)} free")
        self.tables[seq], self.lengths[seq] = table, lengths
        for t in range(k.shape[-2]):
            pos = lengths[layer]
            if pos // self.block_size == len(table):  # every slot taken: a new block
                table.append(self.free.pop(0))
            block, slot = table[pos // self.block_size], pos % self.block_size
            self.pool_k[layer, block, :, slot] = k[0, :, t]  # (Hkv, Dh)
            self.pool_v[layer, block, :, slot] = v[0, :, t]
            lengths[layer] = pos + 1

    def gather(self, seq: int, layer: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The keys and values of ``seq`` at ``layer``, ``(1, Hkv, S, Dh)``, read through its block table."""
        check_int("seq", seq, minimum=0)
        check_int("layer", layer, minimum=0)
        if layer >= self.n_layer:
            raise ValueError(f"layer must be < n_layer={self.n_layer}; got {layer}")
        if seq not in self.tables:
            raise ValueError(f"seq {seq!r} holds no tokens in this cache; its sequences: {sorted(self.tables)}")
        table, S = self.tables[seq], self.lengths[seq][layer]
        k = self.pool_k[layer, table]  # (n, Hkv, block, Dh)
        v = self.pool_v[layer, table]
        k = k.permute(1, 0, 2, 3).flatten(1, 2)[None, :, :S]  # (1, Hkv, S, Dh)
        v = v.permute(1, 0, 2, 3).flatten(1, 2)[None, :, :S]  # (1, Hkv, S, Dh)
        return k, v

    def release(self, seq: int) -> None:
        """A finished sequence returns its blocks to the free list."""
        check_int("seq", seq, minimum=0)
        self.free.extend(self.tables.pop(seq, []))
        self.lengths.pop(seq, None)

    def blocks_in_use(self) -> int:
        return sum(len(t) for t in self.tables.values())

    def sequence(self, seq: int) -> _PagedView:
        check_int("seq", seq, minimum=0)
        return _PagedView(self, seq)


class _PagedView:
    """The ``update``/``seen`` interface of one sequence of a ``PagedKVCache``."""

    def __init__(self, paged: PagedKVCache, seq: int) -> None:
        self.paged, self.seq, self.seen = paged, seq, 0

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        _check_kv(k, v, layer)
        self.paged._append(self.seq, layer, k, v)
        return self.paged.gather(self.seq, layer)


def allocation_waste(lengths: list[int], max_len: int, block_size: int) -> dict[str, float]:
    """Fraction of reserved KV slots that hold no token, for a batch of requests.

    Contiguous pre-allocation reserves ``max_len`` slots per request; paging reserves
    ``ceil(length / block_size)`` blocks. Measured by running a ``PagedKVCache`` (one
    layer, one head of width 1) over the requests token by token and counting its blocks.
    """
    check_int("max_len", max_len, minimum=1)
    check_int("block_size", block_size, minimum=1)
    if not isinstance(lengths, (list, tuple)) or not all(isinstance(n, int) and not isinstance(n, bool)
                                                          for n in lengths):
        raise TypeError(f"lengths must be a list of ints; got {lengths!r}")
    if not lengths:
        raise ValueError("lengths must name at least one request; got []")
    if any(n < 1 or n > max_len for n in lengths):
        raise ValueError(f"lengths must lie in 1 .. max_len={max_len}")
    n_blocks = sum(math.ceil(n / block_size) for n in lengths)
    paged = PagedKVCache(1, n_blocks, block_size, 1, 1)
    for seq, n in enumerate(lengths):
        one = torch.ones(1, 1, n, 1)
        paged._append(seq, 0, one, one)
    used = sum(lengths)
    reserved_paged = paged.blocks_in_use() * block_size
    return {"tokens": used, "contiguous_slots": len(lengths) * max_len, "paged_slots": reserved_paged,
            "contiguous_waste": 1 - used / (len(lengths) * max_len), "paged_waste": 1 - used / reserved_paged}


__all__ = ["KVCache", "PagedKVCache", "StreamingCache", "allocation_waste", "cache_bytes"]
