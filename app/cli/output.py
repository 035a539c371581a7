"""How the commands show things to people: aligned tables, short durations, counted nouns, and
untrusted text (stream entries, error messages) made safe for a terminal."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from typing import Annotated

import typer

# Every command's `--json`: tables for people, JSON for scripts.
JsonFlag = Annotated[bool, typer.Option("--json", help="machine-readable output (JSON)")]

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def clean(value: object, width: int | None = None) -> str:
    """A cell: control characters escaped (entries are untrusted input: no terminal escapes get
    through), cut to `width` characters with an ellipsis; None is `-`."""
    if value is None:
        return "-"
    cell = _CONTROL.sub(lambda m: repr(m.group())[1:-1], str(value))
    if width is not None and len(cell) > width:
        cell = cell[: width - 1] + "…"
    return cell


def table(
    headers: Sequence[str], rows: Iterable[Sequence[object]], *, width: int | None = 60
) -> str:
    """Aligned columns separated by two spaces; numbers right-aligned; no trailing blanks.

    Cells are cut to `width` characters, except in the last column (nothing to align after it).
    """
    raw_rows = [list(row) for row in rows]
    numeric = [
        bool(raw_rows) and all(isinstance(row[i], int | float) for row in raw_rows)
        for i in range(len(headers))
    ]
    last = len(headers) - 1
    cells = [[clean(v, None if i == last else width) for i, v in enumerate(row)]
             for row in raw_rows]
    widths = [max([len(h)] + [len(row[i]) for row in cells]) for i, h in enumerate(headers)]
    lines = []
    for row in [list(headers), *cells]:
        parts = [
            cell.rjust(widths[i]) if numeric[i] else cell.ljust(widths[i])
            for i, cell in enumerate(row)
        ]
        lines.append("  ".join(parts).rstrip())
    return "\n".join(lines)


def duration(ms: int | None) -> str:
    """850ms, 12.3s, 5m02s, 3h04m, 2d03h."""
    if ms is None:
        return "-"
    if ms < 1000:
        return f"{ms}ms"
    seconds = ms / 1000
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, sec = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{sec:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h{minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours:02d}h"


def entries(n: int) -> str:
    """`1 entry`, `3 entries`."""
    return f"{n} entry" if n == 1 else f"{n} entries"


def lag_cell(lag: int, capped: bool) -> str | int:
    """A lag that counting stopped at (ops caps it on big streams) shows as a lower bound."""
    return f">={lag}" if capped else lag


def compact(value: object) -> str:
    """JSON on one line, for a table cell or a `tail` line."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
