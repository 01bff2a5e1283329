"""The HTML report in a real browser: headless Chromium loads the file, runs
its script, and the test reads back what was laid out."""

from __future__ import annotations

import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from mcp_tars import reports
from mcp_tars.store import Store, open_store, ledger

from test_reports import DAY, MODELS, NOW, make_row, mixed_rows

CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage")


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.fail("Chromium is needed to check the HTML report: apt-get install -y chromium")
    return path


def run_chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    profile = tmp_path / f"profile-{len(list(tmp_path.iterdir()))}"
    return subprocess.run([chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
                          capture_output=True, text=True, timeout=120)


def dump_dom(tmp_path: Path, html: str) -> str:
    page = tmp_path / "report.html"
    page.write_text(html, "utf-8")
    done = run_chromium(tmp_path, "--dump-dom", page.as_uri())
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


class Elements(HTMLParser):
    """Every element with its attributes, and the chart (svg id) it sits in."""

    def __init__(self):
        super().__init__()
        self.found: list[tuple[str, dict, str | None]] = []
        self._svg: list[str | None] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "svg":
            self._svg.append(attrs.get("id"))
        self.found.append((tag, attrs, self._svg[-1] if self._svg else None))

    def handle_startendtag(self, tag, attrs):
        self.found.append((tag, dict(attrs), self._svg[-1] if self._svg else None))

    def handle_endtag(self, tag):
        if tag == "svg" and self._svg:
            self._svg.pop()


def elements(dom: str) -> list[tuple[str, dict, str | None]]:
    parser = Elements()
    parser.feed(dom)
    return parser.found


@pytest.fixture
def store(tmp_path):
    s = open_store(tmp_path / "ledger.db")
    yield s
    s.close()


def test_the_browser_draws_every_chart(store, tmp_path):
    rows = mixed_rows(400, days=20)
    ledger.insert_many(store, rows)
    html = reports.render_html(store, period="30d", now=NOW)
    dom = dump_dom(tmp_path, html)
    found = elements(dom)
    body = next(attrs for tag, attrs, _ in found if tag == "body")
    assert body.get("data-charts-drawn") == "3", "the page script counts the charts with laid-out marks"
    charts = {attrs["id"]: attrs for tag, attrs, _ in found if tag == "svg" and "chart" in attrs.get("class", "")}
    assert set(charts) == {"chart-daily-cost", "chart-levers", "chart-hit-rate"}

    # daily cost: one laid-out rect per (day, model) with a cost, plus the baseline path
    bars = [a for tag, a, svg in found if tag == "rect" and svg == "chart-daily-cost" and "bar" in a.get("class", "")]
    cells = {(r["ts"] // DAY, r["model"]) for r in rows if (r.get("cost_usd") or 0) > 0 and r["model"] in MODELS}
    assert len(bars) == len(cells)
    assert all(float(b["height"]) > 0 and float(b["width"]) > 0 for b in bars)
    assert int(charts["chart-daily-cost"]["data-drawn-marks"]) == len(bars) + 1
    baseline = [a for tag, a, svg in found if tag == "path" and svg == "chart-daily-cost"]
    assert len(baseline) == 1 and baseline[0]["d"].count("L") == 29  # one point per day of the 30

    # savings by lever: a bar per lever that saved (or lost) money
    lever_bars = [a for tag, a, svg in found if tag == "rect" and svg == "chart-levers"]
    assert int(charts["chart-levers"]["data-drawn-marks"]) == len(lever_bars) == 5

    # cache hit rate: a drawn line with a point per day that had calls
    days_with_calls = len({r["ts"] // DAY for r in rows if NOW - r["ts"] < 30 * DAY})
    points = [a for tag, a, svg in found if tag == "circle" and svg == "chart-hit-rate"]
    assert len(points) == days_with_calls
    assert charts["chart-hit-rate"]["data-drawn-marks"] == "1"
    ys = [float(p["cy"]) for p in points]
    assert max(ys) > min(ys), "hit rates differ from day to day in this ledger"


def test_the_page_is_self_contained_and_escapes_names(store, tmp_path):
    ledger.insert_many(store, [make_row(1, ts=NOW, model="claude-haiku-5-5"),
                               make_row(2, ts=NOW, model="<script>alert(1)</script>")])
    html = reports.render_html(store, period="today", now=NOW)
    assert not re.search(r"""(src|href)\s*=|@import|url\(|https?://""", html), "the page must load nothing"
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    dom = dump_dom(tmp_path, html)
    assert 'data-charts-drawn="3"' in dom


def test_an_empty_ledger_renders_without_charts(store, tmp_path):
    dom = dump_dom(tmp_path, reports.render_html(store, period="7d", now=NOW))
    assert 'data-charts-drawn="0"' in dom
    assert dom.count("No calls in this period") == 2 and "No savings in this period" in dom


def test_a_screenshot_shows_the_report(store, tmp_path):
    ledger.insert_many(store, mixed_rows(200, days=10))
    page = tmp_path / "report.html"
    page.write_text(reports.render_html(store, period="30d", now=NOW), "utf-8")
    shot = tmp_path / "report.png"
    done = run_chromium(tmp_path, "--hide-scrollbars", "--window-size=1100,1600", f"--screenshot={shot}", page.as_uri())
    assert done.returncode == 0, done.stderr[-2000:]
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == (1100, 1600)
    assert len(data) > 30_000, "a blank page compresses to a few kilobytes"
