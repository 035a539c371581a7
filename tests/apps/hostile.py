"""Hostile configuration files, generated (hypothesis): each one invalid by construction, with
the class it belongs to and what settings.config's error for it must say. Used by the unit
tests of settings.config.parse (tests/unit/test_config_hostile.py) and by the test that writes
them into a running worker's file (tests/system/test_faults_config.py).

    wrong_type    a known key with a value of another type or out of its range
    unknown_key   a key no model has, at any level
    not_mapping   a list or a scalar at the top
    duplicate     one key twice in a mapping (PyYAML would keep the last silently)
    syntax        not YAML at all (unclosed, tabs, undefined alias, …)
    huge_list     over 1000 streams, or over 20,000 values
    alias_bomb    anchors whose expansion is over 20,000 values (billion laughs)
    cycle         an alias to a node that contains it
    deep          nested over 64 levels (or past Python's stack)
    empty         nothing but whitespace, comments, a document marker or null
    non_utf8      a valid file with a byte sequence that is not UTF-8
    binary        random bytes with a NUL among them
    too_big       over 256 KiB
"""

from __future__ import annotations

import math
import string
from dataclasses import dataclass
from typing import Any

import yaml
from hypothesis import strategies as st
from pydantic import BaseModel

from settings.config import MAX_BYTES, MAX_DEPTH, MAX_NODES, MAX_STREAMS, Config


@dataclass(frozen=True)
class Hostile:
    data: bytes
    kind: str
    says: tuple[str, ...]  # the error contains one of these

    def __repr__(self) -> str:  # hypothesis prints failing examples: keep them short
        return f"Hostile({self.kind}, {self.data[:120]!r}…{len(self.data)} bytes)"


def dump(tree: Any) -> bytes:
    return yaml.safe_dump(tree, allow_unicode=False, sort_keys=False).encode()


def nest(path: tuple[str, ...], value: Any) -> Any:
    for key in reversed(path):
        value = {key: value}
    return value


Path = tuple[str, ...]
INTS: list[Path] = [
    ("messenger", "publisher", "max_length"), ("messenger", "subscriber", "batch_size"),
    ("messenger", "subscriber", "block_ms"), ("messenger", "subscriber", "concurrency"),
    ("messenger", "subscriber", "max_deliveries"), ("messenger", "subscriber", "claim_idle_ms"),
    ("messenger", "subscriber", "backoff", "base_ms"), ("bom", "max_depth")]
BOOLS: list[Path] = [("messenger", "subscriber", "enabled"),
                     ("messenger", "subscriber", "coalesce"), ("messenger", "publisher", "enabled")]
STRS: list[Path] = [("messenger", "subscriber", "consumer_group"),
                    ("messenger", "subscriber", "group_start_id")]
# (path, values out of its range)
RANGES: list[tuple[Path, st.SearchStrategy[Any]]] = [
    (("messenger", "publisher", "max_length"), st.integers(max_value=0)),
    (("messenger", "subscriber", "batch_size"), st.integers(min_value=10_001)),
    (("messenger", "subscriber", "concurrency"), st.integers(max_value=0)),
    (("messenger", "subscriber", "backoff", "jitter"), st.floats(min_value=1.001, max_value=1e9)),
    (("bom", "max_depth"), st.integers(min_value=1001))]

scalars = st.one_of(st.integers(), st.floats(allow_nan=False), st.booleans(), st.none(),
                    st.text(max_size=20))
others = st.one_of(st.lists(scalars, max_size=5), st.dictionaries(st.text(max_size=8), scalars,
                                                                    min_size=1, max_size=3))


@st.composite
def wrong_type(draw: st.DrawFn) -> Hostile:
    table = draw(st.sampled_from(["int", "bool", "str", "range"]))
    path: Path
    value: Any
    if table == "range":
        path, values = draw(st.sampled_from(RANGES))
        value = draw(values)
    else:
        paths: dict[str, list[Path]] = {"int": INTS, "bool": BOOLS, "str": STRS}
        path = draw(st.sampled_from(paths[table]))
        wrong: dict[str, st.SearchStrategy[Any]] = {
            "int": st.one_of(st.text(max_size=20), st.booleans(), st.none(), others,
                             st.floats(allow_nan=False)),
            "bool": st.one_of(st.integers(), st.text(max_size=20), st.none(), others,
                              st.floats(allow_nan=False)),
            "str": st.one_of(st.integers(), st.booleans(), st.none(), others,
                             st.floats(allow_nan=False))}
        value = draw(wrong[table])
    return Hostile(dump(nest(path, value)), "wrong_type", (".".join(path) + ":",))


def _levels() -> list[tuple[tuple[str, ...], type[BaseModel]]]:
    """Every model of the configuration and its path (FeatureParams, features' own, left out)."""
    levels: list[tuple[tuple[str, ...], type[BaseModel]]] = [((), Config)]
    for path, model in levels:  # grows while it is walked
        for name, info in model.model_fields.items():
            kind = info.annotation
            if isinstance(kind, type) and issubclass(kind, BaseModel) and name != "features":
                levels.append(((*path, name), kind))
    return levels


LEVELS = _levels()


@st.composite
def unknown_key(draw: st.DrawFn) -> Hostile:
    path, model = draw(st.sampled_from(LEVELS))
    key = draw(st.text(min_size=1, max_size=40).filter(
        lambda k: k not in model.model_fields and k not in ("<<", "=")))  # YAML's merge/value
    value = draw(scalars)
    return Hostile(dump(nest(path, {key: value})), "unknown_key",
                   ("Extra inputs are not permitted",))


not_mapping = st.one_of(st.lists(scalars, min_size=1, max_size=5), st.integers(),
                        st.text(max_size=20), st.floats(allow_nan=False)).map(
    lambda v: Hostile(dump(v), "not_mapping", ("the top level must be a mapping, got",)))


@st.composite
def duplicate(draw: st.DrawFn) -> Hostile:
    path = draw(st.sampled_from(INTS))
    a, b = draw(st.integers(1, 100)), draw(st.integers(1, 100))
    indent = "  " * (len(path) - 1)
    lines = [f"{'  ' * i}{k}:" for i, k in enumerate(path[:-1])]
    lines += [f"{indent}{path[-1]}: {a}", f"{indent}{path[-1]}: {b}"]
    return Hostile(("\n".join(lines) + "\n").encode(), "duplicate",
                   (f"the key {path[-1]} appears twice",))


syntax = st.sampled_from([
    "messenger: [unclosed", "messenger: {publisher: ", "a: b: c", "\tmessenger: {}",
    "messenger:\n\tpublisher: {}", "messenger: 'unterminated", "messenger: *nowhere",
    "- a\nb: c", "messenger: {a: 1}}", "? [\n", "messenger: @reserved", "%YAML 9.9\n---\na: 1",
    "a: 1\n---\nb: 2"]).map(lambda t: Hostile(t.encode(), "syntax",
                                              ("not valid YAML (", "expected a single document")))


@st.composite
def huge_list(draw: st.DrawFn) -> Hostile:
    if draw(st.booleans()):
        n = draw(st.integers(MAX_STREAMS + 1, 3 * MAX_STREAMS))
        says = f"at most {MAX_STREAMS} items"
    else:
        n = draw(st.integers(MAX_NODES + 1, MAX_NODES + 1000))
        says = f"more than {MAX_NODES} values"
    streams = [f"s{i}" for i in range(n)]
    return Hostile(dump({"messenger": {"subscriber": {"streams": streams}}}), "huge_list",
                   (says,))


@st.composite
def alias_bomb(draw: st.DrawFn) -> Hostile:
    fan = draw(st.integers(3, 12))
    levels = math.ceil(math.log(MAX_NODES + 1) / math.log(fan)) + draw(st.integers(0, 3))
    lines = [f"l0: &l0 [{', '.join(['lol'] * fan)}]"]
    lines += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * fan)}]" for i in range(1, levels)]
    where = draw(st.sampled_from(["top", "features"]))
    text = "\n".join(lines) if where == "top" else "features:\n" + "\n".join(
        "  " + ln for ln in lines)
    return Hostile(text.encode(), "alias_bomb", ("once its aliases are expanded",))


@st.composite
def cycle(draw: st.DrawFn) -> Hostile:
    keys = draw(st.lists(st.text(string.ascii_lowercase, min_size=1, max_size=6), min_size=1,
                         max_size=8, unique=True))
    at = draw(st.integers(0, len(keys) - 1))
    lines = []
    for i, k in enumerate(keys):
        anchor = " &c" if i == at else ""
        lines.append(f"{'  ' * i}{k}:{anchor}")
    lines.append(f"{'  ' * len(keys)}back: *c")
    flow = draw(st.booleans())
    text = "&c [*c]" if flow else "\n".join(lines)
    return Hostile(text.encode(), "cycle", ("(a cycle: the node anchored on line",))


@st.composite
def deep(draw: st.DrawFn) -> Hostile:
    n = draw(st.integers(MAX_DEPTH + 1, 2000))
    form = draw(st.sampled_from(["flow", "mapping", "unclosed"]))
    says: tuple[str, ...] = (f"nested deeper than {MAX_DEPTH} levels",)
    if form == "flow":
        text = "[" * n + "]" * n
    elif form == "unclosed":
        text = "messenger: " + "[" * n
    else:
        n = min(n, 300)
        text = "".join(f"{'  ' * i}k{i}:\n" for i in range(n)) + "  " * n + "x"
    return Hostile(text.encode(), "deep", says)


empty = st.tuples(st.lists(st.sampled_from(["", " ", "# a comment", "#", "   # indented"]),
                           max_size=4),
                  st.sampled_from(["", "---", "--- ~", "~", "null", "---\n...", "--- null"])
                  ).map(lambda t: Hostile("\n".join([*t[0], t[1]]).encode(), "empty",
                                          ("empty (no settings)",)))

GOOD = dump(Config().model_dump(mode="json"))
BAD_UTF8 = [b"\xff", b"\xfe", b"\x80", b"\xc3", b"\xc3(", b"\xed\xa0\x80", b"\xc0\xaf",
            b"\xf8\x88\x80\x80\x80", b"\xe2\x82"]


@st.composite
def non_utf8(draw: st.DrawFn) -> Hostile:
    if draw(st.integers(0, 9)) == 0:
        return Hostile(GOOD.decode().encode("utf-16"), "non_utf8", ("not UTF-8 text (byte 0x",))
    at = draw(st.integers(0, len(GOOD)))
    bad = draw(st.sampled_from(BAD_UTF8))
    return Hostile(GOOD[:at] + bad + GOOD[at:], "non_utf8", ("not UTF-8 text (byte 0x",))


@st.composite
def binary(draw: st.DrawFn) -> Hostile:
    data = bytearray(draw(st.binary(min_size=1, max_size=2000)))
    data.insert(draw(st.integers(0, len(data))), 0)
    return Hostile(bytes(data), "binary", ("not UTF-8 text (byte 0x", "is not allowed)"))


@st.composite
def too_big(draw: st.DrawFn) -> Hostile:
    size = draw(st.integers(MAX_BYTES + 1, 4 * MAX_BYTES))
    padding = b"# " + b"x" * (size - len(GOOD) - 3) + b"\n"
    return Hostile(GOOD + padding, "too_big", (f"over {MAX_BYTES} bytes; not read",))


# Each class and how often it is drawn in a mixed stream (the costly ones, to parse or to
# write, more rarely).
CLASSES: dict[str, tuple[st.SearchStrategy[Hostile], int]] = {
    "wrong_type": (wrong_type(), 6), "unknown_key": (unknown_key(), 6),
    "not_mapping": (not_mapping, 2), "duplicate": (duplicate(), 2), "syntax": (syntax, 2),
    "huge_list": (huge_list(), 1), "alias_bomb": (alias_bomb(), 2), "cycle": (cycle(), 2),
    "deep": (deep(), 2), "empty": (empty, 2), "non_utf8": (non_utf8(), 3),
    "binary": (binary(), 3), "too_big": (too_big(), 1),
}
hostile = st.sampled_from([k for k, (_, w) in CLASSES.items() for _ in range(w)]).flatmap(
    lambda kind: CLASSES[kind][0])
