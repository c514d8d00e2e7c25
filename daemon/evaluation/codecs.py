"""Real lossy codecs (MP3, AAC, Opus) and 16-bit PCM applied in memory, time-aligned with their
input, or written as files: the codec conditions of `aimusicd eval`, `learn` and `calibrate`, and of
training's examples (training/examples.py draws their settings). The round trip goes through the
real encoders (PyAV: libmp3lame, FFmpeg's aac, libopus) because their band limits, pre-echo and
quantisation are exactly what a detector meets in the wild. A 16-bit lossless file (a CD master,
most FLAC) is a condition of its own: its quantisation floor is what a quiet master's top octave
is made of once the analyser normalises its level.

Alignment: the demuxers already remove each codec's delay, so output sample i matches input sample
i (cross-correlation peak at lag 0, checked in tests/test_codecs.py). Measured here at 44.1 kHz:
  MP3  1105 samples of LAME delay (576 + 529 decoder delay), trimmed via the LAME/Xing header,
       padding at the end trimmed too;
  AAC  1024 samples of priming, trimmed via the MP4 edit list (raw ADTS would keep it: not used);
       the tail is rounded up to whole 1024-sample frames and cut here;
  Opus 312 samples of pre-skip at 48 kHz, trimmed via the Ogg header; Opus runs at 48 kHz only,
       so the audio is resampled in and out (libsoxr, whose filter is delay-compensated).
"""

from __future__ import annotations

import io
import zlib
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import soundfile as sf

MP3_BITRATES = (64, 80, 96, 112, 128, 160, 192, 224, 256, 320)
AAC_BITRATES = tuple(range(96, 257, 16))
OPUS_BITRATES = tuple(range(64, 161, 8))
WORK_RATE = 48000   # Opus's only rate, and the detour for a rate another encoder lacks
_MP3_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)
_AAC_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000, 64000, 88200, 96000)


@dataclass(frozen=True)
class _Format:
    encoder: str     # FFmpeg encoder name
    sample_format: str
    container: str   # FFmpeg muxer; each one carries the codec's delay so the demuxer trims it
    suffix: str
    rates: tuple[int, ...]


_FORMATS = {
    "mp3": _Format("libmp3lame", "fltp", "mp3", ".mp3", _MP3_RATES),
    "aac": _Format("aac", "fltp", "mp4", ".m4a", _AAC_RATES),
    "opus": _Format("libopus", "flt", "ogg", ".opus", (WORK_RATE,)),
}


@dataclass(frozen=True)
class CodecSpec:
    codec: str          # "none" | "pcm16" | "mp3" | "aac" | "opus"
    bitrate_kbps: int   # 0 for the lossless ones

    def __post_init__(self) -> None:
        if self.codec in LOSSLESS:
            if self.bitrate_kbps != 0:
                raise ValueError(f"codec {self.codec!r} takes bitrate 0")
        elif self.codec not in _FORMATS:
            raise ValueError(f"unknown codec {self.codec!r}")
        elif not 8 <= self.bitrate_kbps <= 512:
            raise ValueError(f"implausible bitrate {self.bitrate_kbps} kbps")

    @property
    def lossy(self) -> bool:
        return self.codec not in LOSSLESS

    def label(self) -> str:
        return self.codec if self.codec in LOSSLESS else f"{self.codec}-{self.bitrate_kbps}"

    def condition_name(self) -> str:
        """The name `aimusicd eval`, `learn` and `calibrate` give the condition."""
        return "as-given" if self == NONE else self.label()


LOSSLESS = ("none", "pcm16")
NONE = CodecSpec("none", 0)      # float or 24-bit: no quantisation a detector could hear
PCM16 = CodecSpec("pcm16", 0)    # 16-bit with TPDF dither, as mastering writes it
EVAL_CONDITIONS: tuple[CodecSpec, ...] = (
    NONE, PCM16, CodecSpec("mp3", 320), CodecSpec("mp3", 128), CodecSpec("mp3", 64),
    CodecSpec("aac", 128), CodecSpec("opus", 64),
)
CONDITIONS: dict[str, CodecSpec] = {c.condition_name(): c for c in EVAL_CONDITIONS}


def apply_codec(x: np.ndarray, rate: int, spec: CodecSpec) -> np.ndarray:
    """Encode and decode stereo x; float32 (2, N) at `rate`, aligned with x sample for sample."""
    x = _check(x)
    if spec == NONE:
        return x
    if spec == PCM16:
        return (_pcm16(x) / np.float32(32768)).astype(np.float32)
    from ..audio.resample import resample   # imported here: the CLI reads CONDITIONS without loading torch

    data, work_rate = _encode(x, rate, spec)
    y = resample(_decode(data), work_rate, rate)
    n = x.shape[1]
    if y.shape[1] < n:
        y = np.pad(y, ((0, 0), (0, n - y.shape[1])))
    return np.ascontiguousarray(y[:, :n], dtype=np.float32)


def encode_file(x: np.ndarray, rate: int, spec: CodecSpec, path: Path) -> Path:
    """Write the codec condition as a user would have the file; the suffix follows the codec
    (a 24-bit WAV for "none", a 16-bit one for "pcm16"). Returns the path written."""
    x = _check(x)
    path = Path(path)
    if not spec.lossy:
        path = path.with_suffix(".wav")
        if spec == PCM16:
            sf.write(path, _pcm16(x).T, rate, subtype="PCM_16")   # int16 is written exactly
        else:
            sf.write(path, x.T, rate, subtype="PCM_24")
        return path
    data, _ = _encode(x, rate, spec)
    path = path.with_suffix(_FORMATS[spec.codec].suffix)
    path.write_bytes(data)
    return path


def _check(x: np.ndarray) -> np.ndarray:
    """A new stereo float32 array within [-1, 1]: encoders wrap or distort on overs in ways no file
    would."""
    x = np.asarray(x)
    if x.ndim != 2 or x.shape[0] != 2 or x.shape[1] == 0:
        raise ValueError(f"expected stereo audio of shape (2, samples), got {x.shape}")
    return np.clip(x, -1.0, 1.0).astype(np.float32, copy=False)


def _pcm16(x: np.ndarray) -> np.ndarray:
    """x as int16 with triangular dither of +-1 LSB, seeded by the samples: a condition renders the
    same file every time, and no two pieces of music share their dither."""
    rng = np.random.default_rng(zlib.crc32(x.tobytes()))
    dither = rng.random(x.shape, np.float32) - rng.random(x.shape, np.float32)
    return np.clip(np.round(x * np.float32(32768) + dither), -32768, 32767).astype(np.int16)


def _encode(x: np.ndarray, rate: int, spec: CodecSpec) -> tuple[bytes, int]:
    """The encoded file's bytes and the rate it was encoded at."""
    from ..audio.resample import resample

    fmt = _FORMATS[spec.codec]
    work_rate = rate if rate in fmt.rates else WORK_RATE
    x = np.ascontiguousarray(resample(x, rate, work_rate))
    buf = io.BytesIO()
    with av.open(buf, mode="w", format=fmt.container) as container:
        stream = container.add_stream(fmt.encoder, rate=work_rate, layout="stereo")
        stream.format = fmt.sample_format
        stream.bit_rate = spec.bitrate_kbps * 1000
        frame = av.AudioFrame.from_ndarray(x, format="fltp", layout="stereo")
        frame.sample_rate = work_rate
        frame.pts = 0
        for packet in stream.encode(frame):   # PyAV re-frames to the encoder's frame size
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return buf.getvalue(), work_rate


def _decode(data: bytes) -> np.ndarray:
    chunks = []
    with av.open(io.BytesIO(data)) as container:
        for frame in container.decode(audio=0):
            a = frame.to_ndarray()
            if not frame.format.is_planar:
                a = a.reshape(-1, len(frame.layout.channels)).T
            chunks.append(a.astype(np.float32, copy=False))
    if not chunks:
        return np.zeros((2, 0), np.float32)
    return np.concatenate(chunks, axis=1)


