"""The dashboard in a real browser (Debian's chromium, headless, through chromium-driver and
selenium) against a running daemon: history, report page, live meter fed by JACK, the token.

With AIMUSICD_SCREENSHOTS=DIR the screenshots are kept there (`make screenshots` refreshes the
README's), and files are analysed in full mode so the report page shows the Demucs evidence too."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from support.audio import music
from support.browser import WINDOW, assert_not_blank, chromium
from support.jack import RATE
from test_web import web_daemon

pytestmark = pytest.mark.browser
SHOTS = os.environ.get("AIMUSICD_SCREENSHOTS")


@pytest.fixture(scope="module")
def browser():
    driver = chromium()
    yield driver
    driver.quit()


def screenshot(browser, name: str, tmp_path: Path, for_readme: bool = True) -> None:
    """The whole page (the window is fitted to it first), checked not to be blank."""
    height = browser.execute_script(
        "return document.querySelector('main').getBoundingClientRect().bottom + window.scrollY")
    browser.set_window_size(WINDOW[0], max(480, min(int(height) + 100, 3000)))
    png = browser.get_screenshot_as_png()
    browser.set_window_size(*WINDOW)
    assert_not_blank(png, name)
    for folder in (tmp_path, *([Path(SHOTS)] if SHOTS and for_readme else [])):
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{name}.png").write_bytes(png)


def wait(browser, condition, what: str, timeout: float = 20.0):
    return WebDriverWait(browser, timeout, poll_frequency=0.1).until(
        lambda b: condition(b), message=f"timed out waiting for {what}")


@pytest.mark.jack
def test_history_report_and_live_meter_in_a_browser(daemon, jack, monkeypatch, browser, fixtures_dir, tmp_path):
    for key, value in jack.env.items():
        monkeypatch.setenv(key, value)
    mode = "full" if SHOTS else "cnn"
    d = web_daemon(daemon, watch={"mode": mode},
                   live={"device": "system", "hop_s": 0.5, "smoothing_s": 1.0, "capture": False,
                         "demucs_check": False})
    staging = tmp_path / "staging"
    staging.mkdir()
    for name in ("final mix.wav", "demo.mp3"):
        shutil.copy(fixtures_dir / "good" / f"music{Path(name).suffix}", staging / name)
        shutil.move(staging / name, d.inbox / name)
    jobs = d.wait_jobs(lambda j: len(j) == 2 and all(x["state"] == "done" for x in j), 120, "two results")

    browser.get(f"{d.url}/history")
    rows = browser.find_elements(By.CSS_SELECTOR, "#history tbody tr[data-job]")
    assert sorted(r.find_element(By.CSS_SELECTOR, "a.report").text for r in rows) == ["demo.mp3", "final mix.wav"]
    assert browser.find_element(By.CSS_SELECTOR, "#per-day svg").is_displayed()
    screenshot(browser, "history", tmp_path)

    job = next(j for j in jobs if j["path"].endswith("final mix.wav"))
    browser.find_element(By.LINK_TEXT, "final mix.wav").click()
    wait(browser, lambda b: b.find_elements(By.ID, "timeline"), "the report page")
    badge = browser.find_element(By.CSS_SELECTOR, "#verdict .verdict")
    assert badge.get_attribute("data-verdict") == job["verdict"] and badge.text == job["verdict"].upper()
    assert browser.find_element(By.ID, "probability").text == f"{job['probability_ai']:.3f}"
    chart = browser.find_element(By.CSS_SELECTOR, "#timeline svg")
    assert chart.is_displayed() and chart.size["width"] > 600 and chart.size["height"] > 150
    assert "Timeline: where the CNN fired" in chart.get_attribute("innerHTML")
    screenshot(browser, "report", tmp_path)

    browser.get(f"{d.url}/queue")
    assert browser.find_element(By.CSS_SELECTOR, '#counts td[data-state="done"]').text == "2"
    screenshot(browser, "queue", tmp_path)

    browser.get(f"{d.url}/report?path=/etc/passwd")
    assert "outside the report store and the allowed roots" in browser.find_element(By.ID, "message").text

    song = tmp_path / "live.wav"
    sf.write(song, np.concatenate([music(12, RATE, seed=3), np.zeros((2, RATE), np.float32)], axis=1).T,
             RATE, subtype="FLOAT")
    browser.get(f"{d.url}/live")
    assert browser.find_element(By.ID, "state").text == "off"
    browser.find_element(By.ID, "start").click()
    try:
        wait(browser, lambda b: b.find_element(By.ID, "state").text == "on", "live input to start")
    except TimeoutException:
        raise AssertionError(f"live input did not start: {browser.find_element(By.ID, 'error').text!r}\n"
                             f"{d.log()[-2000:]}") from None
    jack.wait_for_port("PortAudio:in_0")
    player = jack.play(song)
    seen: set[float] = set()
    deadline = time.monotonic() + 25
    while len(seen) < 4 and time.monotonic() < deadline:
        value = browser.execute_script("return document.getElementById('meter').value")
        if value > 0:
            seen.add(round(value, 4))
        time.sleep(0.2)
    assert len(seen) >= 4, f"the meter did not move with the input (values {sorted(seen)})"
    assert int(browser.find_element(By.ID, "count").text) >= 4
    screenshot(browser, "live", tmp_path)
    browser.find_element(By.ID, "stop").click()
    wait(browser, lambda b: b.find_element(By.ID, "state").text == "off", "live input to stop")
    player.wait(30)
    assert d.alive()


def test_browser_without_the_token_is_refused_off_loopback(daemon, browser, off_loopback, tmp_path):
    d = web_daemon(daemon, host=off_loopback, web={"token": "browser-token"})
    browser.delete_all_cookies()
    browser.get(f"{d.url}/history")
    assert "a valid token is required" in browser.find_element(By.TAG_NAME, "body").text
    browser.get(f"{d.url}/history?token=browser-token")
    assert browser.current_url == f"{d.url}/history" and browser.title == "aimusicd: history"
    browser.get(f"{d.url}/queue")                       # the cookie carries the token from now on
    assert browser.title == "aimusicd: queue and models"
    screenshot(browser, "token-queue", tmp_path, for_readme=False)
    browser.delete_all_cookies()
