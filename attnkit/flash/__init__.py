"""FlashAttention: exact attention tiled for the GPU's memory hierarchy.

The package behind the chapter *FlashAttention: exact attention tiled for the GPU* (Part IV).

- ``attnkit.flash.online_softmax``: the online softmax, a blocked NumPy reference of the
  forward (in FlashAttention-2's and FlashAttention-1's loop orders) and backward passes, and
  the HBM byte counts of naive and tiled attention, with the SRAM and register models;
- ``attnkit.flash.forward``, ``attnkit.flash.backward``: the Triton kernels;
  ``attnkit.flash.autotune``: their tile configurations and the compile sweep;
  ``attnkit.flash.triton_kernel``: launching them, compiled or interpreted;
  ``attnkit.flash.aot``: compiling them ahead of time and reading ptxas's report (all imported
  only when used; Triton exists for Linux only);
- ``attnkit.flash.api``: ``flash_attention``, the differentiable entry point.
"""

from attnkit.flash.api import (
    BACKENDS,
    FlashAttentionFunction,
    flash_attention,
    flash_attention_forward,
    interpreter_available,
    triton_available,
    triton_version,
)
from attnkit.flash.online_softmax import (
    ByteCounter,
    attention_np,
    flash1_block_sizes,
    flash_backward_np,
    flash_forward_kv_outer_np,
    flash_forward_np,
    hbm_traffic,
    hbm_traffic_backward,
    online_softmax,
    online_softmax_stats,
    register_bytes,
    sram_bytes,
)

__all__ = [
    "BACKENDS",
    "ByteCounter",
    "FlashAttentionFunction",
    "attention_np",
    "flash_attention",
    "flash1_block_sizes",
    "flash_attention_forward",
    "flash_backward_np",
    "flash_forward_kv_outer_np",
    "flash_forward_np",
    "hbm_traffic",
    "hbm_traffic_backward",
    "interpreter_available",
    "online_softmax",
    "online_softmax_stats",
    "register_bytes",
    "sram_bytes",
    "triton_available",
    "triton_version",
]
