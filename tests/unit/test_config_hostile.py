"""settings.config.parse against hostile files: each class once with its exact message, then
thousands generated (tests.apps.hostile): every one refused with one line that names the file
and says what is wrong. And the reload path reads a file bounded, never whole.
"""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from settings import LiveConfig
from settings.config import MAX_BYTES, ConfigError, parse, read
from tests.apps.hostile import CLASSES, GOOD, Hostile
from tests.harness import config, write_config

SOURCE = "conf/c.yaml"
BOMB = "\n".join(["a: &a [x, x, x, x, x, x, x, x, x, x]"]
                 + [f"{n}: &{n} [{', '.join([f'*{p}'] * 10)}]"
                    for p, n in zip("abcd", "bcde", strict=True)])


@pytest.mark.parametrize(("data", "message"), [
    # wrong types: no conversion (`true` is not 1, "5" is not 5) and ranges
    (b"messenger: {publisher: {max_length: true}}",
     "messenger.publisher.max_length: Input should be a valid integer (got True)"),
    (b"messenger: {publisher: {max_length: '5'}}",
     "messenger.publisher.max_length: Input should be a valid integer (got '5')"),
    (b"messenger: {subscriber: {enabled: 1}}",
     "messenger.subscriber.enabled: Input should be a valid boolean (got 1)"),
    (b"messenger: {subscriber: {consumer_group: 7}}",
     "messenger.subscriber.consumer_group: Input should be a valid string (got 7)"),
    (b"messenger: {subscriber: {batch_size: 0}}",
     "messenger.subscriber.batch_size: Input should be greater than or equal to 1 (got 0)"),
    (b"messenger: {subscriber: {streams: [a, 3]}}",
     "messenger.subscriber.streams.1: Input should be a valid string (got 3)"),
    (b"messenger: {subscriber: {backoff: 5}}",
     "messenger.subscriber.backoff: Input should be a valid dictionary or instance of Backoff "
     "(got 5)"),
    # unknown keys, quoted when not plain, cut at 60 characters; at most five problems
    (b"messenger: {subscriber: {enabeld: true}}",
     "messenger.subscriber.enabeld: Extra inputs are not permitted (got True)"),
    (b'messenger: {"a b\\nc": 1}', "messenger.'a b\\nc': Extra inputs are not permitted (got 1)"),
    (b"bom: {" + b"k" * 100 + b": 1}",
     "bom." + "k" * 60 + "…: Extra inputs are not permitted (got 1)"),
    (b"bom: {a: 1, b: 2, c: 3, d: 4, e: 5, f: 6, g: 7}",
     "; ".join(f"bom.{k}: Extra inputs are not permitted (got {v})" for v, k in
               enumerate("abcde", 1)) + "; and 2 more"),
    (b"- a\n- b\n", "the top level must be a mapping, got list"),
    (b"bom: {max_depth: 3, max_depth: 4}",
     "the key max_depth appears twice in one mapping (line 1); not loaded"),
    # not YAML
    (b"messenger: [unclosed", "line 1: not valid YAML (expected ',' or ']', but got "
                              "'<stream end>')"),
    (b"messenger:\n\tpublisher: {}",
     "line 2: not valid YAML (found character '\\t' that cannot start any token)"),
    (b"a: *nowhere", "line 1: not valid YAML (found undefined alias 'nowhere')"),
    # bounds: size, values once aliases are expanded, cycles, depth, streams
    (b"a: 1\n" * (MAX_BYTES // 5 + 1), "over 262144 bytes; not read"),
    (BOMB.encode(), "more than 20000 values once its aliases are expanded (an alias bomb?); "
                    "not loaded"),
    (b"messenger: {subscriber: {streams: [" + b", ".join(b"s%d" % i for i in range(20_001))
     + b"]}}", "more than 20000 values; not loaded"),
    (b"messenger: {subscriber: {streams: [" + b", ".join(b"s%d" % i for i in range(1001))
     + b"]}}", "messenger.subscriber.streams: Tuple should have at most 1000 items after "
               "validation, not 1001"),
    (b"&c [*c]", "an alias refers to a node that contains it (a cycle: the node anchored on "
                 "line 1); not loaded"),
    (b"bom: {}\nmessenger: &m\n  subscriber:\n    loop: *m\n",
     "an alias refers to a node that contains it (a cycle: the node anchored on line 2); "
     "not loaded"),
    (b"[" * 65 + b"]" * 65, "nested deeper than 64 levels (line 1); not loaded"),
    (b"[" * 300_000, "over 262144 bytes; not read"),
    (b"bom: {}\nmessenger: " + b"[" * 100_000, "nested deeper than 64 levels (line 2); "
                                               "not loaded"),
    # empty, not UTF-8, binary
    (b"", "empty (no settings); write {} for all the defaults"),
    (b"# only a comment\n---\n", "empty (no settings); write {} for all the defaults"),
    (b"~", "empty (no settings); write {} for all the defaults"),
    (b"messenger: {publisher: {max_length: 5\xff}}",
     "not UTF-8 text (byte 0xff at offset 37)"),
    ("messenger: {}".encode("utf-16"), "not UTF-8 text (byte 0xff at offset 0)"),
    (b"messenger:\x00\x01", "not valid YAML (character #x0000 at character 10 is not allowed)"),
])
def test_each_class_of_hostile_file_is_refused_with_its_message(data: bytes,
                                                                message: str) -> None:
    with pytest.raises(ConfigError) as refused:
        parse(data, SOURCE)
    separator = " " if message.startswith("line ") else ": "
    assert str(refused.value) == f"{SOURCE}{separator}{message}"


def refused_in_one_line(case: Hostile) -> None:
    with pytest.raises(ConfigError) as refused:
        parse(case.data, SOURCE)
    message = str(refused.value)
    assert "\n" not in message and message.isprintable(), message
    assert message.startswith(SOURCE) and len(message) < 1500, message
    assert any(says in message for says in case.says), (case, message)


@pytest.mark.parametrize("kind", sorted(CLASSES))
def test_generated_hostile_files_are_refused_in_one_line(kind: str) -> None:
    # Megabytes to build and parse each (huge_list, too_big); PyYAML's scanner is slow on a
    # long run of `[` (deep).
    examples = {"huge_list": 15, "too_big": 15, "deep": 60}.get(kind, 300)

    @settings(max_examples=examples, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(CLASSES[kind][0])
    def check(case: Hostile) -> None:
        assert case.kind == kind
        refused_in_one_line(case)

    check()


@settings(max_examples=50, deadline=None, database=None)
@given(st.binary(max_size=300))
def test_any_bytes_are_refused_or_parsed_never_a_crash(data: bytes) -> None:
    try:
        parse(b"# fuzz\n" + data, SOURCE)
    except ConfigError as exc:
        assert "\n" not in str(exc) and str(exc).startswith(SOURCE)


def test_a_huge_file_is_never_read_whole(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    with path.open("wb") as f:
        f.write(GOOD)
        f.truncate(512 << 20)  # 512 MiB (sparse): read whole, it would show in the peak
    tracemalloc.start()
    try:
        data = read(path)
        with pytest.raises(ConfigError, match=f"{path}: over {MAX_BYTES} bytes; not read"):
            parse(data, str(path))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(data) == MAX_BYTES + 1
    assert peak < 4 * MAX_BYTES


async def test_reload_refuses_a_huge_file_and_keeps_the_last_good_one(tmp_path: Path) -> None:
    path = write_config(tmp_path / "c.yaml", config(["a"], batch_size=7))
    live = LiveConfig(path)
    with path.open("r+b") as f:
        f.truncate(512 << 20)
    tracemalloc.start()
    try:
        assert not await live.reload()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert live.current.messenger.subscriber.batch_size == 7
    assert peak < 8 * MAX_BYTES
