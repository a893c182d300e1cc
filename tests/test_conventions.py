"""The mappings of the book's *Conventions* page, each checked against the peer library (or its formula).

PyTorch (SDPA, nn.MultiheadAttention, causal biases), Hugging Face's mask polarity and rotary layout,
PyG's GATConv naming and edge_index order, OpenCV's and scikit-image's bilateral filters.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from attnkit import MultiHeadAttention, attend, causal_mask, key_mask, padding_mask
from attnkit.classic.bilateral import bilateral_filter
from attnkit.classic.images import sliding_windows, window_offsets
from attnkit.transformers.gat import gat_attention
from attnkit.transformers.positions import apply_rotary, rotary_score

# ---- masks: polarity -------------------------------------------------------------------------------

def test_bool_and_float_masks_mean_what_they_mean_in_sdpa() -> None:
    q, k, v = torch.randn(2, 4, 8), torch.randn(2, 6, 8), torch.randn(2, 6, 3)
    keep = torch.rand(2, 4, 6) > 0.3
    keep[..., 0] = True
    torch.testing.assert_close(attend(q, k, v, mask=keep)[0], F.scaled_dot_product_attention(q, k, v, attn_mask=keep))
    bias = torch.randn(2, 4, 6)
    torch.testing.assert_close(attend(q, k, v, mask=bias)[0], F.scaled_dot_product_attention(q, k, v, attn_mask=bias))


def test_nn_multihead_attention_masks_have_the_opposite_polarity() -> None:
    torch.manual_seed(0)
    ours = MultiHeadAttention(8, 2).double()
    ref = nn.MultiheadAttention(8, 2, batch_first=True, dtype=torch.float64)
    with torch.no_grad():
        ref.in_proj_weight.copy_(torch.cat([ours.q_proj.weight, ours.k_proj.weight, ours.v_proj.weight]))
        ref.in_proj_bias.copy_(torch.cat([ours.q_proj.bias, ours.k_proj.bias, ours.v_proj.bias]))
        ref.out_proj.load_state_dict(ours.out_proj.state_dict())
    x = torch.randn(2, 5, 8, dtype=torch.float64)
    real = padding_mask([5, 3])  # (B, S), True = real token (attnkit, Hugging Face's attention_mask == 1)
    out, w = ours(x, mask=causal_mask(5), key_padding=real)
    ref_out, ref_w = ref(x, x, x, attn_mask=~causal_mask(5), key_padding_mask=~real, average_attn_weights=False)
    torch.testing.assert_close(out, ref_out)
    torch.testing.assert_close(w, ref_w)


def test_hugging_face_attention_mask_is_a_key_mask() -> None:
    # HF: attention_mask (B, L) with 1 = attend, 0 = padding; the model expands it to (B, 1, 1, L)
    hf_attention_mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]])
    ours = key_mask(hf_attention_mask.bool(), heads=True)  # (B, 1, 1, L)
    # HF's eager attention turns it into the additive bias (1 - mask) * finfo.min
    hf_bias = (1.0 - hf_attention_mask[:, None, None, :].float()) * torch.finfo(torch.float32).min
    q = torch.randn(2, 2, 4, 8)
    torch.testing.assert_close(attend(q, q, q, mask=ours)[0], attend(q, q, q, mask=hf_bias)[0])
    assert torch.equal(padding_mask([4, 2]).long(), hf_attention_mask)


# ---- causal alignment --------------------------------------------------------------------------------

@pytest.mark.parametrize("Lq,Lk", [(3, 5), (5, 3), (4, 4)])
def test_causal_mask_is_top_left_like_sdpa_is_causal(Lq: int, Lk: int) -> None:
    q, k, v = torch.randn(Lq, 8), torch.randn(Lk, 8), torch.randn(Lk, 3)
    ours = attend(q, k, v, mask=causal_mask(Lq, Lk))[0]
    if Lq <= Lk:  # SDPA's is_causal gives NaN rows for Lq > Lk (queries that see no key), ours zeros
        torch.testing.assert_close(ours, F.scaled_dot_product_attention(q, k, v, is_causal=True))
    from torch.nn.attention.bias import causal_upper_left

    ref = F.scaled_dot_product_attention(q[None], k[None], v[None], attn_mask=causal_upper_left(Lq, Lk))[0]
    torch.testing.assert_close(ours, torch.nan_to_num(ref))


@pytest.mark.parametrize("Lq,Lk", [(3, 5), (5, 3)])
def test_bottom_right_causal_mask_like_flash_attention_2(Lq: int, Lk: int) -> None:
    from torch.nn.attention.bias import causal_lower_right

    q, k, v = torch.randn(1, Lq, 8), torch.randn(1, Lk, 8), torch.randn(1, Lk, 3)
    bottom_right = torch.ones(Lq, Lk, dtype=torch.bool).tril(Lk - Lq)  # query i sees keys j <= i + Lk - Lq
    ours = attend(q, k, v, mask=bottom_right)[0]
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=causal_lower_right(Lq, Lk))
    torch.testing.assert_close(ours, torch.nan_to_num(ref))


# ---- rotary layout -----------------------------------------------------------------------------------

def llama_rotary(x: torch.Tensor, base: float = 10000.0) -> torch.Tensor:
    """Rotate-half RoPE as in GPT-NeoX / Hugging Face LLaMA: pairs (i, i + d/2), written out here."""
    L, d = x.shape[-2:]
    inv_freq = 1.0 / (base ** (torch.arange(0, d, 2, dtype=torch.float64) / d))  # (d/2,)
    freqs = torch.arange(L, dtype=torch.float64)[:, None] * inv_freq  # (L, d/2)
    emb = torch.cat([freqs, freqs], -1)  # (L, d)
    rotate_half = torch.cat([-x[..., d // 2:], x[..., : d // 2]], -1)
    return x * emb.cos().to(x.dtype) + rotate_half * emb.sin().to(x.dtype)


def interleaved_to_half(d: int) -> torch.Tensor:
    """The permutation P with x_half = x[..., P]: coordinates 0, 2, 4, ... first, then 1, 3, 5, ..."""
    return torch.cat([torch.arange(0, d, 2), torch.arange(1, d, 2)])


def test_rotary_layouts_differ_by_one_permutation() -> None:
    x = torch.randn(2, 7, 16, dtype=torch.float64)
    P = interleaved_to_half(16)
    assert not torch.allclose(apply_rotary(x), llama_rotary(x))  # not the same function ...
    torch.testing.assert_close(apply_rotary(x)[..., P], llama_rotary(x[..., P]))  # ... but conjugate by P
    inv = torch.argsort(P)
    torch.testing.assert_close(apply_rotary(x), llama_rotary(x[..., P])[..., inv])


def test_rotary_scores_are_invariant_under_the_permutation() -> None:
    # permuting the rows of W_q and W_k by P turns a RoFormer-layout model into a LLaMA-layout one
    q, k = torch.randn(5, 8, dtype=torch.float64), torch.randn(6, 8, dtype=torch.float64)
    P = interleaved_to_half(8)
    llama = llama_rotary(q[..., P]) @ llama_rotary(k[..., P]).T / math.sqrt(8)
    torch.testing.assert_close(rotary_score(q, k), llama)


# ---- GAT: PyG's naming and edge order -------------------------------------------------------------

def pyg_gatconv(x, edge_index, lin, att_src, att_dst, negative_slope=0.2):
    """PyG's GATConv (no bias, no self-loop insertion, no dropout) written out on edge_index (2, E)."""
    H, C = att_src.shape
    xw = (x @ lin).view(-1, H, C)  # (N, H, C)
    src, dst = edge_index  # messages flow source -> target: j = src, i = dst
    alpha = (xw[src] * att_src).sum(-1) + (xw[dst] * att_dst).sum(-1)  # (E, H)
    alpha = F.leaky_relu(alpha, negative_slope)
    out = torch.zeros_like(xw)
    for i in range(x.shape[0]):  # softmax over the edges that end at node i
        e = (dst == i).nonzero()[:, 0]
        a = torch.softmax(alpha[e], 0)  # (deg, H)
        out[i] = (a[..., None] * xw[src[e]]).sum(0)
    return out.transpose(0, 1)  # (H, N, C)


def test_gat_attention_is_pyg_gatconv_with_the_same_names() -> None:
    g = torch.Generator().manual_seed(0)
    N, Fin, H, C = 6, 4, 2, 3
    x = torch.randn(N, Fin, generator=g, dtype=torch.float64)
    adj = (torch.rand(N, N, generator=g) > 0.5) | torch.eye(N, dtype=torch.bool)  # adj[i, j]: i attends to j
    W = torch.randn(H, Fin, C, generator=g, dtype=torch.float64)
    a_src, a_dst = (torch.randn(H, C, generator=g, dtype=torch.float64) for _ in range(2))
    out, _ = gat_attention(x, adj, W, a_src, a_dst)
    i, j = adj.nonzero().T  # an edge per True entry: source j -> target i
    edge_index = torch.stack([j, i])
    lin = W.permute(1, 0, 2).reshape(Fin, H * C)  # PyG's lin.weight.T, heads side by side
    ref = pyg_gatconv(x, edge_index, lin, att_src=a_src, att_dst=a_dst)  # PyG's names, PyG's meaning
    torch.testing.assert_close(out, ref)


def test_gat_against_torch_geometric_when_installed() -> None:
    pyg = pytest.importorskip("torch_geometric.nn")
    torch.manual_seed(0)
    N, Fin, H, C = 6, 4, 2, 3
    conv = pyg.GATConv(Fin, C, heads=H, add_self_loops=False, bias=False).double()
    x = torch.randn(N, Fin, dtype=torch.float64)
    adj = (torch.rand(N, N) > 0.5) | torch.eye(N, dtype=torch.bool)
    i, j = adj.nonzero().T
    ref = conv(x, torch.stack([j, i])).view(N, H, C).transpose(0, 1)
    W = conv.lin.weight.T.reshape(Fin, H, C).permute(1, 0, 2)  # (H, F, C)
    out, _ = gat_attention(x, adj, W, conv.att_src.view(H, C), conv.att_dst.view(H, C))
    torch.testing.assert_close(out, ref.detach())


# ---- bilateral filter: OpenCV and scikit-image --------------------------------------------------------

def opencv_bilateral_via_attend(x: torch.Tensor, d: int, sigma_color: float, sigma_space: float) -> torch.Tensor:
    """cv2.bilateralFilter(x, d, sigmaColor, sigmaSpace) (BORDER_DEFAULT) with attnkit's pieces:
    a disc of radius d // 2 (not a square), reflect-101 padding (not masked borders), same Gaussians."""
    r = d // 2
    H, W = x.shape
    xp = F.pad(x[None, None], (r, r, r, r), mode="reflect")[0, 0]  # torch's reflect = OpenCV's REFLECT_101
    off = window_offsets(r, dtype=x.dtype)  # (K, 2)
    inside = (off**2).sum(-1) <= r * r  # OpenCV's disc
    spatial = torch.where(inside, -(off**2).sum(-1) / (2 * sigma_space**2), torch.tensor(float("-inf"), dtype=x.dtype))
    win, _ = sliding_windows(xp[None], r)  # (Hp Wp, K, 1)
    win = win.view(*xp.shape, -1, 1)[r:r + H, r:r + W].reshape(H * W, -1, 1)  # the windows of the real pixels
    out, _ = attend(x.reshape(-1, 1, 1), win, win, score="gaussian", temperature=2 * sigma_color**2,
                    mask=spatial[None, None])
    return out.view(H, W)


def test_opencv_bilateral_filter_is_a_disc_with_reflected_borders() -> None:
    cv2 = pytest.importorskip("cv2")
    rng = np.random.default_rng(0)
    img = rng.random((20, 24)).astype(np.float32)
    for d, sc, ss in ((7, 0.2, 2.0), (5, 0.5, 1.0), (9, 0.1, 3.0)):
        ref = cv2.bilateralFilter(img, d, sc, ss)
        ours = opencv_bilateral_via_attend(torch.from_numpy(img).double(), d, sc, ss).numpy()
        np.testing.assert_allclose(ours, ref, atol=1e-5)
        # attnkit's own filter (square window, masked borders) is a different filter
        assert np.abs(bilateral_filter(torch.from_numpy(img).double(), d // 2, ss, sc).numpy() - ref).max() > 1e-3


def test_scikit_image_range_weights_match_in_the_interior() -> None:
    restoration = pytest.importorskip("skimage.restoration")
    rng = np.random.default_rng(1)
    img = rng.random((20, 24))
    r, sc = 3, 0.2
    # a wide spatial Gaussian makes the spatial weights (nearly) equal: the range weights are compared
    ours = bilateral_filter(torch.from_numpy(img), r, 1e4, sc).numpy()
    ref = restoration.denoise_bilateral(img, win_size=2 * r + 1, sigma_color=sc, sigma_spatial=1e4, bins=10**6)
    np.testing.assert_allclose(ours[r:-r, r:-r], ref[r:-r, r:-r], atol=1e-5)  # the interior, away from padding


def test_scikit_image_spatial_kernel_is_not_the_gaussian_of_the_offset() -> None:
    """Recorded difference (scikit-image 0.26): denoise_bilateral's spatial lookup table is built on a
    (w+1) x (w+1) grid of offsets -(w+1)/2 .. (w-1)/2 for a window of odd size w, so its effective
    spatial kernel is not symmetric. If this test fails, scikit-image changed: update the Conventions page."""
    restoration = pytest.importorskip("skimage.restoration")
    img = np.zeros((21, 21))
    img[10, 10] = 1.0
    img += 1e-9 * np.arange(img.size).reshape(img.shape)  # not constant (a constant image is returned as is)
    out = restoration.denoise_bilateral(img, win_size=5, sigma_color=1e6, sigma_spatial=2.0, bins=10**6)
    kernel = out[8:13, 8:13]  # the impulse response: the spatial weights, flipped
    assert not np.allclose(kernel, kernel[::-1, ::-1], atol=1e-4)
    ours = bilateral_filter(torch.from_numpy(img), 2, 2.0, 1e6).numpy()[8:13, 8:13]
    np.testing.assert_allclose(ours, ours[::-1, ::-1], atol=1e-6)  # ours is the symmetric Gaussian (up to the ramp)
