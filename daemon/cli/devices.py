"""`aimusicd devices`: the audio inputs live monitoring can use."""

from __future__ import annotations


def add_parser(sub) -> None:
    p = sub.add_parser("devices", help="list audio input devices for [live] device")
    p.set_defaults(func=run)


def run(args) -> int:
    import sounddevice as sd

    from ..services.capture import input_devices

    default = sd.default.device[0]
    devices = input_devices()
    if not devices:
        print("no audio input devices found")
        return 1
    apis = sd.query_hostapis()
    for d in devices:
        mark = "*" if d["index"] == default else " "
        print(f"{mark}{d['index']:3d}  {d['name']}  ({apis[d['hostapi']]['name']}, "
              f"{d['max_input_channels']} in, {d['default_samplerate']:.0f} Hz)")
    return 0
