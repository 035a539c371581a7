"""What the CLI tests share: running main(argv) and capturing its output, the environment of a
child process, pointing the CLI at a Redis."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest

from app import cli

ROOT = Path(__file__).resolve().parents[2]


ENTRY_POINT = Path(sys.executable).with_name("secretmagic")  # pyproject's [project.scripts]


COMMANDS = ["streams", "groups", "lag", "pending", "tail", "dlq", "logs", "recompute", "features"]


MESSENGER = ("MESSENGER_HOST", "MESSENGER_PORT", "MESSENGER_PASSWORD", "MESSENGER_DB")


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)

    def rows(self, first: str) -> list[list[str]]:
        """The table rows whose first column is `first`, split on blanks."""
        return [line.split() for line in self.out.splitlines() if line.startswith(first + " ")]

    def row(self, first: str) -> list[str]:
        rows = self.rows(first)
        assert len(rows) == 1, self.out
        return rows[0]


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def run(*argv: str, stdin: io.StringIO | None = None) -> Result:
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(list(argv), stdout=out, stderr=err, stdin=stdin or io.StringIO())
    return Result(code, out.getvalue(), err.getvalue())


def one_line_error(result: Result) -> str:
    assert result.code != 0
    assert result.err.count("\n") == 1 and result.err.startswith("secretmagic"), result.err
    assert "Traceback" not in result.err + result.out
    return result.err.strip()


def point_at(monkeypatch: pytest.MonkeyPatch, url: str, password: str | None = None) -> None:
    parsed = urlparse(url)
    for name in MESSENGER:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MESSENGER_HOST", parsed.hostname or "127.0.0.1")
    monkeypatch.setenv("MESSENGER_PORT", str(parsed.port or 6379))
    monkeypatch.setenv("MESSENGER_DB", (parsed.path or "/0").strip("/") or "0")
    if password is not None:
        monkeypatch.setenv("MESSENGER_PASSWORD", password)


def child_env(**messenger: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in MESSENGER}
    return env | messenger


def python_m_app(*argv: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "app", *argv], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)


def entry_point(*argv: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    assert ENTRY_POINT.exists(), f"{ENTRY_POINT} missing: pip install -e . (make install)"
    return subprocess.run([str(ENTRY_POINT), *argv], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=60)


def commands_in(help_text: str) -> list[str]:
    """The command names a --help lists under `Commands:`."""
    section = help_text.split("\nCommands:\n", 1)[1]
    return [line.split()[0] for line in section.splitlines() if line.startswith("  ")]
