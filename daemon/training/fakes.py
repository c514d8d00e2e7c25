"""AI-like fakes made from human music: content-preserving "decoder artifact" families.

No generator ships weights we may use, so the fakes carry what generators share rather than any one
model's output: music decoded from a low-rate latent. Each family keeps the input and only replaces
the band below the latent's Nyquist frequency (rate / 2S for a total stride S) by a decoder's
reconstruction of that band; everything above stays as it was. The fingerprint is the decoder's:
images of the low band around multiples of each stage's input rate (filling quiet bands above), tones
there from per-stage biases, and the faint nonlinear residue of hidden channels. Mild artifacts of
this kind transfer to real AI music better than harsh spectral colouring does, so kernels start as
proper interpolators with 5-30 % perturbation.

  upsampler  zero insertion through a perturbed low-pass, K 2..8
  tconv      randomly initialised transposed-convolution decoder, with short kernels (2s or s taps,
             as real ones often are): the harshest family
  upconv     nearest/linear upsampling then convolution
  subpixel   convolution to stride x channels then a 1-D pixel shuffle (TRANSFER_HOLDOUT)
All run as torch stages (float32, CPU, no_grad). The neural ones have 1-3 stages of stride 2, 3, 4, 5
or 8 (S 2..16) and decode at 48, 32 or 24 kHz half the time, so their images land at other absolute
frequencies. The learned family (a small autoencoder trained here) lives in autoencoder.py and
joins FAMILIES through register() once trained.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from math import gcd, prod
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from scipy.signal import firwin, resample_poly

# The one family kept out of every training and calibration step, reported as transfer.
TRANSFER_HOLDOUT = "subpixel"
STAGE_STRIDES = (2, 3, 4, 5, 8)
MAX_TOTAL_STRIDE = 16
DECODER_RATES = (48000, 32000, 24000)
UPSAMPLER_STAGES = ((2,), (3,), (4,), (8,), (2, 2), (4, 2), (2, 4), (2, 3), (3, 2), (2, 2, 2))
# Neural stride plans grouped by stage count, so 1, 2 and 3 stages are equally likely.
_NEURAL_STAGES = tuple(
    tuple(p for p in itertools.product(STAGE_STRIDES, repeat=n) if prod(p) <= MAX_TOTAL_STRIDE)
    for n in (1, 2, 3)
)

Array = np.ndarray
Decode = Callable[[Array, tuple[int, ...], np.random.Generator], Array]


@dataclass(frozen=True)
class DecoderPlan:
    strides: tuple[int, ...]   # per stage, latent first
    rate: int                  # the decoder's output rate

    @property
    def total_stride(self) -> int:
        return prod(self.strides)


@dataclass(frozen=True)
class FakeFamily:
    name: str
    make: Callable[[Array, int, np.random.Generator], Array]
    description: str


def register(family: FakeFamily) -> None:
    """Add a family that needs preparing first (the learned autoencoder). Worker processes forked
    afterwards inherit it."""
    FAMILIES[family.name] = family


def make_fake(name: str, x: Array, rate: int, rng: np.random.Generator) -> Array:
    """Apply family `name` with fresh random settings drawn from rng."""
    if name not in FAMILIES:
        raise KeyError(f"unknown fake family {name!r}; known: {', '.join(FAMILIES)}")
    return FAMILIES[name].make(x, rate, rng)


def draw_plan(name: str, rate: int, rng: np.random.Generator) -> DecoderPlan:
    """Random strides and output rate for family `name`."""
    if name == "upsampler":
        return DecoderPlan(UPSAMPLER_STAGES[rng.integers(len(UPSAMPLER_STAGES))], rate)
    plans = _NEURAL_STAGES[rng.integers(len(_NEURAL_STAGES))]
    strides = plans[rng.integers(len(plans))]
    out_rate = int(DECODER_RATES[rng.integers(len(DECODER_RATES))]) if rng.random() < 0.5 else rate
    return DecoderPlan(strides, out_rate)


def render(name: str, x: Array, rate: int, plan: DecoderPlan, rng: np.random.Generator) -> Array:
    """Replace x's band below plan.rate / (2 S) by family `name`'s decode of it; keep the rest.

    fake = x + back(decode(latent) - clean_upsample(latent)): only the decoder's deviation from
    a clean reconstruction is added, so the result equals x wherever the decoder is faithful."""
    xd = stereo_f64(x)
    at_plan = resample_f64(xd, rate, plan.rate)
    n = at_plan.shape[1]
    s = plan.total_stride
    lo = resample_poly(at_plan, 1, s, axis=-1)
    base = _fit(resample_poly(lo, s, 1, axis=-1), n)
    dev = _fit(_DECODERS[name](lo, plan.strides, rng), n) - base
    return add_deviation(xd, dev, plan.rate, rate)


def stereo_f64(x: Array) -> Array:
    """x as float64 of shape (2, samples); anything else is an error."""
    if x.ndim != 2 or x.shape[0] != 2:
        raise ValueError(f"expected stereo audio of shape (2, samples), got {x.shape}")
    return x.astype(np.float64)


def add_deviation(xd: Array, dev: Array, dev_rate: int, rate: int) -> Array:
    """xd plus a decoder's deviation from the clean band (at dev_rate), level-matched to xd. The
    deviation's DC goes (from biases); their tones stay."""
    dev = dev - dev.mean(axis=1, keepdims=True)
    return _match_rms(xd + _fit(resample_f64(dev, dev_rate, rate), xd.shape[1]), xd)


Stage = Callable[[torch.Tensor, int, np.random.Generator], tuple[torch.Tensor, float]]


def _decoder(stage: Stage, hidden: bool, bias_channels: int) -> Decode:
    """A stack of upsampling stages, float32 torch on the CPU. Each stage gets a bias (DC tone) on
    its input and, if `hidden`, a nonlinear residual path on its output. Stages return their output
    and where input sample 0 landed in it; the running sub-sample lag is carried across stages, so
    the decode stays within half a sample of the clean reconstruction and the kept upper band."""
    def decode(lo: Array, strides: tuple[int, ...], rng: np.random.Generator) -> Array:
        rms = np.sqrt((lo ** 2).mean()) + 1e-6
        y = _tensor(lo)[None]
        lag = 0.0   # y[i] ~ ideal(i - lag), in samples at y's rate
        with torch.no_grad():
            for s in strides:
                y = y + _tensor(_bias(rng, rms, bias_channels))
                out, centre = stage(F.pad(y, (_PAD, _PAD), mode="replicate"), s, rng)
                target = centre + _PAD * s + lag * s
                start = int(np.floor(target + 0.5))
                lag = target - start
                y = out[..., start:start + y.shape[-1] * s]
                if hidden:
                    y = _hidden_residual(y, rng)
        return y[0].double().numpy()
    return decode


_PAD = 2   # input frames of edge padding per stage, enough for any stage's centre and lag


def _zero_insert_stage(y: torch.Tensor, s: int, rng: np.random.Generator) -> tuple[torch.Tensor, float]:
    """The reference upsampler: zero insertion through one perturbed low-pass (2s..4s taps, phases
    not balanced) shared by both channels, which is a transposed convolution with that kernel."""
    taps = int(rng.integers(2 * s, 4 * s + 1))
    h = _perturbed_lowpass(taps, s, rng, gain=s, balanced=False, channels=1)
    w = _tensor(np.repeat(h, 2, axis=0))[:, None]
    return F.conv_transpose1d(y, w, stride=s, groups=2), (taps - 1) / 2


def _tconv_stage(y: torch.Tensor, s: int, rng: np.random.Generator) -> tuple[torch.Tensor, float]:
    """ConvTranspose1d with kernel 2 x stride (triangle-like, the usual choice), 4 x stride
    (smoother), or stride (box-like: strong sinc-shaped images)."""
    taps = s * int(rng.choice((1, 2, 4), p=(0.2, 0.5, 0.3)))
    w = _tensor(_perturbed_lowpass(taps, s, rng, gain=s, balanced=True))[:, None]
    return F.conv_transpose1d(y, w, stride=s, groups=2), (taps - 1) / 2


def _upconv_stage(y: torch.Tensor, s: int, rng: np.random.Generator) -> tuple[torch.Tensor, float]:
    """Nearest or linear Upsample by s, then a Conv1d of odd length 3..2s+1."""
    mode = ("nearest", "linear")[rng.integers(2)]
    taps = 2 * int(rng.integers(1, s + 1)) + 1
    w = _tensor(_perturbed_lowpass(taps, s, rng, gain=1, balanced=False))[:, None]
    up = F.interpolate(y, scale_factor=s, mode=mode)
    return F.conv1d(up, w, padding=taps // 2, groups=2), (s - 1) / 2   # both modes: n -> n*s + (s-1)/2


def _subpixel_stage(y: torch.Tensor, s: int, rng: np.random.Generator) -> tuple[torch.Tensor, float]:
    """Conv1d to 2*s channels (m taps each: phase p of the interpolation kernel, its own perturbation,
    faint L/R cross-talk), then a pixel shuffle of channels into time."""
    m = int(rng.integers(2, 5))
    taps = m * s
    h = _perturbed_lowpass(taps, s, rng, gain=s, balanced=True)
    w = np.zeros((2, s, 2, m))
    for c in range(2):
        # w[c, p, c, j] = h[c, (m-1-j)*s + p]: polyphase component p, reversed for conv1d
        w[c, :, c, :] = h[c].reshape(m, s).T[:, ::-1]
        w[c, :, 1 - c, :] = 0.1 * np.abs(h[c]).max() * rng.standard_normal((s, m))
    w_t = _tensor(w.reshape(2 * s, 2, m))
    out = F.conv1d(y, w_t, padding=m - 1)
    out = out.reshape(1, 2, s, -1).transpose(2, 3).reshape(1, 2, -1)
    return out, (taps - 1) / 2   # the same alignment as the equivalent transposed convolution


def _hidden_residual(y: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """2 -> H hidden channels (3-tap conv, tanh or snake) -> 2, added at -40..-15 dB: the
    nonlinear residue of a decoder's hidden layers without destroying the content. In place,
    as this runs at the output rate and dominates the cost."""
    hidden = int(rng.integers(4, 9))
    rms = _rms(y) + 1e-6
    w1 = _tensor(rng.standard_normal((hidden, 2, 3)) / (np.sqrt(6) * rms))   # unit-RMS input
    b1 = _tensor(0.5 * rng.standard_normal(hidden))
    w2 = _tensor(rng.standard_normal((2, hidden, 1)) / np.sqrt(hidden))
    z = F.conv1d(y, w1, b1, padding=1)
    if rng.random() < 0.5:
        z.tanh_()
    else:
        alpha = _tensor(rng.uniform(0.5, 3.0, (1, hidden, 1)))
        z.add_(torch.sin(alpha * z).square_().div_(alpha))
    r = F.conv1d(z, w2)
    gain = 10 ** (rng.uniform(-40, -15) / 20) * rms / (_rms(r) + 1e-12)
    return y.add_(r, alpha=gain)


def _rms(t: torch.Tensor) -> float:
    return float(torch.linalg.vector_norm(t)) / np.sqrt(t.numel())


def _tensor(a: Array) -> torch.Tensor:
    return torch.from_numpy(np.asarray(a, dtype=np.float32))


def _perturbed_lowpass(taps: int, stride: int, rng: np.random.Generator, gain: float,
                       balanced: bool, channels: int = 2) -> Array:
    """Interpolation low-pass (cutoff at the stage input's Nyquist, DC gain `gain`) plus 5-30 %
    random-normal perturbation per channel: mostly faithful, as a barely trained decoder.
    `balanced` zero-insertion kernels have every polyphase component sum to 1, as a true
    interpolator's do; unbalanced phases modulate the whole band into images."""
    h = firwin(taps, 1.0 / stride)
    if balanced:
        for p in range(stride):
            h[p::stride] /= h[p::stride].sum()
    else:
        h *= gain / h.sum()
    noise = rng.standard_normal((channels, taps))
    beta = rng.uniform(0.05, 0.3)
    return h + beta * np.linalg.norm(h) * noise / np.linalg.norm(noise, axis=1, keepdims=True)


def _bias(rng: np.random.Generator, rms: float, channels: int) -> Array:
    """Per-stage input offset (p=0.8, 0.1-3 % of the latent's RMS): after upsampling it is a comb of
    tones at multiples of the stage's input rate."""
    if rng.random() >= 0.8:
        return np.zeros((channels, 1))
    size = np.exp(rng.uniform(np.log(1e-3), np.log(3e-2), (channels, 1)))
    return size * rms * rng.choice((-1.0, 1.0), (channels, 1))


def _match_rms(y: Array, x: Array) -> Array:
    y = y * (np.sqrt((x ** 2).mean()) / (np.sqrt((y ** 2).mean()) + 1e-12))
    peak = np.abs(y).max(initial=0.0)
    if peak > 0.999:
        y = y * (0.999 / peak)
    return y.astype(np.float32)


def _fit(y: Array, n: int) -> Array:
    if y.shape[1] < n:
        return np.pad(y, ((0, 0), (0, n - y.shape[1])))
    return y[:, :n]


def resample_f64(x: Array, rate_in: int, rate_out: int) -> Array:
    if rate_in == rate_out:
        return x
    g = gcd(rate_in, rate_out)
    return resample_poly(x, rate_out // g, rate_in // g, axis=-1)


_DECODERS: dict[str, Decode] = {
    "upsampler": _decoder(_zero_insert_stage, hidden=False, bias_channels=1),
    "tconv": _decoder(_tconv_stage, hidden=True, bias_channels=2),
    "upconv": _decoder(_upconv_stage, hidden=True, bias_channels=2),
    "subpixel": _decoder(_subpixel_stage, hidden=True, bias_channels=2),
}


def _family(name: str, description: str) -> FakeFamily:
    def make(x: Array, rate: int, rng: np.random.Generator) -> Array:
        return render(name, x, rate, draw_plan(name, rate, rng), rng)
    return FakeFamily(name, make, description)


FAMILIES: dict[str, FakeFamily] = {f.name: f for f in (
    _family("upsampler", "down by 2-8, zero insertion through perturbed low-pass kernels, DC tones"),
    _family("tconv", "random transposed-convolution decoder, strides 2-16, hidden tanh/snake path"),
    _family("upconv", "random nearest/linear upsample + convolution decoder, strides 2-16"),
    _family("subpixel", "random sub-pixel (conv + pixel shuffle) decoder, strides 2-16"),
)}
