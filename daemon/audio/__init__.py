"""Audio input: decoding, validation, downmix and resampling."""

from .decode import ENGINE_RATE, Audio, AudioInfo, Limits, downmix_to_stereo, load_audio
from .resample import resample

__all__ = ["ENGINE_RATE", "Audio", "AudioInfo", "Limits", "downmix_to_stereo", "load_audio", "resample"]
