r"""The cocktail party as attention: Broadbent's filter and Treisman's attenuator (1950s-60s).

Cherry (1953) played two messages at once and found that listeners could follow one and
recall almost nothing of the other. Broadbent (1958) modelled this as a *filter*: the ear
splits the sound into channels by physical features (pitch, ear, place), and a selective
filter passes one channel on to a limited-capacity stage. Treisman (1964) replaced the
all-or-nothing filter by an *attenuator*: unattended channels are turned down, not off.

In the book's terms the channels are the values, their physical signatures the keys, and the
listener's idea of the wanted voice the query:

$$
o = \sum_j a_j\, x_j, \qquad
a = \begin{cases} \operatorname{onehot}(\arg\max_j q^\top k_j) & \text{Broadbent (filter)}\\
\operatorname{softmax}(q^\top k / T) & \text{Treisman (attenuator)} \end{cases}
$$

that is ``attend(q, k, channels, score="dot", normalize="hard")`` or
``attend(q, k, channels, score="dot", temperature=T)``.

Sperling's (1960) partial report is the visual counterpart: a cue (the query) picks one row
of a briefly flashed letter grid (the keys are the letters' positions), so the few items a
subject can read out before the icon fades all come from the cued row.

Shapes: ``V`` voices or channels, ``N`` samples, ``D`` signature bins, ``F`` frequencies,
``M`` spectrogram frames.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import torch

from attnkit._checks import (
    argument_names,
    check_dim_match,
    check_int,
    check_positive,
    check_same_device,
    check_tensor,
    check_values,
    shape_str,
)
from attnkit.core import attend

VOICES: tuple[tuple[float, float], ...] = ((110.0, 400.0), (150.0, 1000.0), (200.0, 1800.0), (250.0, 2800.0))
"""``(pitch f0, formant centre)`` in Hz of the synthetic voices: each voice is the harmonics of
its pitch that fall inside its formant band, so the voices have distinct spectral signatures."""

BAND_HALF_WIDTH = 250.0
"""Half-width in Hz of each voice's formant band (the channel the ear's filterbank assigns it)."""


def voice_bands(n_voices: int) -> list[tuple[float, float]]:
    """The ``(low, high)`` frequency band in Hz of each of the first ``n_voices`` voices."""
    check_int("n_voices", n_voices, minimum=1)
    if not 1 <= n_voices <= len(VOICES):
        raise ValueError(f"n_voices must be between 1 and {len(VOICES)}; got {n_voices}")
    return [(f - BAND_HALF_WIDTH, f + BAND_HALF_WIDTH) for _, f in VOICES[:n_voices]]


def synthesize_voices(n_voices: int = 3, duration: float = 1.0, sample_rate: int = 8000, *, seed: int = 0,
                      dtype: torch.dtype = torch.float64) -> torch.Tensor:
    r"""Synthesise ``n_voices`` "voices": harmonic tones with vibrato and syllable-like bursts.

    Voice $i$ is $e_i(t) \sum_h A_h \sin \phi_h(t)$ over the harmonics $h f_0$ of its pitch that
    lie within 200 Hz of its formant centre (:data:`VOICES`), with a 5 Hz, 0.4 % vibrato and a
    random envelope $e_i$ of 4 to 5 smooth syllables per second. Each voice is scaled to unit RMS.

    Returns:
        ``voices: (V, N)`` with ``N = round(duration * sample_rate)``.
    """
    bands = voice_bands(n_voices)
    check_positive("duration", duration)
    check_positive("sample_rate", sample_rate)
    if sample_rate < 2 * (bands[-1][1] + 50):
        raise ValueError(f"sample_rate={sample_rate} Hz is too low for {n_voices} voices: "
                         f"need at least {2 * (bands[-1][1] + 50):.0f} Hz (Nyquist)")
    g = torch.Generator().manual_seed(seed)
    n = round(duration * sample_rate)
    t = torch.arange(n, dtype=dtype) / sample_rate  # (N,) seconds
    voices = []
    for f0, formant in VOICES[:n_voices]:
        harmonics = [h * f0 for h in range(1, 40) if abs(h * f0 - formant) <= 200.0]
        rate, depth = 5.0, 0.004
        tone = torch.zeros(n, dtype=dtype)
        for f in harmonics:
            amp = math.exp(-0.5 * ((f - formant) / 150.0) ** 2)  # formant shapes the harmonics
            phase0 = 2 * math.pi * float(torch.rand((), generator=g))
            # phi(t) = 2 pi int f (1 + depth sin(2 pi rate t)) dt
            phi = 2 * math.pi * f * t - (f * depth / rate) * torch.cos(2 * math.pi * rate * t) + phase0
            tone = tone + amp * torch.sin(phi)
        env = torch.zeros(n, dtype=dtype)
        onset = float(torch.rand((), generator=g)) * 0.1
        while onset < duration:
            length = 0.12 + 0.08 * float(torch.rand((), generator=g))  # syllable of 120-200 ms
            inside = (t >= onset) & (t < onset + length)
            # a Hann bump: sin^2(pi (t - onset) / length)
            env = env + inside * torch.sin(math.pi * (t - onset) / length) ** 2
            onset += length + 0.03 + 0.07 * float(torch.rand((), generator=g))
        x = env * tone
        voices.append(x / x.pow(2).mean().sqrt().clamp_min(1e-12))  # unit RMS
    return torch.stack(voices)  # (V, N)


def mix(voices: torch.Tensor, gains: Sequence[float] | torch.Tensor | None = None) -> torch.Tensor:
    """The sound at the ear: ``sum_i gains[i] * voices[i]``. ``voices: (V, N)`` -> ``(N,)``."""
    check_tensor("voices", voices, min_rank=2)
    if voices.dim() != 2:
        raise ValueError(f"voices must be (V, N); got shape {shape_str(voices)}")
    if isinstance(gains, torch.Tensor):
        check_tensor("gains", gains)
        check_same_device(voices=voices, gains=gains)
    g = (torch.ones(voices.shape[0], dtype=voices.dtype, device=voices.device) if gains is None
         else torch.as_tensor(gains, dtype=voices.dtype, device=voices.device))
    if g.shape != (voices.shape[0],):
        raise ValueError(f"gains must have one entry per voice (voices: {shape_str(voices)}); "
                         f"got shape {tuple(g.shape)}")
    return g @ voices  # (V,) @ (V, N) -> (N,)


def split_channels(mixture: torch.Tensor, sample_rate: int, bands: Sequence[tuple[float, float]]) -> torch.Tensor:
    """The ear's filterbank (Broadbent's parallel first stage): one channel per frequency band.

    Each channel keeps the Fourier components of ``mixture: (N,)`` inside its ``(low, high)``
    band in Hz (an ideal band-pass filter). Returns ``channels: (len(bands), N)``.
    """
    check_tensor("mixture", mixture, min_rank=1)
    if mixture.dim() != 1 or mixture.shape[0] < 1:
        raise ValueError(f"mixture must be a 1-D signal (N,) of at least one sample; got shape {shape_str(mixture)}")
    check_positive("sample_rate", sample_rate)
    n = mixture.shape[0]
    spec = torch.fft.rfft(mixture)  # (N // 2 + 1,) complex
    freqs = torch.fft.rfftfreq(n, d=1.0 / sample_rate).to(mixture)  # (N // 2 + 1,) Hz
    chans = []
    for lo, hi in bands:
        if not 0 <= lo < hi:
            raise ValueError(f"each band must be (low, high) with 0 <= low < high; got {(lo, hi)}")
        keep = (freqs >= lo) & (freqs <= hi)
        chans.append(torch.fft.irfft(spec * keep, n=n))
    return torch.stack(chans)  # (V, N)


def spectral_signature(x: torch.Tensor, sample_rate: int, n_bins: int = 32) -> torch.Tensor:
    """A unit-norm spectral fingerprint: mean magnitude in ``n_bins`` equal bands up to Nyquist.

    ``x: (..., N)`` -> ``(..., n_bins)``. Two signals with energy in different bands have
    orthogonal signatures, so ``q @ k`` is near 1 for the same voice and near 0 otherwise.
    """
    check_tensor("x", x, min_rank=1)
    if x.shape[-1] < 1:
        raise ValueError(f"x must have at least one sample on its last axis; got shape {shape_str(x)}")
    check_positive("sample_rate", sample_rate)
    check_int("n_bins", n_bins, minimum=1)
    if n_bins > x.shape[-1] // 2 + 1:
        raise ValueError(f"n_bins must be at most the {x.shape[-1] // 2 + 1} frequencies of x: {shape_str(x)} "
                         f"(an empty band has no mean); got {n_bins}")
    if x.numel() == 0:
        return x.new_zeros(*x.shape[:-1], n_bins)  # no signals: no signatures
    mag = torch.fft.rfft(x).abs()  # (..., N // 2 + 1)
    edges = torch.linspace(0, mag.shape[-1], n_bins + 1).round().long()
    pooled = torch.stack([mag[..., a:b].mean(-1) for a, b in itertools.pairwise(edges.tolist())], dim=-1)  # (..., D)
    return pooled / pooled.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def select_channel(query: torch.Tensor, keys: torch.Tensor, channels: torch.Tensor, *,
                   normalize: str = "softmax", temperature: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Attend to one voice: Broadbent's filter (``normalize="hard"``) or Treisman's attenuator.

    Equivalent to::

        s = keys @ query                          # s_j = q . k_j            (V,)
        a = softmax(s / temperature)              # or one-hot(argmax s)     (V,)
        out = a @ channels                        # sum_j a_j x_j            (N,)

    Args:
        query: ``(D,)`` the signature of the wanted voice.
        keys: ``(V, D)`` the signature of each channel.
        channels: ``(V, N)`` the channels' signals (the values).
        normalize: ``"hard"`` (filter), ``"softmax"`` (attenuator) or any :func:`attnkit.attend`
            normaliser.
        temperature: softmax temperature; the attenuation of the other channels grows as it falls.

    Returns:
        ``(signal (N,), weights (V,))``.
    """
    check_tensor("query", query, min_rank=1)
    check_tensor("keys", keys, min_rank=2)
    check_tensor("channels", channels, min_rank=2)
    if query.dim() != 1 or keys.dim() != 2 or channels.dim() != 2:
        raise ValueError(f"need query: (D,), keys: (V, D), channels: (V, N); got query: {shape_str(query)}, "
                         f"keys: {shape_str(keys)}, channels: {shape_str(channels)}")
    check_dim_match("keys", keys, 0, "channels", channels, 0, "one key per channel (V)")
    check_dim_match("query", query, 0, "keys", keys, 1, "query and keys are signatures of one width (D)")
    with argument_names(q="query", k="keys", v="channels"):
        out, w = attend(query[None], keys, channels, score="dot", normalize=normalize, temperature=temperature)
    return out[0], w[0]  # (N,), (V,)


def relative_error(estimate: torch.Tensor, target: torch.Tensor) -> float:
    r"""$\lVert \hat x - x \rVert / \lVert x \rVert$ over the last axis (mean over the others)."""
    check_tensor("estimate", estimate, min_rank=1)
    check_tensor("target", target, min_rank=1)
    if estimate.shape != target.shape:
        raise ValueError(f"estimate and target must have the same shape; got {shape_str(estimate)} "
                         f"and {shape_str(target)}")
    check_same_device(estimate=estimate, target=target)
    check_values("estimate", estimate)
    err = (estimate - target).norm(dim=-1) / target.norm(dim=-1).clamp_min(1e-12)
    return float(err.mean())


def spectrogram(x: torch.Tensor, sample_rate: int, *, n_fft: int = 256,
                hop: int = 64) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Power spectrogram in dB of ``x: (N,)`` with a Hann window.

    Returns ``(freqs (F,) in Hz, times (M,) in s, power_db (F, M))`` with ``F = n_fft // 2 + 1``,
    power ``10 log10(|X|^2 + 1e-10)``.
    """
    check_tensor("x", x, min_rank=1)
    if x.dim() != 1:
        raise ValueError(f"x must be a 1-D signal (N,); got shape {shape_str(x)}")
    check_positive("sample_rate", sample_rate)
    check_int("n_fft", n_fft, minimum=1)
    check_int("hop", hop, minimum=1)
    if x.shape[0] < n_fft:
        raise ValueError(f"x has {x.shape[0]} samples, fewer than n_fft={n_fft}")
    window = torch.hann_window(n_fft, dtype=x.dtype, device=x.device)
    X = torch.stft(x, n_fft=n_fft, hop_length=hop, window=window, return_complex=True, center=True)  # (F, M)
    power_db = 10 * torch.log10(X.abs() ** 2 + 1e-10)
    freqs = torch.fft.rfftfreq(n_fft, d=1.0 / sample_rate)  # (F,) Hz
    times = torch.arange(X.shape[-1]) * hop / sample_rate  # (M,) s
    return freqs, times, power_db


# ---------------------------------------------------------------------------------------------
# Sperling's partial report
# ---------------------------------------------------------------------------------------------

LETTERS = "BCDFGHJKLMNPQRSTVWXZ"
"""The consonants Sperling used in his letter arrays (no vowels, so no words)."""


def position_keys(rows: int = 3, cols: int = 4, *, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Keys for the cells of a ``rows x cols`` grid: ``[onehot(row), onehot(col)]``, ``(rows*cols, rows+cols)``.

    A cue for cell ``(r, c)`` is the same vector, so its dot score is 2 on the cell, 1 on the rest
    of its row and column and 0 elsewhere.
    """
    check_int("rows", rows, minimum=1)
    check_int("cols", cols, minimum=1)
    r = torch.eye(rows, dtype=dtype).repeat_interleave(cols, dim=0)  # (rows*cols, rows)
    c = torch.eye(cols, dtype=dtype).repeat(rows, 1)  # (rows*cols, cols)
    return torch.cat([r, c], dim=-1)  # (rows*cols, rows+cols)


def partial_report(n_trials: int = 200, *, cue: bool = True, delay: float = 0.0, rows: int = 3, cols: int = 4,
                   capacity: int = 4, icon_decay: float = 1.0, read_rate: float = 4.0, noise: float = 0.3,
                   temperature: float = 0.25, seed: int = 0) -> float:
    r"""Recall accuracy in a simulated Sperling (1960) experiment; returns the fraction correct.

    Each trial flashes a ``rows x cols`` grid of consonants. Iconic memory holds every letter
    (values: letter codes plus noise ``noise``), fading as $e^{-t/\tau}$ with
    ``icon_decay`` $= \tau$ seconds. The subject can transfer at most ``capacity`` letters to
    durable memory, ``read_rate`` letters per second; each read is ``attend`` with the cell's
    position as query over the grid's positions as keys (softmax at ``temperature``), decoded as
    the nearest letter. Letters never read are guessed.

    - ``cue=False`` (whole report): the subject reads ``capacity`` random cells at once and
      must report all ``rows * cols``; accuracy is over the whole grid.
    - ``cue=True`` (partial report): a tone ``delay`` seconds after the flash names one row.
      Until then the subject reads random cells; afterwards the remaining capacity goes to the
      cued row, read from the fading icon. Accuracy is over the cued row.

    ``letters available`` in Sperling's sense is ``accuracy * rows * cols``.
    """
    for name, val in (("n_trials", n_trials), ("rows", rows), ("cols", cols), ("capacity", capacity)):
        if isinstance(val, bool) or not isinstance(val, int) or val < 1:
            raise ValueError(f"{name} must be a positive int; got {val!r}")
    check_positive("delay", delay, allow_zero=True)
    check_positive("icon_decay", icon_decay)
    check_positive("read_rate", read_rate)
    check_positive("noise", noise, allow_zero=True)
    check_positive("temperature", temperature)
    g = torch.Generator().manual_seed(seed)
    n_cells, n_letters = rows * cols, len(LETTERS)
    codes = torch.randn(n_letters, 16, generator=g, dtype=torch.float64)
    codes = codes / codes.norm(dim=-1, keepdim=True)  # (20, 16) unit letter codes
    # sharper position codes: dot score 8 on the cell, 4 on the rest of its row/column, 0 elsewhere
    keys = 2.0 * position_keys(rows, cols)  # (C, rows+cols)
    letters = torch.randint(n_letters, (n_trials, n_cells), generator=g)  # (T, C) the flashed grids
    guesses = torch.randint(n_letters, (n_trials, n_cells), generator=g)  # (T, C) what is said if not read
    order = torch.rand(n_trials, n_cells, generator=g).argsort(-1)  # (T, C) random reading order

    def read(t: float) -> torch.Tensor:
        # the icon t seconds after the flash: faded letter codes plus noise, (T, C, 16)
        icon = math.exp(-t / icon_decay) * codes[letters]
        icon = icon + noise * torch.randn(icon.shape, generator=g, dtype=icon.dtype)
        # every cell's position is a query over the grid's positions (keys): (C, 7) x (C, 7) -> (T, C, 16)
        out, _ = attend(keys, keys, icon, score="dot", temperature=temperature)
        return (out @ codes.T).argmax(-1)  # nearest letter code, (T, C)

    def first(n: int) -> torch.Tensor:
        # bool (T, C): the first n cells of each trial's reading order
        return torch.zeros(n_trials, n_cells, dtype=torch.bool).scatter(1, order[:, :n], True)

    if not cue:
        recalled = torch.where(first(capacity), read(0.0), guesses)
        return float((recalled == letters).double().mean())
    row = torch.randint(rows, (n_trials, 1), generator=g)  # (T, 1) the cued row
    target = torch.arange(n_cells) // cols == row  # (T, C) cells of the cued row
    n_before = min(capacity, int(delay * read_rate))
    before = first(n_before)  # read at random before the tone
    # after the tone: the cued cells not read yet, in order, while capacity lasts
    todo = target & ~before
    todo = todo & (todo.long().cumsum(-1) <= capacity - n_before)
    recalled = torch.where(before, read(0.0), torch.where(todo, read(delay), guesses))
    return float((recalled == letters)[target].double().mean())
