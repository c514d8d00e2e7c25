"""Evidence from one separated excerpt: what HTDemucs leaves out of every stem, and how the stems
share content.

HTDemucs does not force its stems to sum to the mix (time branch + iSTFT of the spectral branch,
no Wiener step), so the residual `mix - sum(stems)` is a real signal. Which of these features carry
information is measured in training and recorded in the model card, not assumed here.
"""

from __future__ import annotations

import numpy as np

EPS = 1e-12
BAND_EDGES_HZ = (0, 200, 800, 3000, 8000, 16000, None)   # None = Nyquist
STEMS = ("drums", "bass", "other", "vocals")
N_FFT, HOP = 2048, 1024


def _band_names() -> list[str]:
    names = []
    for lo, hi in zip(BAND_EDGES_HZ[:-1], BAND_EDGES_HZ[1:]):
        names.append(f"residual_db_{lo}_{hi if hi is not None else 'nyq'}")
    return names


FEATURE_NAMES: tuple[str, ...] = tuple(
    ["residual_db", *_band_names(), "residual_frame_db_std", "residual_side_ratio_db",
     "residual_flatness", "residual_stem_corr_max",
     *[f"stem_fraction_{s}" for s in STEMS],
     "bleed_envelope_corr", "bleed_spectral_overlap"]
)


def _power_spec(x: np.ndarray) -> np.ndarray:
    """(..., samples) -> (..., frames, bins) power, Hann window, no centring."""
    if x.shape[-1] < N_FFT:
        x = np.pad(x, [(0, 0)] * (x.ndim - 1) + [(0, N_FFT - x.shape[-1])])
    frames = np.lib.stride_tricks.sliding_window_view(x, N_FFT, axis=-1)[..., ::HOP, :]
    spec = np.fft.rfft(frames * np.hanning(N_FFT).astype(np.float32), axis=-1)
    return (spec.real ** 2 + spec.imag ** 2).astype(np.float64)


def _db(num: float, den: float) -> float:
    return float(10.0 * np.log10((num + EPS) / (den + EPS)))


def excerpt_features(mix: np.ndarray, stems: np.ndarray, sample_rate: int) -> dict[str, float]:
    """mix (2, n), stems (4, 2, n) -> named features (see FEATURE_NAMES)."""
    mix = mix.astype(np.float64)
    stems = stems.astype(np.float64)
    residual = mix - stems.sum(axis=0)
    f: dict[str, float] = {}
    f["residual_db"] = _db(np.sum(residual ** 2), np.sum(mix ** 2))

    mix_p = _power_spec(mix.mean(axis=0))            # (frames, bins) of the mid signal
    res_p = _power_spec(residual.mean(axis=0))
    freqs = np.fft.rfftfreq(N_FFT, 1.0 / sample_rate)
    for name, lo, hi in zip(_band_names(), BAND_EDGES_HZ[:-1], BAND_EDGES_HZ[1:]):
        band = (freqs >= lo) & (freqs < (hi if hi is not None else np.inf))
        f[name] = _db(res_p[:, band].sum(), mix_p[:, band].sum())

    frame_ratio = 10 * np.log10((res_p.sum(1) + EPS) / (mix_p.sum(1) + EPS))
    loud = mix_p.sum(1) > 1e-6 * mix_p.sum(1).max()    # silent frames say nothing
    f["residual_frame_db_std"] = float(np.std(frame_ratio[loud])) if loud.any() else 0.0
    side, mid = residual[0] - residual[1], residual[0] + residual[1]
    f["residual_side_ratio_db"] = _db(np.sum(side ** 2), np.sum(mid ** 2))
    mean_res = res_p.mean(axis=0)[1:] + EPS
    f["residual_flatness"] = float(np.exp(np.mean(np.log(mean_res))) / np.mean(mean_res))

    flat_res = residual.reshape(-1)
    corrs = []
    for stem in stems:
        s = stem.reshape(-1)
        corrs.append(abs(np.dot(flat_res, s)) / (np.linalg.norm(flat_res) * np.linalg.norm(s) + EPS))
    f["residual_stem_corr_max"] = float(max(corrs))

    energies = (stems ** 2).sum(axis=(1, 2))
    total = energies.sum() + EPS
    for name, e in zip(STEMS, energies):
        f[f"stem_fraction_{name}"] = float(e / total)

    stem_p = _power_spec(stems.mean(axis=1))         # (4, frames, bins)
    envelopes = np.log(stem_p.sum(axis=2) + 1e-9)    # (4, frames)
    mags = np.sqrt(stem_p).reshape(len(stems), -1)
    env_corr, overlap = [], []
    for i in range(len(stems)):
        for j in range(i + 1, len(stems)):
            a, b = envelopes[i] - envelopes[i].mean(), envelopes[j] - envelopes[j].mean()
            env_corr.append(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b) + EPS))
            overlap.append(np.dot(mags[i], mags[j]) / (np.linalg.norm(mags[i]) * np.linalg.norm(mags[j]) + EPS))
    f["bleed_envelope_corr"] = float(np.mean(env_corr))
    f["bleed_spectral_overlap"] = float(np.mean(overlap))
    return {name: f[name] for name in FEATURE_NAMES}


def aggregate(per_excerpt: list[dict[str, float]]) -> dict[str, float]:
    """Mean over excerpts (dB features are averaged in dB)."""
    return {name: float(np.mean([e[name] for e in per_excerpt])) for name in FEATURE_NAMES}
