"""aimusicd: flags AI-generated music in DAW exports, over OSC and on live input."""

__version__ = "0.1.0"
