"""Audio input: decoding, validation, downmix and resampling."""

from .decode import ENGINE_RATE, Audio, AudioInfo, Limits, downmix_to_stereo, load_audio
from .level import normalise_level
from .resample import resample

__all__ = ["ENGINE_RATE", "Audio", "AudioInfo", "Limits", "downmix_to_stereo", "load_audio", "normalise_level", "resample"]
