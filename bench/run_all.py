"""Run every benchmark in bench/ one after another and print their outputs (`make bench`).

    .venv/bin/python bench/run_all.py            # the sizes below (about 10-15 minutes here)
    .venv/bin/python bench/run_all.py --quick    # small sizes: a smoke run of every script
    .venv/bin/python bench/run_all.py consume e2e    # only these (names without bench_)

Each script runs in its own process (chDB allows one engine per process) with the sizes below;
a bench_*.py not listed here runs with its own defaults. The exit status is non-zero if any
script failed; the others still run.
"""

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

# script -> (arguments, --quick arguments)
SIZES: dict[str, tuple[list[str], list[str]]] = {
    "bench_features.py": (["--rows", "100000", "1000000", "--repeats", "3"],
                          ["--rows", "100000", "--repeats", "1"]),
    "bench_bom.py": (["--edges", "100000", "--repeats", "3"],
                     ["--edges", "10000", "--repeats", "1"]),
    "bench_store.py": (["--rows", "100000", "1000000"], ["--rows", "100000"]),
    "bench_consume.py": (["--events", "20000", "--repeats", "3"],
                         ["--events", "2000", "--repeats", "1"]),
    "bench_e2e.py": (["--rounds", "3"], ["--rounds", "1", "--days", "200"]),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke run)")
    parser.add_argument("only", nargs="*", help="e.g. features consume (default: all)")
    args = parser.parse_args()

    scripts = [name for name in SIZES if (HERE / name).exists()]
    scripts += sorted(p.name for p in HERE.glob("bench_*.py") if p.name not in SIZES)
    if args.only:
        wanted = {f"bench_{n.removeprefix('bench_').removesuffix('.py')}.py" for n in args.only}
        unknown = wanted - set(scripts)
        if unknown:
            parser.error(f"no such bench script: {', '.join(sorted(unknown))}")
        scripts = [s for s in scripts if s in wanted]

    results: list[tuple[str, int, float]] = []
    for script in scripts:
        full, quick = SIZES.get(script, ([], []))
        extra = quick if args.quick else full
        command = [sys.executable, str(HERE / script), *extra]
        python = os.path.relpath(sys.executable, HERE.parent)
        print(f"\n{'=' * 100}\n$ {' '.join([python, f'bench/{script}', *extra])}\n", flush=True)
        started = time.perf_counter()
        code = subprocess.run(command, cwd=HERE.parent).returncode
        results.append((script, code, time.perf_counter() - started))

    print(f"\n{'=' * 100}\n{'script':<20} {'status':<8} {'seconds':>8}")
    for script, code, seconds in results:
        print(f"{script:<20} {'ok' if code == 0 else f'exit {code}':<8} {seconds:8.0f}")
    return 0 if all(code == 0 for _, code, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main())
