"""A store that is down (Unavailable naming backend and host), DSNs (parsed, refused without the
password, dispatched by scheme) and the DDL generated from the specs."""

from __future__ import annotations

import re

import pytest

from core.errors import Unavailable
from store import TABLES, Store, dialect, mask_dsn, open_store, parse_dsn
from store.schema import ALL_TABLES
from tests.harness import ROOT
from tests.services import free_port
from tests.storekit import (
    features_frame,
)

SECRET = "s3cr3t-Pw"  # must never show up in an error


@pytest.mark.parametrize("scheme", ["mysql", "starrocks", "clickhouse"])
async def test_store_down_is_unavailable_and_names_backend_and_host(scheme: str) -> None:
    port = free_port()  # nothing listens there
    s = open_store(f"{scheme}://user:{SECRET}@127.0.0.1:{port}/db?connect_timeout=2")
    calls = [
        s.ping(),
        s.create_tables(),
        s.read("daily_features", "c"),
        s.replace("daily_features", "c", features_frame("c", 3)),
    ]
    for call in calls:
        with pytest.raises(Unavailable) as info:  # waited out by the policy, never DLQ'd
            await call
        message = str(info.value)
        assert scheme in message and f"127.0.0.1:{port}" in message, message
        assert SECRET not in message and SECRET not in repr(info.value)
        assert info.value.__cause__ is None  # driver exceptions are not chained
    assert SECRET not in repr(s)
    await s.close()


@pytest.mark.parametrize(
    ("dsn", "fragment"),
    [
        (f"postgres://user:{SECRET}@host/db", "scheme 'postgres'"),
        (f"redis://:{SECRET}@host:6379/0", "scheme 'redis'"),
        (f"user:{SECRET}@host", "scheme"),
        (f"mysql://user:{SECRET}@host:99999/db", "port"),
        (f"mysql://user:{SECRET}@host:abc/db", "port"),
        (f"mysql://user:{SECRET}@host:0/db", "port"),
        (f"mysql://user:{SECRET}@host:3306", "database"),
        (f"mysql://user:{SECRET}@:3306/db", "host"),
        (f"mysql://user:{SECRET}@host/db?pool=3", "unknown option"),
        (f"mysql://user:{SECRET}@host/db?pool_size=many", "not a number"),
        (f"starrocks://user:{SECRET}@host/db?pool_size=0", "positive"),
        (f"clickhouse://user:{SECRET}@host:8123/bad-db", "database"),
        (f"chdb://user:{SECRET}@somewhere", "chdb"),
        ("", "scheme"),
    ],
)
def test_bad_dsn_is_value_error_without_password(dsn: str, fragment: str) -> None:
    with pytest.raises(ValueError) as info:
        open_store(dsn)
    message = str(info.value)
    assert fragment in message, message
    assert SECRET not in message
    if "://" in dsn and "@" in dsn:
        assert "***" in message, message


def test_dsn_parsing() -> None:
    assert parse_dsn("chdb://").path == ""
    assert parse_dsn("chdb://").database == "secretmagic"
    assert parse_dsn("chdb:///var/lib/sm").path == "/var/lib/sm"
    assert parse_dsn("chdb://./data/chdb").path == "./data/chdb"
    assert parse_dsn("chdb://./data?database=other").database == "other"
    my = parse_dsn("mysql://u:p%40ss%2Fw@db.local/analytics")
    assert (my.host, my.port, my.user, my.password, my.database) == (
        "db.local", 3306, "u", "p@ss/w", "analytics")
    assert SECRET not in repr(parse_dsn(f"mysql://u:{SECRET}@h/db"))
    assert parse_dsn("starrocks://u@fe:9030/sm").port == 9030
    assert parse_dsn("starrocks://u@fe/sm").port == 9030
    assert parse_dsn("clickhouse://h").database == "default"
    assert parse_dsn("clickhouses://h").port == 8443
    assert mask_dsn(f"mysql://u:{SECRET}@h/db") == "mysql://u:***@h/db"
    assert mask_dsn(f"mysql://u:{SECRET}@x@h/db") == "mysql://u:***@h/db"
    assert mask_dsn("chdb://./x") == "chdb://./x"


def test_open_store_dispatches_by_scheme() -> None:
    names = {
        "chdb://": "chdb",
        "clickhouse://u:p@h:8123/db": "clickhouse",
        "mysql://u:p@h/db": "mysql",
        "starrocks://u:p@h/db": "starrocks",
    }
    for dsn, name in names.items():
        s = open_store(dsn)  # no I/O until the first call
        assert isinstance(s, Store)
        assert s.name == name


def _key_of(statement: str, clause: str) -> tuple[str, ...]:
    match = re.search(clause + r"\s*\(([^)]*)\)", statement)
    assert match, statement
    return tuple(c.strip().strip("`") for c in match.group(1).split(","))


@pytest.mark.parametrize(
    ("name", "clause"),
    [("mysql", r"PRIMARY KEY"), ("starrocks", r"PRIMARY KEY"), ("clickhouse", r"ORDER BY")],
)
def test_generated_ddl_has_every_table_column_and_key(name: str, clause: str) -> None:
    statements = dialect.statements(name)
    specs = {spec.name: spec for spec in ALL_TABLES}
    assert len(statements) == len(specs) == len(TABLES) + 1  # + the version fence
    for statement in statements:
        table = re.search(r"CREATE TABLE IF NOT EXISTS `(\w+)`", statement)
        assert table, statement
        spec = specs[table.group(1)]
        assert _key_of(statement, clause) == spec.storage_key
        assert sorted(spec.storage_key) == sorted(spec.key) and spec.storage_key[0] == "client_id"
        for column in [*spec.columns, *([spec.stamp] if spec.stamp else []), "_version"]:
            assert f"`{column}`" in statement, (name, spec.name, column)
        if name == "starrocks":
            assert "DISTRIBUTED BY HASH (`client_id`)" in statement
            assert "ENGINE" not in statement


@pytest.mark.parametrize("name", dialect.DIALECTS)
def test_reference_ddl_files_are_what_the_specs_generate(name: str) -> None:
    path = ROOT / "store" / "ddl" / f"{name}.sql"
    assert path.read_text(encoding="utf-8") == dialect.reference(name), (
        f"{path} is stale: run .venv/bin/python -m store.dialect")
