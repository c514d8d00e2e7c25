"""Measuring the models on labelled music, at run time: codec conditions (codecs), detection
metrics (metrics), the engines' evidence and each fusion model's P(AI) over many examples
(fusion_data) and the condition x engine table of `aimusicd eval` (table).

`aimusicd eval`, `learn`, `calibrate` and the report plots use it; so does training, which builds
on it. Nothing here imports daemon.training (tests/test_imports.py checks it).
"""
