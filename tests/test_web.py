"""The dashboard of a real daemon over real HTTP: history filters, sorting, pages and CSV, report
pages, and what it refuses (files outside its roots, foreign hosts and origins, requests without
the token when it listens off loopback)."""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
import threading
import time
from datetime import date, timedelta
from urllib.parse import quote, urlencode

import pytest
import soundfile as sf

from daemon.config import load_config
from daemon.errors import ConfigError
from support.audio import music
from support.web import free_tcp_port, request

FILES = ("a/one.wav", "a/two.wav", "a/three.wav", "b/four.wav", "b/five.wav", "b/six.flac")


def web_daemon(daemon, host: str = "127.0.0.1", **sections):
    """A daemon with its dashboard on a free port; d.url is where to reach it."""
    port = free_tcp_port(host if host != "0.0.0.0" else "127.0.0.1")
    web = {"enabled": True, "host": host, "port": port, **sections.pop("web", {})}
    d = daemon(web=web, **sections)
    d.url = f"http://{'127.0.0.1' if host == '0.0.0.0' else host}:{port}"
    return d


def drop(d, name: str, seed: int) -> None:
    """Write outside the watched folder, then move in: the watcher sees a finished file."""
    staging = d.root / "staging" / name
    staging.parent.mkdir(parents=True, exist_ok=True)
    sf.write(staging, music(3.0, 44100, seed).T, 44100)
    target = d.inbox / name
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(staging, target)


def names(html: str) -> list[str]:
    return re.findall(r'class="report" href="/report/\d+">([^<]+)<', html)


def test_history_filters_sorts_pages_and_exports(daemon):
    d = web_daemon(daemon, web={"page_size": 5})
    for seed, name in enumerate(FILES):
        drop(d, name, seed)
    jobs = d.wait_jobs(lambda j: len(j) == 6 and all(x["state"] == "done" for x in j), 60, "six results")
    h = lambda **q: request(f"{d.url}/history?{urlencode(q)}")   # noqa: E731

    first = h()
    assert first.status == 200 and len(names(first.body)) == 5 and "page 1 of 2, 6 files" in first.body
    assert len(names(h(page=2).body)) == 1
    assert sorted(names(h(folder=str(d.inbox / "a")).body)) == ["one.wav", "three.wav", "two.wav"]
    assert names(h(q=".flac").body) == ["six.flac"]
    assert names(h(sort="name", order="asc").body) == ["five.wav", "four.wav", "one.wav", "six.flac", "three.wav"]
    assert names(h(sort="name", order="desc", page=2).body) == ["five.wav"]
    verdict = jobs[0]["verdict"]
    assert len(names(h(verdict=verdict).body)) == min(5, sum(j["verdict"] == verdict for j in jobs))
    today, day = date.today(), timedelta(days=1)
    assert "6 files" in h(since=today.isoformat(), until=today.isoformat()).body
    assert names(h(since=(today + day).isoformat()).body) == []
    assert names(h(until=(today - day).isoformat()).body) == []
    bad = h(verdict="maybe")
    assert bad.status == 400 and "verdict &#39;maybe&#39;: expected one of" in bad.body

    export = request(f"{d.url}/history.csv?{urlencode({'folder': str(d.inbox / 'b'), 'sort': 'name', 'order': 'asc'})}")
    assert export.status == 200 and export.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(export.body)))
    assert [r["path"].rsplit("/", 1)[1] for r in rows] == ["five.wav", "four.wav", "six.flac"]
    by_path = {j["path"]: j for j in jobs}
    for r in rows:
        assert r["verdict"] == by_path[r["path"]]["verdict"]
        assert float(r["probability_ai"]) == pytest.approx(by_path[r["path"]]["probability_ai"])

    job = jobs[0]
    page = request(f"{d.url}/report/{job['id']}")
    assert page.status == 200 and f'data-verdict="{job["verdict"]}"' in page.body
    assert 'id="timeline"' in page.body and "<svg" in page.body
    png = request(f"{d.url}/report/{job['id']}.png")
    assert png.status == 200 and png.headers["content-type"] == "image/png"
    assert request(f"{d.url}/report/9999").status == 404
    assert request(f"{d.url}/report/{job['id']}.exe").status == 404

    # Drawing pages must not hold up the OSC server: a ping is answered while PNGs are drawn.
    drawing = threading.Thread(target=lambda: [request(f"{d.url}/report/{job['id']}.png") for _ in range(6)])
    drawing.start()
    time.sleep(0.3)
    d.send("/aimusic/ping")
    d.client.wait_for("/aimusic/pong", 2.0)
    assert drawing.is_alive(), "the pictures were drawn before the ping: the check proved nothing"
    drawing.join()

    queue = request(f"{d.url}/queue")
    assert queue.status == 200 and 'data-state="done">6<' in queue.body and "CNN" in queue.body
    status = json.loads(request(f"{d.url}/api/status").body)
    assert status["counts"]["done"] == 6 and status["live"]["active"] is False


def test_dashboard_reads_nothing_outside_its_roots(daemon, tmp_path):
    d = web_daemon(daemon)
    outside = tmp_path.parent / f"{tmp_path.name}-outside.aimusic.json"
    outside.write_text(json.dumps({"schema": "aimusicd.report/1", "file": "/x.wav"}))
    link = tmp_path / "link.aimusic.json"
    link.symlink_to(outside)
    not_a_report = tmp_path / "notes.aimusic.json"
    not_a_report.write_text("hello")
    try:
        for path in ("/etc/passwd", f"{tmp_path}/../../etc/passwd", str(outside), str(link), "relative.json"):
            reply = request(f"{d.url}/report?path={quote(path)}")
            assert reply.status == 403 and "outside the report store and the allowed roots" in reply.body, path
        bad = request(f"{d.url}/report?path={quote(str(not_a_report))}")
        assert bad.status == 422 and "not a JSON report" in bad.body
        assert request(f"{d.url}/report?path={quote(str(tmp_path / 'missing.aimusic.json'))}").status == 404
    finally:
        outside.unlink()
    # A page on another site must not reach the loopback dashboard (DNS rebinding, forged posts).
    assert request(f"{d.url}/history", headers={"Host": "evil.example"}).status == 400
    forged = request(f"{d.url}/live/stop", data=b"", headers={"Origin": "http://evil.example"})
    assert forged.status == 403
    assert d.alive()


def test_off_loopback_every_request_needs_the_token(daemon, off_loopback):
    d = web_daemon(daemon, host=off_loopback, web={"token": "s3cret-token"})
    assert "token required" in d.log()
    for path in ("/history", "/report?path=/etc/passwd", "/live/events", "/history.csv"):
        refused = request(d.url + path)
        assert refused.status == 401 and "a valid token is required" in refused.body, path
    assert request(f"{d.url}/history", headers={"Authorization": "Bearer wrong"}).status == 401
    assert request(f"{d.url}/history?token=wrong").status == 401
    assert request(f"{d.url}/history", headers={"Authorization": "Bearer s3cret-token"}).status == 200
    once = request(f"{d.url}/history?token=s3cret-token&verdict=ai", follow=False)
    assert once.status == 303 and once.headers["location"] == "/history?verdict=ai"
    cookie = once.headers["set-cookie"].split(";", 1)[0]
    assert request(f"{d.url}/queue", headers={"Cookie": cookie}).status == 200


def test_off_loopback_without_a_token_is_a_config_error():
    with pytest.raises(ConfigError, match=r"\[web\] host '0.0.0.0' is not a loopback address; set \[web\] token"):
        load_config(overrides={"web": {"enabled": True, "host": "0.0.0.0"}})
    assert load_config(overrides={"web": {"enabled": True, "host": "::1"}}).web.token == ""
    assert load_config("default").web.enabled and load_config("default").web.port == 9433
