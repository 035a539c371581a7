"""Usage errors in one line, help, `python -m app` vs the entry point, unexpected failures with
secrets masked."""

from __future__ import annotations

import pytest
import redis

from app import cli
from tests.system.cli.kit import (
    COMMANDS,
    child_env,
    commands_in,
    entry_point,
    one_line_error,
    python_m_app,
    run,
)


@pytest.mark.parametrize(("argv", "where", "names"), [
    (["groups"], "secretmagic groups", ["Missing argument", "'STREAM'"]),
    (["frobnicate"], "secretmagic", ["No such command", "'frobnicate'"]),
    ([], "secretmagic", ["Missing command"]),
    (["dlq"], "secretmagic dlq", ["Missing command"]),
    (["lag", "--bogus"], "secretmagic lag", ["No such option", "--bogus"]),
    (["tail", "s", "-n", "many"], "secretmagic tail", ["--count", "'many'", "not a valid int"]),
    (["recompute", "--client", "c", "--what", "nope"], "secretmagic recompute",
     ["'--what'", "'nope' is not one of all, products, features, bom"]),
])
def test_a_usage_error_is_one_line_naming_the_problem(
    argv: list[str], where: str, names: list[str]
) -> None:
    """`<command>: error: <what is wrong> (see <command> --help)`, exit code 2, nothing else."""
    result = run(*argv)
    line = one_line_error(result)
    assert line.startswith(f"{where}: error: ") and line.endswith(f" (see {where} --help)")
    assert all(name in line for name in names), line
    assert (result.code, result.out) == (2, "")


def test_help_lists_every_command_and_each_has_its_own() -> None:
    """What cli.app registers (one add_typer line per module) is what --help offers."""
    top = run("--help")
    assert (top.code, top.err) == (0, "") and top.out.startswith("Usage: secretmagic ")
    assert commands_in(top.out) == COMMANDS
    assert run("-h").out == top.out
    assert commands_in(run("dlq", "--help").out) == ["list", "show", "replay", "purge"]
    for argv in ([c] for c in COMMANDS if c != "dlq"):
        own = run(*argv, "--help")
        assert own.code == 0 and own.out.startswith(f"Usage: secretmagic {argv[0]} "), own.out
    assert "--what [all|products|features|bom]" in run("recompute", "--help").out
    assert "╭" not in top.out + run("groups").err  # plain text, no rich boxes


def test_python_m_app_and_the_entry_point_are_the_same_program() -> None:
    """Same help, same one-line usage error (a real command: test_password_from_a_secret_file)."""
    env = child_env()
    for launch in (python_m_app, entry_point):
        help_text = launch("--help", env=env)
        assert help_text.returncode == 0 and commands_in(help_text.stdout) == COMMANDS
        usage = launch("pending", env=env)
        assert usage.returncode == 2 and usage.stdout == ""
        assert usage.stderr == ("secretmagic pending: error: Missing argument 'STREAM'. "
                                "(see secretmagic pending --help)\n")


def test_an_unexpected_failure_is_one_line_with_secrets_masked(
    r: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MESSENGER_PASSWORD", "Hunter-2-pw")  # the shared Redis ignores it

    def broken(*_: object, **__: object) -> None:
        raise RuntimeError("the driver quoted Hunter-2-pw back")

    monkeypatch.setattr(cli.streams.ops, "streams", broken)
    result = run("streams")
    assert one_line_error(result) == (
        "secretmagic: unexpected error: RuntimeError: the driver quoted *** back"
    )
    assert result.code == 1
