"""Hostile configuration by the thousand: hypothesis writes 2,000 invalid files
(tests.apps.hostile: wrong types, unknown keys, huge lists, alias bombs, cycles, deep nesting,
empty, not UTF-8, binary, over the size limit, …) over a running worker's configuration file
while events flow.

What must hold: each file the worker reads is rejected with one log line naming the file and the
problem (the one settings.config.parse gives for those bytes: checked for the last file of each
burst, which the test waits for); the last good configuration stays in effect (its publisher
route: every output goes to the stream it names); nothing is lost or handled twice; no reload
storm (reload attempts, counted by secretmagic_config_reloads_total, at most one per write: a
burst of writes is read once or a few times, never more); and the watcher still applies a good
file afterwards.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import cast

import pytest
import redis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from settings.config import ConfigError, parse
from tests import services
from tests.apps.hostile import Hostile, hostile
from tests.apps.probes import TARGET, Counts, dead_letters, handled, metric
from tests.harness import (
    AppProcess,
    Entries,
    app_processes,
    config,
    job,
    messenger_env,
    unique,
    write_config,
)

PER_EXAMPLE, EXAMPLES = 10, 200  # 2,000 files; the last of each burst awaited


def routed_jobs(r: redis.Redis, stream: str) -> set[str]:
    return {json.loads(f[b"data"])["job"] for _, f in cast(Entries, r.xrange(stream))}


def test_two_thousand_hostile_files_are_rejected_and_the_last_good_one_stays(
        redis_url: str, tmp_path: Path) -> None:
    r = redis.Redis.from_url(redis_url)
    stream, prefix, routed = unique("cfgfuzz"), unique("rec"), unique("routed")
    good = config([stream]).model_dump(mode="json")
    good["messenger"]["publisher"]["streams"] = {"job_done": routed}
    path = write_config(tmp_path / "config.yaml", good)
    port = services.free_port()
    env = {**messenger_env(redis_url), "SECRETMAGIC_CONFIG": str(path),
           "RECORDER_STREAMS": stream, "RECORDER_PREFIX": prefix, "METRICS_PORT": str(port)}
    sent: set[str] = set()
    written: list[str] = []  # the class of each file written

    def write(data: bytes) -> None:
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(data)
        tmp.replace(path)  # whole files, as an editor saves: a half-written one is not the test

    with app_processes(AppProcess(TARGET, env, tmp_path, "cfgfuzz")) as (app,):
        app.wait_output(f"consuming {stream}")

        def rejections() -> list[str]:
            return [ln for ln in app.output.splitlines() if "configuration rejected" in ln]

        @settings(max_examples=EXAMPLES, phases=[Phase.generate], deadline=None,
                  database=None, suppress_health_check=list(HealthCheck))
        @given(st.lists(hostile, min_size=PER_EXAMPLE, max_size=PER_EXAMPLE))
        def storm(burst: list[Hostile]) -> None:
            before = len(rejections())
            for case in burst:
                data = b"# file %d\n" % len(written) + case.data  # never the same bytes twice
                written.append(case.kind)
                write(data)
            for _ in range(2):  # events flow meanwhile
                fields = job()
                r.xadd(stream, fields)
                sent.add(fields["event_id"])
            with pytest.raises(ConfigError) as verdict:
                parse(data, str(path))
            expected = str(verdict.value)
            # A rejection since the burst began, the latest one saying what the last file's
            # bytes are refused for (a line naming a file before it may say the same).
            services.wait_for(lambda: len(lines := rejections()) > before
                              and expected in lines[-1], 30,
                              f"the worker's rejection of a {burst[-1].kind} file: {expected}")

        storm()
        lines = rejections()
        rejected = metric(port, "secretmagic_config_reloads_total", result="rejected")
        services.wait_for(lambda: set(handled(r, prefix)) >= sent, 60, "every event handled")
        services.wait_for(lambda: routed_jobs(r, routed) >= sent, 30,
                          "every output on the good configuration's route")
        # The watcher still works: a good file is applied, and its route taken.
        good["messenger"]["publisher"]["streams"] = {"job_done": f"{routed}-after"}
        write_config(path, good)
        app.wait_output("configuration reloaded")
        after = job()
        r.xadd(stream, after)
        services.wait_for(lambda: after["event_id"] in routed_jobs(r, f"{routed}-after"), 30,
                          "the good file's new route in effect")
        applied = metric(port, "secretmagic_config_reloads_total", result="applied")
        assert app.running
    kinds = {k: written.count(k) for k in sorted(set(written))}
    counts = Counts("hostile configuration", sent, handled(r, prefix),
                    len(dead_letters(r, "secretmagic-group", stream)),
                    routed_jobs(r, routed)).report(
        files=len(written), rejected=f"{rejected:.0f}", rejection_lines=len(lines),
        applied=f"{applied:.0f}", kinds=json.dumps(kinds, separators=(",", ":")))
    assert counts.lost == 0 and counts.duplicated == 0 and counts.dead_lettered == 0
    assert len(set(written)) == 13  # every class was written
    # One line per rejection, naming the file; one attempt per write at most (no storm).
    assert rejected == len(lines) and EXAMPLES <= len(lines) <= len(written)
    assert all(str(path) in ln for ln in lines)
    assert applied == 1 and app.output.count("configuration reloaded") == 1
    assert "Traceback" not in app.output and "applying the configuration failed" not in app.output
    r.delete(stream, f"{stream}-done", routed, f"{routed}-after")
