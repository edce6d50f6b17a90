"""leaderboard.html in headless Chromium (Debian's ``chromium``): every row, its configuration, sorting on click."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from tests.test_leaderboard import edited_copy, leaderboard, make_runs

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-quic",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
]


def find_or_install_chromium() -> str:
    """Debian's chromium; installed here (as the Makefile's ``test`` does) when missing and installable."""
    found = shutil.which("chromium") or ("/usr/bin/chromium" if os.access("/usr/bin/chromium", os.X_OK) else None)
    if found:
        return found
    if not shutil.which("apt-get") or os.geteuid() != 0:
        pytest.skip("chromium is not installed and not installable here (needs root and apt-get: make test does it)")
    cmd = "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium"
    r = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, timeout=900)
    if r.returncode != 0 or not shutil.which("chromium"):
        pytest.skip(f"chromium is not installed and apt-get could not install it: {r.stderr.strip()[-300:]}")
    return shutil.which("chromium")


@pytest.fixture(scope="module")
def chromium() -> str:
    return find_or_install_chromium()


@pytest.fixture(scope="module")
def page(tmp_path_factory, tiny_model_dir, shared_data) -> tuple[Path, dict]:
    """A board of the three real runs plus a copy of the g run as a better MV@3 system (acc 0.5 on GSM8K)."""
    runs = make_runs(tmp_path_factory, tiny_model_dir, shared_data)
    tmp = tmp_path_factory.mktemp("html")

    def better(doc):
        doc["malt"]["votes"] = 3
        doc["malt"]["provenance"]["generation"]["votes"] = 3  # the record says what made the run
        doc["results"]["malt_gsm8k"]["acc,none"] = 0.5

    strong = edited_copy(runs["g"], tmp / "strong", better)
    r = leaderboard("build", runs["g"], runs["gvr"], runs["seeds"], strong, "-o", tmp / "board")
    assert r.returncode == 0, r.stderr
    return tmp / "board" / "leaderboard.html", json.loads((tmp / "board" / "leaderboard.json").read_text())


class BoardRows(HTMLParser):
    """Rows of ``table#board`` in DOM order: attributes, cell texts and the <details> configuration."""

    def __init__(self) -> None:
        super().__init__()
        self.in_board = False
        self.rows: list[dict] = []
        self.sorted = ""
        self._target: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "table":
            self.in_board = a.get("id") == "board"
            self.sorted = a.get("data-sorted", "") if self.in_board else self.sorted
        elif self.in_board and tag == "tr" and "data-system" in a:
            self.rows.append({**a, "cells": [], "config": [], "badge": False})
        elif self.in_board and self.rows and tag == "td":
            self.rows[-1]["cells"].append("")
        elif self.in_board and self.rows and tag == "pre":
            self._target = self.rows[-1]["config"]
        elif self.in_board and self.rows and tag == "span" and a.get("class") == "badge":
            self.rows[-1]["badge"] = True

    def handle_endtag(self, tag):
        if tag == "table":
            self.in_board = False
        elif tag == "pre":
            self._target = None

    def handle_data(self, data):
        if self._target is not None:
            self._target.append(data)
        elif self.in_board and self.rows and self.rows[-1]["cells"]:
            self.rows[-1]["cells"][-1] += data


def dump_dom(chromium: str, html: Path, fragment: str, tmp_path: Path) -> BoardRows:
    url = html.resolve().as_uri() + fragment
    cmd = [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", url]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "<table" in r.stdout, r.stderr[-2000:]
    parsed = BoardRows()
    parsed.feed(r.stdout)
    return parsed


def test_page_is_self_contained(page):
    text = page[0].read_text()
    assert "<script src" not in text and "<link" not in text
    assert "http://" not in text and "https://" not in text  # nothing fetched from the network
    assert text.count('src="data:image/png;base64,') == 3  # accuracy.png + one per benchmark


def test_every_row_with_its_configuration_and_limit_mark(chromium, page, tmp_path):
    html, board = page
    dom = dump_dom(chromium, html, "", tmp_path)
    assert [r["data-system"] for r in dom.rows] == [r["system"] for r in board["rows"]]
    for row, expected in zip(dom.rows, board["rows"], strict=True):
        config = json.loads("".join(row["config"]))
        assert config["agents"] == expected["agents"] and config["roles"] == expected["roles"]
        assert expected["roles"]["generator"]["model"] in row["title"]  # model identity on hover
        assert ("limited" in row.get("class", "")) == row["badge"] == expected["limited"]
        gsm8k = row["cells"][3]
        assert gsm8k.startswith(f"{100 * expected['cells']['malt_gsm8k']['acc']:.1f}")
    assert sum(r["badge"] for r in dom.rows) == 3 and dom.sorted == ""


def test_sorts_on_header_click(chromium, page, tmp_path):
    html, board = page
    strong = next(r["system"] for r in board["rows"] if r["votes"] == 3)
    dom = dump_dom(chromium, html, "#sort=malt_gsm8k", tmp_path)  # the page clicks that header on load
    assert dom.sorted == "malt_gsm8k:descending" and dom.rows[0]["data-system"] == strong
    dom = dump_dom(chromium, html, "#sort=malt_gsm8k,malt_gsm8k", tmp_path)  # a second click: ascending
    assert dom.sorted == "malt_gsm8k:ascending" and dom.rows[-1]["data-system"] == strong
    dom = dump_dom(chromium, html, "#sort=system", tmp_path)
    labels = [r["data-system"] for r in dom.rows]
    assert labels == sorted(labels, key=str.lower) and labels != [r["system"] for r in board["rows"]]
    dom = dump_dom(chromium, html, "#sort=calls", tmp_path)
    assert dom.rows[0]["cells"][-2].strip() == "3.0" and "g,v,r" in dom.rows[0]["data-system"]
