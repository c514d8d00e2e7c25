"""One loader for every input format, with a one-line `AudioError` for anything it cannot use.

libsndfile (through soundfile) reads wav, aiff, flac, ogg/vorbis, opus and mp3; PyAV (FFmpeg) reads
m4a/aac and whatever else libsndfile rejects. Audio comes out as float32 stereo at the engines' rate.

Downmix rule: mono is copied to both sides; stereo is kept; with more channels, the first two are
left and right and every further channel is added to both at -3 dB, except the LFE (the fourth
channel of 6- and 8-channel files); the sum is scaled by 1 / (1 + 0.707 * extra channels) so that
it cannot clip more than the loudest input channel.
"""

from __future__ import annotations

import functools
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from ..errors import AudioError
from ..files import NotRegularFile, open_regular
from .level import Level
from .resample import resample, span_input

ENGINE_RATE = 44100
MIN_RATE, MAX_RATE = 8000, 192000
LOSSY_SUBTYPES = {"VORBIS", "OPUS", "MPEG_LAYER_I", "MPEG_LAYER_II", "MPEG_LAYER_III"}
LOSSY_CODECS = {"aac", "mp3", "mp3float", "mp2", "opus", "libopus", "vorbis", "wmav1", "wmav2", "ac3", "eac3"}
PYAV_FIRST = {".m4a", ".aac", ".mp4", ".m4b", ".3gp", ".webm", ".mka", ".wma"}


@dataclass(frozen=True)
class AudioInfo:
    """What the file itself says, before any conversion."""

    path: str
    container: str      # e.g. WAV, FLAC, OGG, MP3, mov,mp4,m4a,3gp,3g2,mj2
    codec: str          # e.g. PCM_16, VORBIS, MPEG_LAYER_III, aac
    lossy: bool         # the container's own codec is lossy (a WAV decoded from an MP3 is not caught here)
    sample_rate: int
    channels: int
    duration_s: float
    size_bytes: int


@dataclass
class Audio:
    """A decoded file. What the engines read is derived on first use, each once: `mono`, the
    level-normalised mid at the engine rate (the fast pass), `samples`, the stereo at the engine
    rate as decoded, and `normalised()`, that stereo level-normalised (Demucs). A file in the
    engine rate is never copied for the fast pass; one in another rate has only its mid resampled
    unless the stereo is asked for."""

    decoded: np.ndarray  # float32 (2, frames) at `decoded_rate`, downmixed, any strides
    decoded_rate: int
    info: AudioInfo
    sample_rate: int = ENGINE_RATE

    @property
    def duration_s(self) -> float:
        return self.decoded.shape[1] / self.decoded_rate

    @functools.cached_property
    def level(self) -> Level:
        return Level.of(self.decoded)

    @functools.cached_property
    def mono(self) -> np.ndarray:
        stereo = torch.from_numpy(self.decoded)
        mid = stereo.T.matmul(torch.full((stereo.shape[0],), 0.5)).numpy()   # (L + R) / 2, exactly
        return resample(self.level.apply_mid(mid), self.decoded_rate, self.sample_rate)

    @functools.cached_property
    def samples(self) -> np.ndarray:
        """float32 (2, frames) at the engine rate, C-contiguous, not normalised (codec simulation)."""
        return np.ascontiguousarray(resample(self.decoded, self.decoded_rate, self.sample_rate))

    @property
    def frames(self) -> int:
        """Frames at the engine rate (as in `mono`)."""
        return self.mono.shape[0]

    def normalised(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Frames [start, stop) of the stereo at the engine rate, level-normalised: a new
        C-contiguous array, converted from only the part of the file it needs (Demucs reads a few
        excerpts). Normalised before resampling, as `mono` is, so a DC offset leaves no step."""
        stop = self.frames if stop is None else stop
        lo, hi, skip = span_input(self.decoded.shape[1], self.decoded_rate, self.sample_rate, start, stop)
        part = self.level.apply(np.array(self.decoded[:, lo:hi], dtype=np.float32, order="C"))
        part = resample(part, self.decoded_rate, self.sample_rate)
        return np.ascontiguousarray(part[:, skip:skip + stop - start])


@dataclass(frozen=True)
class Limits:
    min_duration_s: float = 2.0
    max_duration_s: float = 3600.0
    max_file_mb: int = 2048


def load_audio(path: str | Path, limits: Limits = Limits(), target_rate: int = ENGINE_RATE) -> Audio:
    """Decode, validate, downmix to stereo and resample `path`; raise `AudioError` with the reason."""
    path = Path(path)
    size = _check_file(path, limits)
    if path.suffix.lower() in PYAV_FIRST:
        data, rate, info = _decode_pyav(path, size, limits)
    else:
        try:
            data, rate, info = _decode_soundfile(path, size, limits)
        except _Unrecognised as sf_exc:
            try:
                data, rate, info = _decode_pyav(path, size, limits)
            except _Unrecognised as av_exc:
                raise AudioError(
                    path, f"not a readable audio file ({sf_exc.reason}; {av_exc.reason})"
                ) from None
    if data.shape[0] == 0:
        raise AudioError(path, "contains no audio frames")
    if not info.codec.startswith("PCM_") and not np.isfinite(data).all():   # integer PCM holds no NaN
        raise AudioError(path, "contains NaN or infinite samples")
    duration = data.shape[0] / rate
    if duration < limits.min_duration_s:
        raise AudioError(
            path, f"too short ({duration:.2f} s; at least {limits.min_duration_s:g} s is needed)"
        )
    return Audio(downmix_to_stereo(data), rate, info, target_rate)


class _Unrecognised(Exception):
    def __init__(self, reason: str):
        self.reason = reason


def _check_file(path: Path, limits: Limits) -> int:
    try:
        st = path.stat()
    except FileNotFoundError:
        raise AudioError(path, "file not found") from None
    except OSError as exc:
        raise AudioError(path, f"cannot access ({exc.strerror})") from None
    if not path.is_file():
        raise AudioError(path, "not a regular file")
    if st.st_size == 0:
        raise AudioError(path, "empty file (0 bytes)")
    if st.st_size > limits.max_file_mb * 1024 * 1024:
        raise AudioError(
            path, f"too large ({st.st_size / 2**20:.0f} MB; the limit is {limits.max_file_mb} MB)"
        )
    try:
        with open_regular(path) as fh:
            head = fh.read(4096)
    except NotRegularFile:
        raise AudioError(path, "not a regular file") from None
    except OSError as exc:
        raise AudioError(path, f"cannot read ({exc.strerror})") from None
    truncation = _iff_truncation(head, st.st_size)
    if truncation:
        raise AudioError(path, truncation)
    return st.st_size


def incomplete_reason(path: Path) -> str | None:
    """Why a WAV/AIFF file looks unfinished (a writer may still be at work), or None. An empty
    file is not "unfinished": it fails as empty, and if content arrives later it is a new file."""
    try:
        with open_regular(path) as fh:
            size = os.fstat(fh.fileno()).st_size
            head = fh.read(4096)
    except NotRegularFile:
        return "not a regular file"
    except OSError as exc:
        return f"cannot read ({exc.strerror})"
    return _iff_truncation(head, size)


def _iff_truncation(head: bytes, size: int) -> str | None:
    """WAV and AIFF headers state the audio's byte count; libsndfile silently reads less when the
    file is shorter, so compare. A size of 0 or 0xFFFFFFFF is what writers leave while recording."""
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        endian, pos = "<", 12
    elif head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
        endian, pos = ">", 12
    else:
        return None
    while pos + 8 <= len(head):
        chunk_id = head[pos:pos + 4]
        (chunk_size,) = struct.unpack(endian + "I", head[pos + 4:pos + 8])
        if chunk_id in (b"data", b"SSND"):
            if chunk_size in (0, 0xFFFFFFFF):
                return "header states no audio length (the file may still be being written)"
            available = size - (pos + 8)
            if chunk_size > available:
                return (
                    f"truncated: the header promises {chunk_size} bytes of audio, "
                    f"only {max(available, 0)} are present"
                )
            return None
        pos += 8 + chunk_size + (chunk_size & 1)
    return None


def _check_duration(path: Path, duration: float, limits: Limits) -> None:
    if duration > limits.max_duration_s:
        raise AudioError(
            path,
            f"too long ({duration / 60:.1f} min; the limit is {limits.max_duration_s / 60:.1f} min, "
            "[engines] max_duration_s)",
        )


def _check_rate(path: Path, rate: int) -> None:
    if not MIN_RATE <= rate <= MAX_RATE:
        raise AudioError(
            path, f"unsupported sample rate {rate} Hz (supported: {MIN_RATE}-{MAX_RATE} Hz)"
        )


def _decode_soundfile(path: Path, size: int, limits: Limits):
    try:
        meta = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise _Unrecognised(f"libsndfile: {_sf_reason(exc)}") from None
    _check_rate(path, meta.samplerate)
    if meta.channels < 1:
        raise AudioError(path, "has no audio channels")
    _check_duration(path, meta.frames / meta.samplerate, limits)
    try:
        data, rate = _read_float32(path, meta.subtype)
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise AudioError(path, f"corrupt or truncated audio ({_sf_reason(exc)})") from None
    if meta.frames and data.shape[0] < 0.98 * meta.frames:
        raise AudioError(
            path,
            f"truncated: the header promises {meta.frames / rate:.1f} s, "
            f"only {data.shape[0] / rate:.1f} s could be decoded",
        )
    info = AudioInfo(
        path=str(path), container=meta.format, codec=meta.subtype,
        lossy=meta.subtype in LOSSY_SUBTYPES, sample_rate=rate, channels=meta.channels,
        duration_s=data.shape[0] / rate, size_bytes=size,
    )
    return data, rate, info


# libsndfile's own integer-to-float conversion runs at a fifth of the speed of reading the
# integers and scaling them (multi-threaded); the scale is a power of two, so the values are equal.
_INTEGER_READS = {"PCM_16": ("int16", 2.0 ** -15), "PCM_24": ("int32", 2.0 ** -31),
                  "PCM_32": ("int32", 2.0 ** -31)}


def _read_float32(path: Path, subtype: str) -> tuple[np.ndarray, int]:
    """(frames, channels) float32 in [-1, 1) for integer PCM, as libsndfile's float read gives."""
    if subtype not in _INTEGER_READS:
        return sf.read(str(path), dtype="float32", always_2d=True)
    dtype, scale = _INTEGER_READS[subtype]
    ints, rate = sf.read(str(path), dtype=dtype, always_2d=True)
    return torch.from_numpy(ints).to(torch.float32).mul_(scale).numpy(), rate


def _sf_reason(exc: Exception) -> str:
    text = str(exc)
    # libsndfile repeats the path ("Error opening 'x.wav': Format not recognised."); keep the reason.
    if "': " in text:
        text = text.split("': ", 1)[1]
    return text.strip().rstrip(".") or type(exc).__name__


def _decode_pyav(path: Path, size: int, limits: Limits):
    import av  # imported here: FFmpeg's libraries are only needed for the formats libsndfile lacks

    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise _Unrecognised(f"ffmpeg: {_av_reason(exc)}") from None
    with container:
        streams = [s for s in container.streams if s.type == "audio"]
        if not streams:
            raise _Unrecognised("ffmpeg: no audio stream")
        stream = streams[0]
        ctx = stream.codec_context
        rate = int(ctx.sample_rate or 0)
        if rate == 0:   # FFmpeg "opens" some random data as a format, with no real stream in it
            raise _Unrecognised("ffmpeg: no decodable audio stream")
        channels = int(ctx.layout.nb_channels) if ctx.layout else int(getattr(ctx, "channels", 0))
        _check_rate(path, rate)
        if stream.duration and stream.time_base:
            _check_duration(path, float(stream.duration * stream.time_base), limits)
        resampler = av.AudioResampler(format="fltp", layout=ctx.layout, rate=rate)
        chunks: list[np.ndarray] = []
        decoded = 0
        max_frames = int(limits.max_duration_s * rate) + rate
        try:
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    arr = out.to_ndarray()
                    chunks.append(arr)
                    decoded += arr.shape[1]
                if decoded > max_frames:
                    _check_duration(path, decoded / rate, limits)
        except av.FFmpegError as exc:
            raise AudioError(path, f"corrupt or truncated audio (ffmpeg: {_av_reason(exc)})") from None
        codec = ctx.name
    if not chunks:
        raise AudioError(path, "contains no audio frames")
    data = np.concatenate(chunks, axis=1).T.astype(np.float32, copy=False)
    info = AudioInfo(
        path=str(path), container=container.format.name, codec=codec,
        lossy=codec in LOSSY_CODECS, sample_rate=rate, channels=channels or data.shape[1],
        duration_s=data.shape[0] / rate, size_bytes=size,
    )
    return data, rate, info


def _av_reason(exc: Exception) -> str:
    text = getattr(exc, "strerror", None) or str(exc)
    return text.split(": '")[0].strip()


def downmix_to_stereo(data: np.ndarray) -> np.ndarray:
    """(frames, channels) -> (2, frames) following the rule in the module docstring."""
    channels = data.shape[1]
    if channels == 1:
        return np.repeat(data.T, 2, axis=0)
    if channels == 2:
        return data.T
    extra = [c for c in range(2, channels) if not (channels in (6, 8) and c == 3)]
    shared = data[:, extra].sum(axis=1) * 0.7071
    scale = 1.0 / (1.0 + 0.7071 * len(extra))
    return np.stack([(data[:, 0] + shared) * scale, (data[:, 1] + shared) * scale])
