"""Debian's chromium, headless, driven through chromium-driver by selenium; and a check that a
screenshot shows something."""

from __future__ import annotations

import io
import shutil

import numpy as np
import pytest

CHROMIUM = ("chromium", "chromium")
DRIVER = ("chromedriver", "chromium-driver")
WINDOW = (1280, 1400)


def chromium():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    paths = {}
    for name, package in (CHROMIUM, DRIVER):
        paths[name] = shutil.which(name)
        if paths[name] is None:
            pytest.fail(f"`{name}` not found: install Debian's {package} (.ci/run does)")
    options = webdriver.ChromeOptions()
    options.binary_location = paths["chromium"]
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                f"--window-size={WINDOW[0]},{WINDOW[1]}", "--hide-scrollbars"):
        options.add_argument(arg)
    return webdriver.Chrome(options=options, service=Service(paths["chromedriver"]))


def assert_not_blank(png: bytes, what: str) -> None:
    """A real page has text and charts: many colours, and no single one covering nearly all of it."""
    import matplotlib.image

    pixels = (matplotlib.image.imread(io.BytesIO(png), format="png")[..., :3] * 255).astype(np.uint8)
    flat = pixels.reshape(-1, 3)
    colours, counts = np.unique(flat, axis=0, return_counts=True)
    dominant = counts.max() / len(flat)
    assert len(colours) > 50 and dominant < 0.97, (
        f"{what}: screenshot looks blank ({len(colours)} colours, {dominant:.1%} one colour)")
