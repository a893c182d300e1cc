"""Tests for attnkit.classic.cocktail: voices, filterbank, Broadbent/Treisman selection, partial report."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from attnkit.classic.cocktail import (
    mix,
    partial_report,
    position_keys,
    relative_error,
    select_channel,
    spectral_signature,
    spectrogram,
    split_channels,
    synthesize_voices,
    voice_bands,
)

SR = 8000


@pytest.fixture(scope="module")
def scene():
    voices = synthesize_voices(3, duration=0.5, sample_rate=SR, seed=1)
    mixture = mix(voices)
    channels = split_channels(mixture, SR, voice_bands(3))
    return voices, mixture, channels


def test_voices_are_deterministic_unit_rms_and_band_limited(scene):
    voices, _, _ = scene
    assert voices.shape == (3, 4000) and voices.dtype == torch.float64
    assert torch.equal(voices, synthesize_voices(3, duration=0.5, sample_rate=SR, seed=1))
    assert not torch.equal(voices, synthesize_voices(3, duration=0.5, sample_rate=SR, seed=2))
    torch.testing.assert_close(voices.pow(2).mean(-1), torch.ones(3, dtype=torch.float64))
    power = np.abs(np.fft.rfft(voices.numpy(), axis=-1)) ** 2
    freqs = np.fft.rfftfreq(4000, 1 / SR)
    for i, (lo, hi) in enumerate(voice_bands(3)):
        inside = power[i, (freqs >= lo) & (freqs <= hi)].sum() / power[i].sum()
        assert inside > 0.99, f"voice {i} has only {inside:.3f} of its energy in its band"


def test_mix_is_the_weighted_sum(scene):
    voices, mixture, _ = scene
    torch.testing.assert_close(mixture, voices.sum(0))
    torch.testing.assert_close(mix(voices, [1.0, 0.0, 2.0]), voices[0] + 2 * voices[2])


def test_split_channels_matches_numpy_band_pass_and_recovers_voices(scene):
    voices, mixture, channels = scene
    x = mixture.numpy()
    spec = np.fft.rfft(x)
    freqs = np.fft.rfftfreq(len(x), 1 / SR)
    for i, (lo, hi) in enumerate(voice_bands(3)):
        ref = np.fft.irfft(spec * ((freqs >= lo) & (freqs <= hi)), n=len(x))
        np.testing.assert_allclose(channels[i].numpy(), ref, atol=1e-10)
        assert relative_error(channels[i], voices[i]) < 0.05


def test_spectral_signature_is_unit_norm_and_matches_a_numpy_pooling(scene):
    voices, _, channels = scene
    sig = spectral_signature(voices, SR, n_bins=16)
    torch.testing.assert_close(sig.norm(dim=-1), torch.ones(3, dtype=torch.float64))
    mag = np.abs(np.fft.rfft(voices[0].numpy()))
    edges = np.round(np.linspace(0, len(mag), 17)).astype(int)
    ref = np.array([mag[a:b].mean() for a, b in itertools.pairwise(edges)])
    np.testing.assert_allclose(sig[0].numpy(), ref / np.linalg.norm(ref), atol=1e-12)
    # same voice ~ 1, different voices ~ 0
    scores = spectral_signature(voices, SR) @ spectral_signature(channels, SR).T
    assert (scores.diagonal() > 0.99).all()
    assert (scores - torch.diag(scores.diagonal())).abs().max() < 0.1


def test_hard_selection_is_broadbents_one_hot_filter(scene):
    voices, _, channels = scene
    keys = spectral_signature(channels, SR)
    for i in range(3):
        out, w = select_channel(spectral_signature(voices[i], SR), keys, channels, normalize="hard")
        assert torch.equal(w, torch.nn.functional.one_hot(torch.tensor(i), 3).to(w.dtype))
        torch.testing.assert_close(out, channels[i])


def test_soft_selection_matches_an_explicit_float64_loop(scene):
    voices, _, channels = scene
    keys = spectral_signature(channels, SR)
    q = spectral_signature(voices[1], SR)
    for T in (0.05, 0.5, 3.0):
        out, w = select_channel(q, keys, channels, temperature=T)
        s = [sum(float(q[d]) * float(keys[j, d]) for d in range(q.shape[0])) / T for j in range(3)]
        m = max(s)
        e = [math.exp(x - m) for x in s]
        ref_w = torch.tensor([x / sum(e) for x in e], dtype=torch.float64)
        torch.testing.assert_close(w, ref_w)
        torch.testing.assert_close(out, ref_w @ channels)


def test_attenuation_error_grows_with_temperature(scene):
    voices, _, channels = scene
    keys = spectral_signature(channels, SR)
    q = spectral_signature(voices[0], SR)
    errs = [relative_error(select_channel(q, keys, channels, temperature=T)[0], voices[0]) for T in (0.05, 0.3, 1, 5)]
    assert all(a < b for a, b in itertools.pairwise(errs)), errs
    assert errs[0] < 0.05 and errs[-1] > 0.5
    assert relative_error(mix(voices), voices[0]) > 1.0  # the unattended mixture is far from the voice


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2), st.floats(0.01, 20.0))
def test_soft_weights_are_a_distribution_peaked_on_the_query(i, T):
    voices = synthesize_voices(3, duration=0.1, sample_rate=SR, seed=0)
    channels = split_channels(mix(voices), SR, voice_bands(3))
    _, w = select_channel(spectral_signature(voices[i], SR), spectral_signature(channels, SR), channels, temperature=T)
    assert abs(float(w.sum()) - 1) < 1e-12 and (w >= 0).all()
    assert int(w.argmax()) == i


def test_spectrogram_of_a_pure_tone_peaks_at_its_frequency():
    t = torch.arange(4000, dtype=torch.float64) / SR
    freqs, times, p = spectrogram(torch.sin(2 * math.pi * 1000.0 * t), SR, n_fft=256, hop=64)
    assert p.shape == (129, len(times)) and freqs.shape == (129,)
    assert freqs[-1] == SR / 2 and times[1] == pytest.approx(64 / SR)
    peak = freqs[p[:, len(times) // 2].argmax()]
    assert abs(float(peak) - 1000.0) <= SR / 256
    # the middle frame against a Hann-windowed numpy FFT
    frame = np.sin(2 * np.pi * 1000.0 * t.numpy()[len(times) // 2 * 64 - 128:len(times) // 2 * 64 + 128])
    ref = 10 * np.log10(np.abs(np.fft.rfft(np.hanning(257)[:-1] * frame)) ** 2 + 1e-10)
    np.testing.assert_allclose(p[:, len(times) // 2].numpy(), ref, atol=1e-6)


def test_position_keys_score_the_cell_row_and_column():
    keys = position_keys(3, 4)
    s = keys @ keys[5]  # cell (1, 1)
    assert s[5] == 2 and s[4] == 1 and s[1] == 1 and s[0] == 0
    assert keys.shape == (12, 7)


def test_partial_report_the_cue_helps_and_the_advantage_fades():
    whole = partial_report(150, cue=False, seed=0)
    cued = partial_report(150, cue=True, delay=0.0, seed=0)
    late = partial_report(150, cue=True, delay=1.0, seed=0)
    assert cued > whole + 0.3, (cued, whole)
    assert abs(late - whole) < 0.1, (late, whole)
    assert partial_report(20, seed=3) == partial_report(20, seed=3)
    # with a perfect icon and capacity for the whole row, the cued row is always recalled
    assert partial_report(30, cue=True, noise=0.0, temperature=0.01, seed=1) == 1.0


def test_bad_inputs_raise_clear_errors(scene):
    voices, mixture, channels = scene
    keys = spectral_signature(channels, SR)
    with pytest.raises(ValueError, match="n_voices"):
        synthesize_voices(5)
    with pytest.raises(ValueError, match="sample_rate"):
        synthesize_voices(4, sample_rate=4000)
    with pytest.raises(ValueError, match="duration"):
        synthesize_voices(2, duration=-1.0)
    with pytest.raises(TypeError, match="voices"):
        mix(torch.ones(2, 5, dtype=torch.long))
    with pytest.raises(ValueError, match="gains"):
        mix(voices, [1.0, 2.0])
    with pytest.raises(ValueError, match="mixture"):
        split_channels(voices, SR, voice_bands(3))
    with pytest.raises(ValueError, match="band"):
        split_channels(mixture, SR, [(500.0, 100.0)])
    with pytest.raises(ValueError, match="query"):
        select_channel(keys, keys, channels)
    with pytest.raises(ValueError, match="one key per channel"):
        select_channel(keys[0], keys[:2], channels)
    with pytest.raises(ValueError, match="one width"):
        select_channel(keys[0, :5], keys, channels)
    with pytest.raises(TypeError, match="channels"):
        select_channel(keys[0], keys, channels.long())
    with pytest.raises(ValueError, match="temperature"):
        select_channel(keys[0], keys, channels, temperature=0.0)
    with pytest.raises(ValueError, match="normalize"):
        select_channel(keys[0], keys, channels, normalize="nope")
    with pytest.raises(ValueError, match="estimate and target"):
        relative_error(voices, voices[0])
    with pytest.raises(ValueError, match="n_fft"):
        spectrogram(mixture[:100], SR)
    with pytest.raises(ValueError, match="x must be a 1-D"):
        spectrogram(voices, SR)
    with pytest.raises(ValueError, match="delay"):
        partial_report(5, delay=-0.1)
    with pytest.raises(ValueError, match="capacity"):
        partial_report(5, capacity=0)
