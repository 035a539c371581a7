"""dlq list, show, replay and purge on a real Redis."""

from __future__ import annotations

from typing import cast

import redis

from tests.harness import Entries, dead_letter
from tests.system.cli.kit import (
    Tty,
    one_line_error,
    run,
)


def test_dlq_list_and_show(dlq_group: tuple[str, str, list[str]]) -> None:
    group, orig, ids = dlq_group

    table = run("dlq", "list", "--group", group)
    assert table.code == 0
    assert table.out.splitlines()[0].split()[:2] == ["DLQ", "ID"]
    assert table.row(ids[1])[:6] == [ids[1], group, orig, "1-0", "ValueError", "2"]
    assert [line.split()[0] for line in table.out.splitlines()[1:]] == ids[::-1]
    newest = run("dlq", "list", "--group", group, "--count", "1").out.splitlines()
    assert newest[1].startswith(ids[1]) and newest[2] == "(newest 1 of 2; --count N for more)"
    listed = run("dlq", "list", "--json").json()
    assert {(e["group"], e["dlq_id"]) for e in listed} >= {(group, i) for i in ids}
    assert set(listed[0]) == {"dlq_id", "group", "dlq_stream", "stream", "entry_id",
                              "error_type", "error", "deliveries", "consumer", "time", "fields"}

    shown = run("dlq", "show", ids[0], "--group", group)
    assert shown.code == 0
    assert "error       bom cycle 0" in shown.out and "  client_id = c0" in shown.out
    assert run("dlq", "show", ids[0], "--group", group, "--json").json()["stream"] == orig
    missing = run("dlq", "show", "1-0", "--group", group)
    assert one_line_error(missing) == f"secretmagic: no such entry: 1-0 in {group}:dlq"
    assert "invalid entry id" in one_line_error(run("dlq", "show", "abc", "--group", group))


def test_dlq_replay(r: redis.Redis, dlq_group: tuple[str, str, list[str]]) -> None:
    group, orig, ids = dlq_group
    dead = cast(Entries, r.xrange(f"{group}:dlq", ids[0], ids[0]))
    fields = {k: v for k, v in dead[0][1].items()
              if not k.startswith(b"dlq_")}

    one = run("dlq", "replay", ids[0], "--group", group)
    assert one.code == 0
    ((new_id, replayed),) = cast(Entries, r.xrange(orig))
    assert one.out == f"replayed {ids[0]} -> {orig} {new_id.decode()}\n"
    assert replayed == fields
    assert r.xlen(f"{group}:dlq") == 1

    rest = run("dlq", "replay", "--all", "--group", group, "--json").json()
    assert set(rest) == {"group", "replayed", "failed", "aborted"}
    assert [d["dlq_id"] for d in rest["replayed"]] == ids[1:]
    assert r.xlen(orig) == 2 and r.xlen(f"{group}:dlq") == 0

    gone = run("dlq", "replay", ids[0], "--group", group)
    assert gone.code == 1 and gone.out.startswith(f"NOT replayed {ids[0]}: no such entry")
    assert "ids or --all" in one_line_error(run("dlq", "replay", "--group", group))


def test_dlq_purge_asks_refuses_or_goes_with_yes(
    r: redis.Redis, dlq_group: tuple[str, str, list[str]]
) -> None:
    group, _orig, _ids = dlq_group

    refused = run("dlq", "purge", "--group", group)  # no terminal, no --yes
    assert one_line_error(refused) == (
        f"secretmagic: refusing to purge 2 entries of {group}:dlq without --yes "
        "(no terminal to ask on)"
    )
    assert refused.code == 2 and r.xlen(f"{group}:dlq") == 2

    declined = run("dlq", "purge", "--group", group, stdin=Tty("n\n"))
    assert declined.code == 1 and "[y/N]" in declined.err and "cancelled" in declined.err
    assert r.xlen(f"{group}:dlq") == 2

    confirmed = run("dlq", "purge", "--group", group, stdin=Tty("y\n"))
    assert (confirmed.code, confirmed.out) == (0, f"purged 2 entries from {group}:dlq\n")
    assert r.xlen(f"{group}:dlq") == 0

    dead_letter(r, group, "s", {"a": "b"}, ValueError("x"))
    assert run("dlq", "purge", "--group", group, "--yes", "--json").json() == {
        "group": group, "dlq_stream": f"{group}:dlq", "purged": 1
    }
    assert run("dlq", "purge", "--group", group).out == f"{group}:dlq is empty\n"
