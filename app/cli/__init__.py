"""`secretmagic`: monitoring commands that replace the seed's redis-cli sessions and SQL by hand.

    secretmagic streams                        KEYS * + XLEN (SCAN TYPE stream, never KEYS)
    secretmagic groups STREAM                  XINFO GROUPS / XINFO CONSUMERS
    secretmagic lag                            the lag of every group (Redis 6.2 and 7.x)
    secretmagic pending STREAM [GROUP]         XPENDING, with each entry's event and last error
    secretmagic tail STREAM [-n N] [--follow]  XREVRANGE STREAM + - COUNT N, then XREAD BLOCK
    secretmagic dlq list|show|replay|purge     the dead-letter streams (<group>:dlq)
    secretmagic logs [--errors]                the seed's two SQL queries on the log table
    secretmagic recompute --client ID          the handlers' pipelines for a client, by hand
    secretmagic features CLIENT_ID             a client's features from the store

Tables for people, `--json` for scripts (tail --json prints one JSON object per line). The Redis
is the app's own: MESSENGER_HOST/PORT/PASSWORD/DB, the password possibly a /run/secrets path;
`logs` reads LOGS_DSN/LOGS_SCHEMA and needs no messenger. Errors are one line on stderr, secrets
masked; exit code 1 for a failed request, 2 for a configuration or usage error (app.cli.errors).
`python -m app ...` is the same program.

Adding a command: write a module here with its own `commands = typer.Typer()` (give it
`name="..."` for a command group such as `dlq`), one function per command, decorated
`@commands.command()`, whose first parameter is `ctx: typer.Context`:

    @commands.command()
    def features(ctx: typer.Context, client: str, as_json: JsonFlag = False) -> None:
        '''One line of help.'''
        session = Session.of(ctx)           # .redis, .settings, .print(), .json(), .confirm()
        ...

then add one line below: `app.add_typer(features.commands)`. A command fails by raising
`CliError(message, code)` (or letting an ops/redis error through: errors.describe words it), and
ends with a non-zero status without a message by `raise typer.Exit(code)`. It touches
`session.redis` only if it needs the messenger. Tables, durations and untrusted text go through
app.cli.output; progress for long operations goes to `session.err`, keeping stdout for results.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Sequence
from typing import IO

import typer

from app.cli import dlq, errors, features, logs, recompute, streams
from app.cli.session import Session
from core.redact import scrub

PROG = "secretmagic"

app = typer.Typer(
    name=PROG,
    help="Inspect secretmagic's Redis streams, consumer groups, dead-letter queues and logs. "
    "Connects with MESSENGER_HOST/PORT/PASSWORD/DB, as the worker does.",
    # Plain output: errors are our one-line form (main), help is Click's plain text, never
    # rich boxes or pretty tracebacks (which could show locals, e.g. a password).
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(streams.commands)  # streams, groups, lag, pending, tail
app.add_typer(dlq.commands)  # dlq list|show|replay|purge
app.add_typer(logs.commands)
app.add_typer(recompute.commands)
app.add_typer(features.commands)  # one client's features from the store


def main(
    argv: Sequence[str] | None = None,
    *,
    stdout: IO[str] | None = None,
    stderr: IO[str] | None = None,
    stdin: IO[str] | None = None,
) -> int:
    """Run one command; returns the exit code (never raises, never prints a traceback)."""
    out, err = stdout or sys.stdout, stderr or sys.stderr
    session = Session(out, err, stdin or sys.stdin)
    command = typer.main.get_command(app)
    try:
        # Click writes --help to sys.stdout; a caller's streams (the tests') must get it.
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = command.main(list(sys.argv[1:] if argv is None else argv), prog_name=PROG,
                                standalone_mode=False, obj=session)
        return code if isinstance(code, int) else 0  # --help and typer.Exit give a code
    except SystemExit as exc:  # Click's answer to a closed pipe (`secretmagic tail s | head`)
        return exc.code if isinstance(exc.code, int) else errors.EXIT_FAILED
    except errors.UsageError as exc:
        message, code = errors.usage_line(exc, PROG), errors.EXIT_CONFIG
    except Exception as exc:
        message, code = errors.describe(exc, session.endpoint)
        message = f"{PROG}: {message}"
    err.write(scrub(message, session.secrets) + "\n")
    err.flush()
    return code


if __name__ == "__main__":
    sys.exit(main())
