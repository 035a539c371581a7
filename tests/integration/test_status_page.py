"""The status page (`/` on the metrics port) in a real browser: headless Chromium renders it, its
numbers are what `secretmagic ... --json` reports for the same Redis, it loads nothing from
elsewhere and reloads itself; a screenshot of it is taken (STATUS_PAGE_SCREENSHOT=path keeps it,
as docs/status-page.png in the README was made)."""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import os
import subprocess
import time
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
import redis

from app import cli
from app.connection import sync_client
from app.observability import health as health_mod
from app.observability.collector import StreamCollector
from app.observability.status import REFRESH_S, StatusPage
from core.errors import FatalError, MalformedEvent, MaxDeliveriesExceeded
from settings import MessengerSettings
from tests.debian import binary
from tests.harness import add_events, behind, dead_letter
from tests.services import PrivateRedis, free_port, private_redis, wait_for

PAUSED = {"stock-updates": "store unreachable: connection refused (127.0.0.1:9030)"}


class Cells(HTMLParser):
    """The page's data-* attributes, those of a table row's cells merged into the row's; and
    every tag and external reference."""

    def __init__(self) -> None:
        super().__init__()
        self.items: list[dict[str, str]] = []
        self.external: list[str] = []
        self.tags: set[str] = set()
        self._row: dict[str, str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        found = {k: v or "" for k, v in attrs}
        data = {k: v for k, v in found.items() if k.startswith("data-")}
        if tag == "tr":
            self._row = data
            self.items.append(data)
        elif data and self._row is not None and tag == "td":
            self._row.update(data)
        elif data:
            self.items.append(data)
        for key in ("src", "href"):
            if found.get(key, "").startswith(("http:", "https:", "//")):
                self.external.append(found[key])

    def handle_endtag(self, tag: str) -> None:
        if tag == "tr":
            self._row = None

    def having(self, key: str) -> list[dict[str, str]]:
        return [i for i in self.items if key in i]


def parse(page: str) -> Cells:
    cells = Cells()
    cells.feed(page)
    return cells


def chromium_command(tmp: Path) -> list[str]:
    """Headless Chromium with a new profile and nothing that reaches outside this machine."""
    profile = tmp / f"profile-{time.monotonic_ns()}"
    return [binary("chromium", "chromium"), "--headless", "--no-sandbox", "--disable-gpu",
            "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
            f"--user-data-dir={profile}"]


def chromium(*args: str, tmp: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*chromium_command(tmp), *args], capture_output=True, text=True,
                          timeout=90)


@contextlib.contextmanager
def chromium_open(url: str, tmp: Path) -> Iterator[None]:
    proc = subprocess.Popen([*chromium_command(tmp), "--remote-debugging-port=0", url],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def secretmagic(monkeypatch: pytest.MonkeyPatch, port: int, *argv: str) -> Any:
    monkeypatch.setenv("MESSENGER_HOST", "127.0.0.1")
    monkeypatch.setenv("MESSENGER_PORT", str(port))
    out, err = io.StringIO(), io.StringIO()
    code = cli.main([*argv, "--json"], stdout=out, stderr=err)
    assert code == 0, err.getvalue()
    return json.loads(out.getvalue())


@pytest.fixture
def server() -> Iterator[PrivateRedis]:
    """A Redis of this test's own: the page lists everything, so nothing else may be there."""
    with private_redis() as s:
        yield s


@pytest.fixture
def state(server: PrivateRedis) -> redis.Redis:
    r = redis.Redis(port=server.port)
    behind(r, "sales-updates", "secretmagic-group", total=7, read=3)  # lag 4, 3 pending
    r.xgroup_create("sales-updates", "analytics-group", id="0")  # lag 7, nothing read
    behind(r, "bom-updates", "secretmagic-group", total=2, read=2)
    add_events(r, "features-updates", 5)
    event = {b"event_type": b"sales_updated", b"client_id": b"acme", b"data": b"{}"}
    dead_letter(r, "secretmagic-group", "sales-updates", event,
                MaxDeliveriesExceeded("delivered 5 times; last error: timeout <b>x</b>"))
    dead_letter(r, "secretmagic-group", "bom-updates", event, FatalError("BOM cycle a->b->a"))
    dead_letter(r, "secretmagic-group", "sales-updates", {b"data": b"\xff"},
                MalformedEvent("field b'data' is not UTF-8 text"), deliveries=1)
    return r


@pytest.fixture
def page_url(server: PrivateRedis, state: redis.Redis) -> Iterator[str]:
    health = health_mod.Health(started=True, redis_ok=True, consumers_running=True,
                               details={"consumer": "worker-7", "store": "starrocks",
                                        "waiting": PAUSED})
    client = sync_client(MessengerSettings(host="127.0.0.1", port=server.port), timeout=2)
    http = health_mod.serve(free_port(), health, StreamCollector(client,
                                                                 outbox_stats=lambda: (3, 12.5)))
    try:
        yield f"http://127.0.0.1:{http.port}/"
    finally:
        http.shutdown()
        client.close()


def test_the_page_in_chromium_shows_what_the_cli_reports(
        page_url: str, server: PrivateRedis, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    before = time.monotonic()
    lag = secretmagic(monkeypatch, server.port, "lag")
    done = chromium("--dump-dom", page_url, tmp=tmp_path)
    elapsed = time.monotonic() - before
    assert done.returncode == 0, done.stderr[-2000:]
    cells = parse(done.stdout)
    assert "secretmagic" in done.stdout and cells.external == []

    groups = {(i["data-stream"], i["data-group"]): i for i in cells.having("data-group")}
    assert set(groups) == {(g["stream"], g["group"]) for g in lag}
    for g in lag:
        row = groups[g["stream"], g["group"]]
        assert int(row["data-lag"]) == g["lag"]
        assert int(row["data-pending"]) == g["pending"]
        assert int(row["data-consumers"]) == g["consumers"]
        # The two read the age a moment apart: they differ by at most the time between.
        assert abs(float(row["data-oldest"]) - g["oldest_pending_s"]) <= elapsed + 0.5
    assert groups["sales-updates", "secretmagic-group"]["data-lag"] == "4"  # 7 added, 3 read
    assert groups["sales-updates", "analytics-group"]["data-lag"] == "7"

    streams = secretmagic(monkeypatch, server.port, "streams")
    shown = {i["data-stream"]: i for i in cells.having("data-length")}
    assert {s["name"]: s["length"] for s in streams if not s["name"].endswith(":dlq")} == {
        name: int(i["data-length"]) for name, i in shown.items()}

    dead = secretmagic(monkeypatch, server.port, "dlq", "list")
    rows = cells.having("data-dlq-id")
    # newest first, as the CLI lists them
    assert [i["data-dlq-id"] for i in rows] == [d["dlq_id"] for d in dead]
    for d in dead:
        assert d["error"] in done.stdout.replace("&lt;", "<").replace("&gt;", ">")
    assert "<b>x</b>" not in done.stdout  # error text is shown as text, never as markup
    (length,) = cells.having("data-dlq-length")
    assert (length["data-dlq-group"], int(length["data-dlq-length"])) == ("secretmagic-group",
                                                                          len(dead))

    assert [i["data-paused"] for i in cells.having("data-paused")] == list(PAUSED)
    assert PAUSED["stock-updates"] in done.stdout
    (outbox,) = cells.having("data-depth")
    assert outbox["data-depth"] == "3"
    (health,) = cells.having("data-status")
    assert health["data-status"] == "ok"


def test_the_page_is_self_contained_and_reloads_itself(
        page_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    renders: list[float] = []
    original = StatusPage.render

    def counted(self: StatusPage) -> bytes:
        renders.append(time.monotonic())
        return original(self)

    monkeypatch.setattr(StatusPage, "render", counted)
    # A browser left on the page (no dump, no screenshot: it stays open) loads it again and
    # again by itself.
    with chromium_open(page_url, tmp_path):
        wait_for(lambda: len(renders) >= 3, 60, "the page reloading itself twice")
    gaps = [b - a for a, b in itertools.pairwise(renders)]
    assert all(gap >= REFRESH_S * 0.8 for gap in gaps), gaps  # at its pace, not in a loop
    done = chromium("--dump-dom", page_url, tmp=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    cells = parse(done.stdout)
    assert "script" not in cells.tags and cells.external == []

    shot = Path(os.environ.get("STATUS_PAGE_SCREENSHOT") or tmp_path / "status.png").resolve()
    done = chromium(f"--screenshot={shot}", "--window-size=1280,1100", "--hide-scrollbars",
                    page_url, tmp=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    png = shot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000  # a rendered page, not blank


def test_the_page_says_so_when_redis_cannot_be_read(tmp_path: Path) -> None:
    health = health_mod.Health(started=True, redis_ok=False, consumers_running=True)
    dead = sync_client(MessengerSettings(host="127.0.0.1", port=free_port()), timeout=1)
    page = StatusPage(health, dead, outbox_stats=lambda: (2, 40.0)).render().decode()
    cells = parse(page)
    assert "Redis unreadable: ConnectionError" in page
    assert [i["data-status"] for i in cells.having("data-status")] == ["unhealthy"]
    assert [i["data-depth"] for i in cells.having("data-depth")] == ["2"]
