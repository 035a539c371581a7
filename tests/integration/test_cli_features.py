"""`secretmagic features` (one client's features from the store, table and --json) and
`secretmagic recompute --all` (every client of the store, with progress) on a real MariaDB
store; the values against features.compute over the same sales."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import json

import polars as pl
import pytest

import features
from app import cli
from settings import Config
from store import open_store

DAYS = 12
PARAMS = Config().features  # what `recompute` uses without SECRETMAGIC_CONFIG


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def run(monkeypatch: pytest.MonkeyPatch, dsn: str, *argv: str) -> tuple[int, str, str]:
    monkeypatch.setenv("STORE_DSN", dsn)
    monkeypatch.delenv("SECRETMAGIC_CONFIG", raising=False)
    out, err = io.StringIO(), Terminal()
    code = cli.main(list(argv), stdout=out, stderr=err, stdin=io.StringIO())
    return code, out.getvalue(), err.getvalue()


def sales(product: str, start: float) -> pl.DataFrame:
    return pl.DataFrame({
        "product_id": [product] * DAYS,
        "date": pl.date_range(dt.date(2025, 1, 1), dt.date(2025, 1, DAYS), eager=True),
        "qty": [start + i for i in range(DAYS)], "amount": [1.0] * DAYS})


async def seed(dsn: str) -> dict[str, pl.DataFrame]:
    data = {"c-1": pl.concat([sales("a", 1.0), sales("b", 10.0)]), "c'2": sales("a", 5.0)}
    store = open_store(dsn)
    await store.create_tables()
    for client, frame in data.items():
        await store.replace("sales", client, frame)
    await store.replace("bom", "c-3", pl.DataFrame(  # a client with a BOM and no sales
        {"parent_id": ["A"], "child_id": ["B"], "qty_per": [2.0]}))
    await store.close()
    return data


def test_recompute_all_then_features_of_one_client(
        mysql_database: str, monkeypatch: pytest.MonkeyPatch) -> None:
    data = asyncio.run(seed(mysql_database))
    code, out, err = run(monkeypatch, mysql_database, "recompute", "--all", "--what", "features")
    assert code == 0, err
    lines = out.splitlines()
    assert [line.split()[0] for line in lines[:-1]] == ["c'2", "c-1", "c-3"]  # sorted
    assert lines[-1] == "3 of 3 clients recomputed"
    assert err.rstrip("\n").split("\r")[-1].startswith("recomputed 3/3")
    code, out, err = run(monkeypatch, mysql_database, "recompute", "--all", "--json")
    assert (code, err) == (0, "")
    again = json.loads(out)
    assert [d["client_id"] for d in again] == ["c'2", "c-1", "c-3"]
    assert again[1]["features"]["rows"] == 0  # nothing changed since the first run

    want = features.compute(data["c-1"].with_columns(client_id=pl.lit("c-1")), None, None,
                            PARAMS).wide
    code, out, err = run(monkeypatch, mysql_database, "features", "c-1", "--json")
    assert (code, err) == (0, "")
    got = json.loads(out)
    assert got["rows"] == want.height == 2 * DAYS and len(got["features"]) == 20  # the limit
    newest = got["features"][0]
    assert (newest["date"], newest["product_id"]) == ("2025-01-12", "a")
    row = want.filter((pl.col("product_id") == "a") & (pl.col("date") == dt.date(2025, 1, 12)))
    for name in ("qty", "ema_7", "ma_7", "std_7", "lag_1", "lag_7"):
        assert newest[name] == row.item(0, name), name
    assert newest["lag_28"] is None
    assert {(p["product_id"], p["kind"]) for p in got["profiles"]} == {
        (p, k) for p in "ab" for k in ("dow", "moy")}

    code, out, err = run(monkeypatch, mysql_database, "features", "c-1", "--product", "b",
                         "--since", "2025-01-11", "--limit", "5")
    assert code == 0, err
    table = out.splitlines()
    assert table[0].split()[:4] == ["PRODUCT_ID", "DATE", "EMA_28", "EMA_7"]
    assert "LAG_28" not in table[0]  # null in every row shown
    assert [r.split()[:2] for r in table[1:3]] == [["b", "2025-01-12"], ["b", "2025-01-11"]]
    assert table[3] == "2 of 2 rows (newest first)"
    assert "profiles" in out
    code, out, _ = run(monkeypatch, mysql_database, "features", "nobody")
    assert (code, out.strip()) == (0, "no features stored for client 'nobody'")
    code, _, err = run(monkeypatch, mysql_database, "features", "c-1", "--since", "soon")
    assert code == 2 and "not a date" in err
    code, _, err = run(monkeypatch, mysql_database, "recompute", "--all", "--client", "x")
    assert code == 2 and "--all" in err
